"""Import benchmarks: every category through the real workflow, against a bare-COPY floor.

    python -m bench.bench_import --category cmdb_export --rows 100000
    python -m bench.bench_import --category all --rows 100000,1000000 --workers 1,2
    python -m bench.bench_import --small [--repeat 20]
    python -m bench.bench_import --concurrent [--tenants 10 --per-tenant 10 --concurrent-rows 2000]

Starts its own embedded PostgreSQL + headless Temporal dev server in a fresh state directory,
and for every run its own `python worker.py` processes on a task queue of their own (or, with
--in-process, a worker inside this process). Imports generated files (bench/generators.py) via
``ImportService.start_import`` with a fresh tenant per run, and prints, per run, one markdown
table and one JSON line: phase times (``import_processing_steps`` and the master flow's
``phase_transitions``), rows/s, x bare COPY of the same rows measured in the same run
(bench/floor.py), peak worker RSS (psutil, children included), Temporal history events and
the largest payload in the history. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench import plans
from bench.floor import CopyFloor, measure_copy_floor
from bench.generators import CATEGORIES, generate, generate_cmdb, xlsx_estimate, xlsx_facts
from bench.stack import bench_stack, log
from bench.workers import RssSampler, WorkerProcesses, worker_env
from dataimport import imports
from dataimport.contracts import ImportStatus, ProcessingConfig
from dataimport.db import create_engine
from dataimport.imports import Tenant
from dataimport.readers import DEFAULT_MAX_UNCOMPRESSED_BYTES
from dataimport.settings import Settings
from service.imports import ImportService
from workflows.data_import import row_ranges

POLL_SECONDS = 0.2
SMALL_POLL_SECONDS = 0.02
PHASES = (("ingest", "upload"), ("validation", "validation"), ("enrichment", "enrichment"))
DONE = ("completed", "completed_with_errors")
PAYLOAD = "temporal.api.common.v1.Payload"


# --------------------------------------------------------------------------- the stack


@dataclass
class Bench:
    state_dir: Path
    database_url: str
    temporal_address: str
    client: Client
    engine: AsyncEngine  # the owner's: inspection across tenants
    in_process: bool
    service_url: str = ""  # what the workers connect as (row-level security applies)

    @property
    def app_url(self) -> str:
        return self.service_url or self.database_url

    def settings(self, task_queue: str) -> Settings:
        return Settings(
            dataimport_home=self.state_dir,
            database_url=self.app_url,
            temporal_address=self.temporal_address,
            task_queue=task_queue,
            storage_dir=self.state_dir / "uploads",
            staging_retention_schedule=False,
        )

    def service(self, task_queue: str, tenant: Tenant | None = None) -> ImportService:
        tenant = tenant or Tenant(uuid.uuid4(), uuid.uuid4())
        return ImportService(self.settings(task_queue), self.engine, self.client, tenant)


@dataclass
class WorkerSet:
    task_queue: str
    count: int
    mode: str  # "process" or "in-process"
    sampler: RssSampler


@asynccontextmanager
async def workers(bench: Bench, count: int) -> AsyncIterator[WorkerSet]:
    """`count` fresh workers on a fresh task queue, polling; RSS sampled while inside."""
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    if bench.in_process:
        from worker import build_worker  # the project's worker, as `python worker.py` builds it

        worker, engine = build_worker(bench.client, bench.settings(task_queue))
        # not its children: the Temporal dev server is one
        sampler = RssSampler([os.getpid()], children=False).start()
        try:
            async with worker:
                yield WorkerSet(task_queue, 1, "in-process", sampler)
        finally:
            sampler.stop()
            await engine.dispose()
        return
    env = worker_env(bench.state_dir, bench.app_url, bench.temporal_address, task_queue)
    procs = WorkerProcesses(bench.state_dir, env, task_queue, count)
    try:
        procs.start()
        await procs.wait_ready(bench.client)
        sampler = RssSampler(procs.pids).start()
        try:
            yield WorkerSet(task_queue, count, "process", sampler)
        finally:
            sampler.stop()
    finally:
        await asyncio.to_thread(procs.stop)


# --------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class StepTiming:
    started_at: datetime
    finished_at: datetime
    records: int

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def step_timings(engine: AsyncEngine, data_import_id: uuid.UUID) -> dict[str, StepTiming]:
    """One span per step; per-agent keys ("validation:<agent>") fold into their step."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT split_part(step_key, ':', 1), min(started_at), max(finished_at), "
                "max(records_processed) FROM import_processing_steps "
                "WHERE data_import_id = :id AND started_at IS NOT NULL "
                "AND finished_at IS NOT NULL GROUP BY 1"
            ),
            {"id": data_import_id},
        )
        return {row[0]: StepTiming(row[1], row[2], int(row[3] or 0)) for row in rows}


