"""Status changes on all three records, and saving a new processing_config on retry."""

from __future__ import annotations

import logging

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.errors import classified
from activities.generation import bump_generation
from activities.tenant import tenant_scoped
from dataimport import flows
from dataimport.contracts import TERMINAL_STATUSES, SaveConfigInput, StatusUpdate
from dataimport.models import DataImport
from dataimport.tenant_scope import the_import
from observability import metrics

log = logging.getLogger("dataimport.activities.completion")


class CompletionActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    @classified
    @tenant_scoped
    async def record_status(self, update: StatusUpdate) -> None:
        entered = await flows.record_status(self._engine, update)
        # A retried call finds the status already recorded: the import finished only once.
        if entered and update.status in TERMINAL_STATUSES:
            metrics.import_finished(update.ref.category, update.status)
            log.info("import finished: %s", update.status)

    @activity.defn
    @classified
    @tenant_scoped
    async def save_processing_config(self, data: SaveConfigInput) -> None:
        if data.generation is not None:
            await bump_generation(self._engine, data.ref, data.generation, data.processing_config)
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                update(DataImport)
                .where(the_import(data.ref))
                .values(
                    processing_config=data.processing_config.model_dump(mode="json"),
                    updated_at=func.now(),
                )
            )
