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

from sqlalchemy import text
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
from dataimport.tenant_context import acting_for

# Literal, in the order of the partial index's predicate (migration 0003): with bound
# parameters the planner could not prove the query implies the index predicate.
_TERMINAL_SQL = ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES))
_PURGEABLE = f"staging_purged_at IS NULL AND status IN ({_TERMINAL_SQL})"


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


_LIST = """
SELECT id, client_account_id, engagement_id, completed_at
FROM purgeable_imports(:cutoff, :after_at, :after_id, :limit)
"""


async def list_purgeable(engine: AsyncEngine, data: ListPurgeableInput) -> PurgeableImports:
    """The next page of due imports, oldest first, across tenants (ids only)."""
    params: dict[str, Any] = {
        "cutoff": data.cutoff,
        "limit": data.limit,
        "after_at": data.after_completed_at,
        "after_id": data.after_id,
    }
    async with engine.connect() as conn:
        rows = await conn.execute(text(_LIST), params)
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


# Still due (finished before the cutoff, not purged)? Checked again in every batch, so an
# import listed a moment ago but purged meanwhile by another run is left alone.
_DUE = f"""
SELECT staging_purge_started_at FROM data_imports
WHERE id = :id AND client_account_id = :c AND engagement_id = :e
  AND {_PURGEABLE} AND completed_at < :cutoff
FOR UPDATE
"""

# One batch: the next `limit` staged rows by row number after the resume point (the unique
# (data_import_id, row_number) index finds them without revisiting removed rows), with their
# links to assets.
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

_MARK = """
UPDATE data_imports SET updated_at = now(),
  staging_purge_started_at = coalesce(staging_purge_started_at, now()),
  staging_purged_at = CASE WHEN :done THEN now() ELSE NULL END
WHERE id = :id AND client_account_id = :c AND engagement_id = :e
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
        "cutoff": data.cutoff,
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
            due = (await conn.execute(text(_DUE), params)).first()
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
                await conn.execute(text(_MARK), {**params, "done": done})
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
            text(
                "SELECT staging_purge_started_at FROM data_imports WHERE id = :id "
                "AND client_account_id = :c AND engagement_id = :e"
            ),
            {**tenant.params(), "id": data_import_id},
        )
    return removed
