"""app_discovery enrichment on typed temp tables: retried prepare / range / finish change
nothing, the figures stay exact, staged JSON is not rewritten, planner settings are restored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import enrichment, planner
from dataimport.contracts import ImportRef, RowRange
from service.imports import ImportService
from tests.factories import (
    CONNECTION_HEADERS,
    TERMINAL_OR_WAITING,
    connection_rows,
    expected_edges,
    wait_for,
    write_csv,
)


async def _figures(engine: AsyncEngine, service: ImportService) -> dict[str, Any]:
    params = service.tenant.params()
    async with engine.connect() as conn:
        edges = {
            tuple(row[:3]): tuple(row[3:])
            for row in await conn.execute(
                text(
                    "SELECT s.name, t.name, d.port, d.conn_count, d.first_seen, d.last_seen, "
                    "d.confidence, d.updated_at FROM asset_dependencies d "
                    "JOIN assets s ON s.id = d.source_asset_id "
                    "JOIN assets t ON t.id = d.target_asset_id "
                    "WHERE d.client_account_id = :c AND d.engagement_id = :e"
                ),
                params,
            )
        }
        assets = (
            await conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT name_key), count(ip_address) FROM assets "
                    "WHERE client_account_id = :c AND engagement_id = :e"
                ),
                params,
            )
        ).one()
        observations = await conn.scalar(
            text(
                "SELECT count(*) FROM dependency_observations "
                "WHERE client_account_id = :c AND engagement_id = :e"
            ),
            params,
        )
    return {"edges": edges, "assets": tuple(assets), "observations": observations}


@pytest.mark.usefixtures("worker")
async def test_retried_prepare_range_finish_change_nothing(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = connection_rows(900, 40)
    path = write_csv(tmp_path / "conn.csv", CONNECTION_HEADERS, rows)
    config = {"chunk_size": 100, "max_parallel_chunks": 5}  # 9 ranges sharing 40 servers
    started = await service.start_import(path, "app_discovery", config)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert (status.status, status.processed_rows, status.assets_created) == ("completed", 900, 40)
    found = await _figures(engine, service)
    assert found["assets"] == (40, 40, 40)  # one asset per server, IPs filled
    assert found["observations"] == 900
    counts = {key: edge[0] for key, edge in found["edges"].items()}
    assert counts == expected_edges(rows)

    ref = ImportRef(
        data_import_id=started.data_import_id,
        client_account_id=service.tenant.client_account_id,
        engagement_id=service.tenant.engagement_id,
        category="app_discovery",
    )
    params = {"id": str(ref.data_import_id), **service.tenant.params()}
    async with engine.connect() as conn:
        staged = await conn.scalar(
            text(
                "SELECT count(*) FROM raw_import_records r JOIN staged_row_assets l "
                "USING (data_import_id, row_number) WHERE r.data_import_id = :id "
                "AND l.asset_id IS NOT NULL AND NOT (r.normalized_data -> 'source') ? 'asset_id'"
            ),
            params,
        )
    assert staged == 900  # every row marked with its source asset, its JSON left as staged

    # Every activity retried (its result lost after it ran): no figure moves.
    await enrichment.prepare(engine, ref)
    for first in (1, 401, 801):
        counts_again = await enrichment.enrich_chunk(
            engine, ref, RowRange(first_row=first, last_row=first + 99)
        )
        assert counts_again.assets_touched == 100
        assert counts_again.dependencies_touched == 0  # its observations exist
    async with engine.begin() as conn:
        category = enrichment.get_category("app_discovery")
        assert isinstance(category, enrichment.FinishingCategory)
        await category.finish(conn, enrichment.import_scope(ref))
    await enrichment.enrichment_totals(engine, ref)
    again = await _figures(engine, service)
    assert {k: v[:4] for k, v in again["edges"].items()} == {
        k: v[:4] for k, v in found["edges"].items()
    }
    assert again["assets"] == found["assets"]
    assert again["observations"] == found["observations"]


async def test_planner_settings_are_restored(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        before = await conn.scalar(text("SELECT current_setting('enable_nestloop')"))
        async with planner.planner(conn, enable_nestloop="off"):
            inside = await conn.scalar(text("SELECT current_setting('enable_nestloop')"))
        after = await conn.scalar(text("SELECT current_setting('enable_nestloop')"))
    assert (before, inside, after) == ("on", "off", "on")