async def phase_seconds(
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


def _payload_sizes(message: Message) -> Iterator[int]:
    """ByteSize of every temporal.api.common.v1.Payload inside `message` (any depth)."""
    if message.DESCRIPTOR.full_name == PAYLOAD:
        yield message.ByteSize()
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            for item in value.values():
                if isinstance(item, Message):
                    yield from _payload_sizes(item)
        elif field.is_repeated:
            for item in value:
                yield from _payload_sizes(item)
        else:
            yield from _payload_sizes(value)


@dataclass(frozen=True)
class HistoryStats:
    runs: int
    events: int
    bytes: int
    largest_payload: int  # bytes of the largest single Payload
    largest_event_payloads: int  # bytes of all payloads of the event carrying the most
    largest_event_type: str
    activities: dict[str, int]  # activity type -> times scheduled

    def as_dict(self) -> dict[str, Any]:
        return {
            "activities": self.activities,
            "runs": self.runs,
            "events": self.events,
            "bytes": self.bytes,
            "largest_payload_bytes": self.largest_payload,
            "largest_event_payload_bytes": self.largest_event_payloads,
            "largest_event_type": self.largest_event_type,
        }


async def history_stats(client: Client, workflow_id: str) -> HistoryStats:
    """Every run of the workflow (continue-as-new chains included), all events measured."""
    run_ids = [e.run_id async for e in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    events = size = largest = event_largest = 0
    event_type = "-"
    activities: dict[str, int] = {}
    runs: list[str | None] = [*run_ids] or [None]
    for run_id in runs:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        for event in history.events:
            events += 1
            size += event.ByteSize()
            if event.HasField("activity_task_scheduled_event_attributes"):
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                activities[name] = activities.get(name, 0) + 1
            sizes = list(_payload_sizes(event))
            largest = max([largest, *sizes])
            if sum(sizes) > event_largest:
                event_largest = sum(sizes)
                event_type = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    return HistoryStats(
        max(1, len(run_ids)), events, size, largest, event_largest, event_type, activities
    )


async def wait_terminal(
    bench: Bench,
    tenant: Tenant,
    data_import_id: uuid.UUID,
    timeout: float,
    poll: float,
    sampler: RssSampler | None = None,
    phase_peaks: dict[str, int] | None = None,
) -> tuple[ImportStatus | None, bool]:
    """Poll the import's record until terminal or needs_attention: (status, timed out).

    With a sampler, phase_peaks gets the peak RSS reached by the end of each phase seen
    (cumulative, so a phase's own peak shows where the figure rises), to one poll's accuracy."""
    deadline = time.monotonic() + timeout
    status: ImportStatus | None = None
    while time.monotonic() < deadline:
        status = await imports.get_import(bench.engine, tenant, data_import_id)
        if sampler is not None and phase_peaks is not None and status is not None:
            phase_peaks[status.phase] = sampler.peak_total
        if status is not None and (status.is_terminal or status.status == "needs_attention"):
            return status, False
        await asyncio.sleep(poll)
    return status, True


async def _closed(client: Client, workflow_id: str) -> None:
    """Wait (bounded) for the workflow to close, so its history is complete."""
    with contextlib.suppress(Exception):  # failed, cancelled or still open: measure it anyway
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)


# --------------------------------------------------------------------------- one import


async def run_import(
    bench: Bench,
    category: str,
    path: Path,
    rows: int,
    file_bytes: int,
    count: int,
    timeout: float,
    tenant: Tenant | None = None,
) -> dict[str, Any]:
    """Import `path` once with `count` fresh workers, into a fresh tenant or into `tenant`
    (a re-import: the rows update the assets a first import made); every figure as a dict."""
    reimport = tenant is not None
    async with workers(bench, count) as ws:
        service = bench.service(ws.task_queue, tenant)
        tenant = service.tenant
        log(f"importing {path.name} ({category}, {ws.count} worker {ws.mode})")
        started = time.perf_counter()
        status = await service.start_import(path, category)
        phase_peaks: dict[str, int] = {}
        final, timed_out = await wait_terminal(
            bench, tenant, status.data_import_id, timeout, POLL_SECONDS, ws.sampler, phase_peaks
        )
        wall = time.perf_counter() - started
        status = final or status
        if timed_out:
            live = await service.status(status.data_import_id)
            status = live or status
            await bench.client.get_workflow_handle(status.workflow_id).cancel()
        else:
            await _closed(bench.client, status.workflow_id)
        ws.sampler.stop()
    history = await history_stats(bench.client, status.workflow_id)
    steps = await step_timings(bench.engine, status.data_import_id)
    ingest = steps.get("ingest")
    phases = await phase_seconds(
        bench.engine, status.data_import_id, ingest.started_at if ingest else None
    )
    log("measuring the COPY floor")
    floor = await measure_copy_floor(bench.database_url, path)
    return {
        "kind": "import",
        "reimport": reimport,
        "tenant": [str(tenant.client_account_id), str(tenant.engagement_id)],
        "category": category,
        "rows": rows,
        "file": path.name,
        "file_bytes": file_bytes,
        "workers": ws.count,
        "worker_mode": ws.mode,
        "status": status.status,
        "timed_out": timed_out,
        "error_code": status.error_code,
        "counts": {
            "total": status.total_rows,
            "valid": status.valid_rows,
            "invalid": status.invalid_rows,
            "warnings": status.warning_rows,
            "assets_created": status.assets_created,
            "assets_updated": status.assets_updated,
            "dependencies_created": status.dependencies_created,
        },
        "chunks": len(row_ranges(status.total_rows, ProcessingConfig().chunk_size)),
        "chunk_size": ProcessingConfig().chunk_size,
        "end_to_end_seconds": wall,
        "step_seconds": {name: timing.seconds for name, timing in steps.items()},
        "phase_seconds": phases,
        "floor": floor.as_dict(),
        "rss": {**_rss(ws.sampler), "peak_by_end_of_phase_bytes": phase_peaks},
        "history": history.as_dict(),
    }


def _rss(sampler: RssSampler) -> dict[str, Any]:
    return {
        "peak_total_bytes": sampler.peak_total,
        "peak_per_worker_bytes": [sampler.peaks.get(pid, 0) for pid in sampler.pids],
        "start_per_worker_bytes": [sampler.first.get(pid, 0) for pid in sampler.pids],
        "samples": sampler.samples,
    }


# --------------------------------------------------------------------------- small, concurrent


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


async def run_small(bench: Bench, count: int, repeat: int, rows: int) -> dict[str, Any]:
    """`repeat` imports of a `rows`-row CMDB file, one after another, one tenant, same workers."""
    inputs = bench.state_dir / "input"
    paths = []
    for n in range(repeat):  # distinct asset names per file: each import creates its assets
        path = inputs / f"small_{n:03d}.csv"
        generate_cmdb(path, rows, seed=n, first=n * rows + 1, errors=False)
        paths.append(path)
    seconds: list[float] = []
    statuses: list[str] = []
    async with workers(bench, count) as ws:
        service = bench.service(ws.task_queue)
        for path in paths:
            started = time.perf_counter()
            status = await service.start_import(path, "cmdb_export")
            final, _ = await wait_terminal(
                bench, service.tenant, status.data_import_id, 300, SMALL_POLL_SECONDS
            )
            seconds.append(time.perf_counter() - started)
            statuses.append(final.status if final else "unknown")
            log(f"small import {len(seconds)}/{repeat}: {seconds[-1]:.2f}s {statuses[-1]}")
        ws.sampler.stop()
    return {
        "kind": "small",
        "rows": rows,
        "repeat": repeat,
        "workers": ws.count,
        "worker_mode": ws.mode,
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "p90_seconds": _p90(seconds),
        "min_seconds": min(seconds),
        "max_seconds": max(seconds),
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "rss": _rss(ws.sampler),
    }


async def _assets_of(engine: AsyncEngine, tenant: Tenant) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM assets "
                    "WHERE client_account_id = :c AND engagement_id = :e"
                ),
                tenant.params(),
            )
            or 0
        )


