"""The worker in production, on the real stack: a SIGTERM lets in-flight activities finish and
exits 0, Prometheus serves the SDK's and the import's metrics, JSON logs carry the import and
tenant on every activity line, and OpenTelemetry records a span per activity."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle

from dataimport.contracts import workflow_id_for
from dataimport.imports import Tenant
from dataimport.settings import Settings
from observability.telemetry import worker_telemetry
from service.imports import ImportService
from service.temporal import connect_client
from tests.factories import wait_for, write_cmdb
from worker import build_worker

ROOT = Path(__file__).resolve().parents[2]
CHUNK_ACTIVITIES = {"validate_chunk", "enrich_chunk", "link_chunk", "enrich_and_link_chunk"}
FINISHED = ["completed", "completed_with_errors", "failed", "needs_attention"]


class WorkerProcess:
    """`python worker.py` on its own task queue, output (stdout + stderr) in one file."""

    def __init__(self, settings: Settings, log: Path, env: dict[str, str]) -> None:
        self._env = {
            **os.environ,
            "DATABASE_URL": settings.resolved_database_url(),
            "TEMPORAL_ADDRESS": settings.resolved_temporal_address(),
            "DATAIMPORT_TASK_QUEUE": settings.task_queue,
            # The worker reads files only inside its storage root: the test's uploads.
            "DATAIMPORT_STORAGE_DIR": str(settings.uploads_dir),
            "DATAIMPORT_HOME": str(settings.home_dir),
            **env,
        }
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        with self.log.open("ab") as handle:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "worker.py"), cwd=ROOT, env=self._env,
                stdout=handle, stderr=handle,
            )  # fmt: skip

    async def terminate(self) -> int:
        """SIGTERM, then the exit code (bounded wait: a hung shutdown fails the test)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout=300)

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
async def worker_processes(tmp_path: Path) -> AsyncIterator[WorkerFactory]:
    started: list[WorkerProcess] = []

    def make(settings: Settings, name: str, **env: str) -> WorkerProcess:
        started.append(WorkerProcess(settings, tmp_path / f"{name}.log", env))
        return started[-1]

    yield make
    for process in started:
        await process.stop()


def on_own_queue(settings: Settings, name: str) -> Settings:
    return settings.model_copy(
        update={"task_queue": f"{name}-{uuid.uuid4().hex[:8]}", "metrics_bind": None}
    )


async def poll_until(check: Callable[[], Awaitable[object]], attempts: int = 3000) -> Any:
    """Bounded polling (50 ms steps): fails loudly rather than hanging; returns the result."""
    for _ in range(attempts):
        if result := await check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(sql), params) or 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def running_chunk_activities(handle: WorkflowHandle[Any, Any]) -> set[str]:
    """Activity ids of chunk activities a worker has started and not yet finished."""
    description = await handle.describe()
    return {
        pending.activity_id
        for pending in description.raw_description.pending_activities
        if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        and pending.activity_type.name in CHUNK_ACTIVITIES
    }


async def activity_outcomes(handle: WorkflowHandle[Any, Any]) -> dict[str, dict[str, Any]]:
    """Per activity id: the started attempt and worker identity, and whether it completed."""
    events: list[HistoryEvent] = [event async for event in handle.fetch_history_events()]
    ids = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    outcomes: dict[str, dict[str, Any]] = {aid: {"completed": False} for aid in ids.values()}
    for e in events:
        if e.HasField("activity_task_started_event_attributes"):
            started = e.activity_task_started_event_attributes
            outcomes[ids[started.scheduled_event_id]].update(
                attempt=started.attempt, identity=started.identity
            )
        if e.HasField("activity_task_completed_event_attributes"):
            scheduled = e.activity_task_completed_event_attributes.scheduled_event_id
            outcomes[ids[scheduled]]["completed"] = True
    return outcomes


async def assert_imported_exactly_once(
    engine: AsyncEngine, tenant: Tenant, import_id: uuid.UUID, rows: int
) -> None:
    """Same exact counts as the crash test: every row staged, processed and an asset, once."""
    staged = "SELECT count(*) FROM raw_import_records WHERE data_import_id = :id"
    assert await scalar(engine, staged, id=import_id) == rows
    distinct = staged.replace("count(*)", "count(DISTINCT row_number)")
    assert await scalar(engine, distinct, id=import_id) == rows
    processed = (
        "SELECT count(*) FROM staged_row_assets WHERE data_import_id = :id AND asset_id IS NOT NULL"
    )
    assert await scalar(engine, processed, id=import_id) == rows
    tenant_sql = "WHERE client_account_id = :c AND engagement_id = :e"
    params = {"c": tenant.client_account_id, "e": tenant.engagement_id}
    assert await scalar(engine, f"SELECT count(*) FROM assets {tenant_sql}", **params) == rows
    dependencies = f"SELECT count(*) FROM asset_dependencies {tenant_sql}"
    assert await scalar(engine, dependencies, **params) == rows - 1


