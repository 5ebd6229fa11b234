"""app_discovery enrichment of a range of an import that began before `prepare` existed.

Kept for imports in flight: every range creates and updates what it shares with the others
(endpoint assets, their touch, the edges, the recompute of their figures), where a prepared
import writes those once (`prepare.py`).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import asset_resolution
from dataimport.asset_matching import LOOKUPS
from dataimport.categories.app_discovery.endpoints import RANGE, TENANT
from dataimport.categories.app_discovery.vocabulary import (
    EDGE_COLUMNS,
    RUNS_ON_CONFIDENCE,
    SIDES,
    VOLUME_BONUS,
)
from dataimport.categories.base import EnrichCounts, ImportScope
from dataimport.row_links import link_rows_sql


def match_lateral(alias: str) -> str:
    """Lateral best match for `{alias}.a` (a JSON identity): one index lookup per rank, best
    rank wins. The unprepared ranges' match; the resolver and prepare hash-join."""
    lookups = "\n    UNION ALL ".join(
        f"SELECT t.id, {rank} AS rank FROM assets t WHERE {TENANT} "
        f"AND t.{column} = {alias}.a ->> '{key}'"
        for rank, (column, key) in enumerate(LOOKUPS, start=1)
    )
    return f"""LEFT JOIN LATERAL (
  SELECT id FROM (
    {lookups}
  ) candidates ORDER BY rank LIMIT 1
) m ON true"""


_RUNS_ON = "coalesce(r.normalized_data -> 'runs_on', '[]'::jsonb)"
# One asset per host name (so "web1" and "web1.corp.local" of one range become one), else
# per name: a tier never merges with a host by host name, only by an identical name.
_IDENTITY_KEY = (
    "CASE WHEN c.a ->> 'hostname_key' IS NOT NULL THEN 'h:' || (c.a ->> 'hostname_key') "
    "ELSE 'n:' || (c.a ->> 'name_key') END"
)


def _create_endpoints_sql() -> str:
    """Create the range's unmatched endpoints, both ends in one statement.

    One statement ordered by name key (rather than one per end) keeps parallel ranges that
    create the same endpoints from deadlocking, and lets two spellings of one host
    ("web1", "web1.corp.local") in one range become one asset. Run once for named endpoints
    and then for IP-only ones, so that "10.0.0.2" finds the "app2-server" created with it.
    """
    return f"""
WITH ends AS (
  SELECT r.row_number, r.normalized_data -> 'source' AS a FROM raw_import_records r
  WHERE {RANGE}
  UNION ALL
  SELECT r.row_number, r.normalized_data -> 'target' AS a FROM raw_import_records r
  WHERE {RANGE}
  UNION ALL
  SELECT r.row_number, c.value AS a FROM raw_import_records r
  CROSS JOIN LATERAL jsonb_array_elements({_RUNS_ON}) c
  WHERE {RANGE}
),
candidates AS (
  SELECT e.row_number, e.a FROM ends e
  WHERE e.a ->> 'name_key' IS NOT NULL
    AND coalesce(e.a ->> 'name' = e.a ->> 'ip_address', false) = :ip_only
),
keyed AS (
  -- any row's IP for the host, so the IP-only pass can match the asset created here
  SELECT c.row_number, c.a, {_IDENTITY_KEY} AS k,
    max(c.a ->> 'ip_address') OVER (PARTITION BY {_IDENTITY_KEY}) AS ip
  FROM candidates c
),
unmatched AS (
  SELECT DISTINCT ON (c.k) c.a, c.ip
  FROM keyed c {match_lateral("c")}
  WHERE m.id IS NULL
  ORDER BY c.k, c.row_number DESC
)
INSERT INTO assets (client_account_id, engagement_id, name, name_key, hostname_key, hostname,
  ip_address, asset_type, source_import_id, created_by_import_id)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), u.a ->> 'name', u.a ->> 'name_key',
  u.a ->> 'hostname_key', u.a ->> 'hostname', coalesce(u.a ->> 'ip_address', u.ip),
  coalesce(u.a ->> 'asset_type', 'server'), CAST(:id AS uuid), CAST(:id AS uuid)
FROM unmatched u ORDER BY u.a ->> 'name_key'
ON CONFLICT (client_account_id, engagement_id, name_key) DO NOTHING
"""


