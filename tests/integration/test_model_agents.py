"""Model-backed agents against a real HTTP stand-in on loopback, through a real worker.

The stand-in speaks OpenAI's chat-completions shape and answers as each test tells it: a
good answer computed from the request, malformed answers, a slow answer, an HTTP error. It
keeps every request, so the tests can check what the model was (and was not) sent.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from activities import build_activities
from dataimport import model_agents
from dataimport.contracts import ImportStatus, workflow_id_for
from dataimport.imports import Tenant
from dataimport.llm import MALFORMED
from dataimport.model_agents import (
    COLUMN_MAPPER,
    SENSITIVE_CLASSIFIER,
    MalformedAnswer,
    column_shape,
    model_suggestions,
    suggested_column_mapping,
    validate_classifications,
    validate_mappings,
)
from dataimport.settings import Settings
from service.imports import ImportService
from tests.factories import (
    STAND_IN_KEY,
    STAND_IN_MODEL,
    StandIn,
    run_import,
    wait_for,
    write_csv,
)
from workflows.data_import import MODEL_AGENTS_PATCH, DataImportWorkflow

# --- the stand-in ------------------------------------------------------------------------


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    server.start()
    yield server
    server.stop()


def llm_settings(settings: Settings, stand_in: StandIn, **overrides: Any) -> Settings:
    """The session settings on a queue of their own, the model pointing at the stand-in."""
    update: dict[str, Any] = {
        "task_queue": f"model-agents-{uuid.uuid4().hex[:8]}",
        "llm_base_url": stand_in.base_url,
        "llm_model": STAND_IN_MODEL,
        "llm_api_key": STAND_IN_KEY,
        "llm_timeout_seconds": 10.0,
        **overrides,
    }
    return settings.model_copy(update=update)


@contextlib.asynccontextmanager
async def import_service(
    worker_settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant
) -> AsyncIterator[ImportService]:
    """A worker of its own (built with worker_settings) and a service starting imports on it."""
    async with Worker(
        client,
        task_queue=worker_settings.task_queue,
        workflows=[DataImportWorkflow],
        activities=build_activities(engine, settings=worker_settings),
    ):
        yield ImportService(worker_settings, engine, client, tenant)


async def model_steps(engine: AsyncEngine, data_import_id: uuid.UUID) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT agent, status, model, input_tokens, output_tokens, latency_ms, "
                "duration_ms, records_processed, findings FROM import_processing_steps "
                "WHERE data_import_id = :id AND step_name = 'model_agents'"
            ),
            {"id": data_import_id},
        )
        return {row.agent: row for row in rows}


async def patch_markers(client: Client, data_import_id: uuid.UUID) -> list[bytes]:
    """The patch markers of the import's history, after checking that it replays."""
    history = await client.get_workflow_handle(workflow_id_for(data_import_id)).fetch_history()
    replayer = Replayer(workflows=[DataImportWorkflow], data_converter=pydantic_data_converter)
    assert (await replayer.replay_workflow(history)).replay_failure is None
    details = [
        event.marker_recorded_event_attributes.details
        for event in history.events
        if event.HasField("marker_recorded_event_attributes")
    ]
    return [
        b"".join(payload.data for entry in detail.values() for payload in entry.payloads)
        for detail in details
    ]


# --- files -------------------------------------------------------------------------------

CMDB_HEADERS = ["asset_id", "hostname", "Srv Moniker", "Box IP", "operating_system", "Rack Slot"]


def cmdb_row(n: int) -> list[str]:
    return [
        f"A-{n:04d}",
        f"host-{n:04d}",
        f"MONIKER-{n:04d}",
        f"10.20.30.{n}",
        "Ubuntu 22.04",
        f"R{n:02d}-U{n + 10:02d}-SLOT",
    ]


def write_cmdb(path: Path, count: int = 4) -> Path:
    return write_csv(path, CMDB_HEADERS, [cmdb_row(n) for n in range(1, count + 1)])


