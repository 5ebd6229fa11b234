"""Validation phase: check the mapping, validate row chunks, then the cross-row report."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.errors import classified
from activities.generation import of_generation
from activities.heartbeat import heartbeating
from activities.tenant import tenant_scoped
from dataimport import flows, validation
from dataimport.contracts import (
    MAX_UNMAPPED_IN_PAYLOAD,
    ChunkInput,
    ChunkReport,
    FinalizeValidationInput,
    PrepareInput,
    StatusUpdate,
    ValidationCounts,
)
from observability import metrics

log = logging.getLogger("dataimport.activities.validation")


class ValidationActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    @classified
    @tenant_scoped
    async def prepare_validation(self, data: PrepareInput) -> list[str]:
        """The first unmapped headers (a payload): finalize_validation reads them all again."""
        unmapped = await validation.prepare_validation(
            self._engine, data.ref, data.processing_config
        )
        return unmapped[:MAX_UNMAPPED_IN_PAYLOAD]

    @activity.defn
    @classified
    @tenant_scoped
    async def validate_chunk(self, data: ChunkInput) -> ChunkReport:
        async with (
            heartbeating(),
            of_generation(self._engine, data.ref, data.generation) as engine,
        ):
            report = await validation.validate_chunk(
                engine, data.ref, data.rows, data.processing_config
            )
        log.info("rows %d-%d validated", data.rows.first_row, data.rows.last_row)
        return report

    @activity.defn
    @classified
    @tenant_scoped
    async def finalize_validation(self, data: FinalizeValidationInput) -> ValidationCounts:
        async with heartbeating():
            # The full list from the database, not the capped one the workflow passes on.
            unmapped = await validation.unmapped_headers(self._engine, data.ref)
            counts, summary = await validation.finalize_validation(
                self._engine, data.ref, unmapped, data.report, data.started_at
            )
        await flows.record_status(
            self._engine,
            StatusUpdate(
                ref=data.ref,
                status="validating",
                phase="validation",
                counters=counts.model_dump(exclude={"unmapped_headers"}),
                summary=summary,
            ),
        )
        counts = counts.model_copy(
            update={
                "unmapped_headers": unmapped[:MAX_UNMAPPED_IN_PAYLOAD],
                "unmapped_header_count": len(unmapped),
            }
        )
        metrics.rows_validated(data.ref.category, counts)
        log.info(
            "validated: %d valid, %d invalid, %d blank rows",
            counts.valid_rows,
            counts.invalid_rows,
            counts.blank_rows,
        )
        return counts
