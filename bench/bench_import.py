"""Import benchmark: one N-row CMDB file through the real workflow, against a COPY floor.

    python -m bench.bench_import --rows 100000 [--keep] [--home DIR]

Starts its own embedded PostgreSQL + headless Temporal dev server in a fresh state directory,
runs an in-process worker, imports a generated CMDB CSV via ``ImportService.start_import`` and
reports rows/s per phase (from ``import_processing_steps`` and the master flow's
``phase_transitions``), end to end, a bare-COPY floor of the same rows, the process' peak RSS
and the workflow's Temporal history size. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities import build_activities
from dataimport import embedded
from dataimport.contracts import ImportStatus, ProcessingConfig
from dataimport.db import create_engine
from dataimport.imports import Tenant
from dataimport.migrate import upgrade
from dataimport.settings import Settings
from starter.client import ImportService
from workflows.data_import import DataImportWorkflow, row_ranges

TASK_QUEUE = "bench-data-import"
DATABASE = "dataimport_bench"
CATEGORY = "cmdb_export"
POLL_SECONDS = 0.2
PHASES = (("ingest", "upload"), ("validation", "validation"), ("enrichment", "enrichment"))

CMDB_HEADERS = [  # as tests/factories.py
    "asset_id",
    "asset_name",
    "Type",
    "IP Address",
    "hostname",
    "operating_system",
    "cpu_count",
    "memory_gb",
    "storage_gb",
    "environment",
    "criticality",
    "owner",
    "department",
    "location",
    "dependencies",
]

_SYSTEMS = ("CRM", "ERP", "HR", "WEB", "PAY", "BI", "MAIL", "DWH", "LOG", "SSO", "IAM", "EDI")
_TYPES = (
    ("APP", "Application"),
    ("APP", "Server"),
    ("DB", "Database"),
    ("WEB", "VM"),
    ("WEB", "Virtual Server"),
    ("LB", "Load Balancer"),
    ("SRV", "Physical"),
)
_OPERATING_SYSTEMS = (
    "Ubuntu 22.04 LTS",
    "Ubuntu 20.04 LTS",
    "Red Hat Enterprise Linux 8.6",
    "Red Hat Enterprise Linux 9",
    "Windows Server 2019 Datacenter",
    "Windows Server 2022 Standard",
    "Windows Server 2016",
    "Oracle Linux 8",
    "Debian 11",
    "SUSE Linux Enterprise Server 15",
    "Windows Server 2012 R2 Standard",  # past end of support: a warning
    "CentOS 7",  # past end of support: a warning
)
_CPUS = ("2", "4", "4", "8", "8", "16", "32")
_MEMORY = ("8 GB", "16 GB", "16 GB", "32 GB", "64 GB", "8192 MB", "128")
_STORAGE = ("100", "250", "500", "1 TB", "2,048", "80")
_ENVIRONMENTS = ("prod", "Production", "prod", "uat", "dev", "test", "staging", "DR")
_CRITICALITIES = ("High", "Critical", "Medium", "Low", "1 - Critical", "Tier 2")
_OWNERS = ("Jane Roe", "DBA Team", "Platform Team", "Ops Team", "Network Team", "HR IT", "")
_DEPARTMENTS = ("IT", "Finance", "Sales", "HR", "Operations", "Marketing")
_LOCATIONS = ("Frankfurt", "Amsterdam", "London DC1", "Paris DC2", "Dublin", "Madrid")
_BAD_CPU = "four"  # ~0.1% of rows carry a type error, so the issue report has something


# --------------------------------------------------------------------------- input file


def _asset_name(n: int) -> str:
    system = _SYSTEMS[n % len(_SYSTEMS)]
    role = _TYPES[(n // len(_SYSTEMS)) % len(_TYPES)][0]
    return f"{system}-{role}-{n:06d}"


def _cmdb_rows(count: int, seed: int) -> Iterator[list[str]]:
    rng = random.Random(seed)
    for n in range(1, count + 1):
        name = _asset_name(n)
        targets: list[str] = []
        for _ in range(rng.choice((1, 1, 2))):  # each server depends on 1-2 others
            other = rng.randrange(1, count + 1)
            if other != n and count > 1:
                targets.append(_asset_name(other))
        yield [
            f"A-{n:07d}",
            name,
            _TYPES[(n // len(_SYSTEMS)) % len(_TYPES)][1],
            f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
            name.lower(),
            rng.choice(_OPERATING_SYSTEMS),
            _BAD_CPU if n % 1000 == 500 else rng.choice(_CPUS),
            rng.choice(_MEMORY),
            rng.choice(_STORAGE),
            rng.choice(_ENVIRONMENTS),
            rng.choice(_CRITICALITIES),
            rng.choice(_OWNERS),
            rng.choice(_DEPARTMENTS),
            rng.choice(_LOCATIONS),
            ";".join(targets),
        ]


def generate_cmdb(path: Path, count: int, seed: int = 42) -> int:
    """Write `count` CMDB rows (plus header) to `path`; returns the file size in bytes."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CMDB_HEADERS)
        writer.writerows(_cmdb_rows(count, seed))
    return path.stat().st_size


