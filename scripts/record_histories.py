"""Record one Temporal history per DataImportWorkflow path into tests/histories/.

tests/unit/test_replay.py replays every committed history against the current workflow code, so a
change that would break imports already running fails CI (docs/versioning.md). The stack is
the one tests/conftest.py starts: embedded PostgreSQL, a Temporal dev server, one in-process
worker. Existing files are kept unless --overwrite is given: a history must stay as long as
imports recorded by that code may still be running.

    .venv/bin/python -m scripts.record_histories                 # every path not yet recorded
    .venv/bin/python -m scripts.record_histories cmdb_completed --tag agent-review-v1
    .venv/bin/python -m scripts.record_histories --help            # the known paths
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_calamine import CalamineWorkbook
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import build_activities
from dataimport.contracts import FailInput, ImportStatus, RetryInput
from dataimport.db import create_engine
from dataimport.imports import Tenant
from dataimport.migrate import upgrade
from dataimport.settings import SEARCH_ATTRIBUTES, Settings
from devstack import embedded
from service.imports import ImportService
from tests.factories import CMDB_HEADERS
from workflows.data_import import DataImportWorkflow

ROOT = Path(__file__).resolve().parents[1]
HISTORIES = ROOT / "tests" / "histories"
SAMPLES = ROOT / "dataimport" / "samples"
TASK_QUEUE = "record-histories"
# Every generated cell carries this; tests/unit/test_replay.py checks no history contains it.
MARKER = "rowcell"
MIN_CHECKED_LENGTH = 6  # shorter cells ("4", "prod") occur in any text by chance

UNMAPPED_HEADERS = ["Server Label", "Primary Address"]
MAPPING = {"column_mapping": {"Server Label": "name", "Primary Address": "ip_address"}}
IP = CMDB_HEADERS.index("IP Address")
NAMES = [CMDB_HEADERS.index(header) for header in ("asset_name", "hostname", "asset_id")]


def cmdb_row(n: int) -> list[str]:
    deps = f"SRV-{MARKER}-{n - 1:04d}" if n > 1 else ""
    return [
        f"A-{MARKER}-{n:04d}",
        f"SRV-{MARKER}-{n:04d}",
        "Server",
        f"10.77.{n // 256}.{n % 256}",
        f"{MARKER}-host-{n:04d}.example",
        "Ubuntu 22.04",
        "4",
        "16 GB",
        "100",
        "prod",
        "High",
        f"{MARKER}-owner-{n:04d}",
        "IT",
        "Frankfurt",
        deps,
    ]


def unmapped_rows(count: int) -> list[list[str]]:
    return [[f"{MARKER}-label-{n:02d}", f"10.78.0.{n}"] for n in range(1, count + 1)]


# ----- the stack -------------------------------------------------------------------------


@dataclass
class Recorder:
    """Starts imports of files it writes, and remembers each file for the leak check."""

    service: ImportService
    client: Client
    files: Path
    inputs: list[Path] = field(default_factory=list)

    def csv(self, name: str, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> Path:
        path = self.files / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(headers)
            writer.writerows(rows)
        return path

    def cmdb(
        self, name: str, count: int, edit: Callable[[list[list[str]]], None] | None = None
    ) -> Path:
        rows = [cmdb_row(n) for n in range(1, count + 1)]
        if edit is not None:
            edit(rows)
        return self.csv(name, CMDB_HEADERS, rows)

    async def start(
        self, path: Path, category: str = "cmdb_export", config: dict[str, Any] | None = None
    ) -> ImportStatus:
        self.inputs.append(path)
        return await self.service.start_import(path, category, config)

    async def wait(self, started: ImportStatus, wanted: str, interval: float = 0.1) -> None:
        """Poll the live status (bounded: a path that never gets there fails loudly)."""
        status = None
        for _ in range(int(60 / interval)):
            status = await self.service.status(started.data_import_id)
            if status is not None and status.status == wanted:
                return
            await asyncio.sleep(interval)
        raise RuntimeError(f"{started.workflow_id} never reached {wanted}; last: {status}")

    def handle(self, started: ImportStatus) -> WorkflowHandle[Any, ImportStatus]:
        return self.client.get_workflow_handle_for(DataImportWorkflow.run, started.workflow_id)


@asynccontextmanager
async def running_stack(database_url: str, work: Path) -> AsyncIterator[Recorder]:
    """Temporal dev server + one worker, as in tests/conftest.py."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(embedded.temporal_binary()),
        data_converter=pydantic_data_converter,
        search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
        dev_server_log_level="error",
    )
    engine = create_engine(database_url, pool_size=10)
    try:
        async with Worker(
            env.client,
            task_queue=TASK_QUEUE,
            workflows=[DataImportWorkflow],
            activities=build_activities(engine, settings=_settings(env, database_url, work)),
            max_concurrent_activities=8,
        ):
            yield Recorder(_service(env, engine, database_url, work), env.client, work)
    finally:
        await engine.dispose()
        await env.shutdown()


