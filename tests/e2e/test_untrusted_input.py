"""Workers trust no workflow input, and no file can take a worker down (issue 9, DESIGN §11).

Workflows here are started the way an attacker would: by hand, with the stock `temporal` CLI,
a made-up tenant and a hostile file URI or another tenant's import id. Each ends with a
classified error, stages nothing, and the worker goes on to complete a good import after it.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError

from dataimport.api.app import create_app
from dataimport.contracts import (
    MAX_ATTENTION_TIMEOUT_SECONDS,
    MAX_FIELD_SIZE,
    MAX_MAPPED_COLUMNS,
    MAX_UNMAPPED_IN_PAYLOAD,
    ProcessingConfig,
    workflow_id_for,
)
from dataimport.flows import IMPORT_ID_TAKEN
from dataimport.imports import Tenant
from dataimport.issues import ImportFailure
from dataimport.readers import open_table
from dataimport.readers.csv_reader import CsvRowReader
from dataimport.readers.fast_csv import FastCsvStream
from dataimport.readers.json_reader import TOO_MANY_KEYS
from dataimport.readers.limits import (
    FILE_FIELD_TOO_LARGE,
    MAX_COLUMNS,
    MAX_JSON_KEYS,
    MAX_SHEET_CELLS,
    MAX_ZIP_ENTRIES,
    SHEET_TOO_LARGE,
    TOO_MANY_COLUMNS,
    TOO_MANY_ZIP_ENTRIES,
)
from dataimport.settings import Settings
from dataimport.storage import OUTSIDE_STORAGE, local_path
from service.imports import ImportService
from tests.factories import (
    A1_AND_XFD1048576,
    CLI,
    a_good_import_completes,
    cell,
    hand_made_request,
    headers_of,
    sheet_of,
    temporal_cli_start,
    wait_for,
    workbook,
    write_cmdb,
)

# ----- helpers ------------------------------------------------------------------------------


async def staged_rows(engine: AsyncEngine, data_import_id: uuid.UUID | str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM raw_import_records WHERE data_import_id = :id"),
            {"id": data_import_id},
        )
    return int(count or 0)


async def import_row(engine: AsyncEngine, data_import_id: uuid.UUID | str) -> dict[str, Any]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT status, error_code, error_message, client_account_id, file_uri "
                "FROM data_imports WHERE id = :id"
            ),
            {"id": data_import_id},
        )
        row = found.mappings().first()
    return dict(row) if row else {}


async def wait_for_row(
    engine: AsyncEngine, data_import_id: str, status: str, attempts: int = 300
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for _ in range(attempts):
        row = await import_row(engine, data_import_id)
        if row.get("status") == status:
            return row
        await asyncio.sleep(0.2)
    raise AssertionError(f"import {data_import_id} never reached {status}; last: {row}")


def refusal(path: Path, **options: Any) -> ImportFailure:
    """The classified failure of reading the whole file (open and every row)."""
    try:
        with open_table(path, **options) as table:
            for _row in table.rows():
                pass
    except ImportFailure as failure:
        return failure
    raise AssertionError(f"{path.name} was read without a failure")


# ----- item 1: a file URI must resolve inside the storage root ------------------------------


def test_local_path_refuses_anything_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    root.mkdir()
    inside = root / "a.upload"
    inside.write_text("name\nSRV-1\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("TOP-SECRET-CONTENT")
    (root / "link.upload").symlink_to(outside)
    (root / "dirlink").symlink_to(tmp_path)

    assert local_path(inside.as_uri(), root) == inside.resolve()
    hostile = [
        "file:///etc/passwd",
        outside.as_uri(),
        f"file://{root}/../secret.txt",  # dot-dot out of the root
        (root / "link.upload").as_uri(),  # a symlink inside pointing outside
        (root / "dirlink" / "secret.txt").as_uri(),  # through a symlinked folder
        f"file://{tmp_path}/uploads-evil/a.upload",  # a sibling sharing the root's prefix
        f"file://otherhost{inside}",  # a remote host is never local storage
        "file:etc/passwd",  # a relative path
    ]
    for uri in hostile:
        with pytest.raises(ImportFailure) as refused:
            local_path(uri, root)
        assert refused.value.code == OUTSIDE_STORAGE.code, uri
        assert "TOP-SECRET" not in refused.value.message


@pytest.mark.usefixtures("worker")
async def test_a_workflow_started_by_hand_for_etc_passwd_stages_nothing(
    engine: AsyncEngine,
    temporal_address: str,
    client: Client,
    service: ImportService,
    tmp_path: Path,
) -> None:
    request = hand_made_request("file:///etc/passwd")
    workflow_id = workflow_id_for(uuid.UUID(request["data_import_id"]))
    temporal_cli_start(temporal_address, workflow_id, request)

    row = await wait_for_row(engine, request["data_import_id"], "needs_attention")
    assert row["error_code"] == OUTSIDE_STORAGE.code
    assert "storage area" in row["error_message"]
    assert await staged_rows(engine, request["data_import_id"]) == 0

    handle = client.get_workflow_handle(workflow_id)
    await handle.signal("fail", {"reason": "hostile input"})
    await handle.result()
    assert (await import_row(engine, request["data_import_id"]))["status"] == "failed"
    assert await staged_rows(engine, request["data_import_id"]) == 0
    await a_good_import_completes(service, tmp_path)


# ----- item 2: register_import refuses another tenant's import id ---------------------------


@pytest.mark.usefixtures("worker")
async def test_another_tenants_import_id_is_refused_and_nothing_is_staged_under_it(
    engine: AsyncEngine,
    temporal_address: str,
    client: Client,
    service: ImportService,
    settings: Settings,
    tmp_path: Path,
) -> None:
    victim = await service.start_import(write_cmdb(tmp_path / "victim.csv", 3), "cmdb_export")
    await wait_for(service, victim.data_import_id, ["completed"])
    victim_rows = await staged_rows(engine, victim.data_import_id)
    before = await import_row(engine, victim.data_import_id)

    # The attacker's own file even lies in storage: only the tenant check stops it.
    planted = settings.uploads_dir / f"{uuid.uuid4()}.upload"
    write_cmdb(planted, 5)
    request = hand_made_request(
        planted.as_uri(), data_import_id=str(victim.data_import_id), filename="x.csv"
    )
    stranger_workflow = f"stranger-{uuid.uuid4()}"
    temporal_cli_start(temporal_address, stranger_workflow, request)

    handle = client.get_workflow_handle(stranger_workflow)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == (IMPORT_ID_TAKEN.code, True)
    assert str(victim.data_import_id) in cause.message
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED

    assert await staged_rows(engine, victim.data_import_id) == victim_rows
    assert await import_row(engine, victim.data_import_id) == before
    await a_good_import_completes(service, tmp_path)


# ----- item 3: every config value has bounds; field size is per reader ----------------------

OUT_OF_BOUNDS = {
    "attention_timeout_seconds": MAX_ATTENTION_TIMEOUT_SECONDS + 1,
    "max_field_size": MAX_FIELD_SIZE + 1,
    "column_mapping": {f"h{n}": "name" for n in range(MAX_MAPPED_COLUMNS + 1)},
}


def test_the_model_refuses_config_values_beyond_their_bounds() -> None:
    at_bounds = ProcessingConfig(
        attention_timeout_seconds=MAX_ATTENTION_TIMEOUT_SECONDS, max_field_size=MAX_FIELD_SIZE
    )
    assert at_bounds.attention_timeout_seconds == 90 * 24 * 3600
    assert at_bounds.max_field_size == 16 * 1024 * 1024
    for name, value in {**OUT_OF_BOUNDS, "attention_timeout_seconds": 1e15}.items():
        with pytest.raises(ValidationError) as refused:
            ProcessingConfig.model_validate({name: value})
        assert refused.value.errors()[0]["loc"] == (name,)
    with pytest.raises(ValidationError, match="at most 1024 characters"):
        ProcessingConfig(column_mapping={"x" * 2000: "name"})


async def test_the_cli_answers_an_out_of_bounds_config_with_a_usage_error(
    settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    path = write_cmdb(tmp_path / "c.csv", 2)
    env = {
        **os.environ,
        "DATABASE_URL": str(settings.database_url),
        "TEMPORAL_ADDRESS": str(settings.temporal_address),
        "DATAIMPORT_TASK_QUEUE": settings.task_queue,
        "DATAIMPORT_STORAGE_DIR": str(settings.uploads_dir),
        "DATAIMPORT_HOME": str(settings.home_dir),
    }
    for name, value in OUT_OF_BOUNDS.items():
        process = await asyncio.create_subprocess_exec(
            str(CLI),
            "import",
            str(path),
            "--category",
            "cmdb_export",
            "--config",
            json.dumps({name: value}),
            "--client-account",
            str(tenant.client_account_id),
            "--engagement",
            str(tenant.engagement_id),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        _out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        message = " ".join(err.decode().split())  # rich wraps long lines
        assert process.returncode == 2, message
        assert "invalid processing config" in message and name in message
        assert "Traceback" not in message


async def test_the_api_answers_an_out_of_bounds_config_with_422(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, tmp_path: Path
) -> None:
    data = write_cmdb(tmp_path / "c.csv", 2).read_bytes()
    transport = httpx.ASGITransport(app=create_app(settings, engine, client))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", headers=await headers_of(engine, tenant)
    ) as http:
        for name, value in OUT_OF_BOUNDS.items():
            response = await http.post(
                "/api/v1/imports",
                data={
                    "import_category": "cmdb_export",
                    "processing_config": json.dumps({name: value}),
                },
                files={"file": ("servers.csv", data)},
            )
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid-processing-config"
            assert name in error["message"]
        assert (await http.get("/api/v1/imports")).json()["items"] == []  # nothing started


def test_max_field_size_is_per_reader_never_process_wide(tmp_path: Path) -> None:
    limit_before = csv.field_size_limit()
    big = tmp_path / "big.csv"
    big.write_text("name,notes\nSRV-1," + "x" * 200_000 + "\n")
    with open_table(big, max_field_size=MAX_FIELD_SIZE) as table:
        assert len(next(table.rows()).cells["notes"]) == 200_000
    assert csv.field_size_limit() == limit_before  # a generous import changed nothing

    # A later import with a small limit still gets its own limit, on one line...
    refused = refusal(big, max_field_size=1024)
    assert refused.code == FILE_FIELD_TOO_LARGE
    assert "1,024 characters" in refused.message
    # ...and for a quoted field that spans many lines (never held past its record limit).
    lines = tmp_path / "lines.csv"
    lines.write_text('name,notes\nSRV-1,"' + "short line\n" * 5000 + '"\nSRV-2,ok\n')
    refused = refusal(lines, max_field_size=1024)
    assert refused.code == FILE_FIELD_TOO_LARGE
    assert "Data row 1" in refused.message


# ----- item 4: a NUL byte anywhere is a flagged cell, at once, never a re-read ---------------


async def ingest_attempts(client: Client, workflow_id: str) -> list[int]:
    """The attempt number of every ingest_file run in the workflow's history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled: dict[int, str] = {}
    attempts = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attributes.activity_type.name
        if event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if scheduled.get(started.scheduled_event_id) == "ingest_file":
                attempts.append(started.attempt)
    return attempts


