"""cmdb_export enrichment over typed range staging: exact counts across parallel ranges,
every reference form (name, external id, host name / FQDN), unresolved references, retried
ranges that change nothing, and precedence (external id first; blanks never erase)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import enrichment, inventory
from dataimport.contracts import ImportRef, RowRange
from dataimport.db import for_tenant
from service.imports import ImportService
from tests.factories import (
    ASSET_GROUP,
    CMDB_HEADERS,
    TERMINAL_OR_WAITING,
    cmdb_row,
    wait_for,
    write_csv,
)

COUNT = 300
CONFIG = {"chunk_size": 100, "max_parallel_chunks": 3}


def _deps(n: int) -> str:
    """Server n refers to others by name, external id and FQDN; some refs resolve to nothing."""
    refs = []
    if n > 1:
        refs.append(f"SRV-{n - 1:06d}")  # by name
    if n > 2 and n % 2 == 0:
        refs.append(f"A-{n - 2:06d}")  # by external id
    if n % 5 == 0 and n < COUNT:
        refs.append(f" srv-{n + 1:06d}.corp.example ")  # by host name, across ranges
    if n % 7 == 0:
        refs.append(f"GHOST-{n}")  # unresolved
    if n % 11 == 0:
        refs.append(f"SRV-{n:06d}")  # itself: resolved, never an edge
    return ", ".join(refs)


def _expected_edges() -> set[tuple[str, str]]:
    edges = set()
    for n in range(1, COUNT + 1):
        source = f"SRV-{n:06d}"
        if n > 1:
            edges.add((source, f"SRV-{n - 1:06d}"))
        if n > 2 and n % 2 == 0:
            edges.add((source, f"SRV-{n - 2:06d}"))
        if n % 5 == 0 and n < COUNT:
            edges.add((source, f"SRV-{n + 1:06d}"))
    return edges


async def _inventory(engine: AsyncEngine, service: ImportService) -> dict[str, Any]:
    params = service.tenant.params()
    async with engine.connect() as conn:
        assets = (
            await conn.execute(
                text(
                    "SELECT name, external_id, owner, location, cpu_cores, "
                    f"{ASSET_GROUP}, updated_at FROM assets "
                    "WHERE client_account_id = :c AND engagement_id = :e "
                    "ORDER BY name"
                ),
                params,
            )
        ).all()
        edges = (
            await conn.execute(
                text(
                    "SELECT s.name, t.name, d.updated_at FROM asset_dependencies d "
                    "JOIN assets s ON s.id = d.source_asset_id "
                    "JOIN assets t ON t.id = d.target_asset_id "
                    "WHERE d.client_account_id = :c AND d.engagement_id = :e ORDER BY 1, 2"
                ),
                params,
            )
        ).all()
    return {"assets": [tuple(a) for a in assets], "edges": [tuple(e) for e in edges]}


def _ref(service: ImportService, data_import_id: Any) -> ImportRef:
    return ImportRef(
        data_import_id=data_import_id,
        client_account_id=service.tenant.client_account_id,
        engagement_id=service.tenant.engagement_id,
        category="cmdb_export",
    )


@pytest.mark.usefixtures("worker")
async def test_ranges_link_every_reference_form_exactly_and_retries_change_nothing(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [cmdb_row(n, deps=_deps(n)) for n in range(1, COUNT + 1)]
    path = write_csv(tmp_path / "cmdb.csv", CMDB_HEADERS, rows)
    started = await service.start_import(path, "cmdb_export", CONFIG)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert status.status in ("completed", "completed_with_errors")
    assert (status.valid_rows, status.processed_rows) == (COUNT, COUNT)
    assert (status.assets_created, status.assets_updated) == (COUNT, 0)
    expected = _expected_edges()
    assert status.dependencies_created == len(expected)
    before = await _inventory(engine, service)
    assert {(s, t) for s, t, _ in before["edges"]} == expected
    assert all(group is not None for *_, group, _ in before["assets"])

    ref = _ref(service, started.data_import_id)
    totals = await enrichment.enrichment_totals(engine, ref)
    unresolved = sum(1 for n in range(1, COUNT + 1) if n % 7 == 0)
    assert totals.dependencies_unresolved == unresolved
    assert (totals.assets_created, totals.dependencies_created) == (COUNT, len(expected))
    # The sum of the link ranges' counts is what counting the whole import finds.
    async with engine.connect() as conn:
        scope = enrichment.import_scope(ref)
        counted = await conn.scalar(text(inventory._UNRESOLVED), inventory.scope_params(scope))
    assert counted == unresolved

    # Retried ranges (their results lost): every row, edge and figure stays as it was.
    middle = RowRange(first_row=101, last_row=200)
    assert (await enrichment.enrich_chunk(engine, ref, middle)).assets_touched == 100
    await enrichment.link_chunk(engine, ref, middle)
    again = await enrichment.enrichment_totals(engine, ref)
    assert again == totals
    after = await _inventory(engine, service)
    assert [a[:6] for a in after["assets"]] == [a[:6] for a in before["assets"]]
    assert [e[:2] for e in after["edges"]] == [e[:2] for e in before["edges"]]


@pytest.mark.usefixtures("worker")
async def test_external_id_matches_first_and_blank_cells_never_erase(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    first = write_csv(
        tmp_path / "first.csv",
        CMDB_HEADERS,
        [cmdb_row(n, deps=f"SRV-{n - 1:06d}" if n > 1 else "") for n in range(1, 241)],
    )
    started = await service.start_import(first, "cmdb_export", CONFIG)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert (status.assets_created, status.dependencies_created) == (240, 239)

    # Same external ids, ten renamed (across ranges); owner, location and cpu left blank.
    owner, location, cpu = (CMDB_HEADERS.index(h) for h in ("owner", "location", "cpu_count"))
    rows = []
    for n in range(1, 241):
        row = cmdb_row(n, name=f"RENAMED-{n:03d}" if n % 24 == 0 else None)
        row[owner] = row[location] = row[cpu] = ""
        rows.append(row)
    second = write_csv(tmp_path / "second.csv", CMDB_HEADERS, rows)
    started = await service.start_import(second, "cmdb_export", CONFIG)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert (status.assets_created, status.assets_updated, status.dependencies_created) == (
        0,
        240,
        0,
    )
    found = await _inventory(engine, service)
    names = [a[0] for a in found["assets"]]
    assert len(names) == 240
    assert sum(name.startswith("RENAMED-") for name in names) == 10
    assert {(a[2], a[3], a[4]) for a in found["assets"]} == {("Ops Team", "Frankfurt", 4)}
    assert len(found["edges"]) == 239  # renamed assets keep their dependencies


@pytest.mark.usefixtures("worker")
async def test_a_range_reads_only_its_own_rows_whatever_the_tenant_holds(
    service: ImportService, app_engine: AsyncEngine, tmp_path: Path
) -> None:
    """Plans, not timings: a range's statements reach the tenant's assets and the import's
    row links by index, never by a scan of them all (quadratic over a big import). Planned
    as the worker plans them: as the service role, under row-level security."""
    count = 3000
    path = write_csv(
        tmp_path / "cmdb.csv", CMDB_HEADERS, [cmdb_row(n) for n in range(1, count + 1)]
    )
    started = await service.start_import(path, "cmdb_export", {"chunk_size": 1000})
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert status.assets_created == count

    scope = enrichment.import_scope(
        _ref(service, started.data_import_id), RowRange(first_row=1001, last_row=1100)
    )
    plans: dict[str, str] = {}
    async with for_tenant(app_engine, service.tenant).begin() as conn:

        async def plan(name: str, sql: str) -> None:
            rows = await conn.execute(text("EXPLAIN " + sql), params)
            plans[name] = "\n".join(rows.scalars())

        params = {**inventory.scope_params(scope), "seq": 1}
        await conn.execute(text("SET LOCAL enable_nestloop = off"))  # as the range runs
        await conn.execute(text(inventory._STAGE_RANGE_ROWS), params)
        await plan("by external id", inventory._STAGE_BY_EXTERNAL)
        await conn.execute(text(inventory._STAGE_BY_EXTERNAL), params)
        assert await conn.scalar(text("SELECT count(*) FROM enrich_range_by_external")) == 100
        await plan("rename", inventory.RENAME_BY_EXTERNAL_ID)
        await plan("keep name", inventory.UPDATE_BY_EXTERNAL_ID_KEEPING_NAME)
        await conn.execute(text("RESET enable_nestloop"))
        await plan("refs", inventory._STAGE_RANGE_REFS)
        await conn.rollback()
    for name, text_of_plan in plans.items():
        assert "Seq Scan on assets" not in text_of_plan, (name, text_of_plan)
    assert "Seq Scan on staged_row_assets" not in plans["refs"], plans["refs"]
    # One probe per row, parameterised by the row (whatever the links' statistics say).
    assert "Index Scan using pk_staged_row_assets" in plans["refs"], plans["refs"]
    assert "(row_number = r.row_number)" in plans["refs"], plans["refs"]


@pytest.mark.usefixtures("worker")
async def test_a_fresh_tenant_skips_external_id_matching_until_an_id_turns_up(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A tenant without external ids when the import is prepared: its ranges upsert by name
    key alone. An asset carrying one of the file's external ids under another name (written
    meanwhile, e.g. by another import) sends the range back to matching by external id: the
    asset is renamed, never duplicated, never a unique-index failure."""
    count = 50
    path = write_csv(
        tmp_path / "cmdb.csv", CMDB_HEADERS, [cmdb_row(n) for n in range(1, count + 1)]
    )
    started = await service.start_import(path, "cmdb_export", CONFIG)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert status.assets_created == count
    ref = _ref(service, started.data_import_id)
    marker = text(
        "SELECT findings ->> 'external_ids_known' FROM import_processing_steps "
        "WHERE data_import_id = :id AND step_key = :key"
    )
    async with engine.connect() as conn:
        known = await conn.scalar(
            marker, {"id": started.data_import_id, "key": enrichment.PREPARE_STEP}
        )
        assert known == "false"
        # Another import's doing: the asset of row 10 now goes by another name.
        await conn.execute(
            text(
                "UPDATE assets SET name = 'OLD-10', name_key = 'old-10' "
                "WHERE client_account_id = :c AND engagement_id = :e AND external_id = 'A-000010'"
            ),
            service.tenant.params(),
        )
        await conn.commit()

    rows = RowRange(first_row=1, last_row=count)
    assert (await enrichment.enrich_chunk(engine, ref, rows)).assets_touched == count
    found = await _inventory(engine, service)
    names = sorted(a[0] for a in found["assets"])
    assert names == [f"SRV-{n:06d}" for n in range(1, count + 1)]  # renamed back, one each

    # The next import of the tenant matches by external id from the start.
    again = await service.start_import(path, "cmdb_export", CONFIG)
    status = await wait_for(service, again.data_import_id, TERMINAL_OR_WAITING)
    assert (status.assets_created, status.assets_updated) == (0, count)
    async with engine.connect() as conn:
        known = await conn.scalar(
            marker, {"id": again.data_import_id, "key": enrichment.PREPARE_STEP}
        )
    assert known == "true"