async def run_concurrent(
    bench: Bench, count: int, tenants: int, per_tenant: int, rows: int, timeout: float
) -> dict[str, Any]:
    """`tenants` tenants each start `per_tenant` `rows`-row imports at the same moment."""
    inputs = bench.state_dir / "input"
    paths = []
    for k in range(per_tenant):  # distinct asset names per file; the same files for every tenant
        path = inputs / f"concurrent_{rows}_{k:02d}.csv"
        generate_cmdb(path, rows, seed=1000 + k, first=k * rows + 1, errors=False)
        paths.append(path)
    async with workers(bench, count) as ws:
        services = [bench.service(ws.task_queue) for _ in range(tenants)]
        log(f"starting {tenants} x {per_tenant} imports of {rows} rows at once")
        started = time.perf_counter()
        statuses = await asyncio.gather(
            *(s.start_import(p, "cmdb_export") for s in services for p in paths)
        )
        started_all = time.perf_counter() - started
        ids = [s.data_import_id for s in statuses]
        pending = set(ids)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            async with bench.engine.connect() as conn:
                done = await conn.execute(
                    text(
                        "SELECT id FROM data_imports WHERE id = ANY(:ids) AND (status IN "
                        "('completed', 'completed_with_errors', 'failed', 'cancelled', "
                        "'needs_attention'))"
                    ),
                    {"ids": list(pending)},
                )
                pending -= {row[0] for row in done}
            if pending:
                await asyncio.sleep(POLL_SECONDS)
        wall = time.perf_counter() - started
        ws.sampler.stop()
    results = []
    for service, status in zip([s for s in services for _ in paths], statuses, strict=True):
        final = await imports.get_import(bench.engine, service.tenant, status.data_import_id)
        results.append(final or status)
    inexact = [
        f"{r.data_import_id}: {r.status} total {r.total_rows} valid {r.valid_rows} "
        f"invalid {r.invalid_rows} assets +{r.assets_created}/~{r.assets_updated}"
        for r in results
        if not (
            r.status == "completed"
            and r.total_rows == rows
            and r.valid_rows == rows
            and r.invalid_rows == 0
            and r.assets_created + r.assets_updated == rows
        )
    ]
    asset_counts = [await _assets_of(bench.engine, s.tenant) for s in services]
    async with bench.engine.connect() as conn:
        spans = [
            float(row[0])
            for row in await conn.execute(
                text(
                    "SELECT extract(epoch FROM completed_at - created_at) FROM data_imports "
                    "WHERE id = ANY(:ids) AND completed_at IS NOT NULL"
                ),
                {"ids": ids},
            )
        ]
    return {
        "kind": "concurrent",
        "tenants": tenants,
        "per_tenant": per_tenant,
        "rows": rows,
        "workers": ws.count,
        "worker_mode": ws.mode,
        "start_all_seconds": started_all,
        "all_terminal_seconds": wall,
        "timed_out": bool(pending),
        "exact": not inexact and not pending and all(a == per_tenant * rows for a in asset_counts),
        "inexact": inexact[:20],
        "inexact_count": len(inexact),
        "assets_per_tenant": asset_counts,
        "import_seconds_median": statistics.median(spans) if spans else None,
        "import_seconds_max": max(spans) if spans else None,
        "statuses": {s: [r.status for r in results].count(s) for s in {r.status for r in results}},
        "rss": _rss(ws.sampler),
    }


