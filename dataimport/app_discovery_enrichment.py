"""app_discovery enrichment of a prepared import: set-based, linear, robust to stale statistics.

Three statement groups, each extracting the JSONB of the staged rows once into a small typed
temporary table (dropped at commit), then working on plain columns with hash joins:

- `prepare` (once per import, before the parallel ranges): ONE scan of the import's rows,
  grouped into the distinct (source end, target end, port, protocol, runs_on) pairs; the
  distinct endpoints of those; unmatched endpoints created (named ones first, then IP-only
  ones, then a safety net per side, as the row-range statements always did); every endpoint
  asset touched; one edge per (source, target, port, protocol) upserted, its details read
  from its latest row by that row's key; the `runs_on` edges of topology rows.
- `enrich_range` (per row range, in parallel): the range's rows typed once; its distinct
  endpoints matched; its distinct edges looked up; one observation per (edge, observation
  key) inserted; the rows marked processed with their source asset. Nothing is written to
  `normalized_data`, and only rows not already marked are rewritten (a retry rewrites none).
- `finish` (once, after every range): the import's edges and base confidences from one scan
  of its rows, their figures recomputed from their observations; edges whose figures do not
  change are not rewritten.

Endpoint matching keeps the resolver's ranks (external id, VM UUID, name key, host name key,
IP address; the best rank wins, the smallest asset id within a rank, so prepare and every
range agree). Each rank is ONE index scan of the tenant's assets with `= ANY(<the distinct
keys>)`, hash-joined to the endpoints: never a per-row probe, so a tenant the statistics do
not know yet costs at worst one scan of that tenant per rank, not one per row. Nested loops
are switched off inside the groups (restored after) for the same reason: estimates of a
fresh temp table or of a tenant that grew since the last ANALYZE must not pick row-by-row
plans.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.categories.base import EnrichCounts
from dataimport.row_links import link_rows_sql
from dataimport.table_statistics import analyze_if_grown

_TENANT = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"
_RANGE = """r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.is_valid AND NOT r.superseded"""

PAIRS = "app_discovery_pairs"
ENDS = "app_discovery_ends"
EDGES = "app_discovery_edges"
RANGE_ROWS = "app_discovery_range_rows"
RANGE_ENDS = "app_discovery_range_ends"
RANGE_EDGES = "app_discovery_range_edges"
FINISH_EDGES = "app_discovery_finish_edges"

# The ranked lookups of `asset_resolution.match_lateral`, in rank order.
_LOOKUPS = (
    ("external_id", "external_id"),
    ("vm_uuid", "vm_uuid"),
    ("name_key", "name_key"),
    ("hostname_key", "hostname_key"),
    ("ip_address", "ip_address"),
)

# The identity columns an endpoint object carries, typed once.
_END_COLUMNS = """
  a ->> 'name' AS name, a ->> 'name_key' AS name_key, a ->> 'hostname_key' AS hostname_key,
  a ->> 'hostname' AS hostname, a ->> 'external_id' AS external_id,
  a ->> 'vm_uuid' AS vm_uuid, a ->> 'ip_address' AS ip_address,
  a ->> 'asset_type' AS asset_type"""


@asynccontextmanager
async def planner(conn: AsyncConnection, **settings: str) -> AsyncIterator[None]:
    """Planner settings for a statement group, the transaction's previous values restored
    afterwards (the caller's other statements in the same transaction plan as before)."""
    names = list(settings)
    previous = [
        row[0]
        for row in await conn.execute(
            text("SELECT current_setting(n) FROM unnest(CAST(:names AS text[])) AS n"),
            {"names": names},
        )
    ]
    await _set(conn, names, [settings[n] for n in names])
    yield
    await _set(conn, names, previous)


async def _set(conn: AsyncConnection, names: Sequence[str], values: Sequence[str]) -> None:
    await conn.execute(
        text(
            "SELECT set_config(n, v, true) FROM unnest(CAST(:names AS text[]), "
            "CAST(:values AS text[])) AS s(n, v)"
        ),
        {"names": list(names), "values": list(values)},
    )


_HASH_ONLY = {"enable_nestloop": "off", "enable_mergejoin": "off"}


async def _temp(conn: AsyncConnection, name: str, select: str, params: Mapping[str, Any]) -> None:
    """A fresh temporary table from `select` (dropped at commit; dropped first when a
    caller's transaction already made one, e.g. two ranges in one test transaction)."""
    await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    await conn.execute(text(f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS {select}"), params)


def match_sql(
    ends: str, ranks: Sequence[int], lookups: Sequence[tuple[str, str]] = _LOOKUPS
) -> str:
    """Set `asset_id` of every row of table `ends` (columns n, asset_id and the keys of
    `lookups`: (asset column, key column) by rank) to its best match among the lookups of
    `ranks` (those some row has a key for): best rank, then smallest id. Each rank is a hash
    join with the tenant's assets (run with nested loops off): linear in the tenant and the
    rows whatever the statistics say. Shared by asset_resolution."""
    branches = "\n  UNION ALL ".join(
        f"""SELECT x.n, t.id, {rank} AS rank FROM {ends} x JOIN assets t ON t.{column} = x.{key}
  WHERE {_TENANT} AND x.{key} IS NOT NULL"""
        for rank, (column, key) in enumerate(lookups, start=1)
        if rank in ranks
    )
    if not branches:
        branches = (
            "SELECT CAST(NULL AS bigint) AS n, CAST(NULL AS uuid) AS id, 0 AS rank WHERE false"
        )
    return f"""
WITH candidates AS (
  {branches}
),
best AS (SELECT DISTINCT ON (n) n, id FROM candidates ORDER BY n, rank, id)
UPDATE {ends} x SET asset_id = b.id FROM (
  SELECT y.n, best.id FROM {ends} y LEFT JOIN best ON best.n = y.n
) b
WHERE x.n = b.n AND x.asset_id IS DISTINCT FROM b.id
"""


async def match(conn: AsyncConnection, ends: str, params: Mapping[str, Any]) -> None:
    """Resolve the endpoints of `ends` (hash joins; call with nested loops off)."""
    keys = ", ".join(f"bool_or({key} IS NOT NULL)" for _, key in _LOOKUPS)
    present = (await conn.execute(text(f"SELECT {keys} FROM {ends}"))).one()
    ranks = [rank for rank, has in enumerate(present, start=1) if has]
    await conn.execute(text(match_sql(ends, ranks)), params)


# --- prepare -------------------------------------------------------------------------------

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
  FROM raw_import_records r WHERE {_RANGE}
) k
GROUP BY src, tgt, port, protocol, runs_on
"""

# The distinct endpoints (ends of rows, and components of `runs_on`), with the last row each
# appears in per role, typed.
_ENDS_SELECT = f"""
SELECT row_number() OVER () AS n, a, max(src_last) AS src_last, max(tgt_last) AS tgt_last,
  max(comp_last) AS comp_last, greatest(max(src_last), max(tgt_last), max(comp_last)) AS last_row,
  {_END_COLUMNS},
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
_CREATE_PASS_SQL = f"""
WITH keyed AS (
  SELECT x.*, max(x.ip_address) OVER (PARTITION BY x.k) AS key_ip FROM {ENDS} x
  WHERE x.ip_only = :ip_only
),
unmatched AS (
  SELECT DISTINCT ON (k) * FROM keyed WHERE asset_id IS NULL ORDER BY k, last_row DESC, n
)
INSERT INTO assets (client_account_id, engagement_id, name, name_key, hostname_key, hostname,
  ip_address, asset_type, source_import_id, created_by_import_id)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), u.name, u.name_key, u.hostname_key, u.hostname,
  coalesce(u.ip_address, u.key_ip), coalesce(u.asset_type, 'server'), CAST(:id AS uuid),
  CAST(:id AS uuid)
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
  external_id, vm_uuid, ip_address, asset_type, source_import_id, created_by_import_id)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), u.name, u.name_key, u.hostname_key, u.hostname,
  u.external_id, u.vm_uuid, u.ip_address, coalesce(u.asset_type, 'server'),
  CAST(:id AS uuid), CAST(:id AS uuid)
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
WHERE {_TENANT} AND x.comp_last IS NOT NULL
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
  WHERE {_TENANT}
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
    async with planner(conn, **_HASH_ONLY):
        await _temp(conn, PAIRS, _PAIRS_SELECT, params)
        await _temp(conn, ENDS, _ENDS_SELECT, params)
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
        await _temp(conn, TOUCH, _TOUCH_SELECT, params)
        await _temp(conn, EDGES, _EDGES_SELECT, params)
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
FROM raw_import_records r WHERE {_RANGE}
"""


def _ends_of(table: str) -> str:
    """The distinct endpoints (source and target) of a typed row table, typed."""
    return f"""
SELECT row_number() OVER () AS n, a, {_END_COLUMNS}, CAST(NULL AS uuid) AS asset_id
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
    async with planner(conn, **_HASH_ONLY):
        await _temp(conn, RANGE_ROWS, _RANGE_ROWS_SELECT, params)
        rows = int(await conn.scalar(text(f"SELECT count(*) FROM {RANGE_ROWS}")) or 0)
        await _temp(conn, RANGE_ENDS, _ends_of(RANGE_ROWS), params)
        await match(conn, RANGE_ENDS, params)
        await _temp(conn, RANGE_KEYS, _RANGE_KEYS, params)
        await conn.execute(text(f"ANALYZE {RANGE_KEYS}"))
    await _temp(conn, RANGE_EDGES, _edge_ids_select(RANGE_KEYS), params)
    async with planner(conn, **_HASH_ONLY):
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
  FROM raw_import_records r WHERE {_RANGE}
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
    async with planner(conn, **_HASH_ONLY):
        await _temp(conn, _FINISH_PAIRS, _FINISH_PAIRS_SELECT, params)
        await _temp(
            conn,
            _FINISH_ENDS,
            f"""SELECT row_number() OVER () AS n, a, {_END_COLUMNS}, CAST(NULL AS uuid) AS asset_id
FROM (SELECT src AS a FROM {_FINISH_PAIRS} UNION SELECT tgt FROM {_FINISH_PAIRS}) e
WHERE a ->> 'name_key' IS NOT NULL""",
            params,
        )
        await match(conn, _FINISH_ENDS, params)
        await _temp(conn, FINISH_KEYS, _FINISH_KEYS, params)
        await conn.execute(text(f"ANALYZE {FINISH_KEYS}"))
    tenant = ", k.base, CAST(:c AS uuid) AS c, CAST(:e AS uuid) AS e"
    await _temp(conn, FINISH_EDGES, _edge_ids_select(FINISH_KEYS, tenant), params)
    await conn.execute(text(f"ANALYZE {FINISH_EDGES}"))
    await _temp(conn, _FINISH_AGG, _FINISH_AGG_SELECT, params)
    await conn.execute(text(f"ANALYZE {_FINISH_AGG}"))
    changed = await conn.execute(text(_recompute_sql(volume_bonus)), params)
    return changed.rowcount or 0
