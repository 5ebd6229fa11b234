"""Exactness under crashes at scale: SIGKILL the worker mid-ingest and mid-enrichment.

    python -m bench.crash_check --category cmdb_export --rows 1000000
    python -m bench.crash_check --category all --rows 1000000

For each category, the same generated file is imported twice into two fresh tenants on one
embedded stack: once cleanly, once with its `python worker.py` killed (SIGKILL) while rows are
being staged and again while enrichment runs, a fresh worker started after each kill. The two
outcomes must be the same to the row: the staged rows (each row number once), the import's
counters, and a fingerprint of the inventory each produced (every asset's identity and fields,
every dependency by its ends' name keys). Prints one markdown table and one JSON line; exits
1 when anything differs. Not a test (tests/e2e/test_crash_recovery.py is, at 60,000 rows):
at a million rows this takes minutes, so it lives here beside the other figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.bench_import import Bench, wait_terminal
from bench.generators import generate
from bench.stack import bench_stack, log
from bench.workers import WorkerProcesses, worker_env
from dataimport.contracts import TERMINAL_STATUSES, ImportStatus
from dataimport.db import create_engine
from dataimport.imports import Tenant

CATEGORIES = ("cmdb_export", "app_discovery")
POLL_SECONDS = 0.2
# Killed mid-ingest once this share of the rows is staged (well inside the ingest phase).
INGEST_KILL_SHARE = 0.4
# The project's terminal statuses, and waiting for a decision: an end either way.
TERMINAL = (*TERMINAL_STATUSES, "needs_attention")

_STAGED = """
SELECT count(*) AS rows, count(DISTINCT row_number) AS row_numbers
FROM raw_import_records WHERE data_import_id = CAST(:id AS uuid)
"""
_LINKED = "SELECT count(*) FROM staged_row_assets WHERE data_import_id = CAST(:id AS uuid)"
_ENRICHING = """
SELECT d.status, EXISTS (
  SELECT 1 FROM import_processing_steps s WHERE s.data_import_id = d.id
    AND s.step_key LIKE 'enrichment%') AS started
FROM data_imports d WHERE d.id = CAST(:id AS uuid)
"""


class KillPointMissed(RuntimeError):
    """The phase ended before the check saw it: the file is too small for this check."""


def _tenant(alias: str) -> str:
    return (
        f"{alias}.client_account_id = CAST(:c AS uuid) AND {alias}.engagement_id = CAST(:e AS uuid)"
    )


# Everything an asset is, bar its ids, timestamps and which import wrote it.
_ASSETS = f"""
SELECT count(*) AS n, md5(coalesce(string_agg(row(a.name_key, a.name, a.hostname_key,
  a.external_id, a.vm_uuid, a.asset_type, a.hostname, a.fqdn, a.ip_address,
  a.operating_system, a.os_version, a.os_end_of_support, a.environment, a.criticality,
  a.owner, a.business_unit, a.location, a.serial_number, a.operational_status,
  a.description, a.cpu_cores, a.memory_gb, a.storage_gb, a.custom_attributes)::text, '|'
  ORDER BY a.name_key), '')) AS fingerprint
FROM assets a WHERE {_tenant("a")}
"""
# Every dependency by the name keys of its ends (asset ids differ between the tenants).
_EDGES = f"""
SELECT count(*) AS n, md5(coalesce(string_agg(row(s.name_key, t.name_key, d.port,
  d.protocol, d.dependency_type, d.confidence)::text, '|'
  ORDER BY s.name_key, t.name_key, d.port, d.protocol), '')) AS fingerprint