# --------------------------------------------------------------------------- report


def _workers(r: dict[str, Any]) -> str:
    if r["worker_mode"] == "in-process":
        return "1 worker in-process"
    return f"{r['workers']} worker process{'es' if r['workers'] > 1 else ''}"


def _rate(rows: int, seconds: float | None) -> str:
    return f"{rows / seconds:,.0f}" if seconds else "-"


def _secs(seconds: float | None) -> str:
    return f"{seconds:.2f}" if seconds is not None else "-"


def _ratio(seconds: float | None, floor: float) -> str:
    return f"{seconds / floor:.1f}×" if seconds is not None and floor > 0 else "-"


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def render_import(r: dict[str, Any]) -> str:
    rows = r["rows"]
    floor = CopyFloor(**r["floor"])
    c, h, rss = r["counts"], r["history"], r["rss"]
    state = "timed out" if r["timed_out"] else r["status"]
    lines = [
        f"### {r['category']} · {rows:,} rows · {r['file_bytes'] / 1e6:,.1f} MB "
        f"{r['file'].rsplit('.', 1)[-1].upper()} · {_workers(r)} "
        f"{'· re-imported into the same tenant ' if r.get('reimport') else ''}· {state}",
        "",
        _row("phase", "step s", "rows/s", "× COPY", "phase s", "rows/s", "× COPY"),
        _row(*["---"] + ["--:"] * 6),
    ]
    for step, phase in PHASES:
        step_s = r["step_seconds"].get(step)
        phase_s = r["phase_seconds"].get(phase)
        lines.append(
            _row(
                step,
                _secs(step_s),
                _rate(rows, step_s),
                _ratio(step_s, floor.bare_seconds),
                _secs(phase_s),
                _rate(rows, phase_s),
                _ratio(phase_s, floor.bare_seconds),
            )
        )
    known = {step for step, _ in PHASES}
    for step, step_s in sorted(r["step_seconds"].items()):  # other steps (e.g. a prepare pass)
        if step not in known:
            lines.append(
                _row(
                    f"· {step}",
                    _secs(step_s),
                    _rate(rows, step_s),
                    _ratio(step_s, floor.bare_seconds),
                    "",
                    "",
                    "",
                )
            )
    for label, seconds in (
        ("**end to end**", r["end_to_end_seconds"]),
        ("bare COPY (floor)", floor.bare_seconds),
        ("COPY + PK/unique", floor.indexed_seconds),
        ("parse + JSON + COPY", floor.prepare_seconds + floor.bare_seconds),
    ):
        lines.append(
            _row(
                label,
                "",
                "",
                "",
                _secs(seconds),
                _rate(rows, seconds),
                _ratio(seconds, floor.bare_seconds),
            )
        )
    per_worker = " + ".join(_mib(b) for b in rss["peak_per_worker_bytes"])
    lines += [
        "",
        f"- rows: total {c['total']:,} · valid {c['valid']:,} · invalid {c['invalid']:,} · "
        f"warnings {c['warnings']:,}; inventory: assets +{c['assets_created']:,} / "
        f"~{c['assets_updated']:,} · dependencies +{c['dependencies_created']:,}; "
        f"{r['chunks']} chunk(s) of {r['chunk_size']:,} rows configured",
        "- activities scheduled: "
        + ", ".join(f"{name} ×{n}" for name, n in sorted(h["activities"].items())),
        f"- peak worker RSS (with children): {_mib(rss['peak_total_bytes'])}"
        + (f" ({per_worker})" if r["workers"] > 1 else "")
        + f", {' + '.join(_mib(b) for b in rss['start_per_worker_bytes'])} when ready"
        + (
            "; by the end of each phase: "
            + ", ".join(f"{p} {_mib(b)}" for p, b in rss["peak_by_end_of_phase_bytes"].items())
            if rss.get("peak_by_end_of_phase_bytes")
            else ""
        )
        + (
            " — this process without children (the Temporal dev server is one), worker in-process"
            if r["worker_mode"] == "in-process"
            else ""
        ),
        f"- Temporal history: {h['events']:,} events in {h['runs']} run(s), "
        f"{h['bytes'] / 1024:,.1f} KiB; largest payload {h['largest_payload_bytes'] / 1024:,.1f} "
        f"KiB; most payload bytes in one event {h['largest_event_payload_bytes'] / 1024:,.1f} "
        f"KiB ({h['largest_event_type']})",
        f"- floor: {floor.rows:,} rows, {floor.json_bytes / 1e6:,.1f} MB of JSON; parse + "
        f"json.dumps {floor.prepare_seconds:.2f}s (not in the floor)",
    ]
    if "xlsx" in r:
        x = r["xlsx"]
        lines.append(
            f"- workbook unpacks to {_mib(x['unpacked_bytes'])} (reader cap "
            f"{_mib(x['unpacked_cap_bytes'])}); largest sheet {_mib(x['largest_sheet_bytes'])} "
            + (
                f"(over {_mib(x['calamine_max_sheet_bytes'])}: the reader streams it with "
                "openpyxl, not calamine)"
                if x["largest_sheet_bytes"] > x["calamine_max_sheet_bytes"]
                else f"(under {_mib(x['calamine_max_sheet_bytes'])}: read with calamine)"
            )
            + f"; generated in {r['generate_seconds']:.0f}s (openpyxl write_only)"
        )
    if r.get("error_code"):
        lines.append(f"- error: {r['error_code']}")
    return "\n".join(lines)


