"""Committed histories of every DataImportWorkflow path replay against the current code.

A change to the workflow that alters its command sequence would break imports already
running; replay turns that into a failing test (docs/versioning.md). No database or server:
the Replayer runs in-process. Record new histories with scripts/record_histories.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    Interceptor,
    Replayer,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from activities.enrichment import EnrichmentActivities
from dataimport.categories import REGISTRY
from dataimport.contracts import (
    TERMINAL_STATUSES,
    ImportRequest,
    ImportStatus,
    Phase,
    StatusUpdate,
    workflow_id_for,
)
from scripts.record_histories import MARKER, decoded_text
from workflows.data_import import DataImportWorkflow

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
FILES = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    """The workflow id comes from the recorded input, as the original run saw it."""
    history = WorkflowHistory.from_json("", path.read_text(encoding="utf-8"))
    workflow_id = workflow_id_for(request_of(history).data_import_id)
    return dataclasses.replace(history, workflow_id=workflow_id)


def decode(payloads: Any, type_: type) -> Any:
    return pydantic_data_converter.payload_converter.from_payloads(payloads, [type_])[0]


def request_of(history: WorkflowHistory) -> ImportRequest:
    started = history.events[0].workflow_execution_started_event_attributes
    request: ImportRequest = decode(started.input.payloads, ImportRequest)
    return request


def terminal_status(history: WorkflowHistory) -> str:
    last = history.events[-1]
    if last.HasField("workflow_execution_canceled_event_attributes"):
        return "cancelled"
    result = last.workflow_execution_completed_event_attributes.result.payloads
    status: ImportStatus = decode(result, ImportStatus)
    return status.status


def decisions(event: HistoryEvent) -> list[str]:
    """The signal or update an event delivers, if any."""
    if event.HasField("workflow_execution_signaled_event_attributes"):
        return [f"signal:{event.workflow_execution_signaled_event_attributes.signal_name}"]
    if event.HasField("workflow_execution_update_accepted_event_attributes"):
        request = event.workflow_execution_update_accepted_event_attributes.accepted_request
        return [f"update:{request.input.name}"]
    if event.HasField("timer_fired_event_attributes"):
        return ["timer"]
    return []


@pytest.fixture(scope="module")
def replayer() -> Replayer:
    return Replayer(workflows=[DataImportWorkflow], data_converter=pydantic_data_converter)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
async def test_recorded_history_replays_on_current_code(path: Path, replayer: Replayer) -> None:
    result = await replayer.replay_workflow(load(path))  # raises on nondeterminism
    assert result.replay_failure is None


def test_histories_cover_every_terminal_status_category_and_decision() -> None:
    histories = [load(path) for path in FILES]
    assert {terminal_status(h) for h in histories} == TERMINAL_STATUSES
    assert {request_of(h).category for h in histories} == set(REGISTRY)
    seen = {name for h in histories for event in h.events for name in decisions(event)}
    expected = {"signal:retry", "signal:fail", "update:retry_import", "update:fail_import"}
    expected |= {"update:approve_import", "update:reject_import"}
    assert seen >= expected | {"timer"}


def test_histories_hold_no_row_data() -> None:
    for path in FILES:
        text = decoded_text(json.loads(path.read_text(encoding="utf-8")))
        assert MARKER not in text, path.name


# ----- proof that the check bites: changed copies under the same workflow type name -------


@workflow.defn(name="DataImportWorkflow", sandboxed=False)
class SkipsRegistration(DataImportWorkflow):
    """An incompatible change: register_import dropped, so the first command differs."""

    @workflow.run
    async def run(self, request: ImportRequest | dict[str, Any]) -> ImportStatus:
        await self._run_phases_from(Phase.UPLOAD)
        return self._status


@workflow.defn(name="DataImportWorkflow", sandboxed=False)
class PatchedExtraStep(DataImportWorkflow):
    """The same kind of change done right: new commands only behind workflow.patched."""

    @workflow.run
    async def run(self, request: ImportRequest | dict[str, Any]) -> ImportStatus:
        if workflow.patched("replay-test-extra-step"):
            await self._activity(EnrichmentActivities.refresh_statistics, self._ref)
        return await super().run(request)


async def test_an_unguarded_change_fails_replay_with_nondeterminism() -> None:
    replayer = Replayer(workflows=[SkipsRegistration], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(
        load(HISTORIES / "cmdb_completed.json"), raise_on_replay_failure=False
    )
    assert isinstance(result.replay_failure, workflow.NondeterminismError)
    assert "register_import" in str(result.replay_failure)


async def test_a_patched_change_replays_old_histories() -> None:
    replayer = Replayer(workflows=[PatchedExtraStep], data_converter=pydantic_data_converter)
    for name in ("cmdb_completed", "retry_update_completed", "cancelled_while_waiting"):
        await replayer.replay_workflow(load(HISTORIES / f"{name}.json"))


def activity_names(history: WorkflowHistory) -> list[str]:
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


@pytest.mark.parametrize("category", ["cmdb", "app_discovery", "sensitive_data"])
def test_prepared_enrichment_histories_run_no_whole_table_analyze(category: str) -> None:
    """Since patch enrichment-prepare: one prepare pass, no refresh_statistics; the link
    ranges (after a conditional analyze) only where the category has a link pass."""
    names = activity_names(load(HISTORIES / f"{category}_completed.enrichment-prepare.json"))
    assert names.count("prepare_enrichment") == 1
    assert "refresh_statistics" not in names
    has_link = category == "cmdb"
    assert ("link_chunk" in names) is has_link
    assert ("analyze_inventory" in names) is has_link
    old = activity_names(load(HISTORIES / f"{category}_completed.json"))
    assert old.count("refresh_statistics") == 2 and "prepare_enrichment" not in old


def test_approval_histories_plan_before_any_enrichment_and_reject_enriches_nothing() -> None:
    """Since patch approval-gate: plan_enrichment after validation; approved imports enrich
    after it, rejected and unanswered ones never do."""
    approved = activity_names(load(HISTORIES / "approval_approved_completed.json"))
    assert approved.index("finalize_validation") < approved.index("plan_enrichment")
    assert approved.index("plan_enrichment") < approved.index("prepare_enrichment")
    for name in ("approval_rejected", "approval_timeout_failed"):
        names = activity_names(load(HISTORIES / f"{name}.json"))
        assert "plan_enrichment" in names
        assert not {"prepare_enrichment", "enrich_chunk", "link_chunk"} & set(names)
    old = activity_names(load(HISTORIES / "cmdb_completed.enrichment-prepare.json"))
    assert "plan_enrichment" not in old


# ----- beyond determinism: every activity asked for as recorded --------------------------
# Replay compares command kinds and activity types only: an activity asked to do something
# else (another argument) or shown otherwise in the Web UI (its summary) replays silently.
# These tests compare both. Timeouts and retry policies may change without a guard
# (docs/versioning.md), so they are not compared.


class ScheduleRecorder(Interceptor):
    """Keeps every activity the workflow asks to schedule while it replays."""

    def __init__(self) -> None:
        self.scheduled: list[StartActivityInput] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        scheduled = self.scheduled

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
                scheduled.append(input)
                return super().start_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


def json_differences(recorded: Any, current: Any, where: str = "") -> list[str]:
    """Where two decoded JSON values differ, by path (a readable assert message)."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        found = [f"{where}.{key} dropped" for key in recorded.keys() - current.keys()]
        found += [f"{where}.{key} added" for key in current.keys() - recorded.keys()]
        for key in sorted(recorded.keys() & current.keys()):
            found += json_differences(recorded[key], current[key], f"{where}.{key}")
        return found
    if isinstance(recorded, list) and isinstance(current, list) and len(recorded) == len(current):
        pairs = enumerate(zip(recorded, current, strict=True))
        return [d for i, (r, c) in pairs for d in json_differences(r, c, f"{where}[{i}]")]
    return [] if recorded == current else [f"{where}: {recorded!r} -> {current!r}"]


