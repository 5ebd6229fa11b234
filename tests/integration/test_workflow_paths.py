"""Every path of DataImportWorkflow through a real worker, Temporal dev server and PostgreSQL.

What only the workflow decides (timeouts, Update validators, a cancel while an activity runs)
is tested on the time-skipping server with stub activities: test_decision_workflow.py."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from scripts.record_histories import decoded_text
from service.errors import DecisionRefused
from service.imports import ImportService
from tests.factories import (
    CMDB_HEADERS,
    TERMINAL_OR_WAITING,
    cmdb_row,
    run_import,
    unidentified,
    wait_for,
    write_cmdb,
    write_csv,
)

pytestmark = pytest.mark.usefixtures("worker")


THREE_RECORDS_SQL = """
SELECT d.status, d.error_code, d.error_message, m.flow_status, m.state_data, m.error_history,
  c.status AS child_status, c.error_message AS child_error, c.data_validation_completed,
  c.enrichment_completed, c.phase_state
FROM data_imports d
JOIN master_flows m ON m.flow_id = d.master_flow_id
JOIN discovery_flows c ON c.data_import_id = d.id
WHERE d.id = :id
"""


async def three_records(engine: AsyncEngine, data_import_id: uuid.UUID) -> dict:
    """The import row, its master flow and its child flow, as one dict for asserts."""
    async with engine.connect() as conn:
        result = await conn.execute(text(THREE_RECORDS_SQL), {"id": data_import_id})
        row = result.mappings().one()
    return dict(row)


async def test_clean_file_completes_with_assets_dependencies_and_sample(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    status = await run_import(service, write_cmdb(tmp_path / "cmdb.csv", 5))

    assert status.status == "completed"
    assert (status.total_rows, status.valid_rows, status.invalid_rows) == (5, 5, 0)
    assert (status.assets_created, status.dependencies_created) == (5, 4)
    records = await three_records(engine, status.data_import_id)
    assert records["flow_status"] == records["child_status"] == "completed"
    assert records["enrichment_completed"] and records["data_validation_completed"]
    sample = records["state_data"]["raw_data_sample"]
    assert [row["asset_name"] for row in sample] == ["SRV-000001", "SRV-000002"]
    assert sample[0] == dict(zip(CMDB_HEADERS, cmdb_row(1), strict=True))


async def test_some_invalid_rows_complete_with_errors_and_report_them(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [cmdb_row(n) for n in range(1, 5)]
    rows[1][6] = "lots"  # cpu_count: malformed, a warning (the row is kept)
    unidentified(rows[2])
    status = await run_import(service, write_csv(tmp_path / "c.csv", CMDB_HEADERS, rows))

    assert status.status == "completed_with_errors"
    assert (status.valid_rows, status.invalid_rows, status.assets_created) == (3, 1, 3)
    records = await three_records(engine, status.data_import_id)
    issues = records["phase_state"]["validation"]["issues"]
    assert (issues["missing-required"]["count"], issues["missing-required"]["severity"]) == (
        1,
        "error",
    )
    assert issues["missing-required"]["examples"][0]["row"] == 3
    assert (issues["type-error"]["severity"], issues["type-error"]["examples"][0]["row"]) == (
        "warning",
        2,
    )


async def test_unexpected_headers_need_attention_then_retry_with_mapping_completes(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "odd.csv",
        ["Server Label", "Primary Address"],
        [["ALPHA", "10.0.0.1"], ["BETA", "10.0.0.2"]],
    )
    waiting = await run_import(service, path)
    assert waiting.status == "needs_attention"
    assert waiting.error_code == "no-mapped-columns"
    records = await three_records(engine, waiting.data_import_id)
    assert records["flow_status"] == records["child_status"] == "needs_attention"
    assert records["error_history"][-1]["error_code"] == "no-mapped-columns"

    mapping = {"column_mapping": {"Server Label": "name", "Primary Address": "ip_address"}}
    await service.retry(waiting.data_import_id, mapping)
    done = await wait_for(service, waiting.data_import_id, ["completed", "completed_with_errors"])
    assert (done.status, done.assets_created, done.error_code) == ("completed", 2, None)
    async with engine.connect() as conn:
        ips = await conn.scalars(
            text("SELECT ip_address FROM assets WHERE source_import_id = :id ORDER BY name"),
            {"id": waiting.data_import_id},
        )
        assert list(ips) == ["10.0.0.1", "10.0.0.2"]


async def test_mostly_invalid_file_needs_attention_then_fail_records_reason(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [cmdb_row(n) for n in range(1, 5)]
    for row in rows[:3]:
        unidentified(row)
    waiting = await run_import(service, write_csv(tmp_path / "bad.csv", CMDB_HEADERS, rows))
    assert (waiting.status, waiting.error_code) == ("needs_attention", "too-many-invalid-rows")

    await service.fail(waiting.data_import_id, "wrong extract, will resend")
    failed = await wait_for(service, waiting.data_import_id, ["failed"])
    assert failed.error_message == "wrong extract, will resend"
    records = await three_records(engine, waiting.data_import_id)
    assert records["flow_status"] == records["child_status"] == "failed"
    assert records["child_error"] == "wrong extract, will resend"
    async with engine.connect() as conn:
        assets = await conn.scalar(
            text("SELECT count(*) FROM assets WHERE source_import_id = :id"),
            {"id": waiting.data_import_id},
        )
    assert assets == 0  # no half-written inventory


async def test_cancelling_the_workflow_ends_cancelled_everywhere(
    service: ImportService, engine: AsyncEngine, client: Client, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "none.csv", ["foo"], [["1"]])
    waiting = await run_import(service, path)
    assert waiting.status == "needs_attention"
    await client.get_workflow_handle(waiting.workflow_id).cancel()
    cancelled = await wait_for(service, waiting.data_import_id, ["cancelled"])
    assert cancelled.status == "cancelled"
    records = await three_records(engine, waiting.data_import_id)
    assert records["flow_status"] == records["child_status"] == "cancelled"


async def test_reimporting_the_same_file_updates_without_duplicates(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_cmdb(tmp_path / "cmdb.csv", 20)
    first = await run_import(service, path)
    second = await run_import(service, path)

    assert (first.assets_created, first.dependencies_created) == (20, 19)
    assert (second.assets_created, second.assets_updated, second.dependencies_created) == (0, 20, 0)
    tenant = service.tenant.params()
    async with engine.connect() as conn:
        assets = await conn.scalar(
            text("SELECT count(*) FROM assets WHERE client_account_id = :c AND engagement_id = :e"),
            tenant,
        )
        deps = await conn.scalar(
            text(
                "SELECT count(*) FROM asset_dependencies WHERE client_account_id = :c "
                "AND engagement_id = :e"
            ),
            tenant,
        )
    assert (assets, deps) == (20, 19)


async def test_same_request_id_gives_the_same_import(
    service: ImportService, tmp_path: Path
) -> None:
    path = write_cmdb(tmp_path / "cmdb.csv", 3)
    first = await service.start_import(path, "cmdb_export", None, request_id="upload-42")
    again = await service.start_import(path, "cmdb_export", None, request_id="upload-42")
    assert first.data_import_id == again.data_import_id
    done = await wait_for(service, first.data_import_id, TERMINAL_OR_WAITING)
    assert (done.status, done.assets_created) == ("completed", 3)
    assert [s.data_import_id for s in await service.list()] == [first.data_import_id]


async def test_another_tenant_cannot_see_or_signal_an_import(
    service: ImportService, tmp_path: Path
) -> None:
    waiting = await run_import(service, write_csv(tmp_path / "x.csv", ["foo"], [["1"]]))
    assert waiting.status == "needs_attention"
    other = ImportService(
        service.settings,
        service.engine,
        service.client,
        type(service.tenant)(uuid.uuid4(), service.tenant.engagement_id),
    )
    assert await other.status(waiting.data_import_id) is None
    assert await other.list() == []
    missing = uuid.uuid4()
    for action in (
        other.retry(waiting.data_import_id, None),
        other.fail(waiting.data_import_id, "x"),
    ):
        with pytest.raises(LookupError) as seen:
            await action
        assert str(waiting.data_import_id) in str(seen.value)
    with pytest.raises(LookupError) as unknown:
        await other.fail(missing, "x")
    assert str(unknown.value).replace(str(missing), "ID") == str(seen.value).replace(
        str(waiting.data_import_id), "ID"
    )
    still = await service.status(waiting.data_import_id)
    assert still is not None and still.status == "needs_attention"
    await service.fail(waiting.data_import_id, "cleanup")


async def test_retry_of_an_import_not_waiting_is_refused(
    service: ImportService, tmp_path: Path
) -> None:
    done = await run_import(service, write_cmdb(tmp_path / "c.csv", 2))
    with pytest.raises(DecisionRefused):
        await service.retry(done.data_import_id, None)


async def test_history_holds_no_row_data(
    service: ImportService, client: Client, tmp_path: Path
) -> None:
    rows = [cmdb_row(n) for n in range(1, 301)]
    for n, row in enumerate(rows):
        row[11] = f"owner-marker-{n:04d}"
    done = await run_import(service, write_csv(tmp_path / "c.csv", CMDB_HEADERS, rows))
    assert done.status == "completed"
    history = await client.get_workflow_handle(done.workflow_id).fetch_history()
    text_of_history = decoded_text(history.to_json_dict())  # payloads are base64 in the JSON
    assert "Import c.csv (cmdb_export)" in text_of_history  # the decoding sees payloads
    assert "owner-marker-" not in text_of_history
    assert "10.0.1.44" not in text_of_history  # an IP of row 300
    assert len(history.events) < 200


async def test_create_flows_is_idempotent(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    from dataimport import flows
    from dataimport.contracts import ImportRef

    done = await run_import(service, write_cmdb(tmp_path / "c.csv", 2))
    ref = ImportRef(
        data_import_id=done.data_import_id,
        client_account_id=service.tenant.client_account_id,
        engagement_id=service.tenant.engagement_id,
        category="cmdb_export",
    )
    again = await flows.create_flows(engine, ref, "c.csv")
    once_more = await flows.create_flows(engine, ref, "c.csv")
    assert again == once_more
    async with engine.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM master_flows m JOIN data_imports d "
                    "ON d.master_flow_id = m.flow_id WHERE d.id = :id), "
                    "(SELECT count(*) FROM discovery_flows WHERE data_import_id = :id), "
                    "(SELECT master_flow_id FROM data_imports WHERE id = :id)"
                ),
                {"id": done.data_import_id},
            )
        ).one()
    assert counts[:2] == (1, 1)
    assert counts[2] == again.master_flow_id


def test_worker_fixture_is_real(worker: Worker) -> None:
    assert worker.is_running


async def test_web_ui_finds_imports_by_search_attributes_with_summary_and_details(
    service: ImportService, client: Client, tmp_path: Path
) -> None:
    done = await run_import(service, write_cmdb(tmp_path / "ui.csv", 3))
    tenant = service.tenant
    query = (
        f'DataImportId = "{done.data_import_id}" AND ClientAccountId = "{tenant.client_account_id}"'
        f' AND EngagementId = "{tenant.engagement_id}" AND ImportCategory = "cmdb_export"'
        ' AND ImportStatus = "completed"'
    )
    found: list[str] = []
    for _ in range(100):  # visibility is eventually consistent
        found = [wf.id async for wf in client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [done.workflow_id]

    handle = client.get_workflow_handle(done.workflow_id)
    description = await handle.describe()
    assert await description.static_summary() == "Import ui.csv (cmdb_export)"
    details = await handle.query("__temporal_workflow_metadata")
    assert "completed" in details.current_details and "rows 3" in details.current_details
