"""Find or create the assets staged rows refer to, set-based, on ranked natural keys.

A staged row names an asset (or two: the ends of a dependency) with a JSON object inside
`normalized_data`, e.g. `normalized_data -> 'asset'` or `-> 'source'` / `-> 'target'`, holding
any of: name, name_key, hostname_key, external_id, vm_uuid, ip_address, asset_type.
Matching ranks: external id, VM UUID, name key, host name key, IP address — each an index
lookup. Unmatched endpoints are created (minimal identity only). Resolved ids are written back:
to `raw_import_records.asset_id` for the path 'asset', else into `normalized_data -> path ->
'asset_id'`, so the category's own updates can join on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.categories.base import ImportScope

PATHS = frozenset({"asset", "source", "target"})


def _rows(path: str) -> str:
    return f"""
SELECT r.id AS rid, r.row_number, r.normalized_data -> '{path}' AS a
FROM raw_import_records r
WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.is_valid AND NOT r.superseded AND r.normalized_data -> '{path}' ->> 'name_key' IS NOT NULL
"""


def match_lateral(alias: str) -> str:
    """Lateral best match for `{alias}.a`: one index lookup per rank, best rank wins."""
    tenant = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"
    lookups = [
        ("external_id", "external_id"),
        ("vm_uuid", "vm_uuid"),
        ("name_key", "name_key"),
        ("hostname_key", "hostname_key"),
        ("ip_address", "ip_address"),
    ]
    branches = "\n    UNION ALL ".join(
        f"SELECT t.id, {rank} AS rank FROM assets t WHERE {tenant} "
        f"AND t.{column} = {alias}.a ->> '{key}'"
        for rank, (column, key) in enumerate(lookups, start=1)
    )
    return f"""LEFT JOIN LATERAL (
  SELECT id FROM (
    {branches}
  ) candidates ORDER BY rank LIMIT 1
) m ON true"""


def _create_missing_sql(path: str) -> str:
    return f"""
WITH s AS ({_rows(path)}),
unmatched AS (
  SELECT DISTINCT ON (s.a ->> 'name_key') s.a FROM s {match_lateral("s")}
  WHERE m.id IS NULL ORDER BY s.a ->> 'name_key', s.row_number DESC
)
INSERT INTO assets (client_account_id, engagement_id, name, name_key, hostname_key, hostname,
  external_id, vm_uuid, ip_address, asset_type, source_import_id, created_by_import_id)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), u.a ->> 'name', u.a ->> 'name_key',
  u.a ->> 'hostname_key', u.a ->> 'hostname', u.a ->> 'external_id', u.a ->> 'vm_uuid',
  u.a ->> 'ip_address', coalesce(u.a ->> 'asset_type', :default_type),
  CAST(:id AS uuid), CAST(:id AS uuid)
FROM unmatched u
ON CONFLICT (client_account_id, engagement_id, name_key) DO NOTHING
"""


def _write_resolved_sql(path: str) -> str:
    if path == "asset":
        assign = "asset_id = resolved.asset_id"
    else:
        assign = (
            f"normalized_data = jsonb_set(r.normalized_data, '{{{path},asset_id}}', "
            "to_jsonb(resolved.asset_id::text))"
        )
    return f"""
WITH s AS ({_rows(path)}),
resolved AS (SELECT s.rid, m.id AS asset_id FROM s {match_lateral("s")} WHERE m.id IS NOT NULL)
UPDATE raw_import_records r SET {assign}
FROM resolved WHERE r.id = resolved.rid
"""


def scope_params(scope: ImportScope) -> dict[str, Any]:
    return {
        "id": scope.data_import_id,
        "c": scope.client_account_id,
        "e": scope.engagement_id,
        "first": scope.first_row,
        "last": scope.last_row,
    }


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
    Returns the number of assets created. Idempotent: a second run matches what the first made.
    """
    if path not in PATHS:
        raise ValueError(f"unknown endpoint path {path!r}")
    params: Mapping[str, Any] = {**scope_params(scope), "default_type": default_type}
    # Pure index lookups: never let stale statistics of a growing table pick scans instead.
    await conn.execute(text("SET LOCAL enable_seqscan = off"))
    created = 0
    if create_missing:
        created = (await conn.execute(text(_create_missing_sql(path)), params)).rowcount or 0
    if write_back:
        await conn.execute(text(_write_resolved_sql(path)), params)
    return created
