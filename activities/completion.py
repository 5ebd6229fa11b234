"""Status changes on all three records, and saving a new processing_config on retry."""

from __future__ import annotations

import logging

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.errors import classified
from dataimport import flows, metrics
from dataimport.contracts import TERMINAL_STATUSES, ImportRef, ProcessingConfig, StatusUpdate

log = logging.getLogger("dataimport.activities.completion")


class SaveConfigInput(BaseModel):
    ref: ImportRef
    processing_config: ProcessingConfig


class CompletionActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    @classified
    async def record_status(self, update: StatusUpdate) -> None:
        # A retried call finds the status already recorded: the import finished only once.
        finishing = update.status in TERMINAL_STATUSES and (
            await self._status_of(update.ref) != update.status
        )
        await flows.record_status(self._engine, update)
        if finishing:
            metrics.import_finished(update.ref.category, update.status)
            log.info("import finished: %s", update.status)

    async def _status_of(self, ref: ImportRef) -> str | None:
        async with self._engine.connect() as conn:
            status = await conn.scalar(
                text(
                    "SELECT status FROM data_imports WHERE id = :id "
                    "AND client_account_id = :c AND engagement_id = :e"
                ),
                {"id": ref.data_import_id, "c": ref.client_account_id, "e": ref.engagement_id},
            )
        return str(status) if status is not None else None

    @activity.defn
    @classified
    async def save_processing_config(self, data: SaveConfigInput) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE data_imports SET processing_config = CAST(:config AS jsonb), "
                    "updated_at = now() WHERE id = :id AND client_account_id = :c "
                    "AND engagement_id = :e"
                ),
                {
                    "config": data.processing_config.model_dump_json(),
                    "id": data.ref.data_import_id,
                    "c": data.ref.client_account_id,
                    "e": data.ref.engagement_id,
                },
            )