def render_workers(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"### {results[0]['category']} · {results[0]['rows']:,} rows · workers compared",
        "",
        _row(
            "workers",
            "end to end s",
            "bare COPY s",
            "× COPY",
            "ingest s",
            "validation s",
            "enrichment s",
            "peak RSS",
        ),
        _row(*["--:"] * 8),
    ]
    for r in results:
        floor = r["floor"]["bare_seconds"]
        steps = r["step_seconds"]
        lines.append(
            _row(
                str(r["workers"]),
                _secs(r["end_to_end_seconds"]),
                _secs(floor),
                _ratio(r["end_to_end_seconds"], floor),
                *(_secs(steps.get(step)) for step, _ in PHASES),
                _mib(r["rss"]["peak_total_bytes"]),
            )
        )
    return "\n".join(lines)


def render_small(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"### {r['repeat']} × {r['rows']}-row CMDB import, start → terminal, one after another "
            f"({_workers(r)})",
            "",
            _row("median s", "p90 s", "min s", "max s", "first s", "statuses", "peak RSS"),
            _row(*["--:"] * 7),
            _row(
                _secs(r["median_seconds"]),
                _secs(r["p90_seconds"]),
                _secs(r["min_seconds"]),
                _secs(r["max_seconds"]),
                _secs(r["seconds"][0]),
                ", ".join(f"{k} {v}" for k, v in r["statuses"].items()),
                _mib(r["rss"]["peak_total_bytes"]),
            ),
        ]
    )


