"""Staging retention: remove the staged rows of imports finished longer ago than the retention.

Staged rows (`raw_import_records`) exist so an import can be validated, enriched, retried
and reported on. Once an import is finished (a terminal status) and the retention period has
passed, they go: in batches of a bounded number of rows, each batch its own short
transaction, resumable from the last row removed. The inventory is never touched: assets and
dependencies do not reference staged rows (a row's link in `staged_row_assets`, removed with
the row, points *at* an asset; nothing points back), and the import record, its flows, steps
and counters stay.

An import is *claimed* (`staging_purge_started_at`) in the transaction that removes its first
batch, so from then on reports say the rows were removed after retention instead of showing a
partial or empty report; `staging_purged_at` is set with the last batch.

Every statement on one import carries its tenant keys and runs with that tenant set (row-level
security); only the listing of purgeable imports reads across tenants, because retention is one
job for the whole service: through `purgeable_imports()` (migration 0006), a function of the
schema's owner that returns ids and tenant ids only, since the service role itself sees no
tenant but the one it acts for.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Executable, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.contracts import (
    TERMINAL_STATUSES,
    ListPurgeableInput,
    PurgeableImports,
    PurgeCandidate,
    PurgeInput,
    PurgeProgress,
    PurgeResult,
    RetentionPolicy,
)
from dataimport.error_codes import Level, register
from dataimport.imports import Tenant
from dataimport.models import DataImport
from dataimport.tenant_context import acting_for
from dataimport.tenant_scope import the_import, where_tenant

MAX_FAILED_IDS = 20
PURGE_FAILED = register(
    "staging-purge-failed",
    Level.SERVICE,
    "Staged rows not purged",
    "The staging-retention run could not remove the staged rows of some finished imports; "
    "the next scheduled run retries them.",
    "{failed} imports could not be purged (the next scheduled run retries them); {purged} "
    "purged, {rows} rows",
).code


class StagingPurged(LookupError):
    """The import's staged rows were removed after the retention period: no row-level report."""

    def __init__(self, data_import_id: uuid.UUID, removed_at: datetime) -> None:
        super().__init__(
            f"the staged rows of import {data_import_id} were removed on "
            f"{removed_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC after the staging retention "
            "period; row-level findings and rejected rows are no longer available (the "
            "import's counters and summary are kept: dataimport status "
            f"{data_import_id})"
        )
        self.data_import_id = data_import_id
        self.removed_at = removed_at


def cutoff_for(now: datetime, retention_days: int) -> datetime:
    """Imports finished before this instant are due."""
    return now - timedelta(days=retention_days)


async def list_purgeable(engine: AsyncEngine, data: ListPurgeableInput) -> PurgeableImports:
    """The next page of due imports, oldest first, across tenants (ids only)."""
    purgeable = func.purgeable_imports(
        data.cutoff, data.after_completed_at, data.after_id, data.limit
    ).table_valued("id", "client_account_id", "engagement_id", "completed_at")
    async with engine.connect() as conn:
        rows = await conn.execute(select(purgeable))
        return PurgeableImports(
            items=[
                PurgeCandidate(
                    data_import_id=row.id,
                    client_account_id=row.client_account_id,
                    engagement_id=row.engagement_id,
                    completed_at=row.completed_at,
                )
                for row in rows
            ]
        )


def _still_due(candidate: PurgeCandidate, cutoff: datetime) -> Executable:
    """Still due (finished before the cutoff, not purged)? Checked again in every batch, so an
    import listed a moment ago but purged meanwhile by another run is left alone."""
    return (
        select(DataImport.staging_purge_started_at)
        .where(
            the_import(candidate),
            DataImport.staging_purged_at.is_(None),
            DataImport.status.in_(sorted(status.value for status in TERMINAL_STATUSES)),
            DataImport.completed_at < cutoff,
        )
        .with_for_update()
    )


def _mark(candidate: PurgeCandidate, *, done: bool) -> Executable:
    """Claimed with the first batch (reports say "removed" from then on), purged with the last."""
    return (
        update(DataImport)
        .where(the_import(candidate))
        .values(
            updated_at=func.now(),
            staging_purge_started_at=func.coalesce(DataImport.staging_purge_started_at, func.now()),
            staging_purged_at=func.now() if done else None,
        )
    )


