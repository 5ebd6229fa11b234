"""Run one worker of the import task queue: `python worker.py` (or `dataimport worker`).

Several workers can share one stack; any one can be killed and the others carry on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities import build_activities
from dataimport.db import create_engine
from dataimport.logging_setup import configure_logging
from dataimport.settings import Settings, get_settings
from workflows.data_import import DataImportWorkflow

log = logging.getLogger("dataimport.worker")


async def connect_client(settings: Settings) -> Client:
    return await Client.connect(
        settings.resolved_temporal_address(),
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


def build_worker(
    client: Client, settings: Settings, engine_pool_size: int | None = None
) -> tuple[Worker, object]:
    """A worker whose concurrent activities never exceed the database pool."""
    pool = engine_pool_size or settings.db_pool_size
    engine = create_engine(settings.resolved_database_url(), pool_size=pool)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[DataImportWorkflow],
        activities=build_activities(engine),
        max_concurrent_activities=min(settings.max_concurrent_activities, pool),
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )
    return worker, engine


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    client = await connect_client(settings)
    worker, engine = build_worker(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started on task queue %s", settings.task_queue)
    async with worker:
        await stop.wait()
        log.info("shutting down: finishing in-flight activities")
    await engine.dispose()  # type: ignore[attr-defined]


def main() -> None:
    configure_logging()
    asyncio.run(run_worker())


if __name__ == "__main__":
    main()