def render_concurrent(r: dict[str, Any]) -> str:
    n = r["tenants"] * r["per_tenant"]
    return "\n".join(
        [
            f"### {r['tenants']} tenants × {r['per_tenant']} imports of {r['rows']:,} CMDB rows, "
            f"started at once ({_workers(r)})",
            "",
            _row(
                "imports",
                "all terminal s",
                "starting s",
                "per import median s",
                "max s",
                "exact",
                "statuses",
                "peak RSS",
            ),
            _row(*["--:"] * 8),
            _row(
                str(n),
                _secs(r["all_terminal_seconds"]) + (" (timed out)" if r["timed_out"] else ""),
                _secs(r["start_all_seconds"]),
                _secs(r["import_seconds_median"]),
                _secs(r["import_seconds_max"]),
                "yes" if r["exact"] else f"**no** ({r['inexact_count']} inexact)",
                ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items())),
                _mib(r["rss"]["peak_total_bytes"]),
            ),
            "",
            f"- assets per tenant: {sorted(set(r['assets_per_tenant']))} "
            f"(expected {r['per_tenant'] * r['rows']:,}); per-import span = data_imports "
            "created_at → completed_at",
            *(f"- inexact: {line}" for line in r["inexact"]),
        ]
    )


def emit(markdown: str, figures: dict[str, Any], context: dict[str, Any]) -> None:
    print(markdown, flush=True)
    print(flush=True)
    print(json.dumps({**figures, **context}, default=str), flush=True)
    print(flush=True)


