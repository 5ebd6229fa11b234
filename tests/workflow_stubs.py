"""Workflow logic on the time-skipping test server: stub activities that record what the
workflow asks of them (no database), a worker per test on its own task queue, and a poll of the
status query. Shared by the workflow-logic tests in tests/integration."""

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
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from dataimport.contracts import (
    ChunkInput,
    ChunkReport,
    CreateFlowsInput,
    EnrichmentPlan,
    EnrichmentResult,
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
    SaveConfigInput,
    StatusUpdate,
    ValidationCounts,
    workflow_id_for,
)
from workflows.data_import import DataImportWorkflow

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
PLAN = PlanCounts(assets_to_create=3, assets_to_update=2, dependencies_to_add=1)


@dataclass
class Stubs:
    """The workflow's activities, recording what they were asked (no database)."""

    valid_rows: int = 10
    ingest_runs_until_cancelled: bool = False  # a long ingest, for a cancel while it runs
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
            self.validate_chunk,
        ]

    @activity.defn(name="register_import")
    async def register_import(self, data: RegisterInput) -> None:
        self.called.append("register_import")

    @activity.defn(name="ingest_file")
    async def ingest_file(self, request: ImportRequest) -> IngestResult:
        self.called.append("ingest_file")
        while self.ingest_runs_until_cancelled:
            try:
                activity.heartbeat()  # a heartbeat's answer is how a cancel reaches an activity
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                self.called.append("ingest_file cancelled")
                raise
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

    @activity.defn(name="validate_chunk")
    async def validate_chunk(self, data: ChunkInput) -> ChunkReport:
        self.called.append("validate_chunk")  # a retry validates from staging
        return ChunkReport(rows=10)

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
    queue = f"workflow-logic-{uuid.uuid4()}"
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