async def staged_row(engine: AsyncEngine, data_import_id: uuid.UUID, row: int) -> Any:
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT raw_data, read_issues FROM raw_import_records "
                "WHERE data_import_id = :id AND row_number = :n"
            ),
            {"id": data_import_id, "n": row},
        )
        return found.one()


@pytest.mark.usefixtures("worker")
async def test_a_nul_byte_at_100_kib_is_a_flagged_cell_and_the_import_completes(
    engine: AsyncEngine, client: Client, service: ImportService, tmp_path: Path
) -> None:
    path = write_cmdb(tmp_path / "nul.csv", 870)  # ~100 KiB of regular rows
    data = path.read_bytes()
    assert 96 * 1024 < len(data) < 104 * 1024  # well past the 64 KiB the sniffer reads
    after = b"".join(b"A-9%05d,SRV-9%05d,Server,,,,,,,,,,,,\r\n" % (n, n) for n in range(5))
    path.write_bytes(data + b"A-999999,SRV-NUL\x00ONE,Server,,,,,,,,,,,,\r\n" + after)

    started = await service.start_import(path, "cmdb_export")
    done = await wait_for(service, started.data_import_id, ["completed", "needs_attention"])
    assert done.status == "completed", done.error_message
    assert (done.total_rows, done.valid_rows) == (876, 876)
    raw, issues = await staged_row(engine, started.data_import_id, 871)
    assert raw["asset_name"] == "SRV-NULONE"  # kept, the NUL removed
    assert [(i["code"], i["severity"], i["field"]) for i in issues] == [
        ("encoding-error", "warning", "asset_name")
    ]
    assert await ingest_attempts(client, started.workflow_id) == [1]  # read once, not again