def _context(args: argparse.Namespace) -> dict[str, Any]:
    def git(*argv: str) -> str:
        try:
            out = subprocess.run(["git", *argv], capture_output=True, text=True, check=False)
            return out.stdout.strip()
        except OSError:
            return ""

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "chunk_size": ProcessingConfig().chunk_size,
        "seed": args.seed,
    }


# --------------------------------------------------------------------------- main


def _ints(value: str) -> list[int]:
    try:
        numbers = [int(part.replace("_", "")) for part in value.split(",") if part]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {value}") from error
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError("give positive integers")
    return numbers


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_import",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--category",
        choices=[*CATEGORIES, "all"],
        default="cmdb_export",
        help="which category's file to import (default cmdb_export); all: the four in turn",
    )
    parser.add_argument(
        "--rows", type=_ints, default=[100_000], help="data rows, or a comma list (default 100000)"
    )
    parser.add_argument(
        "--workers",
        type=_ints,
        default=[1],
        help="worker processes on the import, or a comma list to compare (e.g. 1,2; default 1)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run one worker inside this process instead (RSS is then this process')",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--small", action="store_true", help="repeat a small CMDB import")
    mode.add_argument("--concurrent", action="store_true", help="many tenants importing at once")
    parser.add_argument("--repeat", type=int, default=20, help="--small: imports (default 20)")
    parser.add_argument("--small-rows", type=int, default=100, help="--small: rows (default 100)")
    parser.add_argument("--tenants", type=int, default=10, help="--concurrent: (default 10)")
    parser.add_argument(
        "--per-tenant", type=int, default=10, help="--concurrent: imports per tenant (default 10)"
    )
    parser.add_argument(
        "--concurrent-rows", type=int, default=2000, help="--concurrent: rows each (default 2000)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="import an infrastructure workbook even when it exceeds the reader's unpacked cap",
    )
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="give up on an import after this many seconds, cancel it and report what "
        "finished (default 3600)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the state dir (stack stopped)")
    parser.add_argument(
        "--plans",
        type=int,
        default=0,
        metavar="MS",
        help="log the measured plan (auto_explain) of every statement slower than MS and "
        "print the slowest statements after each import (bench/plans.py; default off)",
    )
    parser.add_argument(
        "--reimport",
        action="store_true",
        help="after each import, import the same file again into the same tenant (updates)",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="parent of the fresh state dir (default: the system temp dir); must be "
        "traversable by the postgres system user when running as root",
    )
    args = parser.parse_args(argv)
    if args.in_process and max(args.workers) > 1:
        parser.error("--in-process runs one worker; drop --workers or --in-process")
    if min(args.repeat, args.small_rows, args.tenants, args.per_tenant, args.concurrent_rows) < 1:
        parser.error("counts must be at least 1")
    return args