# --------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class StepTiming:
    started_at: datetime
    finished_at: datetime
    records: int

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class ImportRun:
    status: ImportStatus
    timed_out: bool  # gave up waiting: the phases without figures had not finished
    wall_seconds: float
    steps: dict[str, StepTiming]
    phase_seconds: dict[str, float]  # upload / validation / enrichment, from transitions
    history_events: int
    history_bytes: int
    rss_before_kb: int
    rss_peak_kb: int
    chunks: int


@dataclass(frozen=True)
class CopyFloor:
    prepare_seconds: float  # csv parse + json.dumps in Python, not part of the floor
    bare_seconds: float  # COPY into a table without indexes
    indexed_seconds: float  # COPY into a table with raw_import_records' PK + unique key


def _peak_rss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def _step_timings(engine: AsyncEngine, data_import_id: uuid.UUID) -> dict[str, StepTiming]:
    """One span per step; per-agent keys ("validation:<agent>") fold into their step."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT split_part(step_key, ':', 1), min(started_at), max(finished_at), "
                "max(records_processed) FROM import_processing_steps "
                "WHERE data_import_id = :id GROUP BY 1"
            ),
            {"id": data_import_id},
        )
        return {row[0]: StepTiming(row[1], row[2], int(row[3] or 0)) for row in rows}


async def _phase_seconds(
    engine: AsyncEngine, data_import_id: uuid.UUID, upload_start: datetime | None
) -> dict[str, float]:
    """Phase spans from master_flows.phase_transitions (first entry per status).

    The "ingesting" transition happens before the master flow exists, so the upload phase
    starts at the ingest step's started_at instead.
    """
    async with engine.connect() as conn:
        raw = await conn.scalar(
            text(
                "SELECT m.phase_transitions FROM master_flows m JOIN data_imports d "
                "ON m.flow_id = d.master_flow_id WHERE d.id = :id"
            ),
            {"id": data_import_id},
        )
    first_at: dict[str, datetime] = {}
    for entry in _json(raw) or []:
        first_at.setdefault(entry["status"], datetime.fromisoformat(entry["at"]))
    done = first_at.get("completed") or first_at.get("completed_with_errors")
    bounds = {
        "upload": (upload_start, first_at.get("validating")),
        "validation": (first_at.get("validating"), first_at.get("enriching")),
        "enrichment": (first_at.get("enriching"), done),
    }
    return {
        phase: (end - start).total_seconds()
        for phase, (start, end) in bounds.items()
        if start is not None and end is not None
    }


async def _wait_terminal(
    service: ImportService, status: ImportStatus, timeout: float
) -> tuple[ImportStatus, bool]:
    """Poll until terminal (or needs_attention); (last status, whether it timed out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await service.status(status.data_import_id) or status
        if status.is_terminal or status.status == "needs_attention":
            return status, False
        await asyncio.sleep(POLL_SECONDS)
    return status, True


async def run_import(
    state_dir: Path,
    database_url: str,
    temporal_address: str,
    csv_path: Path,
    timeout: float,
) -> ImportRun:
    """Import `csv_path` through the real workflow with an in-process worker."""
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    engine = create_engine(database_url, pool_size=10)
    settings = Settings(
        dataimport_home=state_dir,
        database_url=database_url,
        temporal_address=temporal_address,
        task_queue=TASK_QUEUE,
        storage_dir=state_dir / "uploads",
    )
    service = ImportService(settings, engine, client, Tenant(uuid.uuid4(), uuid.uuid4()))
    try:
        async with Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[DataImportWorkflow],
            activities=build_activities(engine),
            max_concurrent_activities=8,
        ):
            rss_before = _peak_rss_kb()
            started = time.perf_counter()
            status = await service.start_import(csv_path, CATEGORY)
            status, timed_out = await _wait_terminal(service, status, timeout)
            wall = time.perf_counter() - started
            rss_peak = _peak_rss_kb()
            handle = client.get_workflow_handle(status.workflow_id)
            if timed_out:  # the worker's shutdown cancels the running activities
                await handle.cancel()
        history = await handle.fetch_history()
        steps = await _step_timings(engine, status.data_import_id)
        ingest = steps.get("ingest")
        phases = await _phase_seconds(
            engine, status.data_import_id, ingest.started_at if ingest else None
        )
    finally:
        await engine.dispose()
    return ImportRun(
        status=status,
        timed_out=timed_out,
        wall_seconds=wall,
        steps=steps,
        phase_seconds=phases,
        history_events=len(history.events),
        history_bytes=sum(event.ByteSize() for event in history.events),
        rss_before_kb=rss_before,
        rss_peak_kb=rss_peak,
        chunks=len(row_ranges(status.total_rows, ProcessingConfig().chunk_size)),
    )


