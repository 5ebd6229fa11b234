"""Staging retention: staged rows of imports finished longer ago than the retention period go,
in batches, resumably, without touching the inventory; reports then say so.

Domain purges run against the session's real PostgreSQL; the workflow runs on the
time-skipping test server (real activities, and stub activities for its failure logic); the
Temporal Schedule and the CLI run against the session's dev server. The retention job reads
across tenants, so every assertion is about this test's own imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    WorkflowFailureError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.retention import RetentionActivities
from dataimport import retention
from dataimport.contracts import (
    ListPurgeableInput,
    PurgeableImports,
    PurgeCandidate,
    PurgeInput,
    PurgeProgress,
    PurgeResult,
    RetentionPolicy,
    StagingRetentionInput,
)
from dataimport.imports import Tenant, get_import
from dataimport.reports import write_error_report, write_failed_rows
from dataimport.retention import StagingPurged
from dataimport.settings import Settings
from worker import (
    RETENTION_SCHEDULE_ID,
    ensure_retention_schedule,
    retention_schedule,
    trigger_retention,
)
from workflows.staging_retention import PURGE_FAILED, StagingRetentionWorkflow

CLI = Path(sys.executable).parent / "dataimport"
TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
FINDING = '[{"code": "missing-required", "severity": "error", "field": "name", "message": "m"}]'


# ----- test data ---------------------------------------------------------------------------


@dataclass
class Seeded:
    data_import_id: uuid.UUID
    tenant: Tenant
    rows: int


async def seed_import(
    engine: AsyncEngine,
    tenant: Tenant,
    *,
    status: str = "completed_with_errors",
    finished_days_ago: float | None = 40,
    rows: int = 10,
    invalid: int = 2,
) -> Seeded:
    """An import record with `rows` staged rows (the first `invalid` rejected), finished
    `finished_days_ago` (None: never finished), and one asset per valid row, linked in a chain
    of dependencies, the staged rows pointing at them as enrichment leaves them."""
    data_import_id = uuid.uuid4()
    params = {**tenant.params(), "id": data_import_id}
    key = {"key": f"srv-{data_import_id}-"}  # asset names: srv-<import>-<row>
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO data_imports (id, client_account_id, engagement_id, import_category, "
                "filename, file_uri, workflow_id, status, phase, total_rows, valid_rows, "
                "invalid_rows, detected_format, completed_at) VALUES (:id, :c, :e, "
                "'cmdb_export', 'servers.csv', 'file:///servers.csv', :wf, :status, 'complete', "
                ":rows, :valid, :invalid, CAST(:format AS jsonb), "
                "CASE WHEN CAST(:days AS float) IS NULL THEN NULL "
                "ELSE now() - make_interval(secs => CAST(:days AS float) * 86400) END)"
            ),
            {
                **params,
                "wf": f"data-import-{data_import_id}",
                "status": status,
                "rows": rows,
                "valid": rows - invalid,
                "invalid": invalid,
                "format": '{"headers": ["name"]}',
                "days": finished_days_ago,
            },
        )
        await conn.execute(
            text(
                "INSERT INTO assets (client_account_id, engagement_id, name, name_key, "
                "source_import_id, created_by_import_id) SELECT :c, :e, upper(:key || g), "
                ":key || g, :id, :id FROM generate_series(CAST(:invalid AS int) + 1, :rows) g"
            ),
            {**params, **key, "rows": rows, "invalid": invalid},
        )
        await conn.execute(
            text(
                "INSERT INTO raw_import_records (data_import_id, client_account_id, engagement_id, "
                "row_number, raw_data, is_valid, validation_errors) "
                "SELECT :id, :c, :e, g, jsonb_build_object('name', 'srv-' || g), g > :invalid, "
                "CASE WHEN g <= :invalid THEN CAST(:finding AS jsonb) END "
                "FROM generate_series(1, :rows) g"
            ),
            {**params, **key, "rows": rows, "invalid": invalid, "finding": FINDING},
        )
        await conn.execute(
            text(
                "INSERT INTO staged_row_assets (data_import_id, row_number, asset_id, "
                "client_account_id, engagement_id) "
                "SELECT :id, g, a.id, :c, :e "
                "FROM generate_series(CAST(:invalid AS int) + 1, :rows) g "
                "JOIN assets a ON a.client_account_id = :c AND a.engagement_id = :e "
                "AND a.name_key = :key || g"
            ),
            {**params, **key, "rows": rows, "invalid": invalid},
        )
        await conn.execute(
            text(
                "INSERT INTO asset_dependencies (client_account_id, engagement_id, "
                "source_asset_id, target_asset_id, source_import_id) "
                "SELECT :c, :e, a.id, b.id, :id FROM generate_series(1, :rows) g "
                "JOIN assets a ON a.client_account_id = :c AND a.engagement_id = :e "
                "AND a.name_key = :key || g "
                "JOIN assets b ON b.client_account_id = :c AND b.engagement_id = :e "
                "AND b.name_key = :key || (g - 1)"
            ),
            {**params, **key, "rows": rows},
        )
    return Seeded(data_import_id, tenant, rows)


async def staged_rows(engine: AsyncEngine, seeded: Seeded) -> int:
    async with engine.connect() as conn:
        count: int = await conn.scalar(
            text("SELECT count(*) FROM raw_import_records WHERE data_import_id = :id"),
            {"id": seeded.data_import_id},
        )
    return count


async def linked_rows(engine: AsyncEngine, seeded: Seeded) -> int:
    """The staged rows' links to their assets (removed with the rows)."""
    async with engine.connect() as conn:
        count: int = await conn.scalar(
            text("SELECT count(*) FROM staged_row_assets WHERE data_import_id = :id"),
            {"id": seeded.data_import_id},
        )
    return count


