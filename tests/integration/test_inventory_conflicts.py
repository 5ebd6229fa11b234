"""Conflicts in the data are findings, not crashes: one external id under two names, a rename
onto a name another asset has, two imports of one tenant writing the same assets at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.contracts import ImportStatus
from dataimport.validation import MARK_DUPLICATES
from service.imports import ImportService
from tests.factories import CMDB_HEADERS, TERMINAL_OR_WAITING, cmdb_row, wait_for, write_csv

pytestmark = pytest.mark.usefixtures("worker")

EXTERNAL_ID = CMDB_HEADERS.index("asset_id")


def row(n: int, name: str, external_id: str) -> list[str]:
    cells = cmdb_row(n, name=name)
    cells[EXTERNAL_ID] = external_id
    return cells


async def run(service: ImportService, path: Path) -> ImportStatus:
    started = await service.start_import(path, "cmdb_export")
    return await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)


async def inventory(engine: AsyncEngine, service: ImportService) -> dict[str, str | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT name, external_id FROM assets "
                "WHERE client_account_id = :c AND engagement_id = :e"
            ),
            service.tenant.params(),
        )
        return dict(rows.all())


async def row_findings(engine: AsyncEngine, import_id: str) -> dict[int, list[Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT row_number, validation_errors FROM raw_import_records "
                "WHERE data_import_id = :id ORDER BY row_number"
            ),
            {"id": import_id},
        )
        return {n: [e["code"] for e in errors or []] for n, errors in rows.all()}


async def test_one_external_id_under_two_names_keeps_the_last_row(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "cmdb.csv",
        CMDB_HEADERS,
        [row(1, "ALPHA", "SYS-1"), row(2, "BETA", "SYS-1"), row(3, "GAMMA", "SYS-3")],
    )
    status = await run(service, path)
    assert status.status == "completed", status.error_message
    assert (status.valid_rows, status.assets_created) == (3, 2)
    assert await inventory(engine, service) == {"BETA": "SYS-1", "GAMMA": "SYS-3"}
    findings = await row_findings(engine, str(status.data_import_id))
    assert "duplicate-external-id" in findings[1]
    assert findings[2] == findings[3] == []


async def test_a_row_superseded_by_its_key_takes_no_part_in_external_id_matching(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    # Row 1 loses to row 2 by key, so its external id does not count against row 4's; row 2
    # wins by key and then loses to row 3 by external id. One warning per superseded row.
    path = write_csv(
        tmp_path / "cmdb.csv",
        CMDB_HEADERS,
        [
            row(1, "ALPHA", "SYS-3"),
            row(2, "alpha", "SYS-2"),
            row(3, "BETA", "SYS-2"),
            row(4, "GAMMA", "SYS-3"),
        ],
    )
    status = await run(service, path)
    assert status.status == "completed", status.error_message
    assert (status.valid_rows, status.warning_rows, status.assets_created) == (4, 2, 2)
    assert await inventory(engine, service) == {"BETA": "SYS-2", "GAMMA": "SYS-3"}
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT row_number, superseded, validation_errors FROM raw_import_records "
                "WHERE data_import_id = :id ORDER BY row_number"
            ),
            {"id": str(status.data_import_id)},
        )
        found = {
            n: (superseded, [(e["code"], e["field"], e["message"]) for e in errors or []])
            for n, superseded, errors in rows.all()
        }
    assert found == {
        1: (True, [("duplicate-key", None, "same key as row 2, which wins")]),
        2: (
            True,
            [("duplicate-external-id", "external_id", "same external id as row 3, which wins")],
        ),
        3: (False, []),
        4: (False, []),
    }


async def test_duplicate_marking_has_no_nested_loop_whatever_the_statistics(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    # Just after a first ingest the statistics may describe the import as empty: then the
    # planner nests loops, the outer one re-running the marks over every keyed row once per
    # staged row (a 1M-row import hung there). finalize_validation turns nested loops off.
    path = write_csv(tmp_path / "cmdb.csv", CMDB_HEADERS, [row(1, "ALPHA", "SYS-1")])
    status = await run(service, path)
    params = {
        "id": str(status.data_import_id),
        "key_code": "duplicate-key",
        "external_code": "duplicate-external-id",
    }

    async def nested_loops(nestloop: str) -> int:
        async with engine.connect() as conn, conn.begin() as transaction:
            # As the owner (a superuser), inside a transaction rolled back: no statistics.
            await conn.execute(
                text("DELETE FROM pg_statistic WHERE starelid = 'raw_import_records'::regclass")
            )
            await conn.execute(
                text("UPDATE pg_class SET reltuples = 0 WHERE oid = 'raw_import_records'::regclass")
            )
            await conn.execute(text(f"SET LOCAL enable_nestloop = {nestloop}"))
            plan = await conn.execute(text(f"EXPLAIN {MARK_DUPLICATES[True]}"), params)
            lines = [line for (line,) in plan]
            await transaction.rollback()
        return sum("Nested Loop" in line for line in lines)

    assert await nested_loops("on") > 0  # the hazard is real ...
    assert await nested_loops("off") == 0  # ... and the setting removes it


async def test_a_rename_onto_a_taken_name_updates_the_asset_under_its_own_name(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    first = write_csv(
        tmp_path / "a.csv", CMDB_HEADERS, [row(1, "ALPHA", "SYS-1"), row(2, "BETA", "SYS-2")]
    )
    assert (await run(service, first)).status == "completed"
    renamed = row(1, "BETA", "SYS-1")
    renamed[CMDB_HEADERS.index("owner")] = "New Owner"
    second = write_csv(tmp_path / "b.csv", CMDB_HEADERS, [renamed, row(3, "DELTA", "SYS-1x")])
    status = await run(service, second)
    assert status.status == "completed", status.error_message
    assert (status.assets_created, status.assets_updated) == (1, 1)
    assert await inventory(engine, service) == {
        "ALPHA": "SYS-1",
        "BETA": "SYS-2",
        "DELTA": "SYS-1x",
    }
    async with engine.connect() as conn:
        owner = await conn.scalar(
            text("SELECT owner FROM assets WHERE external_id = 'SYS-1' AND engagement_id = :e"),
            service.tenant.params(),
        )
    assert owner == "New Owner"
    findings = await row_findings(engine, str(status.data_import_id))
    assert findings[1] == ["asset-name-taken"] and findings[2] == []


async def test_a_free_rename_renames(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    first = write_csv(tmp_path / "a.csv", CMDB_HEADERS, [row(1, "ALPHA", "SYS-1")])
    assert (await run(service, first)).status == "completed"
    second = write_csv(tmp_path / "b.csv", CMDB_HEADERS, [row(1, "OMEGA", "SYS-1")])
    status = await run(service, second)
    assert (status.status, status.assets_created, status.assets_updated) == ("completed", 0, 1)
    assert await inventory(engine, service) == {"OMEGA": "SYS-1"}


async def test_two_imports_of_one_tenant_writing_the_same_assets_both_complete(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [cmdb_row(n, deps=f"SRV-{n - 1:06d}" if n > 1 else "") for n in range(1, 301)]
    paths = [
        write_csv(tmp_path / f"{i}.csv", CMDB_HEADERS, rows[::step]) for i, step in ((1, 1), (2, 2))
    ]
    config = {"chunk_size": 100}
    started = await asyncio.gather(
        *(service.start_import(path, "cmdb_export", config) for path in paths)
    )
    statuses = await asyncio.gather(
        *(wait_for(service, s.data_import_id, TERMINAL_OR_WAITING) for s in started)
    )
    assert [s.status for s in statuses] == ["completed", "completed"], [
        s.error_message for s in statuses
    ]
    assets = await inventory(engine, service)
    assert len(assets) == 300 and assets["SRV-000001"] == "A-000001"
    created = sum(s.assets_created for s in statuses)
    assert created == 300  # every asset created once, by whichever import came first
