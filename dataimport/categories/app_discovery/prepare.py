"""app_discovery's prepare pass: once per import, before the parallel ranges, set-based.

ONE scan of the import's rows, grouped into the distinct (source end, target end, port,
protocol, runs_on) pairs; the distinct endpoints of those; unmatched endpoints created (named
ones first, then IP-only ones, then a safety net per side, as the row-range statements always
did); every endpoint asset touched; one edge per (source, target, port, protocol) upserted,
its details read from its latest row by that row's key; the `runs_on` edges of topology rows.
The ranges then only look these up (`enrichment.py`): they never write a shared row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import field_sources
from dataimport.categories.app_discovery.endpoints import (
    END_COLUMNS,
    RANGE,
    TENANT,
    match,
    temp_table,
)
from dataimport.planner import HASH_JOINS, planner
from dataimport.table_statistics import analyze_if_grown

PAIRS = "app_discovery_pairs"
ENDS = "app_discovery_ends"
EDGES = "app_discovery_edges"

# The import's rows, grouped: one scan, every JSONB field read once per row.
_PAIRS_SELECT = f"""
SELECT src, tgt, port, protocol, runs_on, min(dependency_type) AS dependency_type,
  max(base) AS base, max(row_number) AS last_row
FROM (
  SELECT r.row_number, (r.normalized_data -> 'source') - 'asset_id' AS src,
    (r.normalized_data -> 'target') - 'asset_id' AS tgt,
    CAST(r.normalized_data -> 'dependency' ->> 'port' AS integer) AS port,
    r.normalized_data -> 'dependency' ->> 'protocol' AS protocol,
    coalesce(r.normalized_data -> 'runs_on', '[]'::jsonb) AS runs_on,
    r.normalized_data -> 'dependency' ->> 'dependency_type' AS dependency_type,
    CAST(r.normalized_data -> 'dependency' ->> 'confidence' AS double precision) AS base
  FROM raw_import_records r WHERE {RANGE}
) k
GROUP BY src, tgt, port, protocol, runs_on
"""

# The distinct endpoints (ends of rows, and components of `runs_on`), with the last row each
# appears in per role, typed.
_ENDS_SELECT = f"""
SELECT row_number() OVER () AS n, a, max(src_last) AS src_last, max(tgt_last) AS tgt_last,
  max(comp_last) AS comp_last, greatest(max(src_last), max(tgt_last), max(comp_last)) AS last_row,
  {END_COLUMNS},
  coalesce(a ->> 'name' = a ->> 'ip_address', false) AS ip_only,
  CASE WHEN a ->> 'hostname_key' IS NOT NULL THEN 'h:' || (a ->> 'hostname_key')
    ELSE 'n:' || (a ->> 'name_key') END AS k,
  CAST(NULL AS uuid) AS asset_id
FROM (
  SELECT p.src AS a, p.last_row AS src_last, NULL::integer AS tgt_last, NULL::integer AS comp_last
  FROM {PAIRS} p
  UNION ALL
  SELECT p.tgt, NULL, p.last_row, NULL FROM {PAIRS} p
  UNION ALL
  SELECT c.value, NULL, NULL, p.last_row FROM {PAIRS} p
  CROSS JOIN LATERAL jsonb_array_elements(p.runs_on) c WHERE p.runs_on <> '[]'::jsonb
) e
WHERE a ->> 'name_key' IS NOT NULL
GROUP BY a
"""

# One creation pass (named endpoints, then IP-only ones): the unmatched endpoints, one per
# identity key (host name key, else name key) from its latest row, with any IP of the key;
# inserted in name-key order (no deadlock with another import of the tenant).
# What created endpoints' fields were set by (this import; asset_type always), and the host
# name / IP a touch fills where the asset had none.
_CREATED_PASS_SOURCES = field_sources.created(
    columns=("name", "hostname", "ip_address", "asset_type"),
    set_when={"ip_address": "coalesce(u.ip_address, u.key_ip) IS NOT NULL"},
)
_CREATED_SIDE_SOURCES = field_sources.created()
_TOUCH_SOURCES = field_sources.recorded(
    "t.field_sources",
    {
        "ip_address": "t.ip_address IS NULL AND l.ip IS NOT NULL",
        "hostname": "t.hostname IS NULL AND l.hostname IS NOT NULL",
    },
    field_sources.IMPORT_SEQ,
)

_CREATE_PASS_SQL = f"""
WITH keyed AS (
  SELECT x.*, max(x.ip_address) OVER (PARTITION BY x.k) AS key_ip FROM {ENDS} x
  WHERE x.ip_only = :ip_only
),
unmatched AS (
  SELECT DISTINCT ON (k) * FROM keyed WHERE asset_id IS NULL ORDER BY k, last_row DESC, n
)
INSERT INTO assets (client_account_id, engagement_id, name, name_key, hostname_key, hostname,
  ip_address, asset_type, source_import_id, created_by_import_id, field_sources)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), u.name, u.name_key, u.hostname_key, u.hostname,
  coalesce(u.ip_address, u.key_ip), coalesce(u.asset_type, 'server'), CAST(:id AS uuid),
  CAST(:id AS uuid), {_CREATED_PASS_SOURCES}
