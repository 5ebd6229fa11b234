"""Set-based writes of the asset inventory from staged, validated rows.

Rows carry `normalized_data = {"asset": {...Asset columns...}, "dependencies": [names]}`.
Assets are matched on ranked natural keys: external id first, then the name key; a match
updates (empty incoming values never erase known ones), otherwise a new asset is inserted.
Every statement is idempotent, so a retried chunk changes nothing the first run did.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import field_sources
from dataimport.categories.base import EnrichCounts, ImportScope
from dataimport.issues import Code
from dataimport.models import ASSET_EXTERNAL_ID_INDEX
from dataimport.row_links import link_rows_sql

# Asset column -> SQL type of its value in normalized_data->'asset'.
ASSET_FIELDS: dict[str, str] = {
    "name": "text",
    "hostname_key": "text",
    "external_id": "text",
    "asset_type": "text",
    "hostname": "text",
    "fqdn": "text",
    "ip_address": "text",
    "operating_system": "text",
    "os_version": "text",
    "os_end_of_support": "boolean",
    "environment": "text",
    "criticality": "text",
    "owner": "text",
    "business_unit": "text",
    "location": "text",
    "serial_number": "text",
    "operational_status": "text",
    "description": "text",
    "cpu_cores": "integer",
    "memory_gb": "double precision",
    "storage_gb": "double precision",
}


# Typed staging, once per range: each staged row's JSONB is parsed once (jsonb_to_record)
# into a temporary table of typed columns, so no statement extracts or casts JSONB fields in
# its inner loops. The temporary tables live for the range's transaction only.
_RANGE_ROWS_TABLE = "enrich_range_rows"
_RANGE_REFS_TABLE = "link_range_refs"
_RANGE_MATCHES_TABLE = "link_range_matches"

_RECORD_COLUMNS = ", ".join(
    [
        *(f"{col} {typ}" for col, typ in ASSET_FIELDS.items()),
        "name_key text",
        "custom_attributes jsonb",
    ]
)

_STAGE_RANGE_ROWS = f"""
CREATE TEMPORARY TABLE {_RANGE_ROWS_TABLE} ON COMMIT DROP AS
SELECT r.id AS rid, r.row_number, r.superseded, x.*
FROM raw_import_records r
CROSS JOIN LATERAL jsonb_to_record(r.normalized_data -> 'asset') AS x({_RECORD_COLUMNS})
WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.is_valid
"""

# One staged asset per name key: the last non-superseded row wins (as the file reads).
_RANGE_ASSETS = f"""
SELECT DISTINCT ON (s.name_key) s.* FROM {_RANGE_ROWS_TABLE} s
WHERE NOT s.superseded
ORDER BY s.name_key, s.row_number DESC
"""


# The range's staged assets whose external id the tenant already knows, with the asset that
# has it. A rename onto a name another asset has (`taken`) is a finding, not a unique-index
# crash: that asset keeps its name and takes the row's other fields. One index probe per
# staged asset (lateral): a hash join would read every asset of the tenant in every range,
# quadratic in the import (0.5 s per range at the start of a 1M-row import, 2.7 s at its end).
_RANGE_BY_EXTERNAL_TABLE = "enrich_range_by_external"
_STAGE_BY_EXTERNAL = f"""
CREATE TEMPORARY TABLE {_RANGE_BY_EXTERNAL_TABLE} ON COMMIT DROP AS
WITH s AS ({_RANGE_ASSETS})
SELECT s.name_key, s.name, s.external_id, t.id AS asset_id, t.name_key AS current_key,
  t.name AS current_name,
  s.name_key <> t.name_key AND (
    SELECT true FROM assets o WHERE o.client_account_id = CAST(:c AS uuid)
      AND o.engagement_id = CAST(:e AS uuid) AND o.name_key = s.name_key
    LIMIT 1  -- a probe per renamed asset, never a hash of every name key of the tenant
  ) IS NOT NULL AS taken
