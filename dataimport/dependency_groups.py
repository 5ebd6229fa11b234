"""Dependency groups: connected components of a tenant's dependency graph (move-group candidates).

Every asset that takes part in any `asset_dependencies` edge (of any category, either
direction) has a row in `dependency_group_members` with group "G-" + the smallest asset id in
its component: the id stays the same as long as that asset stays in the group, so reruns
change nothing unless the graph did. Assets without edges have no row.

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
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.categories.base import ImportScope
from dataimport.db import driver_connection
from dataimport.graph_components import components

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
_RECOMPUTED = "recomputed_group_members"
_CREATE_RECOMPUTED = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_RECOMPUTED}
  (asset_id uuid PRIMARY KEY, group_id text NOT NULL) ON COMMIT DROP
"""

# Only rows whose group changed are written; the tenant lock serialises every writer.
_APPLY = f"""
INSERT INTO {MEMBERS} (asset_id, group_id, client_account_id, engagement_id)
SELECT g.asset_id, g.group_id, CAST(:c AS uuid), CAST(:e AS uuid) FROM {_RECOMPUTED} g
ORDER BY g.asset_id
ON CONFLICT (asset_id) DO UPDATE SET group_id = EXCLUDED.group_id
WHERE {MEMBERS}.group_id IS DISTINCT FROM EXCLUDED.group_id
"""

_CLEAR = f"""
DELETE FROM {MEMBERS} m
WHERE {_tenant("m")}
  AND NOT EXISTS (SELECT 1 FROM {_RECOMPUTED} g WHERE g.asset_id = m.asset_id)
"""

_SAMPLES = f"""
SELECT group_id, name FROM (
  SELECT m.group_id, a.name,
    row_number() OVER (PARTITION BY m.group_id ORDER BY a.name) AS nth
  FROM {MEMBERS} m JOIN assets a ON a.id = m.asset_id
  WHERE {_tenant("m")} AND m.group_id = ANY(CAST(:groups AS text[]))
) s WHERE nth <= :n ORDER BY group_id, name
"""

_LIST = f"""
WITH g AS (
  SELECT m.group_id AS grp, count(*) AS assets,
    (array_agg(a.name ORDER BY a.name))[1:10] AS sample
  FROM {MEMBERS} m JOIN assets a ON a.id = m.asset_id
  WHERE {_tenant("m")}
  GROUP BY m.group_id
),
d AS (
  SELECT m.group_id AS grp, count(*) AS dependencies
  FROM asset_dependencies x JOIN {MEMBERS} m ON m.asset_id = x.source_asset_id
  WHERE {_tenant("x")}
  GROUP BY m.group_id
)
SELECT g.grp, g.assets, coalesce(d.dependencies, 0) AS dependencies, g.sample
FROM g LEFT JOIN d ON d.grp = g.grp
WHERE g.assets >= :min_assets {{after}}
ORDER BY g.assets DESC, g.grp
LIMIT :limit
"""
# Keyset continuation after the (assets, group) of the last row of a page.
_AFTER = "AND (g.assets < :after_assets OR (g.assets = :after_assets AND g.grp > :after_grp))"


# The edges an import created or last touched, with their ends' current groups.
_IMPORT_EDGES = f"""
SELECT d.source_asset_id AS source, s.group_id AS source_group,
  d.target_asset_id AS target, t.group_id AS target_group
FROM asset_dependencies d
LEFT JOIN {MEMBERS} s ON s.asset_id = d.source_asset_id
LEFT JOIN {MEMBERS} t ON t.asset_id = d.target_asset_id
WHERE {_tenant("d")} AND (d.created_by_import_id = CAST(:id AS uuid)
  OR d.source_import_id = CAST(:id AS uuid))
"""

# Groups merged into another one: every member takes the new label.
_RELABEL_GROUPS = f"""
UPDATE {MEMBERS} m SET group_id = v.new
FROM merged_group_labels v
WHERE {_tenant("m")} AND m.group_id = v.old
"""

# Assets that were in no group join theirs. A plain INSERT: they had no row when the edges
# were read, and every writer of the table holds the tenant's lock.
_LABEL_ASSETS = f"""
INSERT INTO {MEMBERS} (asset_id, group_id, client_account_id, engagement_id)
SELECT v.asset_id, v.group_id, CAST(:c AS uuid), CAST(:e AS uuid)
FROM new_group_labels v
"""

_GROUP_SIZES = f"""
SELECT group_id, count(*) FROM {MEMBERS}
WHERE {_TENANT} GROUP BY group_id
ORDER BY count(*) DESC, group_id
"""


# Edges travel as CSV through COPY straight into polars: no Python object per edge.
_TENANT_EDGES = f"""
SELECT source_asset_id AS source, target_asset_id AS target
FROM asset_dependencies WHERE {_TENANT}
"""