def schedule_differences(history: WorkflowHistory, asked: list[StartActivityInput]) -> list[str]:
    """How the activities asked for on replay differ from the recorded ones. A recorded input
    is read with today's models first, so a field added since (with its default) is no change."""
    converter = pydantic_data_converter.payload_converter
    events = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    summaries = [
        converter.from_payloads([event.user_metadata.summary])[0]
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    if len(events) != len(asked):
        return [f"{len(asked)} activities asked for, {len(events)} recorded"]
    found: list[str] = []
    for attrs, summary, start in zip(events, summaries, asked, strict=True):
        label = f"activity {attrs.activity_id} ({attrs.activity_type.name})"
        if start.arg_types is None:  # only a call by method reference knows its input's type
            found.append(f"{label} asked for by name, not by method reference")
            continue
        if (attrs.activity_type.name, summary) != (start.activity, start.summary):
            found.append(f"{label}: {summary!r} -> {start.activity} {start.summary!r}")
        recorded = converter.from_payloads(list(attrs.input.payloads), start.arg_types)
        found += [
            f"{label} input{difference}"
            for difference in json_differences(
                [json.loads(p.data) for p in converter.to_payloads(recorded)],
                [json.loads(p.data) for p in converter.to_payloads(start.args)],
            )
        ]
    return found


def replay_recording(workflow_class: type) -> tuple[Replayer, ScheduleRecorder]:
    recorder = ScheduleRecorder()
    replayer = Replayer(
        workflows=[workflow_class], data_converter=pydantic_data_converter, interceptors=[recorder]
    )
    return replayer, recorder


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
async def test_replay_asks_every_activity_for_what_was_recorded(path: Path) -> None:
    replayer, recorder = replay_recording(DataImportWorkflow)
    history = load(path)
    await replayer.replay_workflow(history)
    assert recorder.scheduled, path.name
    assert schedule_differences(history, recorder.scheduled) == []


@workflow.defn(name="DataImportWorkflow", sandboxed=False)
class CountsEveryStatus(DataImportWorkflow):
    """A change replay alone does not see: the same commands, record_status told more."""

    @workflow.run
    async def run(self, request: ImportRequest | dict[str, Any]) -> ImportStatus:
        return await super().run(request)

    def _status_update(self, s: ImportStatus) -> StatusUpdate:
        update = super()._status_update(s)
        return update.model_copy(update={"counters": {**update.counters, "total_rows": 1}})


async def test_a_changed_argument_replays_but_fails_the_comparison() -> None:
    replayer, recorder = replay_recording(CountsEveryStatus)
    history = load(HISTORIES / "cmdb_completed.json")
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
    differences = schedule_differences(history, recorder.scheduled)
    assert differences and all("(record_status) input" in d for d in differences), differences
    assert any(".counters.total_rows added" in d for d in differences)