async def test_sigterm_lets_in_flight_activities_finish_and_exits_0(
    settings: Settings,
    engine: AsyncEngine,
    client: Client,
    worker_processes: WorkerFactory,
    tmp_path: Path,
) -> None:
    rows = 30_000
    tenant = Tenant(uuid.uuid4(), uuid.uuid4())
    queue_settings = on_own_queue(settings, "sigterm")
    first = worker_processes(queue_settings, "first", DATAIMPORT_GRACEFUL_SHUTDOWN_SECONDS="120")
    await first.start()
    service = ImportService(queue_settings, engine, client, tenant)
    config = {"chunk_size": 2000, "max_parallel_chunks": 2}
    path = write_cmdb(tmp_path / "big.csv", rows)
    started = await service.start_import(path, "cmdb_export", config)
    handle = client.get_workflow_handle(workflow_id_for(started.data_import_id))

    in_flight = await poll_until(lambda: running_chunk_activities(handle))
    signalled = time.monotonic()
    assert await first.terminate() == 0
    print(f"\nSIGTERM to exit: {time.monotonic() - signalled:.2f} s, in flight: {in_flight}")
    log = first.log.read_text()
    assert "shutting down: no new tasks" in log and "worker stopped gracefully" in log, log

    # Before any other worker runs: what was in flight finished on the stopping worker.
    outcomes = await activity_outcomes(handle)
    for activity_id in in_flight:
        outcome = outcomes[activity_id]
        assert outcome["completed"], outcome
        assert outcome["identity"].startswith(f"{first.pid}@"), outcome
        assert outcome["attempt"] == 1, outcome

    await worker_processes(queue_settings, "second").start()
    done = await wait_for(service, started.data_import_id, FINISHED, attempts=1500)
    assert done.status == "completed", done
    assert (done.total_rows, done.valid_rows, done.invalid_rows) == (rows, rows, 0)
    assert (done.processed_rows, done.assets_created) == (rows, rows)
    assert done.dependencies_created == rows - 1
    await assert_imported_exactly_once(engine, tenant, started.data_import_id, rows)


async def test_sigterm_past_the_grace_period_hands_the_activity_back(
    settings: Settings,
    engine: AsyncEngine,
    client: Client,
    worker_processes: WorkerFactory,
    tmp_path: Path,
) -> None:
    rows = 40_000
    tenant = Tenant(uuid.uuid4(), uuid.uuid4())
    queue_settings = on_own_queue(settings, "handback")
    first = worker_processes(queue_settings, "first", DATAIMPORT_GRACEFUL_SHUTDOWN_SECONDS="0")
    await first.start()
    service = ImportService(queue_settings, engine, client, tenant)
    started = await service.start_import(write_cmdb(tmp_path / "big.csv", rows), "cmdb_export")
    handle = client.get_workflow_handle(workflow_id_for(started.data_import_id))
    staged_sql = "SELECT count(*) FROM raw_import_records WHERE data_import_id = :id"

    async def mid_ingest() -> bool:
        return 0 < await scalar(engine, staged_sql, id=started.data_import_id) < rows

    await poll_until(mid_ingest)
    assert await first.terminate() == 0
    assert "handed back" in first.log.read_text()
    # Cancelled at once and handed back: a retryable WorkerShutdown failure, retried on the
    # next worker, which resumes after the last committed row.
    (ingest,) = (await handle.describe()).raw_description.pending_activities
    assert (ingest.activity_type.name, ingest.attempt) == ("ingest_file", 2), ingest
    assert ingest.state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED, ingest
    assert ingest.last_failure.application_failure_info.type == "WorkerShutdown", ingest
    assert ingest.last_worker_identity.startswith(f"{first.pid}@"), ingest

    await worker_processes(queue_settings, "second").start()
    done = await wait_for(service, started.data_import_id, FINISHED, attempts=1500)
    assert done.status == "completed", done
    await assert_imported_exactly_once(engine, tenant, started.data_import_id, rows)


