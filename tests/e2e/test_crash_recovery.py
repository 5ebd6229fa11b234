"""Crash safety, tested: SIGKILL the worker mid-ingest and again mid-enrichment of a
60,000-row import, start a new worker each time, and check exact counts afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.imports import Tenant
from dataimport.settings import Settings
from service.imports import ImportService
from tests.factories import wait_for, write_cmdb

ROWS = 60_000
CRASH_QUEUE = "crash-test-imports"
ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`python worker.py` as a separate OS process, so it can be killed for real."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self._env = {
            **os.environ,
            "DATABASE_URL": settings.resolved_database_url(),
            "TEMPORAL_ADDRESS": settings.resolved_temporal_address(),
            "DATAIMPORT_TASK_QUEUE": CRASH_QUEUE,
            # The worker reads files only inside its storage root: the test's uploads.
            "DATAIMPORT_STORAGE_DIR": str(settings.uploads_dir),
            "DATAIMPORT_HOME": str(settings.home_dir),
        }
        self._log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        handle = self._log.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "worker.py"),
            cwd=ROOT,
            env=self._env,
            stdout=handle,
            stderr=handle,
        )

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        assert self.process.returncode == -signal.SIGKILL

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def worker_process(settings: Settings, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    process = WorkerProcess(settings, tmp_path / "worker.log")
    yield process
    await process.stop()


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(sql), params) or 0)


async def poll_until(check: Callable[[], object], attempts: int = 3000) -> None:
    """Bounded polling (50 ms steps): fails loudly rather than hanging."""
    for _ in range(attempts):
        if await check():  # type: ignore[misc]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def test_sigkill_mid_ingest_and_mid_enrichment_loses_and_duplicates_nothing(
    settings: Settings, engine: AsyncEngine, worker_process: WorkerProcess, tmp_path: Path
) -> None:
    tenant = Tenant(uuid.uuid4(), uuid.uuid4())
    crash_settings = settings.model_copy(update={"task_queue": CRASH_QUEUE})
    service = ImportService(crash_settings, engine, await _client(settings), tenant)
    path = write_cmdb(tmp_path / "big.csv", ROWS)
    config = {"heartbeat_timeout_seconds": 2, "chunk_size": 2000, "max_parallel_chunks": 2}

    await worker_process.start()
    started = await service.start_import(path, "cmdb_export", config)
    import_id = started.data_import_id
    staged_sql = "SELECT count(*) FROM raw_import_records WHERE data_import_id = :id"

    async def mid_ingest() -> bool:
        return 0 < await scalar(engine, staged_sql, id=import_id) < ROWS

    await poll_until(mid_ingest)
    await worker_process.kill()
    staged_at_kill = await scalar(engine, staged_sql, id=import_id)
    assert 0 < staged_at_kill < ROWS

    await worker_process.start()

    async def enriching() -> bool:
        status = await scalar(
            engine,
            "SELECT count(*) FROM data_imports WHERE id = :id AND status = 'enriching'",
            id=import_id,
        )
        return status == 1

    await poll_until(enriching)
    await worker_process.kill()
    processed_at_kill = await scalar(
        engine,
        "SELECT count(*) FROM staged_row_assets WHERE data_import_id = :id",
        id=import_id,
    )
    assert processed_at_kill < ROWS

    await worker_process.start()
    done = await wait_for(
        service,
        import_id,
        ["completed", "completed_with_errors", "failed", "needs_attention"],
        attempts=1500,
    )
    assert done.status == "completed", done

    tenant_params = {"c": tenant.client_account_id, "e": tenant.engagement_id}
    assert await scalar(engine, staged_sql, id=import_id) == ROWS
    assert (
        await scalar(
            engine,
            "SELECT count(DISTINCT row_number) FROM raw_import_records WHERE data_import_id = :id "
            "AND row_number BETWEEN 1 AND :n",
            id=import_id,
            n=ROWS,
        )
        == ROWS
    )
    assert (
        await scalar(
            engine,
            "SELECT count(*) FROM assets WHERE client_account_id = :c AND engagement_id = :e",
            **tenant_params,
        )
        == ROWS
    )
    assert (
        await scalar(
            engine,
            "SELECT count(*) FROM asset_dependencies WHERE client_account_id = :c "
            "AND engagement_id = :e",
            **tenant_params,
        )
        == ROWS - 1
    )
    assert (
        await scalar(
            engine,
            "SELECT count(*) FROM raw_import_records r JOIN staged_row_assets l "
            "USING (data_import_id, row_number) WHERE r.data_import_id = :id "
            "AND l.asset_id IS NOT NULL",
            id=import_id,
        )
        == ROWS
    )
    assert (done.total_rows, done.valid_rows, done.assets_created) == (ROWS, ROWS, ROWS)
    assert done.dependencies_created == ROWS - 1


async def _client(settings: Settings):
    from service.temporal import connect_client

    return await connect_client(settings)
