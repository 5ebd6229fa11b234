"""Find or create the assets staged rows refer to, set-based, on ranked natural keys.

A staged row names an asset (or two: the ends of a dependency) with a JSON object inside
`normalized_data`, e.g. `normalized_data -> 'asset'` or `-> 'source'` / `-> 'target'`, holding
any of: name, name_key, hostname_key, external_id, vm_uuid, ip_address, asset_type.
Matching ranks: external id, VM UUID, name key, host name key, IP address; the best rank
wins, the smallest asset id within a rank (as app_discovery's prepare). Unmatched endpoints
are created (minimal identity only). Resolved ids are written back: as the row's link in
`staged_row_assets` for the path 'asset', else into `normalized_data -> path -> 'asset_id'`,
so the category's own updates can join on them.

Set-based and linear whatever the statistics say: the scope's rows are read once, their
identity extracted from the JSONB once into a typed temporary table (`ROWS`), numbered by
their distinct identity (`KEYS`: rows repeat hosts, so the matching follows the distinct
identities, not the rows). Each rank is ONE hash join of those identities with the tenant's
assets (nested and merge joins off: a fresh temp table or a tenant that grew since the last
ANALYZE must not pick row-by-row plans), or, where the assets table dwarfs the identities (a
range in a big inventory), one index probe per identity and rank (`asset_matching.match`).
Both tables stay until the transaction ends (or the next call), so a category can join
`RESOLVED` (rid, row_number, asset_id) for its own writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import asset_matching, field_sources
from dataimport.asset_matching import LOOKUPS
from dataimport.planner import HASH_JOINS, planner
from dataimport.row_links import link_rows_sql

if TYPE_CHECKING:  # annotations only: the registry's categories import this module
    from dataimport.categories.base import ImportScope

PATHS = frozenset({"asset", "source", "target"})

ROWS = "asset_resolution_rows"
KEYS = "asset_resolution_keys"

_MATCH_KEYS = ", ".join(key for _, key in LOOKUPS)
_IDENTITY: tuple[str, ...] = ("name", "name_key", "hostname_key", "hostname", "external_id")
_IDENTITY += ("vm_uuid", "ip_address", "asset_type")

# The scope's rows resolved: join this (after `resolve_assets`, in the same transaction).
RESOLVED = f"""
SELECT w.rid, w.row_number, k.asset_id FROM {ROWS} w JOIN {KEYS} k ON k.n = w.n
WHERE k.asset_id IS NOT NULL
"""


def _rows(path: str) -> str:
    """The scope's valid rows naming an asset at `path`, their identity typed (the row's JSONB
    read once), each numbered `n` by its matching identity (NULLs alike, as DISTINCT does)."""
    columns = ", ".join(f"{key} text" for key in _IDENTITY)
    return f"""
SELECT w.*, dense_rank() OVER (ORDER BY {_MATCH_KEYS}) AS n
FROM (
  SELECT r.id AS rid, r.row_number, x.*
  FROM raw_import_records r
  CROSS JOIN LATERAL jsonb_to_record(r.normalized_data) AS d("{path}" jsonb)
  CROSS JOIN LATERAL jsonb_to_record(
    CASE WHEN jsonb_typeof(d."{path}") = 'object' THEN d."{path}" END) AS x({columns})
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
    AND r.is_valid AND NOT r.superseded AND x.name_key IS NOT NULL
) w
"""


_KEYS_SELECT = f"""
SELECT DISTINCT ON (n) n, {_MATCH_KEYS}, CAST(NULL AS uuid) AS asset_id FROM {ROWS} ORDER BY n
"""


# What a created asset's identity fields were set by: this import (asset_type always).
_CREATED_SOURCES = field_sources.created()

# The unmatched identities, one per name key from its latest row, created in name-key order
# (two transactions inserting the same keys never deadlock).
_CREATE_MISSING = f"""
WITH unmatched AS (
  SELECT DISTINCT ON (w.name_key) w.* FROM {ROWS} w JOIN {KEYS} k ON k.n = w.n
  WHERE k.asset_id IS NULL
  ORDER BY w.name_key, w.row_number DESC
)
INSERT INTO assets (client_account_id, engagement_id, name, name_key, hostname_key, hostname,
  external_id, vm_uuid, ip_address, asset_type, source_import_id, created_by_import_id,
  field_sources)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), u.name, u.name_key, u.hostname_key, u.hostname,
  u.external_id, u.vm_uuid, u.ip_address, coalesce(u.asset_type, :default_type),
  CAST(:id AS uuid), CAST(:id AS uuid), {_CREATED_SOURCES}