FROM asset_dependencies d
JOIN assets s ON s.id = d.source_asset_id
JOIN assets t ON t.id = d.target_asset_id
WHERE {_tenant("d")}
"""


@dataclass
class Outcome:
    status: str
    seconds: float
    staged_rows: int
    distinct_row_numbers: int
    linked_rows: int
    counters: dict[str, int | None]
    assets: int
    assets_fingerprint: str
    dependencies: int
    dependencies_fingerprint: str
    kills: list[dict[str, Any]]


async def _one(engine: AsyncEngine, sql: str, **params: object) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).one()


async def _poll(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(POLL_SECONDS)
    raise TimeoutError("the kill point was never reached")


class Worker:
    """One `python worker.py` on the run's queue, restartable after a SIGKILL."""

    def __init__(self, bench: Bench, task_queue: str) -> None:
        self._env = worker_env(bench.state_dir, bench.app_url, bench.temporal_address, task_queue)
        self._bench = bench
        self._queue = task_queue
        self.procs: WorkerProcesses | None = None

    async def start(self) -> None:
        self.procs = WorkerProcesses(self._bench.state_dir, self._env, self._queue, 1)
        self.procs.start()
        await self.procs.wait_ready(self._bench.client)

    def kill(self) -> int:
        assert self.procs is not None
        proc = self.procs.procs[0]
        proc.kill()  # SIGKILL: no drain, no cleanup
        proc.wait()
        return proc.returncode

    async def stop(self) -> None:
        if self.procs is not None:
            await asyncio.to_thread(self.procs.stop)


async def run(bench: Bench, category: str, path: Path, rows: int, crash: bool) -> Outcome:
    """Import `path` into a fresh tenant; with `crash`, kill the worker twice on the way."""
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    tenant = Tenant(uuid.uuid4(), uuid.uuid4())
    service = bench.service(queue, tenant)
    worker = Worker(bench, queue)
    kills: list[dict[str, Any]] = []
    await worker.start()
    try:
        started = time.perf_counter()
        status = await service.start_import(path, category)
        data_import_id = str(status.data_import_id)
        if crash:
            threshold = int(rows * INGEST_KILL_SHARE)

            async def mid_ingest() -> bool:
                staged = (await _one(bench.engine, _STAGED, id=data_import_id)).rows
                if staged >= rows:
                    raise KillPointMissed(f"all {rows:,} rows staged before the kill")
                return bool(staged >= threshold)

            async def mid_enrichment() -> bool:
                # some ranges' rows linked to their assets, not all of them
                enrichment = await _one(bench.engine, _ENRICHING, id=data_import_id)
                if enrichment.status in TERMINAL:
                    raise KillPointMissed(f"the import ended {enrichment.status} before the kill")
                if not (enrichment.status == "enriching" and enrichment.started):
                    return False
                linked = (await _one(bench.engine, _LINKED, id=data_import_id))[0]
                return bool(0 < linked < rows)

            for phase, reached in (("ingest", mid_ingest), ("enrichment", mid_enrichment)):
                await _poll(reached, timeout=3600)
                code = worker.kill()
                staged = await _one(bench.engine, _STAGED, id=data_import_id)
                linked = (await _one(bench.engine, _LINKED, id=data_import_id))[0]
                kills.append(
                    {"phase": phase, "returncode": code, "staged": staged.rows, "linked": linked}
                )
                log(f"killed mid-{phase}: {staged.rows:,} rows staged, {linked:,} linked")
                await worker.start()
        final, timed_out = await wait_terminal(
            bench, tenant, status.data_import_id, 3600, POLL_SECONDS
        )
        seconds = time.perf_counter() - started
    finally:
        await worker.stop()
    if timed_out or final is None:
        raise TimeoutError(f"{category} import {data_import_id} did not finish")
    return await _outcome(bench.engine, tenant, final, seconds, kills)


async def _outcome(
    engine: AsyncEngine, tenant: Tenant, final: ImportStatus, seconds: float, kills: list[Any]
) -> Outcome:
    id_ = str(final.data_import_id)
    params = {"c": str(tenant.client_account_id), "e": str(tenant.engagement_id)}
    staged = await _one(engine, _STAGED, id=id_)
    assets = await _one(engine, _ASSETS, **params)
    edges = await _one(engine, _EDGES, **params)
    counters = {
        name: getattr(final, name)
        for name in (
            "total_rows",
            "valid_rows",
            "invalid_rows",
            "warning_rows",
            "assets_created",
            "assets_updated",
            "dependencies_created",
        )
    }
    return Outcome(
        status=final.status,
        seconds=seconds,
        staged_rows=staged.rows,
        distinct_row_numbers=staged.row_numbers,
        linked_rows=(await _one(engine, _LINKED, id=id_))[0],
        counters=counters,
        assets=assets.n,
        assets_fingerprint=assets.fingerprint,
        dependencies=edges.n,
        dependencies_fingerprint=edges.fingerprint,
        kills=kills,
    )