FROM s CROSS JOIN LATERAL (
  SELECT t.id, t.name_key, t.name FROM assets t WHERE t.client_account_id = CAST(:c AS uuid)
    AND t.engagement_id = CAST(:e AS uuid) AND t.external_id = s.external_id
  LIMIT 1  -- unique in the tenant; and it keeps the planner from flattening the probe
) t
"""


# Custom attributes are merged key by key: the row sets them when it brings any.
_CUSTOM_SET = {"custom_attributes": "s.custom_attributes <> '{}'::jsonb"}


def _update_by_external_id_sql(*, taken: bool) -> str:
    """An asset known by its external id under another name key takes the incoming key and
    fields (`taken=False`), or only the fields when the key belongs to another asset.

    The assets are fetched by id from the primary key (`= ANY` of the range's matches), then
    hash-joined with the range's staged assets (run with nested loops off: while a tenant's
    first ranges are written its statistics say it is empty, and every index leading with the
    tenant would look like a one-row probe). Never a hash of every asset of the tenant: that
    made each range of a re-import read the whole inventory (2 s per range at 1M assets).
    """
    kept = {"name"} if taken else set()
    written = [col for col in ASSET_FIELDS if col not in kept]
    sets = ",\n  ".join(f"{col} = coalesce(s.{col}, t.{col})" for col in written)
    sources = field_sources.recorded(
        "t.field_sources", {**field_sources.non_null(written), **_CUSTOM_SET}
    )
    rename = "" if taken else "name_key = s.name_key,"
    which = "x.taken" if taken else "NOT x.taken AND x.current_key <> s.name_key"
    return f"""
WITH s AS ({_RANGE_ASSETS})
UPDATE assets t SET {sets}, {rename}
  custom_attributes = t.custom_attributes || coalesce(s.custom_attributes, '{{}}'),
  field_sources = {sources},
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM s JOIN {_RANGE_BY_EXTERNAL_TABLE} x ON x.name_key = s.name_key
WHERE t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)
  AND t.id = x.asset_id AND {which}
  AND t.id = ANY (ARRAY(SELECT y.asset_id FROM {_RANGE_BY_EXTERNAL_TABLE} y))
"""


# Rows whose rename was refused are linked to the asset they updated, and say why.
_LINK_TAKEN = link_rows_sql(
    f"""
SELECT CAST(:id AS uuid), s.row_number, x.asset_id, CAST(:c AS uuid), CAST(:e AS uuid)
FROM {_RANGE_ROWS_TABLE} s JOIN {_RANGE_BY_EXTERNAL_TABLE} x ON x.name_key = s.name_key
WHERE x.taken
"""
)

_WARN_TAKEN = f"""
UPDATE raw_import_records r SET validation_errors =
  coalesce(r.validation_errors, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
    'code', '{Code.ASSET_NAME_TAKEN.value}', 'severity', 'warning', 'field', 'name',
    'message', 'name ' || x.name || ' belongs to another asset: the asset with external id '
      || x.external_id || ' keeps its name ' || x.current_name))
FROM {_RANGE_ROWS_TABLE} s JOIN {_RANGE_BY_EXTERNAL_TABLE} x ON x.name_key = s.name_key
WHERE x.taken AND NOT s.superseded AND r.id = s.rid AND r.data_import_id = CAST(:id AS uuid)
  AND r.row_number BETWEEN :first AND :last
  AND NOT coalesce(r.validation_errors @> '[{{"code": "{Code.ASSET_NAME_TAKEN.value}"}}]', false)
"""


_LINK_UPSERTED = link_rows_sql(
    """
