"""Dependency groups: connected components of a tenant's dependency graph (move-group candidates).

Every asset that takes part in any `asset_dependencies` edge (of any category, either
direction) has a row in `dependency_group_members` with its group's root, the smallest asset
id in its component (shown as the group "G-<root>"): the id stays the same as long as that
asset stays in the group, so reruns change nothing unless the graph did. Assets without edges
have no row.

An import adds its edges incrementally: only the components they touch are relabelled. The
components are computed in polars (`graph_components`) over edges read with one COPY, and
the labels go back with COPY into temporary tables and set-based statements that only write
rows whose group changed.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import polars as pl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.categories.base import ImportScope
from dataimport.db import driver_connection
from dataimport.graph_components import component_roots

GROUP_PREFIX = "G-"
TOP_GROUPS = 10  # groups listed in the summary
SAMPLE_NAMES = 5  # asset names shown per group
NAME_LIMIT = 40  # characters per sample name: keeps the summary well under 4 KB


def _tenant(alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return (
        f"{prefix}client_account_id = CAST(:c AS uuid) AND {prefix}engagement_id = CAST(:e AS uuid)"
    )


_TENANT = _tenant()

# Two refreshes of one tenant (two imports finishing together) must not interleave.
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('dependency_groups/' || :c || '/' || :e, 0))"


MEMBERS = "dependency_group_members"  # asset -> group; narrow, so labelling stays cheap

# The graph travels to the worker as integer node numbers only (uuids stay in PostgreSQL):
# a 1M-row import's 1.3M edges as uuid text held ~500 MB of worker memory.
_ENDS = "group_edge_ends"  # a, a_grouped, b, b_grouped: an edge's two nodes
_NODES = "group_nodes"  # n (0..count-1, in uuid order), node, grouped
_ROOTS = "group_roots"  # n, root: from polars

# The edges an import created or last touched, as nodes: a grouped end stands for its whole
# group (its root), an ungrouped one for itself.
_IMPORT_EDGE_ENDS = f"""
CREATE TEMPORARY TABLE {_ENDS} ON COMMIT DROP AS
SELECT coalesce(s.group_root, d.source_asset_id) AS a, s.group_root IS NOT NULL AS a_grouped,
  coalesce(t.group_root, d.target_asset_id) AS b, t.group_root IS NOT NULL AS b_grouped
FROM asset_dependencies d
LEFT JOIN {MEMBERS} s ON s.asset_id = d.source_asset_id
LEFT JOIN {MEMBERS} t ON t.asset_id = d.target_asset_id
WHERE {_tenant("d")} AND (d.created_by_import_id = CAST(:id AS uuid)
  OR d.source_import_id = CAST(:id AS uuid))