_FLOOR_COLUMNS = ("client_account_id", "engagement_id", "data_import_id", "row_number", "raw_data")
_FLOOR_BARE = """
CREATE TABLE bench_copy_floor (client_account_id uuid NOT NULL, engagement_id uuid NOT NULL,
  data_import_id uuid NOT NULL, row_number int NOT NULL, raw_data jsonb NOT NULL)
"""
_FLOOR_INDEXED = """
CREATE TABLE bench_copy_floor (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  client_account_id uuid NOT NULL, engagement_id uuid NOT NULL, data_import_id uuid NOT NULL,
  row_number int NOT NULL, raw_data jsonb NOT NULL, UNIQUE (data_import_id, row_number))
"""


def _floor_records(csv_path: Path) -> list[tuple[Any, ...]]:
    """The same rows as the ingest stages them: header -> cell JSON, one tuple per row."""
    tenant, engagement, data_import = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        headers = next(reader)
        return [
            (
                tenant,
                engagement,
                data_import,
                number,
                json.dumps(dict(zip(headers, cells, strict=False)), ensure_ascii=False),
            )
            for number, cells in enumerate(reader, 1)
        ]


async def _timed_copy(conn: asyncpg.Connection[Any], ddl: str, records: Sequence[Any]) -> float:
    await conn.execute("DROP TABLE IF EXISTS bench_copy_floor")
    await conn.execute(ddl)
    await conn.execute("CHECKPOINT")  # do not bill the import's dirty pages to the floor
    started = time.perf_counter()
    async with conn.transaction():
        await conn.copy_records_to_table(
            "bench_copy_floor", records=records, columns=_FLOOR_COLUMNS
        )
    elapsed = time.perf_counter() - started
    await conn.execute("DROP TABLE bench_copy_floor")
    return elapsed


async def measure_copy_floor(database_url: str, csv_path: Path) -> CopyFloor:
    """One COPY of every row in one transaction, records prepared beforehand."""
    started = time.perf_counter()
    records = await asyncio.to_thread(_floor_records, csv_path)
    prepare = time.perf_counter() - started
    conn: asyncpg.Connection[Any] = await asyncpg.connect(database_url)
    try:
        bare = await _timed_copy(conn, _FLOOR_BARE, records)
        indexed = await _timed_copy(conn, _FLOOR_INDEXED, records)
    finally:
        await conn.close()
    return CopyFloor(prepare_seconds=prepare, bare_seconds=bare, indexed_seconds=indexed)


# --------------------------------------------------------------------------- report


def _rate(rows: int, seconds: float | None) -> str:
    return f"{rows / seconds:,.0f}" if seconds else "-"


def _secs(seconds: float | None) -> str:
    return f"{seconds:.2f}" if seconds is not None else "-"


def _ratio(seconds: float | None, floor: float) -> str:
    return f"{seconds / floor:.1f}x" if seconds is not None and floor > 0 else "-"