def unmapped_cells(count: int = 4) -> set[str]:
    """The cells of the columns the model is asked about: none of them may be sent."""
    return {cell for n in range(1, count + 1) for cell in cmdb_row(n)[2:]} - {"Ubuntu 22.04"}


WITH_MODEL = {"model_agents": True}


@dataclass
class ModelImports:
    """The shape every end-to-end test shares: a worker of its own whose model is the stand-in,
    one import through it, and the model steps that import recorded."""

    settings: Settings
    engine: AsyncEngine
    client: Client
    tenant: Tenant
    stand_in: StandIn
    tmp_path: Path

    def service(self, **overrides: Any) -> contextlib.AbstractAsyncContextManager[ImportService]:
        """A worker with llm_settings(**overrides) and a service starting imports on it."""
        worker_settings = llm_settings(self.settings, self.stand_in, **overrides)
        return import_service(worker_settings, self.engine, self.client, self.tenant)

    async def run(
        self,
        config: dict[str, Any] | None = WITH_MODEL,
        *,
        path: Path | None = None,
        category: str = "cmdb_export",
        **overrides: Any,
    ) -> ImportStatus:
        """One import of `path` (by default a fresh CMDB export) on a worker of its own."""
        async with self.service(**overrides) as service:
            path = path or write_cmdb(self.tmp_path / "c.csv")
            return await run_import(service, path, config, category)

    async def steps(self, status: ImportStatus) -> dict[str, Any]:
        """The model steps of this import, by agent."""
        return await model_steps(self.engine, status.data_import_id)

    async def step(self, status: ImportStatus, agent: str = COLUMN_MAPPER) -> Any:
        """The model step of this import for one agent (the column mapper unless told)."""
        return (await self.steps(status))[agent]


@pytest.fixture
def imports(
    settings: Settings,
    engine: AsyncEngine,
    client: Client,
    tenant: Tenant,
    stand_in: StandIn,
    tmp_path: Path,
) -> ModelImports:
    return ModelImports(settings, engine, client, tenant, stand_in, tmp_path)


# --- end to end --------------------------------------------------------------------------


async def test_mapping_advice_is_recorded_with_usage_and_never_sees_a_value(
    imports: ModelImports, stand_in: StandIn
) -> None:
    status = await imports.run()

    assert status.status == "completed"
    step = await imports.step(status)
    assert (step.status, step.model, step.input_tokens, step.output_tokens) == (
        "completed",
        STAND_IN_MODEL,
        321,
        54,
    )
    assert step.latency_ms is not None and step.latency_ms >= 0
    assert step.records_processed == 3  # Srv Moniker, Box IP, Rack Slot
    findings = step.findings
    assert (findings["outcome"], findings["model"], findings["input_tokens"]) == (
        "ok",
        STAND_IN_MODEL,
        321,
    )
    assert [(s["header"], s["field"]) for s in findings["suggestions"]] == [
        ("Srv Moniker", "name"),
        ("Box IP", "ip_address"),
    ]
    shapes = {column["header"]: column["shape"] for column in findings["columns"]}
    assert shapes == {"Srv Moniker": "text(12)", "Box IP": "ipv4", "Rack Slot": "text(12)"}

    # One request, authenticated, JSON mode, and not one cell value in it.
    assert len(stand_in.requests) == 1
    request = stand_in.requests[0]
    assert request["headers"]["Authorization"] == f"Bearer {STAND_IN_KEY}"
    assert request["body"]["response_format"] == {"type": "json_object"}
    assert request["body"]["temperature"] == 0
    sent = stand_in.sent_text()
    assert not [cell for cell in unmapped_cells() if cell in sent]

    # The advice reads back for the tenant, and only for it.
    engine, tenant = imports.engine, imports.tenant
    advice = await model_suggestions(engine, tenant, status.data_import_id)
    assert suggested_column_mapping(advice) == {"Srv Moniker": "name", "Box IP": "ip_address"}
    stranger = Tenant(uuid.uuid4(), tenant.engagement_id)
    assert await model_suggestions(engine, stranger, status.data_import_id) == {}

    # The new call sits behind the documented patch, and the history replays.
    markers = await patch_markers(imports.client, status.data_import_id)
    assert len([marker for marker in markers if MODEL_AGENTS_PATCH.encode() in marker]) == 1