def test_nul_bytes_and_lone_surrogates_in_json_are_flagged_cells(tmp_path: Path) -> None:
    path = tmp_path / "nul.json"
    path.write_text(
        '[{"name": "web\\u000001", "os": "Linux"},'
        ' {"name": "db01", "o\\u0000s": "bad \\ud800 text"}]'
    )
    with open_table(path) as table:
        rows = list(table.rows())
        headers = list(table.headers)
    assert headers == ["name", "os"]  # the key "o\0s" is the column "os"
    assert rows[0].cells == {"name": "web01", "os": "Linux"}
    assert rows[1].cells == {"name": "db01", "os": "bad \ufffd text"}
    assert [(i.code, i.field) for i in rows[0].issues] == [("encoding-error", "name")]
    assert [(i.code, i.field) for i in rows[1].issues] == [("encoding-error", "os")]
    assert "surrogate" in rows[1].issues[0].message


# ----- item 5: sheet dimensions before calamine; caps on columns, keys, zip entries --------


@pytest.mark.usefixtures("worker")
async def test_a_2_kb_workbook_spanning_a1_to_xfd1048576_is_refused_and_the_worker_lives(
    service: ImportService, tmp_path: Path
) -> None:
    """calamine would allocate 549 GB for it and abort the process (its issue #693)."""
    path = workbook(tmp_path / "bomb.xlsx", A1_AND_XFD1048576)
    assert path.stat().st_size < 2048

    started = await service.start_import(path, "cmdb_export")
    status = await wait_for(service, started.data_import_id, ["needs_attention", "failed"])
    assert (status.status, status.error_code) == ("needs_attention", TOO_MANY_COLUMNS.code)
    assert "16,384 columns" in str(status.error_message)
    assert "1,024 columns" in str(status.error_message)
    await service.fail(started.data_import_id, "refused")
    await a_good_import_completes(service, tmp_path)


