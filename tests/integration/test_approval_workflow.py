"""The approval gate's workflow logic on the time-skipping test server, with stub activities.

Approve, reject, an unanswered plan, a cancel while waiting and the Updates' refusals, in
milliseconds of wall time: the stubs only record what the workflow asks of them. What the
real activities do (the plan, the inventory) is tests/test_approval.py's.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from dataimport.contracts import (
    ApproveInput,
    ChunkInput,
    ChunkReport,
    CreateFlowsInput,
    EnrichmentPlan,
    EnrichmentResult,
    FailInput,
    FinalizeEnrichmentInput,
    FinalizeValidationInput,
    FlowIds,
    ImportRef,
    ImportRequest,
    ImportStatus,
    IngestResult,
    PlanCounts,
    PrepareInput,
    RegisterInput,
    RejectInput,
    RetryInput,
    SaveConfigInput,
    StatusUpdate,
    ValidationCounts,
    workflow_id_for,
)
from workflows.data_import import APPROVAL_TIMEOUT_CODE, REJECTED_CODE, DataImportWorkflow

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
PLAN = PlanCounts(assets_to_create=3, assets_to_update=2, dependencies_to_add=1)


@dataclass
class Stubs:
    """The workflow's activities, recording what they were asked (no database)."""

    valid_rows: int = 10
    statuses: list[StatusUpdate] = field(default_factory=list)
    called: list[str] = field(default_factory=list)

    def all(self) -> list[Any]:
        return [
            self.register_import,
            self.ingest_file,
            self.create_flows,
            self.prepare_validation,
            self.finalize_validation,
            self.prepare_enrichment,
            self.enrich_chunk,
            self.finalize_enrichment,
            self.record_status,
            self.save_processing_config,
            self.plan_enrichment,
        ]

    @activity.defn(name="register_import")
    async def register_import(self, data: RegisterInput) -> None:
        self.called.append("register_import")

    @activity.defn(name="ingest_file")
    async def ingest_file(self, request: ImportRequest) -> IngestResult:
        self.called.append("ingest_file")
        return IngestResult(
            total_rows=10,
            blank_rows=0,
            detected_format={},
            column_count=3,
            unvalidated_rows=0,
            validation=ChunkReport(rows=10),
        )

    @activity.defn(name="create_flows")
    async def create_flows(self, data: CreateFlowsInput) -> FlowIds:
        return FlowIds(master_flow_id=uuid.uuid4(), discovery_flow_id=uuid.uuid4())

    @activity.defn(name="prepare_validation")
    async def prepare_validation(self, data: PrepareInput) -> list[str]:
        return []

    @activity.defn(name="finalize_validation")
    async def finalize_validation(self, data: FinalizeValidationInput) -> ValidationCounts:
        return ValidationCounts(valid_rows=self.valid_rows, invalid_rows=10 - self.valid_rows)

    @activity.defn(name="prepare_enrichment")
    async def prepare_enrichment(self, ref: ImportRef) -> EnrichmentPlan:
        self.called.append("prepare_enrichment")
        return EnrichmentPlan(link_chunks=False)

    @activity.defn(name="enrich_chunk")
    async def enrich_chunk(self, data: ChunkInput) -> int:
        self.called.append("enrich_chunk")
        return 3

    @activity.defn(name="finalize_enrichment")
    async def finalize_enrichment(self, data: FinalizeEnrichmentInput) -> EnrichmentResult:
        return EnrichmentResult(assets_created=3, assets_updated=2, processed_rows=10)

    @activity.defn(name="record_status")
    async def record_status(self, update: StatusUpdate) -> None:
        self.statuses.append(update)

    @activity.defn(name="save_processing_config")
    async def save_processing_config(self, data: SaveConfigInput) -> None:
        self.called.append("save_processing_config")

    @activity.defn(name="plan_enrichment")
    async def plan_enrichment(self, ref: ImportRef) -> PlanCounts:
        self.called.append("plan_enrichment")
        return PLAN

    def status_names(self) -> list[str]:
        return [update.status for update in self.statuses]


@pytest.fixture(scope="module")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
    )
    yield env
    await env.shutdown()


@dataclass
class Run:
    env: WorkflowEnvironment
    stubs: Stubs
    queue: str

    async def start(self, **config: Any) -> WorkflowHandle[Any, ImportStatus]:
        data_import_id = uuid.uuid4()
        request = ImportRequest(
            data_import_id=data_import_id,
            client_account_id=uuid.uuid4(),
            engagement_id=uuid.uuid4(),
            category="cmdb_export",
            file_uri="file:///nowhere.csv",
            filename="servers.csv",
            processing_config=config,
        )
        return await self.env.client.start_workflow(
            DataImportWorkflow.run,
            request,
            id=workflow_id_for(data_import_id),
            task_queue=self.queue,
        )


@pytest.fixture
async def run(time_skipping: WorkflowEnvironment) -> AsyncIterator[Run]:
    stubs = Stubs()
    queue = f"approval-{uuid.uuid4()}"
    async with Worker(
        time_skipping.client,
        task_queue=queue,
        workflows=[DataImportWorkflow],
        activities=stubs.all(),
    ):
        yield Run(time_skipping, stubs, queue)