# Touch every endpoint and component asset (source_import_id) and fill host name / IP where
# unknown. Rows are locked in id order first: parallel ranges share assets and must not
# deadlock.
_TOUCH_ASSETS_SQL = f"""
WITH ends AS (
  SELECT r.normalized_data -> 'source' AS a FROM raw_import_records r WHERE {RANGE}
  UNION ALL
  SELECT r.normalized_data -> 'target' AS a FROM raw_import_records r WHERE {RANGE}
),
incoming AS (
  SELECT CAST(a ->> 'asset_id' AS uuid) AS id, max(a ->> 'ip_address') AS ip,
    max(a ->> 'hostname') AS hostname, max(a ->> 'hostname_key') AS hostname_key
  FROM ends WHERE a ->> 'asset_id' IS NOT NULL GROUP BY 1
),
components AS (
  SELECT DISTINCT t.id FROM raw_import_records r
  CROSS JOIN LATERAL jsonb_array_elements({_RUNS_ON}) c
  JOIN assets t ON {TENANT} AND t.name_key = c.value ->> 'name_key'
  WHERE {RANGE}
),
locked AS (
  SELECT t.id, i.ip, i.hostname, i.hostname_key
  FROM assets t LEFT JOIN incoming i ON i.id = t.id
  WHERE {TENANT} AND (t.id IN (SELECT id FROM incoming) OR t.id IN (SELECT id FROM components))
  ORDER BY t.id FOR NO KEY UPDATE OF t
)
UPDATE assets t SET ip_address = coalesce(t.ip_address, l.ip),
  hostname = coalesce(t.hostname, l.hostname),
  hostname_key = coalesce(t.hostname_key, l.hostname_key),
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM locked l WHERE t.id = l.id
"""

# A tier runs on the node the row names with it: component -> host, no port, no figures.
_UPSERT_RUNS_ON_SQL = f"""
WITH k AS (
  SELECT CAST(r.normalized_data -> (c.value ->> 'side') ->> 'asset_id' AS uuid) AS host,
    c.value ->> 'name_key' AS component_key
  FROM raw_import_records r CROSS JOIN LATERAL jsonb_array_elements({_RUNS_ON}) c
  WHERE {RANGE}
),
e AS (
  SELECT DISTINCT t.id AS src, k.host AS tgt FROM k
  JOIN assets t ON {TENANT} AND t.name_key = k.component_key
  WHERE k.host IS NOT NULL AND t.id <> k.host
)
INSERT INTO asset_dependencies (client_account_id, engagement_id, source_asset_id,
  target_asset_id, dependency_type, confidence, details, source_import_id, created_by_import_id)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), src, tgt, 'runs_on', {RUNS_ON_CONFIDENCE},
  '{{"kind": "topology"}}'::jsonb, CAST(:id AS uuid), CAST(:id AS uuid)
FROM e ORDER BY src, tgt
ON CONFLICT (client_account_id, engagement_id, source_asset_id, target_asset_id, port, protocol)
DO UPDATE SET source_import_id = EXCLUDED.source_import_id,
  confidence = greatest(asset_dependencies.confidence, EXCLUDED.confidence), updated_at = now()
"""

_EDGE_COLUMN_ARRAY = "ARRAY[" + ", ".join(f"'{c}'" for c in EDGE_COLUMNS) + "]"