FROM unmatched u ORDER BY u.name_key
ON CONFLICT (client_account_id, engagement_id, name_key) DO NOTHING
"""


def _create_side_sql(side: str) -> str:
    """What is still unmatched at one side (the resolver's safety net): one per name key."""
    return f"""
WITH unmatched AS (
  SELECT DISTINCT ON (name_key) * FROM {ENDS}
  WHERE asset_id IS NULL AND {side}_last IS NOT NULL ORDER BY name_key, {side}_last DESC, n
)
INSERT INTO assets (client_account_id, engagement_id, name, name_key, hostname_key, hostname,
  external_id, vm_uuid, ip_address, asset_type, source_import_id, created_by_import_id,
  field_sources)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), u.name, u.name_key, u.hostname_key, u.hostname,
  u.external_id, u.vm_uuid, u.ip_address, coalesce(u.asset_type, 'server'),
  CAST(:id AS uuid), CAST(:id AS uuid), {_CREATED_SIDE_SOURCES}
FROM unmatched u ORDER BY u.name_key
ON CONFLICT (client_account_id, engagement_id, name_key) DO NOTHING
"""


# Every endpoint asset and every component named in `runs_on` (by name key), with the host
# name / IP its ends bring.
TOUCH = "app_discovery_touch"
_TOUCH_SELECT = f"""
SELECT asset_id AS id, max(ip_address) AS ip, max(hostname) AS hostname,
  max(hostname_key) AS hostname_key, CAST(:c AS uuid) AS c, CAST(:e AS uuid) AS e
FROM {ENDS} WHERE asset_id IS NOT NULL AND (src_last IS NOT NULL OR tgt_last IS NOT NULL)
GROUP BY asset_id
UNION ALL
SELECT DISTINCT t.id, NULL, NULL, NULL, t.client_account_id, t.engagement_id
FROM assets t JOIN {ENDS} x ON t.name_key = x.name_key
WHERE {TENANT} AND x.comp_last IS NOT NULL
"""

# Touch them (source_import_id) and fill host name / IP where unknown; locked in id order
# first (no deadlock). By primary key: one probe per asset, or a hash where that is cheaper.
_TOUCH_SQL = f"""
WITH incoming AS (
  SELECT id, c, e, max(ip) AS ip, max(hostname) AS hostname, max(hostname_key) AS hostname_key
  FROM {TOUCH} GROUP BY id, c, e
),
locked AS (
  -- the tenant through the temp table's columns (see _recompute_sql)
  SELECT t.id, i.ip, i.hostname, i.hostname_key
  FROM incoming i JOIN assets t
    ON t.id = i.id AND t.client_account_id = i.c AND t.engagement_id = i.e
  ORDER BY t.id FOR NO KEY UPDATE OF t
)
UPDATE assets t SET ip_address = coalesce(t.ip_address, l.ip),
  hostname = coalesce(t.hostname, l.hostname),
  hostname_key = coalesce(t.hostname_key, l.hostname_key),
  field_sources = {_TOUCH_SOURCES},
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM locked l WHERE t.id = l.id
"""

# One edge per (source, target, port, protocol) of the import: its type and base confidence
# over all its rows, the row its details come from (its latest).
_EDGES_SELECT = f"""
SELECT s.asset_id AS src, g.asset_id AS tgt, p.port, p.protocol,
  min(p.dependency_type) AS dependency_type, max(p.base) AS base, max(p.last_row) AS last_row
FROM {PAIRS} p JOIN {ENDS} s ON s.a = p.src JOIN {ENDS} g ON g.a = p.tgt
WHERE s.asset_id IS NOT NULL AND g.asset_id IS NOT NULL AND s.asset_id <> g.asset_id
GROUP BY s.asset_id, g.asset_id, p.port, p.protocol
"""


def _upsert_edges_sql(edge_columns: Sequence[str]) -> str:
    drop = "ARRAY[" + ", ".join(f"'{c}'" for c in edge_columns) + "]"
    return f"""
INSERT INTO asset_dependencies (client_account_id, engagement_id, source_asset_id,
  target_asset_id, port, protocol, dependency_type, confidence, details, source_import_id,
  created_by_import_id)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), x.src, x.tgt, x.port, x.protocol,
  x.dependency_type, x.base, jsonb_strip_nulls(d.d - {drop}), CAST(:id AS uuid),
  CAST(:id AS uuid)
FROM {EDGES} x CROSS JOIN LATERAL (
  -- the edge's latest row, by its unique key: one probe per edge into the import's rows
  -- (OFFSET 0 keeps it a probe: pulled up into a join, it was planned as a nested loop over
  -- every edge per staged row on statistics that had not seen the import's rows yet)
  SELECT r.normalized_data -> 'dependency' AS d FROM raw_import_records r
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number = x.last_row
  OFFSET 0
) d
ORDER BY x.src, x.tgt, x.port, x.protocol
ON CONFLICT (client_account_id, engagement_id, source_asset_id, target_asset_id, port, protocol)
DO UPDATE SET source_import_id = EXCLUDED.source_import_id,
  dependency_type = CASE WHEN asset_dependencies.dependency_type = 'declared'
    THEN EXCLUDED.dependency_type ELSE asset_dependencies.dependency_type END,
  details = asset_dependencies.details || EXCLUDED.details,
  confidence = greatest(asset_dependencies.confidence, EXCLUDED.confidence),
  updated_at = now()
"""


def _runs_on_sql(confidence: float) -> str:
    """A tier runs on the node its row names with it: component -> host, no port."""
    return f"""
WITH k AS (
  SELECT CASE WHEN c.value ->> 'side' = 'source' THEN p.src ELSE p.tgt END AS host_a,
    c.value ->> 'name_key' AS component_key
  FROM {PAIRS} p CROSS JOIN LATERAL jsonb_array_elements(p.runs_on) c
  WHERE p.runs_on <> '[]'::jsonb
),
hosts AS (
  SELECT DISTINCT h.asset_id AS host, k.component_key FROM k JOIN {ENDS} h ON h.a = k.host_a
  WHERE h.asset_id IS NOT NULL
),
components AS (
  SELECT DISTINCT t.id, t.name_key FROM assets t JOIN hosts h ON t.name_key = h.component_key
  WHERE {TENANT}
),
e AS (
  SELECT DISTINCT m.id AS src, hosts.host AS tgt FROM hosts
  JOIN components m ON m.name_key = hosts.component_key WHERE m.id <> hosts.host
)
INSERT INTO asset_dependencies (client_account_id, engagement_id, source_asset_id,
  target_asset_id, dependency_type, confidence, details, source_import_id, created_by_import_id)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), src, tgt, 'runs_on', {confidence},
  '{{"kind": "topology"}}'::jsonb, CAST(:id AS uuid), CAST(:id AS uuid)
FROM e ORDER BY src, tgt
ON CONFLICT (client_account_id, engagement_id, source_asset_id, target_asset_id, port, protocol)
DO UPDATE SET source_import_id = EXCLUDED.source_import_id,
  confidence = greatest(asset_dependencies.confidence, EXCLUDED.confidence), updated_at = now()
"""


async def prepare(
    conn: AsyncConnection,
    params: Mapping[str, Any],
    *,
    edge_columns: Sequence[str],
    runs_on_confidence: float,
) -> None:
    """Every endpoint asset of the import found or created and touched, every edge upserted."""
    async with planner(conn, **HASH_JOINS):
        await temp_table(conn, PAIRS, _PAIRS_SELECT, params)
        await temp_table(conn, ENDS, _ENDS_SELECT, params)
        await conn.execute(text(f"ANALYZE {ENDS}"))
        for ip_only in (False, True):
            await match(conn, ENDS, params)
            await conn.execute(text(_CREATE_PASS_SQL), {**params, "ip_only": ip_only})
        await match(conn, ENDS, params)
        for side in ("src", "tgt"):
            # the resolver's safety net: rarely anything left to create
            if await conn.scalar(text(_UNMATCHED.format(side=side))):
                await conn.execute(text(_create_side_sql(side)), params)
                await match(conn, ENDS, params)
        await temp_table(conn, TOUCH, _TOUCH_SELECT, params)
        await temp_table(conn, EDGES, _EDGES_SELECT, params)
        await conn.execute(text(f"ANALYZE {TOUCH}"))
        await conn.execute(text(f"ANALYZE {EDGES}"))
        await conn.execute(text(_runs_on_sql(runs_on_confidence)), params)
    # By primary / unique key: one probe per asset or edge (not a hash over a whole table).
    # Such plans need the tenant's size known: the endpoints created just now (a first import
    # creates all of them) would otherwise be estimated as one row, and the planner would scan
    # the tenant's assets once per endpoint (5,000 endpoints: 13 s; the edges: 70 s).
    await analyze_if_grown(conn, ("assets", "asset_dependencies"))
    await conn.execute(text(_TOUCH_SQL), params)
    await conn.execute(text(_upsert_edges_sql(edge_columns)), params)


_UNMATCHED = (
    f"SELECT EXISTS (SELECT 1 FROM {ENDS} WHERE asset_id IS NULL AND {{side}}_last IS NOT NULL)"
)