SELECT CAST(:id AS uuid), linked.row_number, linked.id, CAST(:c AS uuid), CAST(:e AS uuid)
FROM linked
ORDER BY linked.row_number
""",
    rewrite=True,
)


def _upsert_by_name_key_sql() -> str:
    """Upsert the range's assets and link its rows to them, in one statement.

    Rows are linked through the upsert's RETURNING, not a join back to `assets`, so the plan
    never depends on statistics of a table that was empty a moment ago; the links are narrow
    rows of their own (`staged_row_assets`), never a rewrite of the wide staged rows. A
    retried range rewrites its links too, so its count of rows linked is the first run's.
    """
    columns = ", ".join(ASSET_FIELDS)
    values = ", ".join(f"s.{col}" for col in ASSET_FIELDS)
    sets = ",\n  ".join(f"{col} = coalesce(EXCLUDED.{col}, assets.{col})" for col in ASSET_FIELDS)
    # The inserted row's sources are the fields the staged row sets: on conflict, exactly
    # the ones the update takes from EXCLUDED.
    sources = field_sources.sources({**field_sources.non_null(ASSET_FIELDS), **_CUSTOM_SET})
    merged = field_sources.merged("assets.field_sources", "EXCLUDED.field_sources")
    return f"""
WITH s AS (
  SELECT a.* FROM ({_RANGE_ASSETS}) a
  WHERE NOT EXISTS (
    SELECT 1 FROM {_RANGE_BY_EXTERNAL_TABLE} x WHERE x.name_key = a.name_key AND x.taken
  )
),
upserted AS (
  INSERT INTO assets (client_account_id, engagement_id, name_key, {columns}, custom_attributes,
    field_sources, source_import_id, created_by_import_id)
  SELECT CAST(:c AS uuid), CAST(:e AS uuid), s.name_key, {values},
    coalesce(s.custom_attributes, '{{}}'), {sources}, CAST(:id AS uuid), CAST(:id AS uuid)
  FROM s
  ORDER BY s.name_key
  ON CONFLICT (client_account_id, engagement_id, name_key) DO UPDATE SET {sets},
    custom_attributes = assets.custom_attributes || EXCLUDED.custom_attributes,
    field_sources = {merged},
    source_import_id = EXCLUDED.source_import_id, updated_at = now()
  RETURNING id, name_key
),
linked AS (
  SELECT s.row_number, u.id FROM {_RANGE_ROWS_TABLE} s JOIN upserted u ON u.name_key = s.name_key
)
{_LINK_UPSERTED}"""


RENAME_BY_EXTERNAL_ID = _update_by_external_id_sql(taken=False)
UPDATE_BY_EXTERNAL_ID_KEEPING_NAME = _update_by_external_id_sql(taken=True)
UPSERT_BY_NAME_KEY = _upsert_by_name_key_sql()


def scope_params(scope: ImportScope) -> dict[str, Any]:
    return {
        "id": scope.data_import_id,
        "c": scope.client_account_id,
        "e": scope.engagement_id,
        "first": scope.first_row,
        "last": scope.last_row,
    }


async def _fresh_temp(conn: AsyncConnection, table: str, create_sql: str, params: Any) -> None:
    """(Re)create a range's temporary table (no ANALYZE: it is only ever hash-joined or
    scanned as the outer side of index probes, where its size does not change the plan)."""
    await conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{table}"))
    await conn.execute(text(create_sql), params)


_TENANT_HAS_EXTERNAL_IDS = """
SELECT EXISTS (SELECT 1 FROM assets t WHERE t.client_account_id = CAST(:c AS uuid)
  AND t.engagement_id = CAST(:e AS uuid) AND t.external_id IS NOT NULL)