@pytest.mark.parametrize("mode", ["not_json", "unknown_field", "bad_body"])
async def test_malformed_answer_fails_the_step_not_the_import(
    imports: ModelImports, stand_in: StandIn, mode: str
) -> None:
    stand_in.mode = mode
    status = await imports.run()

    assert status.status == "completed"
    step = await imports.step(status)
    assert step.status == "failed"
    assert step.findings["outcome"] == MALFORMED
    assert step.findings["suggestions"] == []
    assert step.model == STAND_IN_MODEL and step.latency_ms is not None
    if mode != "bad_body":  # the usage of an answer we could read is still recorded
        assert (step.input_tokens, step.output_tokens) == (321, 54)
    assert len(stand_in.requests) == 1  # a bad answer is not retried


async def test_timeout_fails_the_step_not_the_import(
    imports: ModelImports, stand_in: StandIn
) -> None:
    stand_in.delay_seconds = 3.0
    status = await imports.run(llm_timeout_seconds=0.5)

    assert status.status == "completed"
    step = await imports.step(status)
    assert (step.status, step.findings["outcome"], step.model) == (
        "failed",
        "timeout",
        STAND_IN_MODEL,
    )
    assert step.input_tokens is None and step.findings["suggestions"] == []


async def test_http_error_fails_the_step_not_the_import(
    imports: ModelImports, stand_in: StandIn
) -> None:
    stand_in.mode = "http_500"
    status = await imports.run()

    assert status.status == "completed"
    step = await imports.step(status)
    assert (step.status, step.findings["outcome"]) == ("failed", "http_error")
    assert "500" in step.findings["error"]


async def test_flag_off_asks_nothing_and_records_nothing(
    imports: ModelImports, stand_in: StandIn
) -> None:
    status = await imports.run(None)

    assert status.status == "completed"
    assert await imports.steps(status) == {}
    assert stand_in.requests == []
    # no model-agents marker: histories recorded before model agents existed still fit
    markers = await patch_markers(imports.client, status.data_import_id)
    assert not [marker for marker in markers if MODEL_AGENTS_PATCH.encode() in marker]


async def test_unconfigured_worker_records_a_skipped_step_and_completes(
    imports: ModelImports, stand_in: StandIn
) -> None:
    status = await imports.run(llm_base_url=None, llm_model=None, llm_api_key=None)

    assert status.status == "completed"
    step = await imports.step(status)
    assert (step.status, step.findings["outcome"], step.model) == (
        "skipped",
        "skipped_unconfigured",
        None,
    )
    assert stand_in.requests == []


async def test_no_mapped_columns_waits_with_the_advice_and_a_retry_with_it_completes(
    imports: ModelImports, tmp_path: Path
) -> None:
    headers = ["Host Label", "Box IP", "operating_system"]
    rows = [[f"host-{n}", f"10.1.1.{n}", "Ubuntu 22.04"] for n in range(1, 4)]
    path = write_csv(tmp_path / "unknown.csv", headers, rows)
    async with imports.service() as service:
        waiting = await run_import(service, path, WITH_MODEL, "cmdb_export")
        assert (waiting.status, waiting.error_code) == ("needs_attention", "no-mapped-columns")
        assert '"Host Label": "hostname"' in (waiting.error_message or "")

        advice = await model_suggestions(imports.engine, imports.tenant, waiting.data_import_id)
        mapping = suggested_column_mapping(advice, min_confidence=0.8)
        await service.retry(waiting.data_import_id, {"column_mapping": mapping})
        done = await wait_for(service, waiting.data_import_id, ("completed", "failed"))

    assert done.status == "completed" and done.assets_created == 3


SENSITIVE_HEADERS = ["hostname", "ip_address", "store", "classification", "Cust Ref", "Contact"]