def differences(clean: Outcome, crashed: Outcome, rows: int) -> list[str]:
    """What the crashed import got wrong: against the clean one, and against the file."""
    found = []
    same: tuple[str, ...] = ("status", "staged_rows", "distinct_row_numbers", "linked_rows")
    same += ("counters", "assets", "assets_fingerprint", "dependencies")
    same += ("dependencies_fingerprint",)
    for name in same:
        if getattr(clean, name) != getattr(crashed, name):
            found.append(
                f"{name}: clean {getattr(clean, name)} != crashed {getattr(crashed, name)}"
            )
    for outcome, label in ((clean, "clean"), (crashed, "crashed")):
        if outcome.staged_rows != rows or outcome.distinct_row_numbers != rows:
            found.append(f"{label}: {outcome.staged_rows:,} rows staged of {rows:,}")
    if len(crashed.kills) != 2 or any(k["returncode"] != -9 for k in crashed.kills):
        found.append(f"the worker was not killed twice: {crashed.kills}")
    return found


def render(category: str, rows: int, clean: Outcome, crashed: Outcome, diff: list[str]) -> str:
    lines = [
        f"### crash check · {category} · {rows:,} rows · {'EXACT' if not diff else 'DIFFERS'}",
        "",
        "| run | status | seconds | staged | linked rows | assets | dependencies |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for label, o in (("clean", clean), ("2 × SIGKILL", crashed)):
        lines.append(
            f"| {label} | {o.status} | {o.seconds:.1f} | {o.staged_rows:,} | {o.linked_rows:,} "
            f"| {o.assets:,} | {o.dependencies:,} |"
        )
    lines.append("")
    for kill in crashed.kills:
        lines.append(
            f"- killed mid-{kill['phase']}: {kill['staged']:,} rows staged, "
            f"{kill['linked']:,} rows linked to assets"
        )
    lines += [f"- DIFFERS: {d}" for d in diff] or ["- inventory fingerprints identical"]
    return "\n".join(lines)


async def _main(
    args: argparse.Namespace, state_dir: Path, owner_url: str, address: str, app_url: str
) -> int:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    engine = create_engine(owner_url, pool_size=5)
    bench = Bench(state_dir, owner_url, address, client, engine, False, app_url)
    failures = 0
    try:
        categories = CATEGORIES if args.category == "all" else (args.category,)
        for category in categories:
            log(f"generating {args.rows:,} {category} rows")
            path, _ = await asyncio.to_thread(
                generate, category, state_dir / "input", args.rows, args.seed
            )
            log("clean import")
            clean = await run(bench, category, path, args.rows, crash=False)
            log("import with two SIGKILLs")
            crashed = await run(bench, category, path, args.rows, crash=True)
            diff = differences(clean, crashed, args.rows)
            failures += bool(diff)
            print(render(category, args.rows, clean, crashed, diff), end="\n\n", flush=True)
            figures = {
                "category": category,
                "rows": args.rows,
                "exact": not diff,
                "clean": asdict(clean),
                "crashed": asdict(crashed),
                "differences": diff,
            }
            print(json.dumps(figures, default=str), end="\n\n", flush=True)
            path.unlink()
    finally:
        await engine.dispose()
    return 1 if failures else 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--category", choices=(*CATEGORIES, "all"), default="cmdb_export")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--home", type=Path, help="parent of the state dir (default: tmp)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    with bench_stack("dataimport-crash-", args.home) as stack:
        return asyncio.run(
            _main(args, stack.state_dir, stack.owner_url, stack.temporal_address, stack.app_url)
        )


if __name__ == "__main__":
    sys.exit(main())
