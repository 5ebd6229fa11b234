"""app_discovery enrichment of a prepared import's ranges, and its finish: set-based, linear.

- `enrich_range` (per row range, in parallel, after `prepare.py`): the range's rows typed
  once; its distinct endpoints matched; its distinct edges looked up; one observation per
  (edge, observation key) inserted; the rows marked processed with their source asset.
  Nothing is written to `normalized_data`, and only rows not already marked are rewritten (a
  retry rewrites none).
- `finish` (once, after every range): the import's edges and base confidences from one scan
  of its rows, their figures recomputed from their observations; edges whose figures do not
  change are not rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.categories.app_discovery.endpoints import END_COLUMNS, RANGE, match, temp_table
from dataimport.categories.base import EnrichCounts
from dataimport.planner import HASH_JOINS, planner
from dataimport.row_links import link_rows_sql

RANGE_ROWS = "app_discovery_range_rows"
RANGE_ENDS = "app_discovery_range_ends"
RANGE_EDGES = "app_discovery_range_edges"
FINISH_EDGES = "app_discovery_finish_edges"


# --- a range -----------------------------------------------------------------------------

_RANGE_ROWS_SELECT = f"""
SELECT r.id AS rid, r.row_number, (r.normalized_data -> 'source') - 'asset_id' AS src,
  (r.normalized_data -> 'target') - 'asset_id' AS tgt,
  CAST(r.normalized_data -> 'dependency' ->> 'port' AS integer) AS port,
  r.normalized_data -> 'dependency' ->> 'protocol' AS protocol,
  r.normalized_data -> 'dependency' ->> 'observation_key' AS observation_key,
  CAST(r.normalized_data -> 'dependency' ->> 'conn_count' AS bigint) AS conn_count,
  CAST(r.normalized_data -> 'dependency' ->> 'bytes_total' AS bigint) AS bytes_total,
  CAST(r.normalized_data -> 'dependency' ->> 'first_seen' AS timestamptz) AS first_seen,
  CAST(r.normalized_data -> 'dependency' ->> 'last_seen' AS timestamptz) AS last_seen
FROM raw_import_records r WHERE {RANGE}
"""


def _ends_of(table: str) -> str:
    """The distinct endpoints (source and target) of a typed row table, typed."""
    return f"""
SELECT row_number() OVER () AS n, a, {END_COLUMNS}, CAST(NULL AS uuid) AS asset_id
FROM (SELECT src AS a FROM {table} UNION SELECT tgt FROM {table}) e
WHERE a ->> 'name_key' IS NOT NULL
"""


def _edge_ids_select(keys: str, extra: str = "") -> str:
    """The tenant's edge of each distinct (src, tgt, port, protocol) of table `keys`: one
    probe per distinct edge into its unique index (the only tenant-prefixed index there)."""
    return f"""
SELECT x.id, k.src, k.tgt, k.port, k.protocol{extra}
FROM {keys} k CROSS JOIN LATERAL (
  SELECT x.id FROM asset_dependencies x
  WHERE x.client_account_id = CAST(:c AS uuid) AND x.engagement_id = CAST(:e AS uuid)
    AND x.source_asset_id = k.src AND x.target_asset_id = k.tgt
    AND x.port IS NOT DISTINCT FROM k.port AND x.protocol IS NOT DISTINCT FROM k.protocol
) x
"""


_RANGE_KEYS = f"""
SELECT DISTINCT s.asset_id AS src, g.asset_id AS tgt, w.port, w.protocol
FROM {RANGE_ROWS} w JOIN {RANGE_ENDS} s ON s.a = w.src JOIN {RANGE_ENDS} g ON g.a = w.tgt
WHERE s.asset_id IS NOT NULL AND g.asset_id IS NOT NULL AND s.asset_id <> g.asset_id
"""

# One observation per (edge, observation key) of the range, from its latest row; a retried
# range meets its own keys and inserts nothing.
_INSERT_OBSERVATIONS_SQL = f"""
INSERT INTO dependency_observations (client_account_id, engagement_id, dependency_id,
  observation_key, conn_count, bytes_total, first_seen, last_seen, data_import_id)
SELECT DISTINCT ON (x.id, w.observation_key) CAST(:c AS uuid), CAST(:e AS uuid), x.id,
  w.observation_key, w.conn_count, w.bytes_total, w.first_seen, w.last_seen, CAST(:id AS uuid)
FROM {RANGE_ROWS} w JOIN {RANGE_ENDS} s ON s.a = w.src JOIN {RANGE_ENDS} g ON g.a = w.tgt
JOIN {RANGE_EDGES} x ON x.src = s.asset_id AND x.tgt = g.asset_id
  AND x.port IS NOT DISTINCT FROM w.port AND x.protocol IS NOT DISTINCT FROM w.protocol
ORDER BY x.id, w.observation_key, w.row_number DESC
ON CONFLICT (dependency_id, observation_key) DO NOTHING
"""

# Every row of the range processed, with its source asset; rows already so are not rewritten.
_MARK_SQL = link_rows_sql(
    f"""
