"""Run one worker of the import task queue: `python worker.py` (or `dataimport worker`).

Several workers can share one stack; any one can be killed and the others carry on.
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
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities import build_activities
from dataimport.db import create_engine
from dataimport.log_context import ImportLogContext
from dataimport.logging_setup import configure_logging
from dataimport.settings import Settings, get_settings
from dataimport.telemetry import WorkerTelemetry, worker_telemetry
from workflows.data_import import DataImportWorkflow

log = logging.getLogger("dataimport.worker")


async def connect_client(settings: Settings, telemetry: WorkerTelemetry | None = None) -> Client:
    """A client; with `telemetry`, on its runtime (metrics) and with its tracing interceptor."""
    return await Client.connect(
        settings.resolved_temporal_address(),
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=telemetry.runtime if telemetry else None,
        interceptors=telemetry.interceptors if telemetry else [],
    )


def build_worker(
    client: Client, settings: Settings, engine_pool_size: int | None = None
) -> tuple[Worker, AsyncEngine]:
    """A worker whose concurrent activities never exceed the database pool."""
    pool = engine_pool_size or settings.db_pool_size
    engine = create_engine(settings.resolved_database_url(), pool_size=pool)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[DataImportWorkflow],
        activities=build_activities(engine, settings=settings),
        interceptors=[ImportLogContext()],
        max_concurrent_activities=min(settings.max_concurrent_activities, pool),
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )
    return worker, engine


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    telemetry = worker_telemetry(settings)
    client = await connect_client(settings, telemetry)
    worker, engine = build_worker(client, settings)
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
