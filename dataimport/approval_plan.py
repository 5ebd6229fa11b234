"""The approval plan: what enrichment would do to the inventory, found by doing it and rolling back.

The plan of an import that asks for approval is computed by the category's own enrichment
(prepare, enrich, link, finish: the statements the approved import will run) over the whole
import in one transaction that is rolled back, so it cannot drift from what enrichment really
does. Inside that transaction the outcome is counted the way `inventory.import_totals` counts
it after a real run (assets created by the import, assets it updated, dependencies it created),
and capped samples are read: names and types of new assets, dependencies by their ends and,
for updated assets, the fields that change, old (read on a second connection, which sees the
committed inventory) beside new. Nothing of the dry run is ever committed; the plan is written
to `data_imports.approval_plan` afterwards, in a transaction of its own.

The dry run holds the locks of the writes it rolls back until it ends, as the real run would:
an import of the same tenant enriching at that moment waits for it.

Each plan has an id of its own and records the tenant's inventory watermark its dry run started
from (inventory_watermark.py). A plan read while its import awaits approval says whether it is
`stale`: another import has written to the tenant's inventory since, so approving might apply
something other than what the plan shows (the service then plans again before it approves).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dataimport import inventory, pii
from dataimport.categories import get_category
from dataimport.categories.base import ImportScope
from dataimport.contracts import ImportRef, PlanCounts
from dataimport.enrichment import FinishingCategory, PreparingCategory, import_scope
from dataimport.imports import Tenant
from dataimport.inventory_watermark import InventoryWatermark, read_watermark

SAMPLE_LIMIT = 20  # entries per sample: the plan is for people to read
UPDATED_ASSETS_EXAMINED = 50  # updated assets whose fields are compared for the sample
# Bookkeeping columns: they change on every write and say nothing about the asset.
UNCOMPARED = frozenset(
    {
        "id",
        "client_account_id",
        "engagement_id",
        "created_at",
        "updated_at",
        "source_import_id",
        "created_by_import_id",
        "name_key",
        "hostname_key",
    }
)

_TENANT = "client_account_id = CAST(:c AS uuid) AND engagement_id = CAST(:e AS uuid)"

_CREATED_SAMPLE = f"""
SELECT name, asset_type FROM assets
WHERE {_TENANT} AND created_by_import_id = CAST(:id AS uuid)
ORDER BY name_key, id LIMIT :n
"""

_UPDATED_SAMPLE = f"""
SELECT id, to_jsonb(a) AS fields FROM assets a
WHERE {_TENANT} AND source_import_id = CAST(:id AS uuid)
  AND created_by_import_id IS DISTINCT FROM CAST(:id AS uuid)
ORDER BY name_key, id LIMIT :n
"""

_COMMITTED = f"""
SELECT id, to_jsonb(a) AS fields FROM assets a
WHERE {_TENANT} AND id = ANY(CAST(:ids AS uuid[]))
"""

_DEPENDENCY_SAMPLE = """
SELECT s.name AS source, t.name AS target, d.dependency_type
FROM asset_dependencies d
JOIN assets s ON s.id = d.source_asset_id
JOIN assets t ON t.id = d.target_asset_id
WHERE d.client_account_id = CAST(:c AS uuid) AND d.engagement_id = CAST(:e AS uuid)
  AND d.created_by_import_id = CAST(:id AS uuid)
