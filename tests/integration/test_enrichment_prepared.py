"""Enrichment prepared once per import: shared endpoints, exact counts with parallel ranges,
idempotent re-runs, incremental dependency groups, statistics only where tables grew."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import enrichment, table_statistics
from dataimport.categories.base import ImportScope
from dataimport.contracts import ImportRef, RowRange
from dataimport.dependency_groups import refresh_dependency_groups, update_dependency_groups
from service.imports import ImportService
from tests.factories import (
    ASSET_GROUP,
    CONNECTION_HEADERS,
    TERMINAL_OR_WAITING,
    connection_rows,
    expected_edges,
    wait_for,
    write_csv,
)


async def tenant_counts(engine: AsyncEngine, service: ImportService) -> dict[str, Any]:
    params = service.tenant.params()
    async with engine.connect() as conn:
        assets = await conn.scalar(
            text("SELECT count(*) FROM assets WHERE client_account_id = :c AND engagement_id = :e"),
            params,
        )
        names = await conn.scalar(
            text(
                "SELECT count(DISTINCT name_key) FROM assets "
                "WHERE client_account_id = :c AND engagement_id = :e"
            ),
            params,
        )
        rows = await conn.execute(
            text(
                "SELECT s.name, t.name, d.port, d.conn_count FROM asset_dependencies d "
                "JOIN assets s ON s.id = d.source_asset_id "
                "JOIN assets t ON t.id = d.target_asset_id "
                "WHERE d.client_account_id = :c AND d.engagement_id = :e"
            ),
            params,
        )
        edges = {(s, t, port): count for s, t, port, count in rows}
        observations = await conn.scalar(
            text(
                "SELECT count(*) FROM dependency_observations "
                "WHERE client_account_id = :c AND engagement_id = :e"
            ),
            params,
        )
    return {"assets": assets, "names": names, "edges": edges, "observations": observations}


@pytest.mark.usefixtures("worker")
async def test_parallel_ranges_over_shared_servers_are_exact_and_rerun_changes_nothing(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = connection_rows(1200, 30)
    path = write_csv(tmp_path / "conn.csv", CONNECTION_HEADERS, rows)
    config = {"chunk_size": 100, "max_parallel_chunks": 6}  # 12 ranges, all sharing servers
    started = await service.start_import(path, "app_discovery", config)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert (status.status, status.valid_rows, status.processed_rows) == ("completed", 1200, 1200)
    assert status.assets_created == 30
    expected = expected_edges(rows)
    found = await tenant_counts(engine, service)
    assert (found["assets"], found["names"]) == (30, 30)  # no endpoint twice
    assert found["edges"] == expected
    assert status.dependencies_created == len(expected)
    assert found["observations"] == 1200

    # A retried range (the activity ran, its result was lost) changes nothing.
    ref = ImportRef(
        data_import_id=started.data_import_id,
        client_account_id=service.tenant.client_account_id,
        engagement_id=service.tenant.engagement_id,
        category="app_discovery",
    )
    await enrichment.enrich_chunk(engine, ref, RowRange(first_row=301, last_row=400))
    await enrichment.enrichment_totals(engine, ref)
    assert await tenant_counts(engine, service) == found

    # The same file again: nothing created, no figure changes.
    again = await service.start_import(path, "app_discovery", config)
    second = await wait_for(service, again.data_import_id, TERMINAL_OR_WAITING)
    assert (second.status, second.assets_created, second.dependencies_created) == (
        "completed",
        0,
        0,
    )
    assert await tenant_counts(engine, service) == found


@pytest.mark.usefixtures("worker")
async def test_stores_of_one_host_across_ranges_make_one_asset(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    headers = ["Host Name", "Data Store", "Database", "Classification"]
    rows = [
        [f"dbhost-{n % 3}", "PostgreSQL", f"db_{n:04d}", ["Internal", "Confidential"][n % 2]]
        for n in range(1, 401)
    ]
    path = write_csv(tmp_path / "stores.csv", headers, rows)
    started = await service.start_import(
        path, "sensitive_data", {"chunk_size": 100, "max_parallel_chunks": 4}
    )
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert (status.status, status.valid_rows, status.assets_created) == ("completed", 400, 3)
    async with engine.connect() as conn:
        stores: dict[str, int] = dict(
            (
                await conn.execute(
                    text(
                        "SELECT name, jsonb_array_length(data_stores) FROM assets "
                        "WHERE client_account_id = :c AND engagement_id = :e"
                    ),
                    service.tenant.params(),
                )
            ).all()
        )
    assert stores == {"dbhost-0": 133, "dbhost-1": 134, "dbhost-2": 133}


async def test_an_import_merges_groups_under_the_smallest_id(engine: AsyncEngine) -> None:
    """Two groups an import's edge joins merge under the smaller label; new assets form a new
    group or join the merged one; untouched groups keep theirs; a rerun changes nothing."""
    c, e, batch = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    names = ["g3a", "g3b", "g7a", "g7b", "new1", "new4", "new8", "other1", "other2"]
    params = {"c": c, "e": e}
    async with engine.begin() as conn:
        ids = {
            name: str(
                await conn.scalar(
                    text(
                        "INSERT INTO assets (client_account_id, engagement_id, name, name_key) "
                        "VALUES (:c, :e, :n, :n) RETURNING id"
                    ),
                    {**params, "n": name},
                )
            )
            for name in names
        }

        async def edge(source: str, target: str, by: str | None) -> None:
            await conn.execute(
                text(
                    "INSERT INTO asset_dependencies (client_account_id, engagement_id, "
                    "source_asset_id, target_asset_id, created_by_import_id) "
                    "VALUES (:c, :e, :s, :t, :by)"
                ),
                {**params, "s": ids[source], "t": ids[target], "by": by},
            )

        earlier = {"g3": ("g3a", "g3b"), "g7": ("g7a", "g7b"), "other": ("other1", "other2")}
        root = {g: min(ids[m] for m in members) for g, members in earlier.items()}
        for group, (first, second) in earlier.items():
            await edge(first, second, None)
            for member in (first, second):
                await conn.execute(
                    text(
                        "INSERT INTO dependency_group_members "
                        "(asset_id, group_root, client_account_id, engagement_id) "
                        "VALUES (:a, :g, :c, :e)"
                    ),
                    {**params, "a": ids[member], "g": root[group]},
                )
        await edge("g3a", "g7b", batch)  # two groups merge
        await edge("new1", "new4", batch)  # a new component of two new assets
        await edge("new8", "g7a", batch)  # a new asset joins a merged group
        scope = ImportScope(batch, c, e, 1, 1)
        first_summary = await update_dependency_groups(conn, scope)
        assert await update_dependency_groups(conn, scope) == first_summary
        groups: dict[str, str] = dict(
            (
                await conn.execute(
                    text(
                        "SELECT a.name, 'G-' || m.group_root FROM dependency_group_members m "
                        "JOIN assets a ON a.id = m.asset_id WHERE m.client_account_id = :c"
                    ),
                    params,
                )
            ).all()
        )
    merged = f"G-{min(root['g3'], root['g7'], ids['new8'])}"
    assert {n: groups[n] for n in ("g3a", "g3b", "g7a", "g7b", "new8")} == dict.fromkeys(
        ("g3a", "g3b", "g7a", "g7b", "new8"), merged
    )
    assert groups["new1"] == groups["new4"] == f"G-{min(ids['new1'], ids['new4'])}"
    assert groups["other1"] == groups["other2"] == f"G-{root['other']}"
    assert (first_summary["groups"], first_summary["largest"]) == (3, 5)


@pytest.mark.usefixtures("worker")
async def test_incremental_groups_match_a_full_refresh(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    headers = ["Source", "Destination", "Port"]
    first = write_csv(tmp_path / "a.csv", headers, [["a1", "a2", "80"], ["b1", "b2", "80"]])
    second = write_csv(tmp_path / "b.csv", headers, [["a2", "b1", "80"], ["c1", "c2", "80"]])
    for path in (first, second):
        started = await service.start_import(path, "app_discovery")
        status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
        assert status.status == "completed"
    assert status.dependency_groups == 2
    query = text(
        f"SELECT name, {ASSET_GROUP} FROM assets "
        "WHERE client_account_id = :c AND engagement_id = :e ORDER BY name"
    )
    async with engine.connect() as conn:
        incremental = (await conn.execute(query, service.tenant.params())).all()
    tenant = service.tenant
    async with engine.begin() as conn:
        summary = await refresh_dependency_groups(
            conn, str(tenant.client_account_id), str(tenant.engagement_id)
        )
        full = (await conn.execute(query, service.tenant.params())).all()
    assert incremental == full
    assert (summary["groups"], summary["largest"]) == (2, 4)


@pytest.mark.parametrize(
    ("relpages", "reltuples", "pages", "wanted"),
    [
        (0, -1.0, 3, False),  # tiny: never worth it
        (0, -1.0, 40, True),  # never analysed
        (100, 5000.0, 150, False),  # grew by half
        (100, 5000.0, 200, True),  # doubled
        (10_000, 1e6, 10_050, False),  # a small import into a big table
    ],
)
def test_analyze_only_where_a_table_grew_a_lot(
    relpages: int, reltuples: float, pages: int, wanted: bool
) -> None:
    assert table_statistics.needs_analyze(relpages, reltuples, pages) is wanted


async def test_analyze_if_grown_analyses_a_grown_table_once(engine: AsyncEngine) -> None:
    table = f"grow_{uuid.uuid4().hex[:8]}"  # a table of its own: others' rows change nothing
    async with engine.connect() as conn:
        await conn.execute(text(f"CREATE TEMPORARY TABLE {table} (n integer, pad text)"))
        await conn.execute(
            text(f"INSERT INTO {table} SELECT n, repeat('x', 40) FROM generate_series(1, 200) n")
        )
        assert await table_statistics.analyze_if_grown(conn, [table]) == []  # too small to bother
        await conn.execute(
            text(f"INSERT INTO {table} SELECT n, repeat('x', 40) FROM generate_series(1, 20000) n")
        )
        assert await table_statistics.analyze_if_grown(conn, [table]) == [table]  # never analysed
        await conn.commit()
        assert await table_statistics.analyze_if_grown(conn, [table]) == []  # analysed, not grown
        await conn.execute(
            text(f"INSERT INTO {table} SELECT n, repeat('x', 40) FROM generate_series(1, 1000) n")
        )
        assert await table_statistics.analyze_if_grown(conn, [table]) == []  # grew 5 %
        await conn.execute(
            text(f"INSERT INTO {table} SELECT n, repeat('x', 40) FROM generate_series(1, 8000) n")
        )
        assert await table_statistics.analyze_if_grown(conn, [table]) == []  # grew 45 %
        await conn.execute(
            text(f"INSERT INTO {table} SELECT n, repeat('x', 40) FROM generate_series(1, 12000) n")
        )
        assert await table_statistics.analyze_if_grown(conn, [table]) == [table]  # doubled
        await conn.execute(text(f"DROP TABLE {table}"))
        await conn.commit()