async def markers(engine: AsyncEngine, seeded: Seeded) -> tuple[bool, bool]:
    """(claimed by retention, every staged row removed)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT staging_purge_started_at IS NOT NULL, staging_purged_at IS NOT NULL "
                    "FROM data_imports WHERE id = :id"
                ),
                {"id": seeded.data_import_id},
            )
        ).one()
    return bool(row[0]), bool(row[1])


async def inventory(engine: AsyncEngine, tenant: Tenant) -> tuple[list[Any], list[Any]]:
    """The tenant's assets and dependencies, every column that matters, in a stable order."""
    async with engine.connect() as conn:
        assets = (
            await conn.execute(
                text(
                    "SELECT id, name, name_key, source_import_id, updated_at FROM assets "
                    "WHERE client_account_id = :c AND engagement_id = :e ORDER BY name_key"
                ),
                tenant.params(),
            )
        ).all()
        dependencies = (
            await conn.execute(
                text(
                    "SELECT id, source_asset_id, target_asset_id, updated_at FROM "
                    "asset_dependencies WHERE client_account_id = :c AND engagement_id = :e "
                    "ORDER BY id"
                ),
                tenant.params(),
            )
        ).all()
    return list(assets), list(dependencies)


def own(results: list[PurgeResult], *seeded: Seeded) -> dict[uuid.UUID, PurgeResult]:
    ids = {s.data_import_id for s in seeded}
    return {r.data_import_id: r for r in results if r.data_import_id in ids}