"""


async def tenant_has_external_ids(conn: AsyncConnection, scope: ImportScope) -> bool:
    """Whether any asset of the tenant carries an external id (one probe of its index)."""
    return bool(await conn.scalar(text(_TENANT_HAS_EXTERNAL_IDS), scope_params(scope)))


async def upsert_assets(conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
    """Create or update one asset per distinct staged key in the range; link rows to assets.

    Where the tenant held no external id when the import was prepared, the range skips
    matching by external id: a match could then only be an asset another import wrote since,
    and writing its id under another name key violates the external-id index, so the range
    is redone from a savepoint with the matching. (Skipped, because that probe's plan is
    made while the tenant looks empty: the planner may pick the name-key index and scan
    every row the parallel ranges insert, once per staged asset: minutes per range.)
    """
    params = {**scope_params(scope), "seq": await field_sources.import_seq(conn, scope)}
    await conn.execute(text("SET LOCAL work_mem = '64MB'"))  # the range's sorts in memory
    await _fresh_temp(conn, _RANGE_ROWS_TABLE, _STAGE_RANGE_ROWS, params)
    # Row estimates of freshly written tables are ~1, which tempts the planner into nested
    # loops over whole ranges (quadratic); hash joins are right for range-sized sets.
    await conn.execute(text("SET LOCAL enable_nestloop = off"))
    counts: EnrichCounts | None = None
    if not scope.external_ids_known:
        await _fresh_temp(
            conn, _RANGE_BY_EXTERNAL_TABLE, f"{_STAGE_BY_EXTERNAL} WITH NO DATA", params
        )
        try:
            async with conn.begin_nested():
                linked = await conn.execute(text(UPSERT_BY_NAME_KEY), params)
                counts = EnrichCounts(assets_touched=linked.rowcount or 0)
        except IntegrityError as error:
            # The driver's own error (the adapter's cause) names the violated index.
            violated = getattr(getattr(error.orig, "__cause__", None), "constraint_name", None)
            if violated != ASSET_EXTERNAL_ID_INDEX:
                raise
    if counts is None:
        counts = await _upsert_matching_external_ids(conn, params)
    await conn.execute(text("RESET enable_nestloop"))
    return counts


async def _upsert_matching_external_ids(
    conn: AsyncConnection, params: dict[str, Any]
) -> EnrichCounts:
    """The range's assets matched by external id first (renames), then upserted by name key."""
    await _fresh_temp(conn, _RANGE_BY_EXTERNAL_TABLE, _STAGE_BY_EXTERNAL, params)
    await conn.execute(text(RENAME_BY_EXTERNAL_ID), params)
    kept = await conn.execute(text(UPDATE_BY_EXTERNAL_ID_KEEPING_NAME), params)
    if kept.rowcount:
        await conn.execute(text(_LINK_TAKEN), params)
        await conn.execute(text(_WARN_TAKEN), params)
    linked = await conn.execute(text(UPSERT_BY_NAME_KEY), params)
    return EnrichCounts(assets_touched=(linked.rowcount or 0) + (kept.rowcount or 0))


# A declared dependency names its target by name, external id or host name. The range's refs
# are extracted once (with their three lookup keys) into a typed temporary table; each form is
# then an exact index probe (a lateral UNION ALL, never an OR join), so plans stay linear in
# the range without statistics, whatever the size of the tenant's inventory.
_DECLARED_REFS = """
FROM raw_import_records r
CROSS JOIN LATERAL jsonb_array_elements_text(r.normalized_data -> 'dependencies') AS d(ref)
WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.is_valid AND NOT r.superseded
"""

_REF_KEYS = """lower(trim(d.ref)) AS name_key, trim(d.ref) AS external_id,
  split_part(lower(trim(d.ref)), '.', 1) AS hostname_key"""

# The range's refs, one row per (source, ref) with its occurrences: every valid row's refs
# (a row without an asset still counts its unresolved refs, it only makes no edge). Each row's
# link is one primary-key probe: as a join, the import's links were read whole per range (a
# hash of 1M links at the end of a 1M-row import) or, under row-level security's estimates,
# scanned once per row.
_STAGE_RANGE_REFS = f"""
CREATE TEMPORARY TABLE {_RANGE_REFS_TABLE} ON COMMIT DROP AS
SELECT l.asset_id AS source_id, {_REF_KEYS}, count(*) AS n
FROM raw_import_records r
CROSS JOIN LATERAL jsonb_array_elements_text(r.normalized_data -> 'dependencies') AS d(ref)
LEFT JOIN LATERAL (
  SELECT l.asset_id FROM staged_row_assets l
  WHERE l.data_import_id = r.data_import_id AND l.row_number = r.row_number
  LIMIT 1  -- the primary key: one probe per row, never flattened into a join of every link
) l ON true
WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.is_valid AND NOT r.superseded
GROUP BY 1, 2, 3, 4
"""