"""

_TENANT_EDGE_ENDS = f"""
CREATE TEMPORARY TABLE {_ENDS} ON COMMIT DROP AS
SELECT source_asset_id AS a, false AS a_grouped, target_asset_id AS b, false AS b_grouped
FROM asset_dependencies WHERE {_TENANT}
"""

_NUMBER_NODES = f"""
CREATE TEMPORARY TABLE {_NODES} ON COMMIT DROP AS
SELECT CAST(row_number() OVER (ORDER BY node) - 1 AS integer) AS n, node, grouped
FROM (
  SELECT node, bool_or(grouped) AS grouped FROM (
    SELECT a, a_grouped FROM {_ENDS} UNION ALL SELECT b, b_grouped FROM {_ENDS}
  ) x(node, grouped) GROUP BY node
) y
"""

_NUMBERED_EDGES = f"""
SELECT x.n AS source, y.n AS target FROM {_ENDS} e
JOIN {_NODES} x ON x.node = e.a JOIN {_NODES} y ON y.node = e.b
"""

_CREATE_ROOTS = f"CREATE TEMPORARY TABLE {_ROOTS} (n integer, root integer) ON COMMIT DROP"

# Each node with its new root: the smallest node of its component.
_NEW_ROOTS = f"""
SELECT g.node, g.grouped, r.node AS root, x.n <> x.root AS moved
FROM {_ROOTS} x JOIN {_NODES} g ON g.n = x.n JOIN {_NODES} r ON r.n = x.root
"""

# Groups merged into another one: every member takes the new label.
_RELABEL_GROUPS = f"""
UPDATE {MEMBERS} m SET group_root = v.root
FROM ({_NEW_ROOTS}) v
WHERE {_tenant("m")} AND v.grouped AND v.moved AND m.group_root = v.node
"""

# Assets in no group join theirs. A plain INSERT (an upsert costs twice as much): they had no
# row when the edges were read, and every writer of the table holds the tenant's lock.
_LABEL_ASSETS = f"""
INSERT INTO {MEMBERS} (asset_id, group_root, client_account_id, engagement_id)
SELECT v.node, v.root, CAST(:c AS uuid), CAST(:e AS uuid) FROM ({_NEW_ROOTS}) v
WHERE NOT v.grouped
"""

# A full recompute: every asset on an edge takes its root; only changed rows are written.
_APPLY_ALL = f"""
INSERT INTO {MEMBERS} (asset_id, group_root, client_account_id, engagement_id)
SELECT v.node, v.root, CAST(:c AS uuid), CAST(:e AS uuid) FROM ({_NEW_ROOTS}) v
ON CONFLICT (asset_id) DO UPDATE SET group_root = EXCLUDED.group_root
WHERE {MEMBERS}.group_root IS DISTINCT FROM EXCLUDED.group_root
"""

# After a full recompute: assets on no edge any more leave their group.
_CLEAR = f"""
DELETE FROM {MEMBERS} m
WHERE {_tenant("m")} AND NOT EXISTS (SELECT 1 FROM {_NODES} g WHERE g.node = m.asset_id)
"""

_GROUP_SIZES = f"""
SELECT '{GROUP_PREFIX}' || group_root AS grp, count(*) FROM {MEMBERS}
WHERE {_TENANT} GROUP BY group_root
ORDER BY count(*) DESC, grp
"""

# A few member names per listed group: its members with the smallest ids (an index range
# read, however large the group), shown in name order.
_SAMPLES = f"""
SELECT '{GROUP_PREFIX}' || g.root, s.name FROM unnest(CAST(:roots AS uuid[])) AS g(root)
CROSS JOIN LATERAL (
  SELECT a.name FROM (
    SELECT m.asset_id FROM {MEMBERS} m
    WHERE {_tenant("m")} AND m.group_root = g.root
    ORDER BY m.asset_id LIMIT :n
  ) k JOIN assets a ON a.id = k.asset_id
) s
ORDER BY g.root, s.name
"""

_LIST = f"""
WITH g AS (
  SELECT '{GROUP_PREFIX}' || m.group_root AS grp, count(*) AS assets,
    (array_agg(a.name ORDER BY a.name))[1:10] AS sample
  FROM {MEMBERS} m JOIN assets a ON a.id = m.asset_id
  WHERE {_tenant("m")}
  GROUP BY m.group_root
),
d AS (
  SELECT '{GROUP_PREFIX}' || m.group_root AS grp, count(*) AS dependencies
  FROM asset_dependencies x JOIN {MEMBERS} m ON m.asset_id = x.source_asset_id
  WHERE {_tenant("x")}
  GROUP BY m.group_root
)
SELECT g.grp, g.assets, coalesce(d.dependencies, 0) AS dependencies, g.sample
FROM g LEFT JOIN d ON d.grp = g.grp
WHERE g.assets >= :min_assets {{after}}
ORDER BY g.assets DESC, g.grp
LIMIT :limit
"""
# Keyset continuation after the (assets, group) of the last row of a page.
_AFTER = "AND (g.assets < :after_assets OR (g.assets = :after_assets AND g.grp > :after_grp))"


async def _fresh(conn: AsyncConnection, table: str, create: str, params: dict[str, Any]) -> None:
    await conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{table}"))
    await conn.execute(text(create), params)


async def _group(conn: AsyncConnection, ends: str, params: dict[str, Any]) -> None:
    """Number the nodes of `ends`, find their components in polars, leave `group_roots`.

    Every join here is over whole sets (an import's edges, its nodes): hash joins, never
    nested loops, which a stale or empty estimate (a table that just grew) would pick.
    """
    await conn.execute(text("SET LOCAL work_mem = '128MB'"))
    await conn.execute(text("SET LOCAL enable_nestloop = off"))
    await _fresh(conn, _ENDS, ends, params)
    await _fresh(conn, _NODES, _NUMBER_NODES, {})
    count = int(await conn.scalar(text(f"SELECT count(*) FROM {_NODES}")) or 0)
    driver = await driver_connection(conn)
    sink = io.BytesIO()

    async def write(data: bytes) -> None:
        sink.write(data)

    await driver.copy_from_query(_NUMBERED_EDGES, output=write, format="csv")
    size = sink.tell()
    sink.seek(0)
    edges = (
        pl.read_csv(
            sink,  # read in place: at 1M edges a copy of the text is tens of MB
            has_header=False,
            new_columns=["source", "target"],
            schema_overrides={"source": pl.UInt32, "target": pl.UInt32},
        )
        if size
        else pl.DataFrame(schema={"source": pl.UInt32, "target": pl.UInt32})
    )
    roots = component_roots(edges["source"], edges["target"], count)
    await _fresh(conn, _ROOTS, _CREATE_ROOTS, {})
    if count:
        frame = pl.DataFrame({"n": pl.arange(0, count, dtype=pl.UInt32, eager=True), "root": roots})
        payload = io.BytesIO()
        frame.write_csv(payload, include_header=False)  # bytes at once, no str in between
        payload.seek(0)
        await driver.copy_to_table(_ROOTS, source=payload, format="csv")
    await conn.execute(text(f"ANALYZE {_NODES}, {_ROOTS}"))


async def _top(
    conn: AsyncConnection, params: dict[str, Any], sizes: Counter[str]
) -> list[dict[str, Any]]:
    largest = sizes.most_common(TOP_GROUPS)
    if not largest:
        return []
    rows = await conn.execute(
        text(_SAMPLES),
        {
            **params,
            "roots": [group.removeprefix(GROUP_PREFIX) for group, _ in largest],
            "n": SAMPLE_NAMES,
        },
    )
    samples: dict[str, list[str]] = {}
    for group, name in rows:
        samples.setdefault(group, []).append(name[:NAME_LIMIT])
    return [
        {"group": group, "assets": size, "sample": samples.get(group, [])}
        for group, size in largest
    ]


async def refresh_dependency_groups(
    conn: AsyncConnection, client_account_id: str, engagement_id: str
) -> dict[str, Any]:
    """Recompute every dependency group of the tenant and return a small summary.

    {"groups": n, "assets_in_groups": m, "largest": k, "top": [{"group", "assets", "sample"}]}
    Runs inside the caller's transaction; idempotent (a rerun on an unchanged graph writes
    nothing).
    """
    params = {"c": str(client_account_id), "e": str(engagement_id)}
    await conn.execute(text(_LOCK), params)
    await _group(conn, _TENANT_EDGE_ENDS, params)
    await conn.execute(text(_APPLY_ALL), params)
    await conn.execute(text(_CLEAR), params)
    await conn.execute(text("RESET enable_nestloop"))
    return await _summary(conn, params)


async def _summary(conn: AsyncConnection, params: dict[str, Any]) -> dict[str, Any]:
    sizes: Counter[str] = Counter(
        {group: int(count) for group, count in await conn.execute(text(_GROUP_SIZES), params)}
    )
    return {
        "groups": len(sizes),
        "assets_in_groups": sum(sizes.values()),
        "largest": max(sizes.values(), default=0),
        "top": await _top(conn, {"c": params["c"], "e": params["e"]}, sizes),
    }


async def update_dependency_groups(conn: AsyncConnection, scope: ImportScope) -> dict[str, Any]:
    """Add one import's dependencies to the tenant's groups: only the components its edges
    touch change (merged, or joined by new assets); the rest of the graph is not read.

    Groups are connected components, each labelled by its smallest asset id: an edge can only
    merge components, so the union of its ends' components is labelled by the smallest of
    their smallest ids. Same summary as `refresh_dependency_groups`; idempotent (a rerun
    changes nothing). Exact as long as dependencies are only ever added, which is all imports
    do; a full refresh repairs anything else.
    """
    params: dict[str, Any] = {
        "c": scope.client_account_id,
        "e": scope.engagement_id,
        "id": scope.data_import_id,
    }
    await conn.execute(text(_LOCK), params)
    await _group(conn, _IMPORT_EDGE_ENDS, params)
    await conn.execute(text(_RELABEL_GROUPS), params)
    await conn.execute(text(_LABEL_ASSETS), params)
    await conn.execute(text("RESET enable_nestloop"))
    return await _summary(conn, params)


async def list_dependency_groups(
    conn: AsyncConnection,
    client_account_id: str,
    engagement_id: str,
    limit: int = 50,
    *,
    min_assets: int = 1,
    after: tuple[int, str] | None = None,
) -> list[dict[str, Any]]:
    """The tenant's groups as last refreshed, largest first, with up to 10 member names each;
    `after` continues from the (assets, group) of a previous page's last row."""
    params: dict[str, Any] = {
        "c": str(client_account_id),
        "e": str(engagement_id),
        "limit": limit,
        "min_assets": min_assets,
    }
    if after is not None:
        params |= {"after_assets": after[0], "after_grp": after[1]}
    query = _LIST.format(after=_AFTER if after is not None else "")
    rows = await conn.execute(text(query), params)
    return [
        {"group": grp, "assets": assets, "dependencies": dependencies, "sample": list(sample)}
        for grp, assets, dependencies, sample in rows
    ]