# One statement: upsert one edge per (source, target, port, protocol) of the range (grouped
# first: ON CONFLICT DO UPDATE may not meet one key twice; ordered: no deadlocks between
# ranges), record each row's observation once, and return the edges with their base
# confidence for the recompute.
_UPSERT_EDGES_SQL = f"""
WITH k AS (
  SELECT r.row_number, CAST(r.normalized_data -> 'source' ->> 'asset_id' AS uuid) AS src,
    CAST(r.normalized_data -> 'target' ->> 'asset_id' AS uuid) AS tgt,
    CAST(r.normalized_data -> 'dependency' ->> 'port' AS integer) AS port,
    r.normalized_data -> 'dependency' ->> 'protocol' AS protocol,
    r.normalized_data -> 'dependency' AS d
  FROM raw_import_records r
  WHERE {RANGE} AND r.normalized_data -> 'source' ->> 'asset_id' IS NOT NULL
    AND r.normalized_data -> 'target' ->> 'asset_id' IS NOT NULL
),
e AS (
  SELECT src, tgt, port, protocol, min(d ->> 'dependency_type') AS dependency_type,
    max(CAST(d ->> 'confidence' AS double precision)) AS base,
    (array_agg(jsonb_strip_nulls(d - {_EDGE_COLUMN_ARRAY}) ORDER BY row_number DESC))[1]
      AS details
  FROM k WHERE src <> tgt GROUP BY src, tgt, port, protocol
),
up AS (
  INSERT INTO asset_dependencies (client_account_id, engagement_id, source_asset_id,
    target_asset_id, port, protocol, dependency_type, confidence, details, source_import_id,
    created_by_import_id)
  SELECT CAST(:c AS uuid), CAST(:e AS uuid), src, tgt, port, protocol, dependency_type, base,
    details, CAST(:id AS uuid), CAST(:id AS uuid)
  FROM e ORDER BY src, tgt, port, protocol
  ON CONFLICT (client_account_id, engagement_id, source_asset_id, target_asset_id, port, protocol)
  DO UPDATE SET source_import_id = EXCLUDED.source_import_id,
    dependency_type = CASE WHEN asset_dependencies.dependency_type = 'declared'
      THEN EXCLUDED.dependency_type ELSE asset_dependencies.dependency_type END,
    details = asset_dependencies.details || EXCLUDED.details,
    confidence = greatest(asset_dependencies.confidence, EXCLUDED.confidence),
    updated_at = now()
  RETURNING id, source_asset_id, target_asset_id, port, protocol
),
obs AS (
  INSERT INTO dependency_observations (client_account_id, engagement_id, dependency_id,
    observation_key, conn_count, bytes_total, first_seen, last_seen, data_import_id)
  SELECT DISTINCT ON (up.id, k.d ->> 'observation_key') CAST(:c AS uuid), CAST(:e AS uuid),
    up.id, k.d ->> 'observation_key', CAST(k.d ->> 'conn_count' AS bigint),
    CAST(k.d ->> 'bytes_total' AS bigint), CAST(k.d ->> 'first_seen' AS timestamptz),
    CAST(k.d ->> 'last_seen' AS timestamptz), CAST(:id AS uuid)
  FROM k JOIN up ON up.source_asset_id = k.src AND up.target_asset_id = k.tgt
    AND up.port IS NOT DISTINCT FROM k.port AND up.protocol IS NOT DISTINCT FROM k.protocol
  ORDER BY up.id, k.d ->> 'observation_key', k.row_number DESC
  ON CONFLICT (dependency_id, observation_key) DO NOTHING
)
SELECT up.id, e.base FROM up JOIN e ON up.source_asset_id = e.src AND up.target_asset_id = e.tgt
  AND up.port IS NOT DISTINCT FROM e.port AND up.protocol IS NOT DISTINCT FROM e.protocol
ORDER BY up.id
"""

# Edge figures are functions of the edge's distinct observations (sum, min, max): the same
# window imported twice counts once, a new window adds. Confidence never decreases.
_RECOMPUTE_SQL = f"""
WITH b AS (
  SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:bases AS double precision[])) AS b(id, base)
),
agg AS (
  SELECT o.dependency_id AS id, sum(o.conn_count) AS conn_count,
    sum(o.bytes_total) AS bytes_total, min(o.first_seen) AS first_seen,
    max(o.last_seen) AS last_seen
  FROM dependency_observations o JOIN b ON o.dependency_id = b.id
  GROUP BY o.dependency_id
)
UPDATE asset_dependencies d SET conn_count = agg.conn_count, bytes_total = agg.bytes_total,
  first_seen = agg.first_seen, last_seen = agg.last_seen,
  confidence = greatest(d.confidence, least(1.0, b.base + {VOLUME_BONUS} * least(1.0,
    CAST(log(1 + coalesce(agg.conn_count, 0)) AS double precision) / 4)))
FROM agg JOIN b ON b.id = agg.id
WHERE d.id = agg.id AND d.client_account_id = CAST(:c AS uuid)
  AND d.engagement_id = CAST(:e AS uuid)
"""

_MARK_PROCESSED_SQL = link_rows_sql(
    f"""
SELECT r.data_import_id, r.row_number,
  CAST(r.normalized_data -> 'source' ->> 'asset_id' AS uuid), CAST(:c AS uuid), CAST(:e AS uuid)
FROM raw_import_records r
WHERE {RANGE}
ORDER BY r.row_number
"""
)


async def enrich_range(conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
    """One range: its endpoints created or matched, touched, its edges upserted and their
    figures recomputed, its runs_on edges, its rows marked processed."""
    params = asset_resolution.scope_params(scope)
    for ip_only in (False, True):
        await conn.execute(text(_create_endpoints_sql()), {**params, "ip_only": ip_only})
    # Matching and write-back are the resolver's; whatever the passes above left
    # unmatched (e.g. a tier and a host sharing a key) is created here.
    for side in SIDES:
        await asset_resolution.resolve_assets(conn, scope, side)
    touched = await conn.execute(text(_TOUCH_ASSETS_SQL), params)
    edges = (await conn.execute(text(_UPSERT_EDGES_SQL), params)).all()
    if edges:
        await conn.execute(
            text(_RECOMPUTE_SQL),
            {**params, "ids": [e.id for e in edges], "bases": [e.base for e in edges]},
        )
    runs_on = await conn.execute(text(_UPSERT_RUNS_ON_SQL), params)
    await conn.execute(text(_MARK_PROCESSED_SQL), params)
    return EnrichCounts(
        assets_touched=touched.rowcount or 0,
        dependencies_touched=len(edges) + (runs_on.rowcount or 0),
    )
