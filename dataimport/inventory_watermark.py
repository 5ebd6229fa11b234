"""The tenant's inventory watermark: counts and a digest that change with every inventory write.

An approval plan records the watermark its dry run started from; when the tenant's watermark
differs later, another import has changed the inventory since and the plan may no longer say
what approving would do (approval_plan.stored_plan: `stale`).

Every inventory write sets `updated_at = now()` (the writing transaction's start), so a digest
over (id, updated_at) of every row changes with any insert or update, also one committed late
by a transaction older than the newest row: a bare max(updated_at) would miss that one. The
epoch, not the timestamp's text, goes into the digest: it does not depend on a session's
TimeZone, so the worker that plans and the API that checks agree.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.tenant_context import HasTenant

_TENANT = "client_account_id = CAST(:c AS uuid) AND engagement_id = CAST(:e AS uuid)"
_ROW = "hashtextextended(id::text || '@' || extract(epoch FROM updated_at)::text, 0)::numeric"

_READ = f"""
WITH a AS (
  SELECT count(*) AS n, max(updated_at) AS newest, coalesce(sum({_ROW}), 0) AS digest
  FROM assets WHERE {_TENANT}
), d AS (
  SELECT count(*) AS n, max(updated_at) AS newest, coalesce(sum({_ROW}), 0) AS digest
  FROM asset_dependencies WHERE {_TENANT}
)
SELECT a.n AS assets, d.n AS dependencies, greatest(a.newest, d.newest) AS newest,
       md5(a.digest::text || ':' || d.digest::text) AS digest
FROM a, d
"""


class InventoryWatermark(BaseModel):
    """Where the tenant's inventory stood: compare two with `same_inventory`."""

    assets: int
    dependencies: int
    newest: datetime | None = None  # the latest write, for people; the digest decides
    digest: str

    def same_inventory(self, other: InventoryWatermark) -> bool:
        return (self.assets, self.dependencies, self.digest) == (
            other.assets,
            other.dependencies,
            other.digest,
        )

    def change_since(self, earlier: InventoryWatermark) -> str:
        """The change from `earlier` to this one, in words."""
        when = f", last written {self.newest.isoformat()}" if self.newest else ""
        return (
            f"assets {earlier.assets} -> {self.assets}, "
            f"dependencies {earlier.dependencies} -> {self.dependencies}{when}"
        )


async def read_watermark(conn: AsyncConnection, tenant: HasTenant) -> InventoryWatermark:
    """The tenant's watermark as `conn` sees the inventory now (one scan of each table)."""
    params = {"c": str(tenant.client_account_id), "e": str(tenant.engagement_id)}
    row = (await conn.execute(text(_READ), params)).one()
    return InventoryWatermark(
        assets=row.assets, dependencies=row.dependencies, newest=row.newest, digest=row.digest
    )