SELECT CAST(:id AS uuid), w.row_number, s.asset_id, CAST(:c AS uuid), CAST(:e AS uuid)
FROM {RANGE_ROWS} w LEFT JOIN {RANGE_ENDS} s ON s.a = w.src
ORDER BY w.row_number
"""
)


RANGE_KEYS = "app_discovery_range_keys"


async def enrich_range(conn: AsyncConnection, params: Mapping[str, Any]) -> EnrichCounts:
    """A range of a prepared import: lookups only (no shared row written), its own
    observations inserted, its rows marked."""
    async with planner(conn, **HASH_JOINS):
        await temp_table(conn, RANGE_ROWS, _RANGE_ROWS_SELECT, params)
        rows = int(await conn.scalar(text(f"SELECT count(*) FROM {RANGE_ROWS}")) or 0)
        await temp_table(conn, RANGE_ENDS, _ends_of(RANGE_ROWS), params)
        await match(conn, RANGE_ENDS, params)
        await temp_table(conn, RANGE_KEYS, _RANGE_KEYS, params)
        await conn.execute(text(f"ANALYZE {RANGE_KEYS}"))
    await temp_table(conn, RANGE_EDGES, _edge_ids_select(RANGE_KEYS), params)
    async with planner(conn, **HASH_JOINS):
        observed = await conn.execute(text(_INSERT_OBSERVATIONS_SQL), params)
        await conn.execute(text(_MARK_SQL), params)
    return EnrichCounts(assets_touched=rows, dependencies_touched=observed.rowcount or 0)


# --- finish ------------------------------------------------------------------------------

_FINISH_PAIRS = "app_discovery_finish_pairs"
_FINISH_PAIRS_SELECT = f"""
SELECT src, tgt, port, protocol, max(base) AS base
FROM (
  SELECT (r.normalized_data -> 'source') - 'asset_id' AS src,
    (r.normalized_data -> 'target') - 'asset_id' AS tgt,
    CAST(r.normalized_data -> 'dependency' ->> 'port' AS integer) AS port,
    r.normalized_data -> 'dependency' ->> 'protocol' AS protocol,
    CAST(r.normalized_data -> 'dependency' ->> 'confidence' AS double precision) AS base
  FROM raw_import_records r WHERE {RANGE}
) k
GROUP BY src, tgt, port, protocol
"""
_FINISH_ENDS = "app_discovery_finish_ends"
FINISH_KEYS = "app_discovery_finish_keys"
_FINISH_KEYS = f"""
SELECT s.asset_id AS src, g.asset_id AS tgt, p.port, p.protocol, max(p.base) AS base
FROM {_FINISH_PAIRS} p JOIN {_FINISH_ENDS} s ON s.a = p.src JOIN {_FINISH_ENDS} g ON g.a = p.tgt
WHERE s.asset_id IS NOT NULL AND g.asset_id IS NOT NULL AND s.asset_id <> g.asset_id
GROUP BY s.asset_id, g.asset_id, p.port, p.protocol
"""


# Observations of the import's edges, summed: by the edges' index (one probe per edge) or a
# hash, whichever the accurate sizes of both sides make cheaper.
_FINISH_AGG = "app_discovery_finish_agg"
_FINISH_AGG_SELECT = f"""
SELECT b.id, b.base, b.c, b.e, sum(o.conn_count) AS conn_count,
  sum(o.bytes_total) AS bytes_total, min(o.first_seen) AS first_seen,
  max(o.last_seen) AS last_seen
FROM {FINISH_EDGES} b JOIN dependency_observations o ON o.dependency_id = b.id
GROUP BY b.id, b.base, b.c, b.e
"""


def _recompute_sql(volume_bonus: float) -> str:
    """Edge figures are functions of the edge's distinct observations (sum, min, max);
    confidence never decreases. Edges whose values stay the same are not rewritten.

    The tenant is matched through the temp table's tenant columns (set from :c/:e): a join
    clause, so a tenant the statistics do not know yet cannot make the planner drive the
    update from an "empty" tenant index scan (a nested loop over every edge)."""
    confidence = f"""greatest(d.confidence, least(1.0, a.base + {volume_bonus} * least(1.0,
    CAST(log(1 + coalesce(a.conn_count, 0)) AS double precision) / 4)))"""
    return f"""
UPDATE asset_dependencies d SET conn_count = a.conn_count, bytes_total = a.bytes_total,
  first_seen = a.first_seen, last_seen = a.last_seen, confidence = {confidence}
FROM {_FINISH_AGG} a
WHERE d.id = a.id AND d.client_account_id = a.c AND d.engagement_id = a.e
  AND (d.conn_count, d.bytes_total, d.first_seen, d.last_seen, d.confidence)
    IS DISTINCT FROM (a.conn_count, a.bytes_total, a.first_seen, a.last_seen, {confidence})
"""


async def finish(conn: AsyncConnection, params: Mapping[str, Any], *, volume_bonus: float) -> int:
    """The import's edges' figures recomputed from their observations; returns how many
    changed."""
    async with planner(conn, **HASH_JOINS):
        await temp_table(conn, _FINISH_PAIRS, _FINISH_PAIRS_SELECT, params)
        await temp_table(
            conn,
            _FINISH_ENDS,
            f"""SELECT row_number() OVER () AS n, a, {END_COLUMNS}, CAST(NULL AS uuid) AS asset_id
FROM (SELECT src AS a FROM {_FINISH_PAIRS} UNION SELECT tgt FROM {_FINISH_PAIRS}) e
WHERE a ->> 'name_key' IS NOT NULL""",
            params,
        )
        await match(conn, _FINISH_ENDS, params)
        await temp_table(conn, FINISH_KEYS, _FINISH_KEYS, params)
        await conn.execute(text(f"ANALYZE {FINISH_KEYS}"))
    tenant = ", k.base, CAST(:c AS uuid) AS c, CAST(:e AS uuid) AS e"
    await temp_table(conn, FINISH_EDGES, _edge_ids_select(FINISH_KEYS, tenant), params)
    await conn.execute(text(f"ANALYZE {FINISH_EDGES}"))
    await temp_table(conn, _FINISH_AGG, _FINISH_AGG_SELECT, params)
    await conn.execute(text(f"ANALYZE {_FINISH_AGG}"))
    changed = await conn.execute(text(_recompute_sql(volume_bonus)), params)
    return changed.rowcount or 0