def _settings(env: WorkflowEnvironment, database_url: str, work: Path) -> Settings:
    return Settings(
        dataimport_home=work,
        database_url=database_url,
        temporal_address=env.client.service_client.config.target_host,
        task_queue=TASK_QUEUE,
        storage_dir=work / "uploads",
    )


def _service(
    env: WorkflowEnvironment, engine: AsyncEngine, database_url: str, work: Path
) -> ImportService:
    settings = _settings(env, database_url, work)
    return ImportService(settings, engine, env.client, Tenant(uuid.uuid4(), uuid.uuid4()))


# ----- the paths: each starts one import and drives it to its end ------------------------

PathRun = Callable[[Recorder], Awaitable[ImportStatus]]


async def cmdb_completed(rec: Recorder) -> ImportStatus:
    return await rec.start(rec.cmdb("servers.csv", 20))


async def cmdb_completed_with_errors(rec: Recorder) -> ImportStatus:
    # Since the data-quality policy a bad cpu count is a warning (the row is kept): two rows
    # without a name are what still rejects rows.
    def two_unnamed_rows(rows: list[list[str]]) -> None:
        for row in (rows[3], rows[11]):
            for column in NAMES:
                row[column] = ""

    return await rec.start(rec.cmdb("servers.csv", 20, two_unnamed_rows))


async def cmdb_multi_chunk_completed(rec: Recorder) -> ImportStatus:
    """Three validation/enrichment chunks, two at a time: the parallel command order."""
    config = {"chunk_size": 100, "max_parallel_chunks": 2}
    return await rec.start(rec.cmdb("servers.csv", 250), config=config)


async def retry_signal_completed(rec: Recorder) -> ImportStatus:
    started = await rec.start(rec.csv("odd.csv", UNMAPPED_HEADERS, unmapped_rows(3)))
    await rec.wait(started, "needs_attention")
    await rec.handle(started).signal(
        DataImportWorkflow.retry, RetryInput(processing_config=MAPPING)
    )
    return started


async def retry_update_completed(rec: Recorder) -> ImportStatus:
    started = await rec.start(rec.csv("odd.csv", UNMAPPED_HEADERS, unmapped_rows(3)))
    await rec.wait(started, "needs_attention")
    await rec.service.retry(started.data_import_id, MAPPING)
    return started


def _mostly_invalid(rec: Recorder) -> Path:
    def bad_ips(rows: list[list[str]]) -> None:
        for row in rows[:8]:
            row[IP] = "999.1.1.1"

    return rec.cmdb("bad.csv", 10, bad_ips)


async def fail_signal_failed(rec: Recorder) -> ImportStatus:
    started = await rec.start(_mostly_invalid(rec))
    await rec.wait(started, "needs_attention")
    await rec.handle(started).signal(DataImportWorkflow.fail, FailInput(reason="wrong extract"))
    return started


async def fail_update_failed(rec: Recorder) -> ImportStatus:
    started = await rec.start(_mostly_invalid(rec))
    await rec.wait(started, "needs_attention")
    await rec.service.fail(started.data_import_id, "wrong extract")
    return started


async def attention_timeout_failed(rec: Recorder) -> ImportStatus:
    path = rec.csv("odd.csv", UNMAPPED_HEADERS, unmapped_rows(2))
    return await rec.start(path, config={"attention_timeout_seconds": 1})


async def cancelled_while_waiting(rec: Recorder) -> ImportStatus:
    started = await rec.start(rec.csv("odd.csv", UNMAPPED_HEADERS, unmapped_rows(2)))
    await rec.wait(started, "needs_attention")
    await rec.handle(started).cancel()
    return started


async def cancelled_while_validating(rec: Recorder) -> ImportStatus:
    """Ten chunks one at a time: validation runs long enough to be caught and cancelled."""
    config = {"chunk_size": 100, "max_parallel_chunks": 1}
    started = await rec.start(rec.cmdb("servers.csv", 1000), config=config)
    await rec.wait(started, "validating", interval=0.02)
    await rec.handle(started).cancel()
    return started