ORDER BY s.name_key, t.name_key, d.port NULLS FIRST, d.id LIMIT :n
"""

_SAVE = """
UPDATE data_imports SET approval_plan = CAST(:plan AS jsonb), updated_at = now()
WHERE id = :id AND client_account_id = :c AND engagement_id = :e
"""

_LOAD = """
SELECT status, approval_plan FROM data_imports
WHERE id = :id AND client_account_id = :c AND engagement_id = :e
"""


class NewAsset(BaseModel):
    name: str
    asset_type: str


class FieldChange(BaseModel):
    name: str = Field(description="The asset's name.")
    field: str
    old: Any = None
    new: Any = None


class NewDependency(BaseModel):
    source: str
    target: str
    dependency_type: str


class NewAssets(BaseModel):
    count: int = 0
    sample: list[NewAsset] = Field(default_factory=list)


class UpdatedAssets(BaseModel):
    count: int = Field(0, description="Assets the import would update.")
    sample: list[FieldChange] = Field(
        default_factory=list, description="Fields that would change, old -> new (capped)."
    )


class NewDependencies(BaseModel):
    count: int = 0
    sample: list[NewDependency] = Field(default_factory=list)


class ApprovalPlan(BaseModel):
    """What enrichment would do to the inventory (`GET /imports/{id}/plan`, `dataimport plan`)."""

    data_import_id: uuid.UUID
    status: str
    plan_id: uuid.UUID | None = Field(
        None, description="This plan's identity: approving names it, so only what was seen runs."
    )
    computed_at: datetime | None = None
    stale: bool = Field(
        False,
        description="Awaiting approval, and the tenant's inventory changed since the plan was "
        "made: approving plans again first (POST .../plan recomputes it now).",
    )
    stale_reason: str | None = None
    assets_to_create: NewAssets = Field(default_factory=NewAssets)
    assets_to_update: UpdatedAssets = Field(default_factory=UpdatedAssets)
    dependencies_to_add: NewDependencies = Field(default_factory=NewDependencies)


def _params(scope: ImportScope) -> dict[str, Any]:
    return {"id": scope.data_import_id, "c": scope.client_account_id, "e": scope.engagement_id}


async def compute_plan(engine: AsyncEngine, ref: ImportRef) -> PlanCounts:
    """Dry-run the import's enrichment, store the plan on its row, return the counts.

    Idempotent: a second call computes the same plan from the same staged rows and inventory
    and replaces the first."""
    scope = import_scope(ref)
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            # Before the dry run: a write committed while it runs makes the plan stale.
            watermark = await read_watermark(conn, ref)
            await _dry_run(conn, scope, ref.category)
            totals = await inventory.import_totals(conn, scope)
            params = {**_params(scope), "n": SAMPLE_LIMIT}
            created = (await conn.execute(text(_CREATED_SAMPLE), params)).mappings().all()
            dependencies = (await conn.execute(text(_DEPENDENCY_SAMPLE), params)).mappings().all()
            updated_rows = await conn.execute(
                text(_UPDATED_SAMPLE), {**params, "n": UPDATED_ASSETS_EXAMINED}
            )
            after = {row.id: row.fields for row in updated_rows}
        finally:
            await transaction.rollback()  # the plan only: nothing of the dry run stays
    before = await _committed(engine, scope, list(after))
    counts = PlanCounts(
        assets_to_create=totals["assets_created"],
        assets_to_update=totals["assets_updated"],
        dependencies_to_add=totals["dependencies_created"],
    )
    masked = get_category(ref.category).masks_values
    plan = {
        "plan_id": str(uuid.uuid4()),
        "computed_at": datetime.now(UTC).isoformat(),
        "inventory_watermark": watermark.model_dump(mode="json"),
        "assets_to_create": {
            "count": counts.assets_to_create,
            "sample": [
                {"name": _shown(row["name"], masked), "asset_type": row["asset_type"]}
                for row in created
            ],
        },
        "assets_to_update": {
            "count": counts.assets_to_update,
            "sample": _field_changes(before, after, masked),
        },
        "dependencies_to_add": {
            "count": counts.dependencies_to_add,
            "sample": [
                {
                    "source": _shown(row["source"], masked),
                    "target": _shown(row["target"], masked),
                    "dependency_type": row["dependency_type"],
                }
                for row in dependencies
            ],
        },
    }
    async with engine.begin() as conn:
        await conn.execute(
            text(_SAVE), {**_params(scope), "plan": json.dumps(plan, ensure_ascii=False)}
        )
    return counts


async def _dry_run(conn: AsyncConnection, scope: ImportScope, category_name: str) -> None:
    """The enrichment of the whole import, as the workflow runs it (enrichment.py), on one
    connection: prepare, the assets, the dependencies when the category links, finish."""
    category = get_category(category_name)
    link = True
    if isinstance(category, PreparingCategory):
        link = await category.prepare(conn, scope)
    await category.enrich(conn, scope)
    if link:
        await category.link(conn, scope)
    if isinstance(category, FinishingCategory):
        await category.finish(conn, scope)


async def _committed(
    engine: AsyncEngine, scope: ImportScope, ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The assets as committed (the dry run's writes are invisible to another transaction)."""
    if not ids:
        return {}
    async with engine.connect() as conn:
        params = {**_params(scope), "ids": [str(i) for i in ids]}
        rows = await conn.execute(text(_COMMITTED), params)
        return {row.id: row.fields for row in rows}


def _field_changes(
    before: dict[uuid.UUID, dict[str, Any]],
    after: dict[uuid.UUID, dict[str, Any]],
    masked: bool,
) -> list[dict[str, Any]]:
    """Per updated asset (name order) each field whose value changes, at most SAMPLE_LIMIT."""
    changes: list[dict[str, Any]] = []
    for asset_id, new in after.items():
        old = before.get(asset_id, {})
        for field in sorted(set(new) - UNCOMPARED):
            if old.get(field) == new.get(field):
                continue
            changes.append(
                {
                    "name": _shown(str(old.get("name") or new.get("name")), masked),
                    "field": field,
                    "old": _value(old.get(field), masked),
                    "new": _value(new.get(field), masked),
                }
            )
            if len(changes) >= SAMPLE_LIMIT:
                return changes
    return changes


def _shown(value: str, masked: bool) -> str:
    return pii.mask_value(value) if masked and value else value


def _value(value: Any, masked: bool) -> Any:
    """A field's value for the sample; of a category that masks values, its shape only."""
    if not masked or value is None or isinstance(value, bool):
        return value
    return pii.mask_value(value if isinstance(value, str) else json.dumps(value))


async def stored_plan(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> ApprovalPlan | None:
    """The plan of the tenant's import; None when there is no such import (or it is another
    tenant's). PlanMissing when the import has none (never asked for approval, or not yet
    planned)."""
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                text(_LOAD),
                {
                    "id": data_import_id,
                    "c": tenant.client_account_id,
                    "e": tenant.engagement_id,
                },
            )
        ).first()
        if found is None:
            return None
        if found.approval_plan is None:
            raise PlanMissing(
                f"import {data_import_id} has no plan (it is {found.status}; only an import "
                "started with require_approval is planned, after its validation)"
            )
        # Only while a decision is open: once approved, the import's own writes move it.
        reason = None
        if found.status == "awaiting_approval":
            reason = _staleness(found.approval_plan, await read_watermark(conn, tenant))
    return ApprovalPlan.model_validate(
        {
            **found.approval_plan,
            "data_import_id": data_import_id,
            "status": found.status,
            "stale": reason is not None,
            "stale_reason": reason,
        }
    )


def _staleness(plan: dict[str, Any], now: InventoryWatermark) -> str | None:
    """Why the plan no longer fits the inventory, or None when it still does."""
    recorded = plan.get("inventory_watermark")
    if recorded is None:
        return "the plan was made before plans recorded the inventory they were made from"
    then = InventoryWatermark.model_validate(recorded)
    if then.same_inventory(now):
        return None
    return f"the inventory changed since the plan was made ({now.change_since(then)})"


class PlanMissing(Exception):
    """The import exists but has no approval plan."""
