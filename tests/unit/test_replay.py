"""Committed histories of every DataImportWorkflow path replay against the current code.

A change to the workflow that alters its command sequence would break imports already
running; replay turns that into a failing test (docs/versioning.md). No database or server:
the Replayer runs in-process. Record new histories with scripts/record_histories.py.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
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


# ----- beyond determinism: every activity scheduled exactly as recorded ------------------
# Replay only compares command kinds and activity types; a changed argument, timeout, retry
# policy or Web UI summary would replay silently. These tests compare them too.


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


def payload_differences(recorded: Any, current: Any, where: str = "") -> list[str]:
    """Where the current payload departs from the recorded one. A field added since the
    recording (absent from it) may only carry its null/false default."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        found = [f"{where}.{key} dropped" for key in recorded.keys() - current.keys()]
        found += [
            f"{where}.{key} added as {current[key]!r}"
            for key in current.keys() - recorded.keys()
            if current[key] not in (None, False)
        ]
        for key in recorded.keys() & current.keys():
            found += payload_differences(recorded[key], current[key], f"{where}.{key}")
        return found
    if isinstance(recorded, list) and isinstance(current, list) and len(recorded) == len(current):
        pairs = enumerate(zip(recorded, current, strict=True))
        return [d for i, (r, c) in pairs for d in payload_differences(r, c, f"{where}[{i}]")]
    return [] if recorded == current else [f"{where}: {recorded!r} -> {current!r}"]


def schedule_differences(history: WorkflowHistory, asked: list[StartActivityInput]) -> list[str]:
    converter = pydantic_data_converter.payload_converter
    events = [
        event
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    if len(events) != len(asked):
        return [f"{len(asked)} activities scheduled, {len(events)} recorded"]
    found: list[str] = []
    for event, start in zip(events, asked, strict=True):
        attrs = event.activity_task_scheduled_event_attributes
        label = f"activity {attrs.activity_id} ({attrs.activity_type.name})"
        policy, recorded_policy = start.retry_policy, attrs.retry_policy
        assert policy is not None  # the workflow gives every activity one
        summary = converter.from_payloads([event.user_metadata.summary])[0]
        compared = {
            "type": (attrs.activity_type.name, start.activity),
            "summary": (summary, start.summary),
            "start_to_close": (
                attrs.start_to_close_timeout.ToTimedelta(),
                start.start_to_close_timeout,
            ),
            "heartbeat": (
                attrs.heartbeat_timeout.ToTimedelta(),
                start.heartbeat_timeout or timedelta(0),
            ),
            "retry": (
                (
                    recorded_policy.initial_interval.ToTimedelta(),
                    recorded_policy.backoff_coefficient,
                    recorded_policy.maximum_attempts,
                ),
                (policy.initial_interval, policy.backoff_coefficient, policy.maximum_attempts),
            ),
        }
        found += [f"{label} {name}: {r!r} -> {c!r}" for name, (r, c) in compared.items() if r != c]
        recorded_args = [json.loads(p.data) for p in attrs.input.payloads]
        current_args = [json.loads(p.data) for p in converter.to_payloads(start.args)]
        found += [f"{label} input{d}" for d in payload_differences(recorded_args, current_args)]
    return found


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
async def test_replay_schedules_every_activity_as_recorded(path: Path) -> None:
    recorder = ScheduleRecorder()
    replayer = Replayer(
        workflows=[DataImportWorkflow],
        data_converter=pydantic_data_converter,
        interceptors=[recorder],
    )
    history = load(path)
    await replayer.replay_workflow(history)
    assert recorder.scheduled, path.name
    assert schedule_differences(history, recorder.scheduled) == []


@workflow.defn(name="DataImportWorkflow", sandboxed=False)
class LongerHeartbeat(DataImportWorkflow):
    """A change replay alone does not see: the same commands with another heartbeat timeout."""

    @workflow.run
    async def run(self, request: ImportRequest | dict[str, Any]) -> ImportStatus:
        return await super().run(request)

    def _heartbeat_timeout(self) -> timedelta:
        return super()._heartbeat_timeout() + timedelta(seconds=1)


async def test_a_changed_timeout_replays_but_fails_the_schedule_comparison() -> None:
    recorder = ScheduleRecorder()
    replayer = Replayer(
        workflows=[LongerHeartbeat],
        data_converter=pydantic_data_converter,
        interceptors=[recorder],
    )
    history = load(HISTORIES / "cmdb_completed.json")
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
    differences = schedule_differences(history, recorder.scheduled)
    assert differences and all(" heartbeat: " in d for d in differences), differences
    assert any("(ingest_file) heartbeat: " in d for d in differences)
