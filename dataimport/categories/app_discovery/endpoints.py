"""Typed endpoint tables of app_discovery's prepared enrichment, and their ranked match.

Prepare, every range and finish extract the JSONB of the staged rows once into a small typed
temporary table (dropped at commit), then work on plain columns with hash joins. Endpoint
matching keeps the resolver's ranks (external id, VM UUID, name key, host name key, IP
address; the best rank wins, the smallest asset id within a rank, so prepare and every range
agree): each rank is ONE hash join of the distinct endpoints with the tenant's assets
(`dataimport.asset_matching.match_sql`), never a per-row probe, so a tenant the statistics do
not know yet costs at worst one scan of that tenant per rank, not one per row; only where the
assets table is known to dwarf the ends (a range in a big inventory) is each end one index
probe per rank instead, so a range never reads the whole inventory. Nested loops
are switched off around these statements (`dataimport.planner`, restored after) for the same
reason: estimates of a fresh temp table or of a tenant that grew since the last ANALYZE must
not pick row-by-row plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# `match` resolves a table of ends (call it with nested loops off).
from dataimport.asset_matching import TENANT, match

__all__ = ["END_COLUMNS", "RANGE", "TENANT", "match", "temp_table"]

RANGE = """r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.is_valid AND NOT r.superseded"""

# The identity columns an endpoint object carries, typed once.
END_COLUMNS = """
  a ->> 'name' AS name, a ->> 'name_key' AS name_key, a ->> 'hostname_key' AS hostname_key,
  a ->> 'hostname' AS hostname, a ->> 'external_id' AS external_id,
  a ->> 'vm_uuid' AS vm_uuid, a ->> 'ip_address' AS ip_address,
  a ->> 'asset_type' AS asset_type"""


async def temp_table(
    conn: AsyncConnection, name: str, select: str, params: Mapping[str, Any]
) -> None:
    """A fresh temporary table from `select` (dropped at commit; dropped first when a
    caller's transaction already made one, e.g. two ranges in one test transaction)."""
    await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    await conn.execute(text(f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS {select}"), params)