def test_sheet_areas_are_checked_by_dimension_and_by_cells(tmp_path: Path) -> None:
    declared = workbook(
        tmp_path / "declared.xlsx",
        sheet_of((1, cell("A1", "name")), (2, cell("A2", "SRV-1")), dimension="A1:XFD1048576"),
    )
    refused = refusal(declared)
    assert refused.code == TOO_MANY_COLUMNS.code and "by its dimension" in refused.message

    tall = workbook(
        tmp_path / "tall.xlsx",
        sheet_of((1, cell("A1", "name")), (1048576, cell("AMJ1048576", "x"))),
    )
    refused = refusal(tall)
    assert refused.code == SHEET_TOO_LARGE.code
    assert f"{MAX_SHEET_CELLS:,} cells" in refused.message
    assert "1,048,576 rows x 1,024 columns" in refused.message

    # Cells without r are placed one after another: followed exactly, as calamine does.
    wide_row = "".join(cell("", f"h{n}") for n in range(MAX_COLUMNS + 1))
    unnamed = workbook(tmp_path / "unnamed.xlsx", sheet_of((None, wide_row)))
    refused = refusal(unnamed)
    assert refused.code == TOO_MANY_COLUMNS.code and "1,025 columns" in refused.message

    # A large but allowed area is streamed with openpyxl, never loaded by calamine.
    sparse = workbook(
        tmp_path / "sparse.xlsx",
        sheet_of(
            (1, cell("A1", "name") + cell("Z1", "os")),
            (2, cell("A2", "SRV-1")),
            (200_000, cell("A200000", "SRV-2")),
        ),
    )
    with open_table(sparse) as table:
        assert table.describe()["engine"] == "openpyxl"
        assert table.headers[0] == "name"


