"""Run one worker of the import task queue: `python worker.py` (or `dataimport worker`).

Several workers can share one stack; any one can be killed and the others carry on.
Every worker also runs the staging-retention workflow and, at start, makes sure its Temporal
Schedule exists with the configured retention (`ensure_retention_schedule`).
SIGTERM (or Ctrl-C) stops polling, lets in-flight activities finish for up to
DATAIMPORT_GRACEFUL_SHUTDOWN_SECONDS, cancels what is still running after that (Temporal
retries it on another worker) and exits 0. Metrics, log format and tracing: docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities import build_activities
from activities.retention import RetentionActivities
from dataimport.contracts import RetentionPolicy, StagingRetentionInput
from dataimport.db import create_engine
from dataimport.settings import Settings, get_settings
from observability.log_context import ImportLogContext
from observability.logging_setup import configure_logging
from observability.telemetry import worker_telemetry
from service.temporal import connect_client
from workflows.data_import import DataImportWorkflow
from workflows.staging_retention import StagingRetentionWorkflow

log = logging.getLogger("dataimport.worker")

RETENTION_SCHEDULE_ID = "dataimport-staging-retention"
RETENTION_WORKFLOW_ID = "dataimport-staging-retention"  # the schedule appends the start time


def build_worker(
    client: Client, settings: Settings, engine_pool_size: int | None = None
) -> tuple[Worker, AsyncEngine]:
    """A worker whose concurrent activities never exceed the database pool."""
    pool = engine_pool_size or settings.db_pool_size
    engine = create_engine(settings.resolved_database_url(), pool_size=pool)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[DataImportWorkflow, StagingRetentionWorkflow],
        activities=[
            *build_activities(engine, settings=settings),
            *RetentionActivities(engine).all(),
        ],
        interceptors=[ImportLogContext()],
        max_concurrent_activities=min(settings.max_concurrent_activities, pool),
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )
    return worker, engine


def retention_schedule(settings: Settings) -> Schedule:
    """The staging-retention schedule as configured: every interval, never two runs at once."""
    policy = RetentionPolicy(
        retention_days=settings.staging_retention_days,
        batch_size=settings.staging_retention_batch_size,
    )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            StagingRetentionWorkflow.run,
            StagingRetentionInput(policy=policy),
            id=RETENTION_WORKFLOW_ID,
            task_queue=settings.task_queue,
            static_summary=(
                f"Remove the staged rows of imports finished over {policy.retention_days} days ago"
            ),
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(
                    every=timedelta(minutes=settings.staging_retention_interval_minutes)
                )
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            note=f"staging retention: {policy.retention_days} days (DATAIMPORT_STAGING_RETENTION_*)"
        ),
    )


async def _schedule_differs(client: Client, wanted: Schedule, have: ScheduleDescription) -> bool:
    action, current = wanted.action, have.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    if not isinstance(current, ScheduleActionStartWorkflow):
        return True
    try:
        [args] = await client.data_converter.decode(current.args, [StagingRetentionInput])
        summary = current.static_summary
        if isinstance(summary, Payload):  # described schedules carry it encoded
            [summary] = await client.data_converter.decode([summary], [str])
    except Exception:  # an argument of another shape: replace it
        return True
    return (
        current.workflow != action.workflow
        or current.task_queue != action.task_queue
        or args != action.args[0]
        or summary != action.static_summary
        or [i.every for i in have.schedule.spec.intervals]
        != [i.every for i in wanted.spec.intervals]
        or have.schedule.policy.overlap != wanted.policy.overlap
    )


async def ensure_retention_schedule(client: Client, settings: Settings) -> str:
    """Create the staging-retention schedule, or bring it to the current settings.

    Idempotent (any number of workers may call it at once): answers "created", "updated" or
    "unchanged". An operator's pause survives an update.
    """
    wanted = retention_schedule(settings)
    try:
        await client.create_schedule(RETENTION_SCHEDULE_ID, wanted)
        return "created"
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(RETENTION_SCHEDULE_ID)
    if not await _schedule_differs(client, wanted, await handle.describe()):
        return "unchanged"

    def keep_state(update: ScheduleUpdateInput) -> ScheduleUpdate:
        state = update.description.schedule.state
        if state.paused:  # the operator's pause, and the note saying why, stay
            wanted.state.paused, wanted.state.note = True, state.note
        return ScheduleUpdate(schedule=wanted)

    await handle.update(keep_state)
    return "updated"


async def trigger_retention(client: Client) -> None:
    """Run the staging-retention schedule now (skipped if a run is still going)."""
    await client.get_schedule_handle(RETENTION_SCHEDULE_ID).trigger()


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    telemetry = worker_telemetry(settings)
    client = await connect_client(settings, telemetry)
    worker, engine = build_worker(client, settings)
    if settings.staging_retention_schedule:
        try:
            outcome = await ensure_retention_schedule(client, settings)
            log.info("staging-retention schedule %s: %s", RETENTION_SCHEDULE_ID, outcome)
        except RPCError as error:  # imports still run; the schedule is retried at next start
            log.warning("staging-retention schedule not ensured: %s", error)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker started on task queue %s (metrics: %s, tracing: %s)",
        settings.task_queue,
        f"http://{settings.metrics_bind}/metrics" if settings.metrics_bind else "off",
        "on" if telemetry.tracer_provider else "off",
    )
    async with worker:
        await stop.wait()
        log.info(
            "shutting down: no new tasks; in-flight activities get %.0f s to finish, "
            "then are cancelled and handed back for a retry on another worker",
            settings.graceful_shutdown_seconds,
        )
        stopping = time.monotonic()
    log.info("worker stopped gracefully after %.1f s", time.monotonic() - stopping)
    await engine.dispose()
    telemetry.shutdown()


def main() -> None:
    configure_logging(log_format=get_settings().log_format)
    asyncio.run(run_worker())


if __name__ == "__main__":
    main()