def candidate_of(seeded: Seeded, completed_days_ago: float = 40) -> PurgeCandidate:
    return PurgeCandidate(
        data_import_id=seeded.data_import_id,
        client_account_id=seeded.tenant.client_account_id,
        engagement_id=seeded.tenant.engagement_id,
        completed_at=retention.cutoff_for(_now(), int(completed_days_ago)),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def purge_input(seeded: Seeded, batch_size: int = 3, retention_days: int = 30) -> PurgeInput:
    return PurgeInput(
        candidate=candidate_of(seeded),
        cutoff=retention.cutoff_for(_now(), retention_days),
        batch_size=batch_size,
    )


# ----- the domain purge (real PostgreSQL) --------------------------------------------------


async def test_only_due_staging_goes_and_the_inventory_stays(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    old_completed = await seed_import(engine, tenant, finished_days_ago=40, rows=10)
    old_failed = await seed_import(engine, tenant, status="failed", finished_days_ago=31, rows=7)
    old_cancelled = await seed_import(engine, tenant, status="cancelled", rows=6, invalid=0)
    recent = await seed_import(engine, tenant, finished_days_ago=29, rows=5)
    running = await seed_import(engine, tenant, status="enriching", finished_days_ago=None)
    waiting = await seed_import(engine, tenant, status="needs_attention", finished_days_ago=None)
    # A terminal status is what makes an import finished, even with a stale completed_at.
    odd = await seed_import(engine, tenant, status="validating", finished_days_ago=90)
    due, kept = [old_completed, old_failed, old_cancelled], [recent, running, waiting, odd]
    before = await inventory(engine, tenant)
    assert len(before[0]) == 8 + 5 + 6 + 3 + 8 * 3  # one asset per valid row
    assert len(before[1]) == 7 + 4 + 5 + 2 + 7 * 3  # a chain over each import's assets
    status_before = await get_import(engine, tenant, old_completed.data_import_id)
    links_before = [await linked_rows(engine, seeded) for seeded in kept]
    assert all(links_before) and await linked_rows(engine, old_completed) > 0

    results = own(await retention.purge_expired(engine, RetentionPolicy(batch_size=3)), *due, *kept)

    assert set(results) == {s.data_import_id for s in due}
    # 10 rows: 3+3+3+1; 7 rows: 3+3+1; 6 rows: 3+3 and an empty batch that proves it is done.
    assert [
        (results[s.data_import_id].rows_deleted, results[s.data_import_id].batches) for s in due
    ] == [
        (10, 4),
        (7, 3),
        (6, 3),
    ]
    assert all(results[s.data_import_id].purged for s in due)
    for seeded in due:
        assert await staged_rows(engine, seeded) == 0
        assert await linked_rows(engine, seeded) == 0  # the rows' asset links went with them
        assert await markers(engine, seeded) == (True, True)
    for seeded in kept:
        assert await staged_rows(engine, seeded) == seeded.rows
        assert await markers(engine, seeded) == (False, False)
    assert [await linked_rows(engine, seeded) for seeded in kept] == links_before
    assert await inventory(engine, tenant) == before  # not a row or a timestamp changed
    # The import record keeps its counters: status still answers what the import did.
    assert await get_import(engine, tenant, old_completed.data_import_id) == status_before

    again = own(await retention.purge_expired(engine, RetentionPolicy(batch_size=3)), *due, *kept)
    assert again == {}
    direct = await retention.purge_import(engine, purge_input(old_completed))
    assert (direct.purged, direct.rows_deleted) == (False, 0)  # already purged: left alone


async def test_a_crashed_purge_resumes_where_it_stopped(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    seeded = await seed_import(engine, tenant, rows=10)
    seen: list[PurgeProgress] = []

    def crash_after_two_batches(progress: PurgeProgress) -> None:
        seen.append(progress)
        if len(seen) == 2:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        await retention.purge_import(engine, purge_input(seeded), on_batch=crash_after_two_batches)
    # Two batches committed; the import is claimed (reports refuse) but not yet purged, so the
    # next listing still finds it.
    assert await staged_rows(engine, seeded) == 4
    assert await markers(engine, seeded) == (True, False)
    assert seen[-1] == PurgeProgress(after_row=6, rows_deleted=6, batches=2)
    with pytest.raises(StagingPurged):
        await write_error_report(engine, tenant, seeded.data_import_id, io.StringIO())
    listed = await retention.list_purgeable(
        engine, ListPurgeableInput(cutoff=retention.cutoff_for(_now(), 30), limit=500)
    )
    assert seeded.data_import_id in {item.data_import_id for item in listed.items}

    resumed = await retention.purge_import(engine, purge_input(seeded), resume=seen[-1])
    assert (resumed.purged, resumed.rows_deleted, resumed.batches) == (True, 10, 4)
    assert await staged_rows(engine, seeded) == 0
    assert await markers(engine, seeded) == (True, True)


async def test_a_purge_from_a_stale_resume_point_still_removes_everything(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    """A heartbeat lost with the crash leaves an older resume point: nothing is skipped."""
    seeded = await seed_import(engine, tenant, rows=9)

    def crash(progress: PurgeProgress) -> None:
        raise RuntimeError("killed before the heartbeat")

    with pytest.raises(RuntimeError):
        await retention.purge_import(engine, purge_input(seeded, batch_size=4), on_batch=crash)
    assert await staged_rows(engine, seeded) == 5
    result = await retention.purge_import(engine, purge_input(seeded, batch_size=4))
    assert (result.purged, result.rows_deleted) == (True, 5)
    assert await staged_rows(engine, seeded) == 0


async def test_a_purge_is_tenant_scoped(engine: AsyncEngine, tenant: Tenant) -> None:
    seeded = await seed_import(engine, tenant, rows=5)
    other = Seeded(seeded.data_import_id, Tenant(tenant.client_account_id, uuid.uuid4()), 5)
    result = await retention.purge_import(engine, purge_input(other))
    assert (result.purged, result.rows_deleted) == (False, 0)
    assert await staged_rows(engine, seeded) == 5
    assert await markers(engine, seeded) == (False, False)
    # Clean up, so no later pass over the shared database has to.
    assert (await retention.purge_import(engine, purge_input(seeded))).purged


async def test_reports_say_the_staged_rows_were_removed(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    seeded = await seed_import(engine, tenant, rows=6, invalid=2)
    findings, failed = io.StringIO(), io.StringIO()
    assert await write_error_report(engine, tenant, seeded.data_import_id, findings) == 2
    assert await write_failed_rows(engine, tenant, seeded.data_import_id, failed) == 2

    assert (await retention.purge_import(engine, purge_input(seeded))).purged
    for report in (write_error_report, write_failed_rows):
        with pytest.raises(StagingPurged) as refused:
            await report(engine, tenant, seeded.data_import_id, io.StringIO())
        message = str(refused.value.args[0])
        assert "staged rows" in message and "retention" in message and "UTC" in message
        assert str(seeded.data_import_id) in message
    # Another tenant still learns nothing: the id answers as unknown.
    stranger = Tenant(uuid.uuid4(), uuid.uuid4())
    assert await retention.staging_removed_at(engine, stranger, seeded.data_import_id) is None


async def test_the_listing_reads_the_partial_index(engine: AsyncEngine) -> None:
    """With sequential scans off the planner must be able to use the index at all: the
    query's predicate matches the index's (literal statuses), so cleanup stays cheap."""
    async with engine.begin() as conn:
        # The listing runs inside purgeable_imports() (migration 0006): its body, with the
        # function's parameters as values, is what the planner sees there.
        definition = await conn.scalar(
            text("SELECT prosrc FROM pg_proc WHERE proname = 'purgeable_imports'")
        )
        values = {
            "cutoff": "now()",
            "after_completed_at": "NULL::timestamptz",
            "after_id": "NULL::uuid",
            "max_rows": "100",
        }
        body = re.sub(r"\b(\w+)\b", lambda m: values.get(m.group(1), m.group(1)), definition)
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = (await conn.execute(text("EXPLAIN " + body))).scalars()
        assert "ix_data_imports_staging_purgeable" in "\n".join(plan)


async def test_the_activity_heartbeats_every_batch_and_resumes_from_its_last_heartbeat(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    seeded = await seed_import(engine, tenant, rows=7)
    activities = RetentionActivities(engine)
    first = ActivityEnvironment()
    beats: list[Any] = []

    def die_on_second_beat(*details: Any) -> None:
        beats.append(details[0])
        if len(beats) == 2:
            raise RuntimeError("worker killed")

    first.on_heartbeat = die_on_second_beat
    with pytest.raises(RuntimeError):
        await first.run(activities.purge_staged_rows, purge_input(seeded, batch_size=2))
    assert beats[-1] == {"after_row": 4, "rows_deleted": 4, "batches": 2}

    retried = ActivityEnvironment()  # the next attempt sees the last heartbeat's details
    retried.info = dataclasses.replace(retried.info, heartbeat_details=[beats[-1]], attempt=2)
    result = await retried.run(activities.purge_staged_rows, purge_input(seeded, batch_size=2))
    assert (result.purged, result.rows_deleted, result.batches) == (True, 7, 4)
    assert await staged_rows(engine, seeded) == 0


# ----- the workflow (time-skipping test server) --------------------------------------------


@pytest.fixture(scope="module")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
    )
    yield env
    await env.shutdown()


async def test_the_workflow_purges_every_due_import_over_several_runs(
    time_skipping: WorkflowEnvironment, engine: AsyncEngine, tenant: Tenant
) -> None:
    due = [await seed_import(engine, tenant, rows=n) for n in (5, 8, 3)]
    recent = await seed_import(engine, tenant, finished_days_ago=2, rows=4)
    before = await inventory(engine, tenant)
    queue = f"retention-{uuid.uuid4()}"
    async with Worker(
        time_skipping.client,
        task_queue=queue,
        workflows=[StagingRetentionWorkflow],
        activities=RetentionActivities(engine).all(),
    ):
        totals = await time_skipping.client.execute_workflow(
            StagingRetentionWorkflow.run,
            StagingRetentionInput(policy=RetentionPolicy(batch_size=2, page_size=2)),
            id=f"retention-{uuid.uuid4()}",
            task_queue=queue,
        )
    # Pages of two: at least two runs (continue-as-new), one pass, no failures.
    assert totals.runs >= 2 and totals.imports_failed == 0
    assert totals.imports_purged >= 3 and totals.rows_deleted >= 16
    for seeded in due:
        assert await staged_rows(engine, seeded) == 0
        assert await markers(engine, seeded) == (True, True)
    assert await staged_rows(engine, recent) == 4
    assert await inventory(engine, tenant) == before


@dataclass
class StubRetention:
    """Stub activities (same names as the real ones): three due imports, the second fails."""

    candidates: list[PurgeCandidate]
    in_flight: int = 0
    most_in_flight: int = 0

    @activity.defn(name="list_purgeable_imports")
    async def list_purgeable_imports(self, data: ListPurgeableInput) -> PurgeableImports:
        return PurgeableImports(items=self.candidates[: data.limit])

    @activity.defn(name="purge_staged_rows")
    async def purge_staged_rows(self, data: PurgeInput) -> PurgeResult:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            if data.candidate.data_import_id == self.candidates[1].data_import_id:
                raise ApplicationError("disk on fire", non_retryable=True)
            return PurgeResult(
                data_import_id=data.candidate.data_import_id, rows_deleted=7, batches=1, purged=True
            )
        finally:
            self.in_flight -= 1


async def test_a_failed_purge_skips_that_import_and_fails_the_run_visibly(
    time_skipping: WorkflowEnvironment,
) -> None:
    tenant = Tenant(uuid.uuid4(), uuid.uuid4())
    candidates = [
        candidate_of(Seeded(uuid.uuid4(), tenant, 0), completed_days_ago=40 + n) for n in range(3)
    ]
    stub = StubRetention(candidates)
    queue = f"retention-stub-{uuid.uuid4()}"
    async with Worker(
        time_skipping.client,
        task_queue=queue,
        workflows=[StagingRetentionWorkflow],
        activities=[stub.list_purgeable_imports, stub.purge_staged_rows],
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await time_skipping.client.execute_workflow(
                StagingRetentionWorkflow.run,
                StagingRetentionInput(policy=RetentionPolicy(max_parallel=2, page_size=10)),
                id=f"retention-{uuid.uuid4()}",
                task_queue=queue,
            )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == PURGE_FAILED
    assert "1 imports could not be purged" in cause.message
    [totals] = cause.details
    assert totals["imports_purged"] == 2 and totals["rows_deleted"] == 14
    assert totals["failed_import_ids"] == [str(candidates[1].data_import_id)]
    assert 1 <= stub.most_in_flight <= 2


# ----- the schedule and the CLI (dev server) -----------------------------------------------


@pytest.fixture
async def retention_settings(settings: Settings, client: Client) -> AsyncIterator[Settings]:
    """Settings with a task queue of their own, and no retention schedule before or after
    (worker processes of other tests create it on the shared dev server when they start)."""
    ours = settings.model_copy(update={"task_queue": f"test-retention-{uuid.uuid4()}"})
    handle = client.get_schedule_handle(RETENTION_SCHEDULE_ID)
    with contextlib.suppress(RPCError):  # none yet
        await handle.delete()
    yield ours
    with contextlib.suppress(RPCError):
        await handle.delete()


async def test_the_schedule_is_created_once_and_follows_the_settings(
    client: Client, engine: AsyncEngine, tenant: Tenant, retention_settings: Settings
) -> None:
    assert await ensure_retention_schedule(client, retention_settings) == "created"
    assert await ensure_retention_schedule(client, retention_settings) == "unchanged"
    handle = client.get_schedule_handle(RETENTION_SCHEDULE_ID)
    described = await handle.describe()
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == "StagingRetentionWorkflow"
    assert action.task_queue == retention_settings.task_queue
    [args] = await client.data_converter.decode(action.args, [StagingRetentionInput])
    assert args.policy.retention_days == 30
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(days=1)]
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    # Two workers starting at once: both succeed, one schedule.
    both = await asyncio.gather(
        ensure_retention_schedule(client, retention_settings),
        ensure_retention_schedule(client, retention_settings),
    )
    assert both == ["unchanged", "unchanged"]

    await handle.pause(note="paused by the operator")
    shorter = retention_settings.model_copy(
        update={"staging_retention_days": 7, "staging_retention_interval_minutes": 60}
    )
    assert await ensure_retention_schedule(client, shorter) == "updated"
    described = await handle.describe()
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    [args] = await client.data_converter.decode(action.args, [StagingRetentionInput])
    assert args.policy.retention_days == 7
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(hours=1)]
    assert described.schedule.state.paused  # the operator's pause survives the update
    assert described.schedule.state.note == "paused by the operator"
    assert await ensure_retention_schedule(client, shorter) == "unchanged"

    # A triggered run purges on a real worker (7 days: an import finished 10 days ago is due).
    seeded = await seed_import(engine, tenant, finished_days_ago=10, rows=3)
    await handle.unpause()
    async with Worker(
        client,
        task_queue=shorter.task_queue,
        workflows=[StagingRetentionWorkflow],
        activities=RetentionActivities(engine).all(),
    ):
        await trigger_retention(client)
        for _ in range(200):
            described = await handle.describe()
            if described.info.recent_actions:
                break
            await asyncio.sleep(0.1)
        started = described.info.recent_actions[-1].action
        assert isinstance(started, ScheduleActionExecutionStartWorkflow)
        run = client.get_workflow_handle_for(
            StagingRetentionWorkflow.run,
            started.workflow_id,
            first_execution_run_id=started.first_execution_run_id,
        )
        totals = await run.result()
    assert totals.imports_purged >= 1
    assert await staged_rows(engine, seeded) == 0
    assert retention_schedule(shorter).policy.overlap == ScheduleOverlapPolicy.SKIP


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(CLI),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_ensures_the_schedule_and_explains_purged_reports(
    engine: AsyncEngine,
    tenant: Tenant,
    retention_settings: Settings,
    database_url: str,
    temporal_address: str,
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "DATAIMPORT_HOME": str(tmp_path),
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "DATAIMPORT_TASK_QUEUE": retention_settings.task_queue,
        "DATAIMPORT_STAGING_RETENTION_DAYS": "14",
        "DATAIMPORT_CLIENT_ACCOUNT_ID": str(tenant.client_account_id),
        "DATAIMPORT_ENGAGEMENT_ID": str(tenant.engagement_id),
    }
    code, out, _ = await _cli(env, "retention")
    assert code == 0 and f"schedule {RETENTION_SCHEDULE_ID}: created" in out
    assert "kept 14 days" in out
    code, out, _ = await _cli(env, "retention", "--run-now")
    assert code == 0 and "unchanged" in out and "triggered" in out

    seeded = await seed_import(engine, tenant, rows=4)
    assert (await retention.purge_import(engine, purge_input(seeded))).purged
    code, _, err = await _cli(env, "errors", str(seeded.data_import_id))
    assert code == 2
    assert "were removed" in err and "retention" in err