async def cancelled_while_enriching(rec: Recorder) -> ImportStatus:
    """Twenty enrichment chunks one at a time, cancelled while they run: since patch
    chunk-generation the workflow waits until the running chunk has stopped."""
    config = {"chunk_size": 1000, "max_parallel_chunks": 1}
    started = await rec.start(rec.cmdb("servers.csv", 20_000), config=config)
    await rec.wait(started, "enriching", interval=0.02)
    for _ in range(3000):  # the first chunk done: the next one is running
        status = await rec.service.status(started.data_import_id)
        if status is not None and status.progress > 0.56:
            break
        await asyncio.sleep(0.01)
    await rec.handle(started).cancel()
    return started


async def cancelled_at_start(rec: Recorder) -> ImportStatus:
    """Cancelled right after the start. Timing decides whether the cancel arrives before the
    first workflow task or while register_import is out; both are valid histories."""
    started = await rec.start(rec.cmdb("servers.csv", 20))
    await rec.handle(started).cancel()
    return started


async def cancelled_while_ingesting(rec: Recorder) -> ImportStatus:
    """Cancelled while the single ingest activity runs (patch cancel-in-activity)."""
    started = await rec.start(rec.cmdb("servers.csv", 60_000))
    await rec.wait(started, "ingesting", interval=0.02)
    await rec.handle(started).cancel()
    return started


async def model_agents_unconfigured_completed(rec: Recorder) -> ImportStatus:
    """Model agents wanted, an extra header no alias knows, a worker without a model: the
    agents' activity runs (patch model-agents), records a skipped step, the import completes."""
    rows = [[*cmdb_row(n), f"note {n}"] for n in range(1, 21)]
    path = rec.csv("servers.csv", [*CMDB_HEADERS, "Rack Whisper"], rows)
    return await rec.start(path, config={"model_agents": True})


async def empty_file_failed(rec: Recorder) -> ImportStatus:
    path = rec.files / "empty.csv"
    path.write_bytes(b"")
    started = await rec.start(path)
    await rec.wait(started, "needs_attention")
    await rec.service.fail(started.data_import_id, "bad file")
    return started


APPROVAL = {"require_approval": True}


async def approval_approved_completed(rec: Recorder) -> ImportStatus:
    """Planned after validation, approved through the Update (patch approval-gate)."""
    started = await rec.start(rec.cmdb("servers.csv", 20), config=APPROVAL)
    await rec.wait(started, "awaiting_approval")
    await rec.service.approve(started.data_import_id)
    return started


async def approval_rejected(rec: Recorder) -> ImportStatus:
    started = await rec.start(rec.cmdb("servers.csv", 20), config=APPROVAL)
    await rec.wait(started, "awaiting_approval")
    await rec.service.reject(started.data_import_id, "wrong estate")
    return started


async def approval_timeout_failed(rec: Recorder) -> ImportStatus:
    config = {**APPROVAL, "attention_timeout_seconds": 1}
    return await rec.start(rec.cmdb("servers.csv", 20), config=config)


def _sample(name: str, category: str) -> PathRun:
    async def run(rec: Recorder) -> ImportStatus:
        copy = rec.files / name  # a copy: the filename is all the history may show of it
        shutil.copyfile(SAMPLES / name, copy)
        return await rec.start(copy, category)

    return run


# name -> (how to produce it, the terminal status it must end in)
PATHS: dict[str, tuple[PathRun, str]] = {
    "cmdb_completed": (cmdb_completed, "completed"),
    "cmdb_completed_with_errors": (cmdb_completed_with_errors, "completed_with_errors"),
    "cmdb_multi_chunk_completed": (cmdb_multi_chunk_completed, "completed"),
    "retry_signal_completed": (retry_signal_completed, "completed"),
    "retry_update_completed": (retry_update_completed, "completed"),
    "fail_signal_failed": (fail_signal_failed, "failed"),
    "fail_update_failed": (fail_update_failed, "failed"),
    "attention_timeout_failed": (attention_timeout_failed, "failed"),
    "cancelled_while_waiting": (cancelled_while_waiting, "cancelled"),
    "cancelled_while_validating": (cancelled_while_validating, "cancelled"),
    "cancelled_while_enriching": (cancelled_while_enriching, "cancelled"),
    "cancelled_at_start": (cancelled_at_start, "cancelled"),
    "empty_file_failed": (empty_file_failed, "failed"),
    "cancelled_while_ingesting": (cancelled_while_ingesting, "cancelled"),
    "model_agents_unconfigured_completed": (model_agents_unconfigured_completed, "completed"),
    "approval_approved_completed": (approval_approved_completed, "completed"),
    "approval_rejected": (approval_rejected, "rejected"),
    "approval_timeout_failed": (approval_timeout_failed, "failed"),
    "app_discovery_completed": (
        _sample("azure_migrate_dependencies.csv", "app_discovery"),
        "completed",
    ),
    "infrastructure_completed": (_sample("rvtools_export.xlsx", "infrastructure"), "completed"),
    "sensitive_data_completed": (
        _sample("data_store_inventory.csv", "sensitive_data"),
        "completed",
    ),
}