def _target_lookup(alias: str) -> str:
    tenant = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"
    return "\n  UNION ALL ".join(
        f"SELECT t.id FROM assets t WHERE {tenant} AND t.{column} = {alias}.{column}"
        for column in ("name_key", "external_id", "hostname_key")
    )


# Each ref's targets (a row with a NULL target when none matches), looked up once: the edges
# and the range's unresolved count both come from it.
_MATCH_RANGE_REFS = f"""
CREATE TEMPORARY TABLE {_RANGE_MATCHES_TABLE} ON COMMIT DROP AS
SELECT x.source_id, x.n, m.id AS target_id FROM {_RANGE_REFS_TABLE} x
LEFT JOIN LATERAL ({_target_lookup("x")}) AS m ON true
"""

_LINK_DECLARED = f"""
INSERT INTO asset_dependencies (client_account_id, engagement_id, source_asset_id,
  target_asset_id, dependency_type, confidence, source_import_id, created_by_import_id)
SELECT DISTINCT CAST(:c AS uuid), CAST(:e AS uuid), source_id, target_id, 'declared', 1.0,
  CAST(:id AS uuid), CAST(:id AS uuid)
FROM {_RANGE_MATCHES_TABLE}
WHERE source_id IS NOT NULL AND target_id IS NOT NULL AND source_id <> target_id
ORDER BY source_id, target_id
ON CONFLICT (client_account_id, engagement_id, source_asset_id, target_asset_id, port, protocol)
DO UPDATE SET source_import_id = EXCLUDED.source_import_id, updated_at = now()
"""

_RANGE_UNRESOLVED = (
    f"SELECT coalesce(sum(n), 0) FROM {_RANGE_MATCHES_TABLE} WHERE target_id IS NULL"
)

# The range's outcome, in the range's transaction: one step row per range (its own key, so
# parallel ranges never touch the same row; a retried range overwrites its own).
LINK_STEP_PREFIX = "enrichment:link:"
_RECORD_LINK_STEP = """
INSERT INTO import_processing_steps (client_account_id, engagement_id, data_import_id, step_key,
  step_name, agent, status, started_at, finished_at, duration_ms, records_processed, findings)
VALUES (CAST(:c AS uuid), CAST(:e AS uuid), CAST(:id AS uuid), :key, 'enrichment',
  'dependency_linker', 'completed', CAST(:started AS timestamptz), clock_timestamp(),
  CAST(1000 * extract(epoch FROM clock_timestamp() - CAST(:started AS timestamptz)) AS integer),
  :edges,
  jsonb_build_object('first_row', CAST(:first AS integer), 'last_row', CAST(:last AS integer),
    'unresolved', CAST(:unresolved AS bigint)))
ON CONFLICT (data_import_id, step_key) DO UPDATE SET started_at = EXCLUDED.started_at,
  finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms,
  records_processed = EXCLUDED.records_processed, findings = EXCLUDED.findings
"""