def render(console: Console, rows: int, file_bytes: int, run: ImportRun, floor: CopyFloor) -> None:
    s = run.status
    table = Table(
        title=f"import of {rows:,} CMDB rows ({file_bytes / 1e6:.1f} MB) - "
        + ("*timed out" if run.timed_out else s.status),
        title_justify="left",
    )
    table.add_column("phase")
    for name in ("step s", "rows/s", "×COPY", "phase s", "rows/s", "×COPY"):
        table.add_column(name, justify="right")
    for step, phase in PHASES:
        timing = run.steps.get(step)
        step_s = timing.seconds if timing else None
        phase_s = run.phase_seconds.get(phase)
        table.add_row(
            step,
            _secs(step_s),
            _rate(rows, step_s),
            _ratio(step_s, floor.bare_seconds),
            _secs(phase_s),
            _rate(rows, phase_s),
            _ratio(phase_s, floor.bare_seconds),
        )
    table.add_section()
    totals = (
        ("end to end" + ("*" if run.timed_out else ""), run.wall_seconds),
        ("COPY floor", floor.bare_seconds),
        ("COPY+PK/uniq", floor.indexed_seconds),
    )
    for label, seconds in totals:
        blank = ("", "", "")
        ratio = _ratio(seconds, floor.bare_seconds)
        table.add_row(label, *blank, _secs(seconds), _rate(rows, seconds), ratio)
    console.print(table)
    console.print(
        "[dim]step = import_processing_steps started_at..finished_at; phase = master flow "
        "phase_transitions (upload from the ingest step start, incl. create_flows); end to end = "
        f"start_import() until a terminal status was polled (every {POLL_SECONDS}s). COPY floor: "
        "one copy_records_to_table of prepared records, one transaction; preparing them "
        f"(csv + json.dumps) took {floor.prepare_seconds:.2f}s more.[/dim]"
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row(
        "rows",
        f"total {s.total_rows:,} · valid {s.valid_rows:,} · invalid {s.invalid_rows:,} · "
        f"warnings {s.warning_rows:,}",
    )
    facts.add_row(
        "inventory",
        f"assets +{s.assets_created:,} / ~{s.assets_updated:,} · "
        f"dependencies +{s.dependencies_created:,}",
    )
    facts.add_row("chunks", f"{run.chunks} per chunked phase")
    facts.add_row(
        "temporal history", f"{run.history_events} events, {run.history_bytes / 1024:.1f} KiB"
    )
    facts.add_row(
        "peak RSS",
        f"{run.rss_peak_kb / 1024:.0f} MiB (this process, worker in-process; "
        f"{run.rss_before_kb / 1024:.0f} MiB before the import)",
    )
    console.print(facts)


# --------------------------------------------------------------------------- main


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_import", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="data rows (default 100000)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="give up on the import after this many seconds, cancel it and report what "
        "finished (default 3600)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the state dir (stack stopped)")
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="parent of the fresh state dir (default: the system temp dir); must be "
        "traversable by the postgres system user when running as root",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    console = Console()
    parent: Path | None = args.home.resolve() if args.home else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix="dataimport-bench-", dir=parent))
    state_dir.chmod(0o755)  # mkdtemp makes it 0700: the postgres system user must traverse it
    console.print(f"[dim]state dir {state_dir}[/dim]")
    try:
        csv_path = state_dir / "input" / f"cmdb_{args.rows}.csv"
        csv_path.parent.mkdir()
        with console.status(f"generating {args.rows:,} rows"):
            file_bytes = generate_cmdb(csv_path, args.rows)
        with console.status("starting PostgreSQL + Temporal"):
            pg = embedded.start_postgres(state_dir, database=DATABASE)
            upgrade(pg.database_url)
            temporal = embedded.start_temporal(state_dir, ui=False)
        with console.status("importing"):
            run = asyncio.run(
                run_import(state_dir, pg.database_url, temporal.address, csv_path, args.timeout)
            )
        with console.status("measuring the COPY floor"):
            floor = asyncio.run(measure_copy_floor(pg.database_url, csv_path))
        render(console, args.rows, file_bytes, run, floor)
        if run.timed_out:
            console.print(
                f"[red]gave up after {args.timeout:.0f}s in phase {run.status.phase} "
                f"({run.status.progress:.0%}); the workflow was cancelled"
            )
            return 1
        if run.status.status not in ("completed", "completed_with_errors"):
            console.print(f"[red]import ended {run.status.status}: {run.status.error_message}")
            return 1
        return 0
    finally:
        with console.status("stopping the stack"):
            embedded.stop_temporal(state_dir)
            embedded.stop_postgres(state_dir)
        if args.keep:
            console.print(f"[dim]kept {state_dir}[/dim]")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