FROM unmatched u
ORDER BY u.name_key
ON CONFLICT (client_account_id, engagement_id, name_key) DO NOTHING
"""


def _write_resolved_sql(path: str) -> str:
    """The resolved ids written back; rows already holding theirs are not rewritten (a
    retried range rewrites none). For the path 'asset' that is the row's link to its asset
    (`staged_row_assets`: the row is processed), else the id inside its normalised data."""
    if path == "asset":
        return link_rows_sql(
            f"""
SELECT CAST(:id AS uuid), m.row_number, m.asset_id, CAST(:c AS uuid), CAST(:e AS uuid)
FROM ({RESOLVED}) m
ORDER BY m.row_number
"""
        )
    assign = (
        f"normalized_data = jsonb_set(r.normalized_data, '{{{path},asset_id}}', "
        "to_jsonb(m.asset_id::text))"
    )
    changed = f"r.normalized_data -> '{path}' ->> 'asset_id' IS DISTINCT FROM m.asset_id::text"
    return f"""
UPDATE raw_import_records r SET {assign}
FROM ({RESOLVED}) m
WHERE r.id = m.rid AND r.data_import_id = CAST(:id AS uuid)
  AND r.row_number BETWEEN :first AND :last AND {changed}
"""


def scope_params(scope: ImportScope) -> dict[str, Any]:
    return {
        "id": scope.data_import_id,
        "c": scope.client_account_id,
        "e": scope.engagement_id,
        "first": scope.first_row,
        "last": scope.last_row,
    }


async def _temp(conn: AsyncConnection, name: str, select: str, params: Mapping[str, Any]) -> None:
    await conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{name}"))
    await conn.execute(text(f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS {select}"), params)


async def resolve_assets(
    conn: AsyncConnection,
    scope: ImportScope,
    path: str = "asset",
    *,
    create_missing: bool = True,
    write_back: bool = True,
    default_type: str = "server",
) -> int:
    """Match (and optionally create) the assets at `path` of the scope's valid rows.

    `write_back=False` only creates (a once-per-import pass before parallel ranges, which then
    match with `create_missing=False`: lookups only, no shared inserts between them).
    Written back for the path 'asset', a resolved row is processed (linked to its asset).
    Returns the number of assets created. Idempotent: a second run matches what the first made.
    The resolution stays in the transaction's temporary tables (see `RESOLVED`).
    """
    if path not in PATHS:
        raise ValueError(f"unknown endpoint path {path!r}")
    params: Mapping[str, Any] = {**scope_params(scope), "default_type": default_type}
    created = 0
    async with planner(conn, **HASH_JOINS):
        await _temp(conn, ROWS, _rows(path), params)
        await _temp(conn, KEYS, _KEYS_SELECT, params)
        await conn.execute(text(f"ANALYZE {KEYS}"))
        await asset_matching.match(conn, KEYS, params)
        if create_missing:
            created = (await conn.execute(text(_CREATE_MISSING), params)).rowcount or 0
            if created:
                # a new asset may be a better match of an identity matched before (its name
                # key), exactly as a separate write-back statement would see it
                await asset_matching.match(conn, KEYS, params)
        if write_back:
            await conn.execute(text(_write_resolved_sql(path)), params)
    return created
