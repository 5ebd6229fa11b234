"""The workflow under failure and bad input: a failing chunk stops its siblings, a chunk of an
old config generation cannot write, a bad retry signal is ignored with its reason, and a
hand-started workflow with input that fails the model ends as a classified failure.

Workflow logic runs on the session's Temporal dev server with stub activities (as
samples-python tests do) on a task queue of its own; the generation check runs against the
real PostgreSQL; the bad input comes through the stock `temporal` CLI.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer, Worker

from activities.generation import STALE_CHUNK, bump_generation, of_generation
from activities.validation import FinalizeValidationInput, PrepareInput, ValidationActivities
from dataimport import staging
from dataimport.contracts import (
    ChunkInput,
    ChunkReport,
    CreateFlowsInput,
    EnrichmentPlan,
    EnrichmentResult,
    FinalizeEnrichmentInput,
    FlowIds,
    ImportRef,
    ImportRequest,
    ImportStatus,
    IngestResult,
    ProcessingConfig,
    RegisterInput,
    RetryInput,
    RowRange,
    SaveConfigInput,
    StatusUpdate,
    ValidationCounts,
)
from dataimport.settings import Settings
from tests.factories import (
    hand_made_request,
    new_import_record,
    temporal_cli_start,
    write_cmdb,
)
from workflows.data_import import INVALID_INPUT_CODE, DataImportWorkflow

STUB_QUEUE = "hardening-stubs"
ROWS = 300
CONFIG = ProcessingConfig(chunk_size=100, max_parallel_chunks=3, heartbeat_timeout_seconds=1)


# ----- stub activities: what the workflow sees, none of the real work ------------------------


@dataclass
class Stubs:
    """Activities named as the workflow calls them; they record what they were asked."""

    started_gen0: set[int] = field(default_factory=set)
    cancelled: set[int] = field(default_factory=set)
    cancelled_at_attention: set[int] | None = None
    chunk_generations: list[tuple[int, int | None]] = field(default_factory=list)
    saved_generations: list[int | None] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="register_import")
        async def register_import(data: RegisterInput) -> None:
            return None

        @activity.defn(name="record_status")
        async def record_status(update: StatusUpdate) -> None:
            self.statuses.append(update.status)
            if update.status == "needs_attention" and self.cancelled_at_attention is None:
                self.cancelled_at_attention = set(self.cancelled)

        @activity.defn(name="ingest_file")
        async def ingest_file(request: ImportRequest) -> IngestResult:
            return IngestResult(total_rows=ROWS, blank_rows=0, detected_format={}, column_count=3)

        @activity.defn(name="create_flows")
        async def create_flows(data: CreateFlowsInput) -> FlowIds:
            return FlowIds(master_flow_id=uuid.uuid4(), discovery_flow_id=uuid.uuid4())

        @activity.defn(name="prepare_validation")
        async def prepare_validation(data: PrepareInput) -> list[str]:
            return []

        @activity.defn(name="validate_chunk")
        async def validate_chunk(data: ChunkInput) -> ChunkReport:
            first = data.rows.first_row
            self.chunk_generations.append((first, data.generation))
            if data.generation:
                return ChunkReport(rows=data.rows.last_row - first + 1)
            self.started_gen0.add(first)
            if first == 1:  # fails once its siblings run, so there is something to cancel
                while len(self.started_gen0) < ROWS // CONFIG.chunk_size:
                    await asyncio.sleep(0.05)
                raise ApplicationError("chunk 1 broke", type="boom", non_retryable=True)
            try:
                while True:  # a long chunk: heartbeats, so a cancel reaches it
                    activity.heartbeat()
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                self.cancelled.add(first)
                raise

        @activity.defn(name="finalize_validation")
        async def finalize_validation(data: FinalizeValidationInput) -> ValidationCounts:
            return ValidationCounts(valid_rows=ROWS)

        @activity.defn(name="save_processing_config")
        async def save_processing_config(data: SaveConfigInput) -> None:
            self.saved_generations.append(data.generation)

        @activity.defn(name="prepare_enrichment")
        async def prepare_enrichment(ref: ImportRef) -> EnrichmentPlan:
            return EnrichmentPlan(link_chunks=False)

        @activity.defn(name="enrich_chunk")
        async def enrich_chunk(data: ChunkInput) -> int:
            self.chunk_generations.append((-data.rows.first_row, data.generation))
            return 0

        @activity.defn(name="finalize_enrichment")
        async def finalize_enrichment(data: FinalizeEnrichmentInput) -> EnrichmentResult:
            return EnrichmentResult(processed_rows=ROWS)

        return [
            register_import,
            record_status,
            ingest_file,
            create_flows,
            prepare_validation,
            validate_chunk,
            finalize_validation,
            save_processing_config,
            prepare_enrichment,
            enrich_chunk,
            finalize_enrichment,
        ]


@pytest.fixture
async def stubs(client: Client) -> AsyncIterator[Stubs]:
    recorded = Stubs()
    async with Worker(
        client,
        task_queue=STUB_QUEUE,
        workflows=[DataImportWorkflow],
        activities=recorded.activities(),
    ):
        yield recorded


async def _start(client: Client) -> WorkflowHandle[Any, ImportStatus]:
    request = ImportRequest(
        data_import_id=uuid.uuid4(),
        client_account_id=uuid.uuid4(),
        engagement_id=uuid.uuid4(),
        category="cmdb_export",
        file_uri="file:///nowhere/stub.upload",
        filename="stub.csv",
        processing_config=CONFIG,
    )
    return await client.start_workflow(
        DataImportWorkflow.run,
        request,
        id=f"hardening-{request.data_import_id}",
        task_queue=STUB_QUEUE,
    )


async def _until(
    handle: WorkflowHandle[Any, ImportStatus], done: Callable[[ImportStatus], bool]
) -> ImportStatus:
    status = None
    for _ in range(600):
        status = await handle.query(DataImportWorkflow.status)
        if done(status):
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"never got there; last status {status}")


async def _workflow_task_failures(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    failed = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    return sum(1 for event in history.events if event.event_type == failed)


# ----- a failing chunk, its siblings, the next generation ------------------------------------


async def test_a_failing_chunk_cancels_its_siblings_before_the_import_waits(
    client: Client, stubs: Stubs
) -> None:
    handle = await _start(client)
    waiting = await _until(handle, lambda s: s.status == "needs_attention")

    assert (waiting.error_code, waiting.phase) == ("boom", "validation")
    # Both siblings had stopped before needs_attention was recorded, not merely been asked.
    assert stubs.cancelled_at_attention == {101, 201}
    assert {gen for _, gen in stubs.chunk_generations} == {0}

    await handle.signal(DataImportWorkflow.retry, RetryInput())
    done = await handle.result()

    assert done.status == "completed"
    assert stubs.saved_generations == [1]  # a retry without a new config bumps it too
    second_run = stubs.chunk_generations[3:]
    assert sorted(second_run) == [(-201, 1), (-101, 1), (-1, 1), (1, 1), (101, 1), (201, 1)]
    assert await _workflow_task_failures(handle) == 0
    await _replays(handle)


async def _replays(handle: WorkflowHandle[Any, Any]) -> None:
    """The run's own history replays on the code (the new command sequence is deterministic)."""
    replayer = Replayer(workflows=[DataImportWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await handle.fetch_history())


# ----- a bad config on the retry signal ----------------------------------------------------------


async def test_a_bad_config_on_the_retry_signal_is_ignored_with_its_reason(
    client: Client, stubs: Stubs
) -> None:
    handle = await _start(client)
    await _until(handle, lambda s: s.status == "needs_attention")

    bad = RetryInput(processing_config={"attention_timeout_seconds": 1e15})
    await handle.signal(DataImportWorkflow.retry, bad)
    refused = await _until(handle, lambda s: s.decision_refused is not None)

    assert refused.status == "needs_attention"
    assert "attention_timeout_seconds" in (refused.decision_refused or "")
    assert "1e+15" not in (refused.decision_refused or "")  # reasons, not the input
    assert await _workflow_task_failures(handle) == 0

    await handle.signal(DataImportWorkflow.retry, RetryInput(processing_config={"chunk_size": 150}))
    done = await handle.result()
    assert done.status == "completed" and done.decision_refused is None
    assert await _workflow_task_failures(handle) == 0
    await _replays(handle)


# ----- input that fails the model, through the stock temporal CLI ------------------------------


async def test_hand_started_workflow_with_bad_input_fails_classified(
    client: Client, temporal_address: str, worker: Worker
) -> None:
    request = hand_made_request(
        "file:///nowhere/x.upload", processing_config={"attention_timeout_seconds": 1e15}
    )
    workflow_id = f"bad-input-{request['data_import_id']}"
    await asyncio.to_thread(temporal_cli_start, temporal_address, workflow_id, request)
    handle = client.get_workflow_handle(workflow_id)

    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=60)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == INVALID_INPUT_CODE
    assert "attention_timeout_seconds" in cause.message and cause.non_retryable
    assert await _workflow_task_failures(handle) == 0
    await _replays(handle)