def test_columns_per_row_are_capped_in_every_format(tmp_path: Path) -> None:
    wide_header = tmp_path / "wide.csv"
    wide_header.write_text(",".join(f"h{n}" for n in range(MAX_COLUMNS + 1)) + "\nSRV-1\n")
    refused = refusal(wide_header)
    assert refused.code == TOO_MANY_COLUMNS.code
    assert refused.message.startswith("The header row has 1,025 columns")
    assert "limit of 1,024 columns per row" in refused.message

    for fast in ("a", "b"):  # a ragged data row, on the fast path's fallback and alone
        wide_row = tmp_path / f"row-{fast}.csv"
        rows = "SRV-1,Linux\n" * (5000 if fast == "a" else 1)
        wide_row.write_text("name,os\n" + rows + ",".join(["x"] * 2000) + "\n")
        refused = refusal(wide_row)
        assert refused.code == TOO_MANY_COLUMNS.code
        assert "has 2,000 columns" in refused.message
        with open_table(wide_row) as table, pytest.raises(ImportFailure) as raised:
            reader = table.row_reader
            assert isinstance(reader, CsvRowReader)
            list(FastCsvStream(reader).batches(0, 1000))  # the ingest's native path
        assert (raised.value.code, raised.value.message) == (refused.code, refused.message)

    record = {f"k{n}": "v" for n in range(MAX_COLUMNS + 1)}
    json_file = tmp_path / "wide.json"
    json_file.write_text(json.dumps([{"name": "SRV-1"}, record]))
    refused = refusal(json_file)
    assert refused.code == TOO_MANY_COLUMNS.code and "Record 2" in refused.message


def test_json_keys_are_capped(tmp_path: Path) -> None:
    # Every record small, but each brings new keys (read past the header sample).
    sparse = [{"name": f"SRV-{n}"} for n in range(1000)]
    sparse += [{"name": "x", f"tag{n}": "v"} for n in range(MAX_JSON_KEYS + 1)]
    path = tmp_path / "sparse.json"
    path.write_text(json.dumps(sparse))
    refused = refusal(path)
    assert (
        refused.code == TOO_MANY_KEYS.code and f"{MAX_JSON_KEYS:,} distinct keys" in refused.message
    )

    wrapper = {f"meta{n}": n for n in range(MAX_JSON_KEYS + 1)}
    path = tmp_path / "wrapper.json"
    path.write_text(json.dumps({**wrapper, "data": [{"name": "SRV-1"}]}))
    refused = refusal(path)
    assert refused.code == TOO_MANY_KEYS.code and "top-level JSON object" in refused.message


def test_zip_central_directory_entries_are_capped(tmp_path: Path) -> None:
    good = sheet_of((1, cell("A1", "name")), (2, cell("A2", "SRV-1")))
    with open_table(workbook(tmp_path / "ok.xlsx", good, extra_entries=100)) as table:
        assert [row.cells for row in table.rows()] == [{"name": "SRV-1"}]
    crowded = workbook(tmp_path / "crowded.xlsx", good, extra_entries=MAX_ZIP_ENTRIES)
    refused = refusal(crowded)
    assert refused.code == TOO_MANY_ZIP_ENTRIES.code
    assert f"limit of {MAX_ZIP_ENTRIES:,} entries" in refused.message


# ----- item 7: unmapped headers in payloads are capped; the database keeps them all ---------


async def activity_results(client: Client, workflow_id: str) -> dict[str, list[Any]]:
    """The decoded JSON result of every completed activity, by activity type."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    names: dict[int, str] = {}
    results: dict[str, list[Any]] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = (
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
        if event.HasField("activity_task_completed_event_attributes"):
            completed = event.activity_task_completed_event_attributes
            name = names[completed.scheduled_event_id]
            payloads = completed.result.payloads
            value = json.loads(payloads[0].data) if payloads and payloads[0].data else None
            results.setdefault(name, []).append(value)
    return results


@pytest.mark.usefixtures("worker")
async def test_a_wide_header_row_travels_capped_and_is_kept_whole_in_the_database(
    engine: AsyncEngine, client: Client, service: ImportService, tmp_path: Path
) -> None:
    extra = [f"Custom Field {n:04d}" for n in range(300)]
    rows = [[f"SRV-{n}", *(["v"] * len(extra))] for n in range(3)]
    path = tmp_path / "wide.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", *extra])
        writer.writerows(rows)

    started = await service.start_import(path, "cmdb_export")
    done = await wait_for(service, started.data_import_id, ["completed", "needs_attention"])
    assert done.status == "completed", done.error_message

    results = await activity_results(client, started.workflow_id)
    assert results["prepare_validation"] == [extra[:MAX_UNMAPPED_IN_PAYLOAD]]
    [counts] = results["finalize_validation"]
    assert counts["unmapped_headers"] == extra[:MAX_UNMAPPED_IN_PAYLOAD]
    assert counts["unmapped_header_count"] == 300
    async with engine.connect() as conn:
        summary = await conn.scalar(
            text("SELECT summary FROM data_imports WHERE id = :id"),
            {"id": started.data_import_id},
        )
    assert summary["validation"]["unmapped_headers"] == extra