async def test_sensitive_columns_the_rules_cannot_decide_get_a_classification(
    imports: ModelImports, stand_in: StandIn, tmp_path: Path
) -> None:
    rows = [
        ["db-01", "10.9.0.1", "CRM", "confidential", "CR-88123", "jane.doe@example.com"],
        ["db-02", "10.9.0.2", "Billing", "restricted", "CR-99456", "max.mustermann@example.org"],
    ]
    path = write_csv(tmp_path / "stores.csv", SENSITIVE_HEADERS, rows)
    status = await imports.run(path=path, category="sensitive_data")

    assert status.status in ("completed", "completed_with_errors")
    steps = await imports.steps(status)
    assert set(steps) == {COLUMN_MAPPER, SENSITIVE_CLASSIFIER}
    classifier = steps[SENSITIVE_CLASSIFIER]
    assert (classifier.status, classifier.findings["outcome"]) == ("completed", "ok")
    # "Contact" holds e-mail addresses: the rules decide it, so the model is not asked.
    assert [s["header"] for s in classifier.findings["suggestions"]] == ["Cust Ref"]
    suggestion = classifier.findings["suggestions"][0]
    assert (suggestion["classification"], suggestion["pii_types"]) == (
        "confidential",
        ["personal_data"],
    )
    sent = stand_in.sent_text()
    assert not [cell for row in rows for cell in row[4:] if cell in sent]  # asked-about columns
    assert "email-like" in sent  # the shape of the Contact column, not its values


# --- answer validation and shapes --------------------------------------------------------


def test_mapping_answers_are_checked_against_headers_and_free_fields() -> None:
    headers, fields = ["Srv Moniker", "Box IP"], ["name", "ip_address"]
    good = {"mappings": [{"header": "Box IP", "field": "ip_address", "confidence": 1}]}
    assert [s.field for s in validate_mappings(json.dumps(good), headers, fields)] == ["ip_address"]
    fenced = "```json\n" + json.dumps(good) + "\n```"
    assert len(validate_mappings(fenced, headers, fields)) == 1
    bad_answers = [
        "not json",
        "[1, 2]",
        json.dumps({"mappings": [{"header": "Box IP", "field": "ip_address"}]}),
        json.dumps({"mappings": [{"header": "Other", "field": "name", "confidence": 0.5}]}),
        json.dumps({"mappings": [{"header": "Box IP", "field": "warp", "confidence": 0.5}]}),
        json.dumps({"mappings": [{"header": "Box IP", "field": "name", "confidence": 1.5}]}),
        json.dumps(
            {
                "mappings": [
                    {"header": "Box IP", "field": "name", "confidence": 0.5},
                    {"header": "Srv Moniker", "field": "name", "confidence": 0.5},
                ]
            }
        ),
    ]
    for answer in bad_answers:
        with pytest.raises(MalformedAnswer):
            validate_mappings(answer, headers, fields)


def test_classification_answers_use_the_project_vocabulary() -> None:
    def answer(classification: str, types: list[str]) -> str:
        column = {"header": "Ref", "classification": classification, "pii_types": types}
        return json.dumps({"columns": [{**column, "confidence": 0.5}]})

    assert validate_classifications(answer("restricted", ["health"]), ["Ref"])[0].pii_types == [
        "health"
    ]
    for bad in (answer("top-secret", []), answer("internal", ["gossip"])):
        with pytest.raises(MalformedAnswer):
            validate_classifications(bad, ["Ref"])


def test_column_shapes_describe_values_without_quoting_them() -> None:
    assert column_shape(["10.0.0.1", "10.0.0.2"]) == "ipv4"
    assert column_shape(["4", "16", ""]) == "integer, some empty"
    assert column_shape(["a@b.io", "c@d.org"]) == "email-like"
    assert column_shape(["alpha", "bravo-2"]) == "text(7)"
    assert column_shape(["12", "x.y.example.com"]) == "mixed(integer|dotted-name)"
    assert column_shape(["", " "]) == "empty"
    assert model_agents.value_shape("16 GB") == "size-with-unit"
