"""Invariant 7 for a file without a header row: its first data row becomes the headers, and
no message, summary, payload or history shows those values unmasked."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.errors import classified
from dataimport.contracts import ImportRef, ProcessingConfig
from dataimport.model_agents import recording
from scripts.record_histories import decoded_text
from service.imports import ImportService
from tests.factories import TERMINAL_OR_WAITING, wait_for, write_csv

TERMINAL = tuple(
    s for s in TERMINAL_OR_WAITING if s not in ("needs_attention", "awaiting_approval")
)

pytestmark = pytest.mark.usefixtures("worker")

# A data row read as the header row: each value long enough to be recognisable anywhere.
FIRST_ROW = [
    "payroll-db-07.corp.example",
    "Payroll Archive",
    "alice.jones@corp.example.com",
    "Salary and Bank Details",
    "Confidential",
]
SECOND_ROW = [
    "crm-db-02.corp.example",
    "CRM",
    "bob.smith@corp.example.com",
    "Contact details",
    "Internal",
]

RECORDS_SQL = """
SELECT d.error_code, d.error_message, d.summary, m.state_data, m.error_history,
  c.phase_state, c.error_message AS child_error
FROM data_imports d
JOIN master_flows m ON m.flow_id = d.master_flow_id
JOIN discovery_flows c ON c.data_import_id = d.id
WHERE d.id = :id
"""


async def _stored(engine: AsyncEngine, data_import_id: uuid.UUID) -> dict:
    async with engine.connect() as conn:
        return dict(
            (await conn.execute(text(RECORDS_SQL), {"id": data_import_id})).mappings().one()
        )


async def test_headerless_sensitive_file_quotes_none_of_its_first_row(
    service: ImportService, engine: AsyncEngine, client: Client, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "stores.csv", FIRST_ROW, [SECOND_ROW])
    started = await service.start_import(path, "sensitive_data")
    waiting = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)

    assert (waiting.status, waiting.error_code) == ("needs_attention", "no-mapped-columns")
    assert "5 headers" in (waiting.error_message or "")
    stored = await _stored(engine, started.data_import_id)
    assert stored["error_code"] == "no-mapped-columns"
    history = await client.get_workflow_handle(waiting.workflow_id).fetch_history()
    seen = {
        "status": waiting.model_dump_json(),
        "stored": json.dumps(stored, default=str),
        "history": decoded_text(history.to_json_dict()),
    }
    for where, content in seen.items():
        for value in FIRST_ROW:
            assert value not in content, (where, value, content[content.find(value) - 300 :][:400])

    # With a mapping the import goes on: the unmapped headers in the summary are masked too.
    await service.retry(started.data_import_id, {"column_mapping": {FIRST_ROW[0]: "hostname"}})
    done = await wait_for(service, started.data_import_id, TERMINAL)
    assert done.status.startswith("completed"), done
    stored = await _stored(engine, started.data_import_id)
    unmapped = stored["summary"]["validation"]["unmapped_headers"]
    assert len(unmapped) == len(FIRST_ROW) - 1
    summary = json.dumps(stored["summary"])
    for value in FIRST_ROW[1:]:
        assert value not in summary, (value, summary[summary.find(value) - 300 :][:400])
        assert value not in done.model_dump_json(), value


async def test_headerless_sensitive_file_sends_no_headers_to_a_model(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    """The model agents would send unmapped headers to a model: of a headerless sensitive file
    those are values (here an e-mail address), so no job is planned; a file with a real
    header row still gets its jobs for the headers nothing maps."""
    headerless = write_csv(tmp_path / "stores.csv", FIRST_ROW, [SECOND_ROW])
    with_header = write_csv(
        tmp_path / "named.csv",
        ["hostname", "database_name", "Custodian Notes"],
        [["crm-db-02.corp.example", "CRM", "kept by sales"]],
    )
    refs = []
    for path in (headerless, with_header):
        started = await service.start_import(path, "sensitive_data")
        await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
        refs.append(
            ImportRef(
                data_import_id=started.data_import_id,
                client_account_id=service.tenant.client_account_id,
                engagement_id=service.tenant.engagement_id,
                category="sensitive_data",
            )
        )

    assert await recording.plan(engine, refs[0], ProcessingConfig()) == []
    jobs = await recording.plan(engine, refs[1], ProcessingConfig())
    assert jobs and all(job.headers == ["Custodian Notes"] for job in jobs), jobs


async def test_unclassified_errors_of_sensitive_imports_leave_without_their_text() -> None:
    ref = ImportRef(
        data_import_id=uuid.uuid4(),
        client_account_id=uuid.uuid4(),
        engagement_id=uuid.uuid4(),
        category="sensitive_data",
    )

    @classified
    async def failing(data: ImportRef) -> None:
        raise ValueError(f"invalid input syntax: {FIRST_ROW[2]!r}")

    with pytest.raises(ApplicationError) as raised:
        await failing(ref)
    assert FIRST_ROW[2] not in str(raised.value)
    assert raised.value.type == "ValueError" and not raised.value.non_retryable
    assert raised.value.__cause__ is None

    with pytest.raises(ValueError, match="alice"):  # other categories keep the detail
        await failing(ref.model_copy(update={"category": "cmdb_export"}))