# One batch: the next `limit` staged rows by row number after the resume point (the unique
# (data_import_id, row_number) index finds them without revisiting removed rows), with their
# links to assets. Hand-written: a CTE of two DELETE ... USING ... RETURNING reads clearer as
# SQL than as a statement built in Python.
_DELETE_BATCH = """
WITH doomed AS (
  SELECT id FROM raw_import_records
  WHERE data_import_id = :id AND client_account_id = :c AND engagement_id = :e
    AND row_number > :after
  ORDER BY row_number
  LIMIT :limit
), gone AS (
  DELETE FROM raw_import_records r USING doomed WHERE r.id = doomed.id
  RETURNING r.row_number
), unlinked AS (
  DELETE FROM staged_row_assets l USING gone
  WHERE l.data_import_id = :id AND l.row_number = gone.row_number
)
SELECT count(*) AS deleted, max(row_number) AS last_row FROM gone
"""


async def purge_import(
    engine: AsyncEngine,
    data: PurgeInput,
    *,
    resume: PurgeProgress | None = None,
    on_batch: Callable[[PurgeProgress], None] | None = None,
) -> PurgeResult:
    """Remove the import's staged rows in batches of `batch_size`, then mark it purged.

    Idempotent and resumable: each batch commits with its progress, `resume` skips what a
    crashed attempt already removed (starting over from row 0 is correct too, only slower),
    and an import that is no longer due is left as it is.
    """
    candidate = data.candidate
    progress = (resume or PurgeProgress()).model_copy()
    params = {
        "id": candidate.data_import_id,
        "c": candidate.client_account_id,
        "e": candidate.engagement_id,
        "limit": data.batch_size,
    }
    with acting_for(candidate):
        return await _purge_batches(engine, data, progress, params, on_batch)


async def _purge_batches(
    engine: AsyncEngine,
    data: PurgeInput,
    progress: PurgeProgress,
    params: dict[str, Any],
    on_batch: Callable[[PurgeProgress], None] | None,
) -> PurgeResult:
    candidate = data.candidate
    while True:
        async with engine.begin() as conn:
            due = (await conn.execute(_still_due(candidate, data.cutoff))).first()
            if due is None:
                return PurgeResult(
                    data_import_id=candidate.data_import_id,
                    rows_deleted=progress.rows_deleted,
                    batches=progress.batches,
                )
            batch = (
                await conn.execute(text(_DELETE_BATCH), {**params, "after": progress.after_row})
            ).one()
            done = batch.deleted < data.batch_size
            if done or due.staging_purge_started_at is None:
                await conn.execute(_mark(candidate, done=done))
        progress.rows_deleted += batch.deleted
        progress.batches += 1
        if batch.last_row is not None:
            progress.after_row = batch.last_row
        if on_batch is not None:
            on_batch(progress.model_copy())
        if done:
            return PurgeResult(
                data_import_id=candidate.data_import_id,
                rows_deleted=progress.rows_deleted,
                batches=progress.batches,
                purged=True,
            )


async def purge_expired(
    engine: AsyncEngine,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
) -> list[PurgeResult]:
    """Every due import, one after the other (what the workflow does, without Temporal)."""
    cutoff = cutoff_for(now or datetime.now(UTC), policy.retention_days)
    results: list[PurgeResult] = []
    page = ListPurgeableInput(cutoff=cutoff, limit=policy.page_size)
    while True:
        found = await list_purgeable(engine, page)
        for candidate in found.items:
            purge = PurgeInput(candidate=candidate, cutoff=cutoff, batch_size=policy.batch_size)
            results.append(await purge_import(engine, purge))
        if len(found.items) < page.limit:
            return results
        last = found.items[-1]
        page = page.model_copy(
            update={"after_completed_at": last.completed_at, "after_id": last.data_import_id}
        )


async def staging_removed_at(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> datetime | None:
    """When retention started removing the tenant's import's staged rows (None: they are kept)."""
    async with engine.connect() as conn:
        removed: datetime | None = await conn.scalar(
            select(DataImport.staging_purge_started_at).where(
                DataImport.id == data_import_id, where_tenant(DataImport, tenant)
            )
        )
    return removed