async def link_declared_dependencies(conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
    """Turn each row's `dependencies` list into asset_dependencies between known assets, and
    record the range's unresolved refs (the import's total is their sum)."""
    started = datetime.now(UTC)
    params = scope_params(scope)
    await conn.execute(text("SET LOCAL work_mem = '64MB'"))
    await _fresh_temp(conn, _RANGE_REFS_TABLE, _STAGE_RANGE_REFS, params)
    await _fresh_temp(conn, _RANGE_MATCHES_TABLE, _MATCH_RANGE_REFS, params)
    result = await conn.execute(text(_LINK_DECLARED), params)
    edges = result.rowcount or 0
    unresolved = int(await conn.scalar(text(_RANGE_UNRESOLVED)) or 0)
    await conn.execute(
        text(_RECORD_LINK_STEP),
        {
            **params,
            "key": f"{LINK_STEP_PREFIX}{scope.first_row}-{scope.last_row}",
            "started": started,
            "edges": edges,
            "unresolved": unresolved,
        },
    )
    return EnrichCounts(dependencies_touched=edges)


# The import's unresolved refs from its link ranges' steps, when they tile its rows exactly
# (one attempt's ranges; anything else, e.g. ranges of an import linked before these steps
# existed, or of two attempts with different chunk sizes, falls back to counting).
_LINKED_UNRESOLVED = f"""
SELECT coalesce(sum(CAST(s.findings ->> 'unresolved' AS bigint)), 0) AS unresolved,
  coalesce(sum(CAST(s.findings ->> 'last_row' AS bigint)
    - CAST(s.findings ->> 'first_row' AS bigint) + 1), 0) AS covered,
  (SELECT d.total_rows FROM data_imports d WHERE d.id = CAST(:id AS uuid)
     AND d.client_account_id = CAST(:c AS uuid) AND d.engagement_id = CAST(:e AS uuid)) AS total
FROM import_processing_steps s
WHERE s.data_import_id = CAST(:id AS uuid) AND s.client_account_id = CAST(:c AS uuid)
  AND s.engagement_id = CAST(:e AS uuid) AND s.step_key LIKE '{LINK_STEP_PREFIX}%'
"""


# Unresolved refs of the whole import: the distinct refs (far fewer than their occurrences)
# anti-joined against the tenant's assets on each lookup key, by hash over the import.
_UNRESOLVED = f"""
WITH refs AS MATERIALIZED (SELECT trim(d.ref) AS ref {_DECLARED_REFS}),
distinct_refs AS (
  SELECT ref, count(*) AS n, lower(ref) AS name_key, ref AS external_id,
    split_part(lower(ref), '.', 1) AS hostname_key
  FROM refs GROUP BY ref
)
SELECT coalesce(sum(x.n), 0) FROM distinct_refs x
WHERE NOT EXISTS (SELECT 1 FROM assets t WHERE t.client_account_id = CAST(:c AS uuid)
    AND t.engagement_id = CAST(:e AS uuid) AND t.name_key = x.name_key)
  AND NOT EXISTS (SELECT 1 FROM assets t WHERE t.client_account_id = CAST(:c AS uuid)
    AND t.engagement_id = CAST(:e AS uuid) AND t.external_id = x.external_id)
  AND NOT EXISTS (SELECT 1 FROM assets t WHERE t.client_account_id = CAST(:c AS uuid)
    AND t.engagement_id = CAST(:e AS uuid) AND t.hostname_key = x.hostname_key)
"""

_IMPORT_TOTALS = """
SELECT
  (SELECT count(*) FROM assets WHERE client_account_id = :c AND engagement_id = :e
     AND created_by_import_id = :id) AS assets_created,
  (SELECT count(*) FROM assets WHERE client_account_id = :c AND engagement_id = :e
     AND source_import_id = :id AND created_by_import_id IS DISTINCT FROM :id) AS assets_updated,
  (SELECT count(*) FROM asset_dependencies WHERE client_account_id = :c AND engagement_id = :e
     AND created_by_import_id = :id) AS dependencies_created,
  (SELECT count(*) FROM staged_row_assets WHERE data_import_id = :id) AS processed_rows
"""


async def import_totals(conn: AsyncConnection, scope: ImportScope) -> dict[str, int]:
    """Exact outcome counts derived from the data, so retried chunks never double-count."""
    params = scope_params(scope)
    totals = dict((await conn.execute(text(_IMPORT_TOTALS), params)).mappings().one())
    linked = (await conn.execute(text(_LINKED_UNRESOLVED), params)).one()
    if linked.total is not None and linked.covered == linked.total > 0:
        totals["dependencies_unresolved"] = int(linked.unresolved)
    else:
        totals["dependencies_unresolved"] = int(await conn.scalar(text(_UNRESOLVED), params) or 0)
    return {key: int(value) for key, value in totals.items()}