# ----- the generation check in PostgreSQL ------------------------------------------------------


async def _generation(engine: AsyncEngine, ref: ImportRef) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT config_generation FROM data_imports WHERE id = :id"),
                {"id": ref.data_import_id},
            )
        )


async def _bump_waits_on_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND regexp_replace(query, '\\s+', ' ', 'g') "
                "LIKE '%config_generation FROM data_imports%FOR UPDATE%'"
            )
        )
    return bool(waiting)


async def test_a_retry_waits_for_a_writing_chunk_and_later_chunks_are_refused(
    engine: AsyncEngine,
) -> None:
    ref = await new_import_record(engine)
    async with of_generation(engine, ref, 0) as chunk_engine:
        async with chunk_engine.begin() as conn:  # the chunk writes under generation 0 ...
            await conn.execute(
                text("UPDATE data_imports SET summary = '{\"chunk\": 0}' WHERE id = :id"),
                {"id": ref.data_import_id},
            )
        bump = asyncio.ensure_future(bump_generation(engine, ref, 1, CONFIG))
        for _ in range(300):  # ... and the retry's bump waits for it (seen in pg_stat_activity)
            if await _bump_waits_on_a_lock(engine):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the bump never waited for the chunk's lock")
        assert not bump.done()
    await bump  # the chunk committed first; now the bump goes through
    assert await _generation(engine, ref) == 1

    with pytest.raises(ApplicationError) as refused:
        async with of_generation(engine, ref, 0):
            raise AssertionError("a stale chunk must not get a connection")
    assert refused.value.type == STALE_CHUNK and refused.value.non_retryable
    async with of_generation(engine, ref, 1) as current, current.connect() as conn:
        assert await conn.scalar(text("SELECT 1")) == 1
    await bump_generation(engine, ref, 1, CONFIG)  # a retried bump changes nothing more
    assert await _generation(engine, ref) == 1


async def test_a_stale_validate_chunk_writes_nothing(
    engine: AsyncEngine, settings: Settings
) -> None:
    ref = await new_import_record(engine)
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    stored = write_cmdb(settings.uploads_dir / f"{uuid.uuid4()}.upload", 3)
    await staging.ingest_file(
        engine,
        ref,
        stored.as_uri(),
        storage_root=settings.uploads_dir,
        max_field_size=CONFIG.max_field_size,
    )
    await bump_generation(engine, ref, 1, CONFIG)
    activities = ValidationActivities(engine)
    stale = ChunkInput(
        ref=ref, rows=RowRange(first_row=1, last_row=3), processing_config=CONFIG, generation=0
    )

    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.validate_chunk, stale)
    assert refused.value.type == STALE_CHUNK
    assert await _validated(engine, ref) == 0

    current = stale.model_copy(update={"generation": 1})
    report = await ActivityEnvironment().run(activities.validate_chunk, current)
    assert report.rows == 3 and await _validated(engine, ref) == 3


async def _validated(engine: AsyncEngine, ref: ImportRef) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM raw_import_records WHERE data_import_id = :id "
                    "AND is_valid IS NOT NULL"
                ),
                {"id": ref.data_import_id},
            )
        )