def parse_metrics(body: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text format → (name, labels, value); enough for the SDK's exporter."""
    samples = []
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, label_text = series.partition("{")
        labels = {}
        for pair in label_text.rstrip("}").split(","):
            if "=" in pair:
                key, raw = pair.split("=", 1)
                labels[key] = raw.strip('"')
        samples.append((name, labels, float(value)))
    return samples


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(
        value
        for sample, sample_labels, value in samples
        if sample == name and labels.items() <= sample_labels.items()
    )


async def test_prometheus_endpoint_serves_sdk_metrics_and_exact_import_counters(
    settings: Settings,
    engine: AsyncEngine,
    client: Client,
    tenant: Tenant,
    worker_processes: WorkerFactory,
    tmp_path: Path,
) -> None:
    rows = 250
    port = free_port()
    queue_settings = on_own_queue(settings, "metrics")
    await worker_processes(
        queue_settings, "metrics", DATAIMPORT_METRICS_BIND=f"127.0.0.1:{port}"
    ).start()
    service = ImportService(queue_settings, engine, client, tenant)
    started = await service.start_import(write_cmdb(tmp_path / "small.csv", rows), "cmdb_export")
    done = await wait_for(service, started.data_import_id, FINISHED)
    assert done.status == "completed", done

    async def scrape() -> list[tuple[str, dict[str, str], float]] | None:
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        samples = parse_metrics(body)
        finished = total(samples, "dataimport_imports_finished_total", status="completed")
        return samples if finished else None

    samples = await poll_until(scrape, attempts=200)
    names = {name for name, _, _ in samples}
    print("\nmetric families:", sorted({n.removesuffix("_bucket") for n in names}))
    assert {"temporal_activity_execution_latency_bucket", "temporal_request"} <= names
    assert "temporal_worker_task_slots_available" in names
    cmdb = {"category": "cmdb_export"}
    assert total(samples, "dataimport_imports_finished_total", **cmdb, status="completed") == 1
    assert total(samples, "dataimport_rows_staged_total", **cmdb) == rows
    assert total(samples, "dataimport_rows_validated_total", **cmdb, outcome="valid") == rows
    assert total(samples, "dataimport_rows_validated_total", **cmdb, outcome="invalid") == 0
    assert total(samples, "dataimport_assets_written_total", **cmdb) == rows
    assert total(samples, "dataimport_dependencies_written_total", **cmdb) == rows - 1
    staged = [s for s in samples if s[0] == "dataimport_rows_staged_total"]
    assert all(labels["task_queue"] == queue_settings.task_queue for _, labels, _ in staged)


async def test_json_logs_carry_the_import_and_tenant_on_every_activity_line(
    settings: Settings,
    engine: AsyncEngine,
    client: Client,
    tenant: Tenant,
    worker_processes: WorkerFactory,
    tmp_path: Path,
) -> None:
    queue_settings = on_own_queue(settings, "jsonlogs")
    process = worker_processes(queue_settings, "json", DATAIMPORT_LOG_FORMAT="json")
    await process.start()
    service = ImportService(queue_settings, engine, client, tenant)
    started = await service.start_import(write_cmdb(tmp_path / "small.csv", 120), "cmdb_export")
    done = await wait_for(service, started.data_import_id, FINISHED)
    assert done.status == "completed", done
    assert await process.terminate() == 0

    lines = [json.loads(line) for line in process.log.read_text().splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    workflow_id = workflow_id_for(started.data_import_id)
    expected = {
        "data_import_id": str(started.data_import_id),
        "client_account_id": str(tenant.client_account_id),
        "engagement_id": str(tenant.engagement_id),
        "workflow_id": workflow_id,
    }
    activity_lines = [line for line in lines if line["logger"].startswith("dataimport.activities")]
    assert {line["activity"] for line in activity_lines} >= {
        "ingest_file",
        "finalize_validation",
        "enrich_and_link_chunk",  # one row range: its assets and links in one activity
        "record_status",  # a local activity, logged like any other
    }
    for line in activity_lines:
        assert expected.items() <= line.items(), line
    workflow_lines = [line for line in lines if line["logger"] == "temporalio.workflow"]
    assert workflow_lines, lines
    for line in workflow_lines:
        assert (line["workflow_id"], line["data_import_id"]) == (
            workflow_id,
            expected["data_import_id"],
        ), line
    assert any("worker stopped gracefully" in line["message"] for line in lines)


async def test_tracing_records_a_span_per_activity_in_one_trace_per_import(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    queue_settings = on_own_queue(settings, "tracing")
    telemetry = worker_telemetry(queue_settings, span_exporter=exporter)
    assert telemetry.tracer_provider is not None
    traced_client = await connect_client(queue_settings, telemetry)
    worker, worker_engine = build_worker(traced_client, queue_settings, engine_pool_size=4)
    # The starting client traces too, so the whole import is one trace under StartWorkflow.
    service = ImportService(queue_settings, engine, traced_client, tenant)
    try:
        async with worker:
            path = write_cmdb(tmp_path / "small.csv", 100)
            started = await service.start_import(path, "cmdb_export")
            done = await wait_for(service, started.data_import_id, FINISHED)
    finally:
        await worker_engine.dispose()
    assert done.status == "completed", done
    telemetry.tracer_provider.force_flush()

    workflow_id = workflow_id_for(started.data_import_id)
    spans = [
        span
        for span in exporter.get_finished_spans()
        if (span.attributes or {}).get("temporalWorkflowID") == workflow_id
    ]
    names = {span.name for span in spans}
    print("\nspans:", sorted(names))
    assert {
        "RunActivity:ingest_file",  # validates the CSV's rows as it stages them
        "RunActivity:finalize_validation",
        "RunActivity:enrich_and_link_chunk",  # one row range: assets and links in one
        "RunActivity:record_status",  # a local activity, traced like any other
    } <= names
    assert {"StartWorkflow:DataImportWorkflow", "RunWorkflow:DataImportWorkflow"} <= names
    import_spans = [span for span in spans if "Query" not in span.name]  # status polls
    assert len({span.context.trace_id for span in import_spans if span.context}) == 1
    telemetry.shutdown()
