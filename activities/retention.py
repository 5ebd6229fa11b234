"""Staging retention activities: list the imports due, purge one, heartbeating per batch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from dataimport import retention
from dataimport.contracts import (
    ListPurgeableInput,
    PurgeableImports,
    PurgeInput,
    PurgeProgress,
    PurgeResult,
)

log = logging.getLogger("dataimport.activities.retention")


def _resume_point() -> PurgeProgress | None:
    """The progress a crashed attempt heartbeated last (rows up to it are gone)."""
    details = activity.info().heartbeat_details
    if not details:
        return None
    try:
        return PurgeProgress.model_validate(details[0])
    except ValueError:  # details of another shape (an older worker): start over, still correct
        return None


def _heartbeat(progress: PurgeProgress) -> None:
    activity.heartbeat(progress.model_dump())


class RetentionActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    async def list_purgeable_imports(self, data: ListPurgeableInput) -> PurgeableImports:
        return await retention.list_purgeable(self._engine, data)

    @activity.defn
    async def purge_staged_rows(self, data: PurgeInput) -> PurgeResult:
        resume = _resume_point()
        result = await retention.purge_import(
            self._engine, data, resume=resume, on_batch=_heartbeat
        )
        if result.purged:
            log.info(
                "staged rows of import %s removed after retention: %d rows in %d batches",
                result.data_import_id,
                result.rows_deleted,
                result.batches,
            )
        return result

    def all(self) -> list[Callable[..., Any]]:
        """The activities to register on a worker."""
        return [self.list_purgeable_imports, self.purge_staged_rows]
