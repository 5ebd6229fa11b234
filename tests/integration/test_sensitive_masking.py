"""Invariant 7: values of sensitive_data imports never leave staging unmasked — not into flow
state, not into workflow history (read back through the Temporal client), not into reports."""

from __future__ import annotations

import io
import json
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from dataimport import imports
from service.imports import ImportService
from tests.factories import (
    CRM,
    PAYMENTS,
    SECRETS,
    STORE_HEADERS,
    TERMINAL_OR_WAITING,
    wait_for,
    write_csv,
)


async def test_no_sensitive_value_leaves_staging_unmasked(
    service: ImportService, engine: AsyncEngine, client: Client, worker: Worker, tmp_path: Path
) -> None:
    bad = [*CRM]
    bad[0] = ""  # no host: rejected, so it lands in the error report and failed rows
    bad[11] = "ops.lead@corp.example.com"
    bad[10] = "lots-of-4111111111111111"
    path = write_csv(tmp_path / "stores.csv", STORE_HEADERS, [PAYMENTS, CRM, bad])
    started = await service.start_import(path, "sensitive_data")
    done = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert done.status == "completed_with_errors"
    secrets = [*SECRETS, "ops.lead@corp.example.com", "lots-of-4111111111111111"]

    async with engine.connect() as conn:
        state = (
            await conn.execute(
                text(
                    "SELECT m.state_data, m.error_history, c.phase_state, d.summary, "
                    "d.error_message FROM data_imports d JOIN master_flows m "
                    "ON m.flow_id = d.master_flow_id JOIN discovery_flows c "
                    "ON c.data_import_id = d.id WHERE d.id = :id"
                ),
                {"id": started.data_import_id},
            )
        ).one()
        staged = await conn.scalar(
            text("SELECT count(*) FROM raw_import_records WHERE data_import_id = :id"),
            {"id": started.data_import_id},
        )
    flow_state = json.dumps([state[0], state[1], state[2], state[3], state[4]])
    assert staged == 3
    assert len(state[0]["raw_data_sample"]) == 2  # the sample exists, masked
    assert set(state[0]["raw_data_sample"][0]) == set(STORE_HEADERS)

    history = await client.get_workflow_handle(done.workflow_id).fetch_history()
    history_text = json.dumps(history.to_json_dict())

    report = io.StringIO()
    async for item in imports.error_rows(engine, service.tenant, started.data_import_id):
        report.write(json.dumps(item))
    failed = [
        json.dumps(cells)
        async for _, cells in imports.failed_rows(
            engine, service.tenant, started.data_import_id, masked=True
        )
    ]
    assert len(failed) == 1

    for secret in secrets:
        assert secret not in flow_state, secret
        assert secret not in history_text, secret
        assert secret not in report.getvalue(), secret
        assert secret not in "".join(failed), secret
