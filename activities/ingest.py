"""Upload phase: stage the stored file, heartbeating the last committed row."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.errors import classified
from activities.heartbeat import heartbeating
from activities.tenant import tenant_scoped
from dataimport import staging, steps
from dataimport.contracts import ImportRef, ImportRequest, IngestResult
from observability import metrics

log = logging.getLogger("dataimport.activities.ingest")


def ref_of(request: ImportRequest) -> ImportRef:
    return ImportRef(
        data_import_id=request.data_import_id,
        client_account_id=request.client_account_id,
        engagement_id=request.engagement_id,
        category=request.category,
    )


class StagedRows:
    """Heartbeats ingest progress (the last committed row) and counts the rows this attempt
    staged: a resumed attempt starts counting at its resume point."""

    def __init__(self, category: str) -> None:
        self._category = category
        self._last_row: int | None = None
        self.staged = 0

    def __call__(self, last_row: int) -> None:
        activity.heartbeat(last_row)
        if self._last_row is not None:
            metrics.rows_staged(self._category, last_row - self._last_row)
            self.staged += last_row - self._last_row
        self._last_row = last_row


class IngestActivities:
    """`storage_root`: the only folder this worker reads files from (the URI is workflow input)."""

    def __init__(self, engine: AsyncEngine, storage_root: Path) -> None:
        self._engine = engine
        self._storage_root = storage_root

    @activity.defn
    @classified
    @tenant_scoped
    async def ingest_file(self, request: ImportRequest) -> IngestResult:
        started = datetime.now(UTC)
        ref = ref_of(request)
        progress = StagedRows(ref.category)
        async with heartbeating():
            result = await staging.ingest_file(
                self._engine,
                ref,
                request.file_uri,
                storage_root=self._storage_root,
                max_field_size=request.processing_config.max_field_size,
                on_progress=progress,
                validate_with=request.processing_config,
            )
        async with self._engine.begin() as conn:
            await steps.record_step(
                conn,
                ref,
                step="ingest",
                agent="file_reader",
                started_at=started,
                records=result.total_rows,
                findings={**result.detected_format, "blank_rows": result.blank_rows},
            )
        log.info("staged %d rows (%d by this attempt)", result.total_rows, progress.staged)
        return result