# ----- recording and checking --------------------------------------------------------------


async def final_status(handle: WorkflowHandle[Any, ImportStatus]) -> str:
    """Wait until the workflow has closed, so the fetched history is complete."""
    try:
        result = await handle.result()
    except WorkflowFailureError as error:
        if isinstance(error.cause, CancelledError):
            return "cancelled"
        raise
    return result.status


def decoded_text(history: dict[str, Any]) -> str:
    """The history JSON plus every payload decoded: payload bytes are base64 in the JSON."""
    parts = [json.dumps(history)]
    stack: list[Any] = [history]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                with suppress(ValueError):  # binascii.Error: not base64 after all
                    parts.append(base64.b64decode(data).decode("utf-8", "replace"))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return "\n".join(parts)


def cell_values(path: Path) -> set[str]:
    """Data cells (not headers) long enough that finding one in a history means a leak."""
    rows: list[list[Any]] = []
    if path.suffix == ".xlsx":
        book = CalamineWorkbook.from_path(str(path))
        for sheet in book.sheet_names:
            rows.extend(book.get_sheet_by_name(sheet).to_python()[1:])
    else:
        text = path.read_text(encoding="utf-8-sig")
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|") if text else csv.excel
        rows.extend(list(csv.reader(text.splitlines(), dialect))[1:])
    cells = {str(cell).strip() for row in rows for cell in row}
    return {cell for cell in cells if len(cell) >= MIN_CHECKED_LENGTH}


def leaked(history: WorkflowHistory, inputs: Iterable[Path]) -> list[str]:
    text = decoded_text(history.to_json_dict())
    return sorted({cell for path in inputs for cell in cell_values(path) if cell in text})


async def record_one(rec: Recorder, name: str) -> WorkflowHistory:
    run, expected = PATHS[name]
    rec.inputs.clear()
    started = await run(rec)
    handle = rec.handle(started)
    status = await final_status(handle)
    if status != expected:
        raise RuntimeError(f"{name}: ended {status}, expected {expected}")
    history = await handle.fetch_history()
    if found := leaked(history, rec.inputs):
        raise RuntimeError(f"{name}: cell values in the history: {found[:5]}")
    return history


async def record(database_url: str, work: Path, targets: dict[str, Path]) -> None:
    async with running_stack(database_url, work) as rec:
        for name, target in targets.items():
            history = await record_one(rec, name)
            target.write_text(history.to_json() + "\n", encoding="utf-8")
            size = target.stat().st_size
            print(f"{target.relative_to(ROOT)}: {len(history.events)} events, {size} bytes")


def targets(names: Sequence[str], tag: str | None, overwrite: bool) -> dict[str, Path]:
    """Path name -> history file; existing files only with --overwrite."""
    unknown = sorted(set(names) - set(PATHS))
    if unknown:
        raise SystemExit(f"unknown paths {unknown}; known: {', '.join(PATHS)}")
    suffix = f".{tag}.json" if tag else ".json"
    chosen = {name: HISTORIES / f"{name}{suffix}" for name in names or PATHS}
    return {name: path for name, path in chosen.items() if overwrite or not path.exists()}


def _tag(value: str) -> str:
    if not value.replace("-", "").replace("_", "").isalnum():
        raise argparse.ArgumentTypeError("letters, digits, - and _ only")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("paths", nargs="*", help=f"default: all of {', '.join(PATHS)}")
    parser.add_argument(
        "--tag", type=_tag, help="write <path>.<tag>.json, e.g. the patch id of a change"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing histories")
    args = parser.parse_args(argv)
    todo = targets(args.paths, args.tag, args.overwrite)
    if not todo:
        print("every path is recorded already (--overwrite replaces them)")
        return
    HISTORIES.mkdir(parents=True, exist_ok=True)
    # The bad-file paths fail activities on purpose; their tracebacks are noise here.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    # Outside any 0700 pytest dir: the postgres system user must traverse it (as in conftest).
    work = Path(tempfile.mkdtemp(prefix="dataimport-record-"))
    try:
        info = embedded.start_postgres(work, database="dataimport_record")
        try:
            upgrade(info.owner_database_url)  # migrations run as the owner
            asyncio.run(record(info.database_url, work, todo))
        finally:
            embedded.stop_postgres(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
