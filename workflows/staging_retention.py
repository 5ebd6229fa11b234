"""StagingRetentionWorkflow: remove the staged rows of imports finished longer ago than the
retention period. Started by the `dataimport-staging-retention` Temporal Schedule.

The workflow only decides: it lists a page of due imports (oldest first), purges them with
bounded parallelism, and continues as new with a keyset cursor while pages come back full, so
history stays bounded however large the backlog. An import whose purge fails for good is
skipped for this pass (the next scheduled run finds it again) and the run then fails, so it
shows red in the Web UI.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from dataimport.contracts import (
        ListPurgeableInput,
        PurgeCandidate,
        PurgeInput,
        PurgeResult,
        RetentionPolicy,
        RetentionTotals,
        StagingRetentionInput,
    )
    from dataimport.retention import MAX_FAILED_IDS, PURGE_FAILED, cutoff_for

LIST_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
PURGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_attempts=5
)
# A purge heartbeats every batch; a long import resumes from its last batch after a timeout.
PURGE_TIMEOUT = timedelta(hours=1)
PURGE_HEARTBEAT = timedelta(minutes=1)


@workflow.defn
class StagingRetentionWorkflow:
    @workflow.run
    async def run(self, data: StagingRetentionInput) -> RetentionTotals:
        policy = data.policy
        cutoff = data.cutoff or cutoff_for(workflow.now(), policy.retention_days)
        totals = data.totals.model_copy(deep=True)
        page = await workflow.execute_activity_method(
            RetentionActivities.list_purgeable_imports,
            ListPurgeableInput(
                cutoff=cutoff,
                limit=policy.page_size,
                after_completed_at=data.after_completed_at,
                after_id=data.after_id,
            ),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=LIST_RETRY,
        )
        window = asyncio.Semaphore(policy.max_parallel)
        results = await asyncio.gather(
            *(self._purge(window, item, cutoff, policy) for item in page.items)
        )
        for item, result in zip(page.items, results, strict=True):
            if result is None:
                totals.imports_failed += 1
                if len(totals.failed_import_ids) < MAX_FAILED_IDS:
                    totals.failed_import_ids.append(item.data_import_id)
            elif result.purged:
                totals.imports_purged += 1
                totals.rows_deleted += result.rows_deleted
        if len(page.items) == policy.page_size:
            last = page.items[-1]
            totals.runs += 1
            workflow.continue_as_new(
                StagingRetentionInput(
                    policy=policy,
                    cutoff=cutoff,
                    after_completed_at=last.completed_at,
                    after_id=last.data_import_id,
                    totals=totals,
                )
            )
        if totals.imports_failed:
            raise ApplicationError(
                f"{totals.imports_failed} imports could not be purged (the next scheduled run "
                f"retries them); {totals.imports_purged} purged, {totals.rows_deleted} rows",
                totals.model_dump(mode="json"),
                type=PURGE_FAILED,
                non_retryable=True,
            )
        return totals

    async def _purge(
        self,
        window: asyncio.Semaphore,
        item: PurgeCandidate,
        cutoff: datetime,
        policy: RetentionPolicy,
    ) -> PurgeResult | None:
        async with window:
            try:
                return await workflow.execute_activity_method(
                    RetentionActivities.purge_staged_rows,
                    PurgeInput(candidate=item, cutoff=cutoff, batch_size=policy.batch_size),
                    start_to_close_timeout=PURGE_TIMEOUT,
                    heartbeat_timeout=PURGE_HEARTBEAT,
                    retry_policy=PURGE_RETRY,
                    summary=f"purge staging · import {item.data_import_id}",
                )
            except ActivityError as error:
                if isinstance(error.cause, CancelledError):  # the run is cancelled: stop
                    raise
                workflow.logger.warning(
                    "staged rows of import %s not purged: %s", item.data_import_id, error.cause
                )
                return None