def _too_big(rows: int) -> dict[str, Any]:
    estimate = xlsx_estimate(rows)
    return {
        "kind": "skipped",
        "category": "infrastructure",
        "rows": rows,
        "estimated_unpacked_bytes": estimate,
        "reason": f"an RVTools workbook of {rows:,} VMs unpacks to about {estimate / 2**30:.1f} "
        f"GiB, over the reader's {DEFAULT_MAX_UNCOMPRESSED_BYTES / 2**30:.0f} GiB cap "
        "(dataimport.readers.DEFAULT_MAX_UNCOMPRESSED_BYTES, not configurable per import): "
        "the import would be refused with archive-too-large (FILE_TOO_LARGE_UNCOMPRESSED). "
        "--force generates and imports it anyway.",
    }


async def _main(
    args: argparse.Namespace, state_dir: Path, pg_url: str, address: str, service_url: str = ""
) -> int:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    engine = create_engine(pg_url, pool_size=10)
    bench = Bench(state_dir, pg_url, address, client, engine, args.in_process, service_url)
    context = _context(args)
    failures = 0
    if args.plans:
        await plans.enable(pg_url, args.plans)
    try:
        if args.small:
            r = await run_small(bench, args.workers[0], args.repeat, args.small_rows)
            emit(render_small(r), r, context)
            return 0
        if args.concurrent:
            r = await run_concurrent(
                bench,
                args.workers[0],
                args.tenants,
                args.per_tenant,
                args.concurrent_rows,
                args.timeout,
            )
            emit(render_concurrent(r), r, context)
            return 0 if r["exact"] else 1
        categories = CATEGORIES if args.category == "all" else (args.category,)
        for category in categories:
            for rows in args.rows:
                if (
                    category == "infrastructure"
                    and xlsx_estimate(rows) > DEFAULT_MAX_UNCOMPRESSED_BYTES
                    and not args.force
                ):
                    skipped = _too_big(rows)
                    emit(
                        f"### infrastructure · {rows:,} VMs · skipped\n\n- {skipped['reason']}",
                        skipped,
                        context,
                    )
                    continue
                log(f"generating {rows:,} {category} rows")
                started = time.perf_counter()
                path, size = await asyncio.to_thread(
                    generate, category, state_dir / "input", rows, args.seed
                )
                generated = time.perf_counter() - started
                results = []
                for count in args.workers:
                    offset = plans.log_size(state_dir)
                    r = await run_import(bench, category, path, rows, size, count, args.timeout)
                    r["generate_seconds"] = generated
                    if category == "infrastructure":
                        r["xlsx"] = xlsx_facts(path)
                    emit(render_import(r), r, context)
                    if args.plans:
                        label = f"{category} · {rows:,} rows · {count} worker(s)"
                        print(plans.summarise(state_dir, offset, label), end="\n\n", flush=True)
                    results.append(r)
                    failures += r["timed_out"] or r["status"] not in DONE
                    if args.reimport:
                        again = await run_import(
                            bench,
                            category,
                            path,
                            rows,
                            size,
                            count,
                            args.timeout,
                            Tenant(*(uuid.UUID(part) for part in r["tenant"])),
                        )
                        emit(render_import(again), again, context)
                        failures += again["timed_out"] or again["status"] not in DONE
                if len(results) > 1:
                    print(render_workers(results), end="\n\n", flush=True)
                path.unlink()
    finally:
        await engine.dispose()
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    with bench_stack("dataimport-bench-", args.home, keep=args.keep) as stack:
        return asyncio.run(
            _main(args, stack.state_dir, stack.owner_url, stack.temporal_address, stack.app_url)
        )


if __name__ == "__main__":
    sys.exit(main())