_LABELS = "new_group_labels"
_CREATE_LABELS = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_LABELS} (asset_id uuid, group_id text) ON COMMIT DROP
"""
_RELABELS = "merged_group_labels"
_CREATE_RELABELS = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_RELABELS} (old text, new text) ON COMMIT DROP
"""


async def _frame(conn: AsyncConnection, query: str, params: dict[str, Any]) -> pl.DataFrame:
    """A query's rows as a frame of text columns, read with one COPY."""
    bound = (
        text(query)
        .bindparams(**params)
        .compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )
    sink = io.BytesIO()

    async def write(data: bytes) -> None:
        sink.write(data)

    driver = await driver_connection(conn)
    await driver.copy_from_query(str(bound), output=write, format="csv", header=True)
    return pl.read_csv(sink.getvalue(), infer_schema=False)


async def _copy_in(conn: AsyncConnection, table: str, frame: pl.DataFrame) -> None:
    await conn.execute(text(f"TRUNCATE {table}"))
    if frame.height:
        driver = await driver_connection(conn)
        payload = io.BytesIO(frame.write_csv(include_header=False).encode())
        await driver.copy_to_table(table, source=payload, format="csv")


async def _write_groups(conn: AsyncConnection, members: pl.DataFrame) -> None:
    await conn.execute(text(_CREATE_RECOMPUTED))
    frame = members.select("node", group=pl.lit(GROUP_PREFIX) + pl.col("root"))
    await _copy_in(conn, _RECOMPUTED, frame)
    await conn.execute(text(f"ANALYZE {_RECOMPUTED}"))


async def _top(
    conn: AsyncConnection, params: dict[str, Any], sizes: Counter[str]
) -> list[dict[str, Any]]:
    largest = sizes.most_common(TOP_GROUPS)
    if not largest:
        return []
    rows = await conn.execute(
        text(_SAMPLES), {**params, "groups": [group for group, _ in largest], "n": SAMPLE_NAMES}
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
    members = components(await _frame(conn, _TENANT_EDGES, params))
    await _write_groups(conn, members)
    await conn.execute(text(_APPLY), params)
    await conn.execute(text(_CLEAR), params)
    return await _summary(conn, params)


def merge(edges: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(groups merged: `old` -> `new` label, assets newly grouped: `asset_id` -> `group_id`)
    after adding `edges` (source, source_group, target, target_group; groups NULL when none).

    Groups are connected components, each labelled by its smallest asset id: an edge can only
    merge components, so the union of the ends' components is labelled by the smallest of
    their smallest ids. A grouped end stands for its whole group, an ungrouped one for itself.
    """
    nodes = edges.lazy().select(
        source=pl.coalesce(pl.col("source_group").str.strip_prefix(GROUP_PREFIX), "source"),
        target=pl.coalesce(pl.col("target_group").str.strip_prefix(GROUP_PREFIX), "target"),
    )
    roots = components(nodes.collect()).lazy()
    ends = pl.concat(
        [
            edges.lazy().select(asset="source", group="source_group"),
            edges.lazy().select(asset="target", group="target_group"),
        ]
    )
    relabel = (
        ends.filter(pl.col("group").is_not_null())
        .select(old="group", node=pl.col("group").str.strip_prefix(GROUP_PREFIX))
        .unique()
        .join(roots, on="node")
        .select("old", new=pl.lit(GROUP_PREFIX) + pl.col("root"))
        .filter(pl.col("old") != pl.col("new"))
    )
    labels = (
        ends.filter(pl.col("group").is_null())
        .select(node="asset")
        .unique()
        .join(roots, on="node")
        .select(asset_id="node", group_id=pl.lit(GROUP_PREFIX) + pl.col("root"))
    )
    relabelled, labelled = pl.collect_all([relabel, labels])
    return relabelled, labelled


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

    Same summary as `refresh_dependency_groups`; idempotent (a rerun changes nothing). Exact
    as long as dependencies are only ever added, which is all imports do; a full refresh
    repairs anything else.
    """
    params: dict[str, Any] = {
        "c": scope.client_account_id,
        "e": scope.engagement_id,
        "id": scope.data_import_id,
    }
    await conn.execute(text(_LOCK), params)
    await conn.execute(text("SET LOCAL work_mem = '128MB'"))  # the import's edges, hashed
    relabel, labels = merge(await _frame(conn, _IMPORT_EDGES, params))
    if relabel.height:
        await conn.execute(text(_CREATE_RELABELS))
        await _copy_in(conn, _RELABELS, relabel)
        await conn.execute(text(_RELABEL_GROUPS), params)
    if labels.height:
        await conn.execute(text(_CREATE_LABELS))
        await _copy_in(conn, _LABELS, labels)
        await conn.execute(text(_LABEL_ASSETS), params)
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