async def reached(handle: WorkflowHandle[Any, ImportStatus], wanted: str) -> ImportStatus:
    """Poll the query (bounded: a workflow that never gets there fails the test)."""
    status: ImportStatus | None = None
    for _ in range(500):
        status = await handle.query(DataImportWorkflow.status)
        if status.status == wanted:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"never reached {wanted}; last {status}")


async def test_approved_plan_runs_enrichment_to_completed(run: Run) -> None:
    handle = await run.start(require_approval=True)
    waiting = await reached(handle, "awaiting_approval")
    assert waiting.phase == "validation" and waiting.assets_created == 0
    assert "plan_enrichment" in run.stubs.called
    assert "prepare_enrichment" not in run.stubs.called  # nothing written before the decision
    answer = await handle.execute_update(DataImportWorkflow.approve_import, ApproveInput())
    assert answer.status == "awaiting_approval"  # as the workflow saw it when it accepted
    final = await handle.result()
    assert final.status == "completed" and final.assets_created == 3
    assert run.stubs.status_names() == [
        "ingesting",
        "validating",
        "awaiting_approval",
        "enriching",
        "completed",
    ]
    assert run.stubs.called.index("plan_enrichment") < run.stubs.called.index("enrich_chunk")


async def test_approve_signal_works_like_the_update(run: Run) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    await handle.signal(DataImportWorkflow.approve, ApproveInput())
    assert (await handle.result()).status == "completed"


async def test_rejected_plan_ends_rejected_without_enrichment(run: Run) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    await handle.execute_update(
        DataImportWorkflow.reject_import, RejectInput(reason="wrong estate")
    )
    final = await handle.result()
    assert final.status == "rejected" and final.is_terminal
    assert (final.error_code, final.error_message) == (REJECTED_CODE, "wrong estate")
    assert "enrich_chunk" not in run.stubs.called
    assert "prepare_enrichment" not in run.stubs.called
    last = run.stubs.statuses[-1]
    assert (last.status, last.phase, last.error_code) == ("rejected", "validation", REJECTED_CODE)


async def test_reject_signal_ends_rejected(run: Run) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    await handle.signal(DataImportWorkflow.reject, RejectInput(reason="not now"))
    assert (await handle.result()).status == "rejected"
    assert "enrich_chunk" not in run.stubs.called


async def test_an_unanswered_plan_fails_after_the_attention_timeout(run: Run) -> None:
    handle = await run.start(require_approval=True, attention_timeout_seconds=3 * 24 * 3600)
    final = await handle.result()  # the test server skips the three days
    assert final.status == "failed" and final.error_code == APPROVAL_TIMEOUT_CODE
    assert "259200s" in (final.error_message or "")
    assert run.stubs.status_names()[-2:] == ["awaiting_approval", "failed"]
    assert "enrich_chunk" not in run.stubs.called


async def test_cancel_while_awaiting_approval_ends_cancelled(run: Run) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert run.stubs.status_names()[-2:] == ["awaiting_approval", "cancelled"]
    assert "enrich_chunk" not in run.stubs.called


async def test_updates_refuse_when_not_awaiting_approval(run: Run) -> None:
    run.stubs.valid_rows = 0  # no valid row: needs_attention, not a plan
    handle = await run.start(require_approval=True)
    await reached(handle, "needs_attention")
    with pytest.raises(WorkflowUpdateFailedError) as approve:
        await handle.execute_update(DataImportWorkflow.approve_import, ApproveInput())
    with pytest.raises(WorkflowUpdateFailedError) as reject:
        await handle.execute_update(DataImportWorkflow.reject_import, RejectInput(reason="no"))
    for refused in (approve, reject):
        assert "only an import awaiting approval" in str(refused.value.cause)
        assert "needs_attention" in str(refused.value.cause)
    # A signal that does not fit is ignored: the import still waits for retry or fail.
    await handle.signal(DataImportWorkflow.approve, ApproveInput())
    assert (await handle.query(DataImportWorkflow.status)).status == "needs_attention"
    await handle.execute_update(DataImportWorkflow.fail_import, FailInput(reason="bad file"))
    assert (await handle.result()).status == "failed"
    assert "plan_enrichment" not in run.stubs.called


async def test_awaiting_approval_refuses_retry_a_blank_reason_and_a_second_decision(
    run: Run,
) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(DataImportWorkflow.retry_import, RetryInput())
    assert "only an import that needs attention" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as blank:
        await handle.execute_update(DataImportWorkflow.reject_import, RejectInput(reason="  "))
    assert "a reason is required" in str(blank.value.cause)
    await handle.execute_update(DataImportWorkflow.approve_import, ApproveInput())
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await handle.execute_update(
            DataImportWorkflow.reject_import, RejectInput(reason="changed my mind")
        )
    assert "only an import awaiting approval" in str(again.value.cause)
    assert (await handle.result()).status == "completed"


async def test_without_require_approval_no_plan_and_no_wait(run: Run) -> None:
    handle = await run.start()
    assert (await handle.result()).status == "completed"
    assert "plan_enrichment" not in run.stubs.called
    assert "awaiting_approval" not in run.stubs.status_names()
