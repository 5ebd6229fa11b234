"""Enrichment phase: assets per chunk, then dependencies per chunk, then exact totals."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.errors import classified
from activities.generation import of_generation
from activities.heartbeat import heartbeating
from activities.tenant import tenant_scoped
from dataimport import enrichment, steps
from dataimport.contracts import (
    ChunkInput,
    EnrichmentPlan,
    EnrichmentResult,
    FinalizeEnrichmentInput,
    ImportRef,
)
from observability import metrics

log = logging.getLogger("dataimport.activities.enrichment")


def _span(data: ChunkInput) -> str:
    return f"{data.rows.first_row}-{data.rows.last_row}"


class EnrichmentActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    @classified
    @tenant_scoped
    async def enrich_chunk(self, data: ChunkInput) -> int:
        async with (
            heartbeating(),
            of_generation(self._engine, data.ref, data.generation) as engine,
        ):
            counts = await enrichment.enrich_chunk(engine, data.ref, data.rows)
        metrics.assets_written(data.ref.category, counts.assets_touched)
        log.info("rows %s: %d assets written", _span(data), counts.assets_touched)
        return counts.assets_touched

    @activity.defn
    @classified
    @tenant_scoped
    async def link_chunk(self, data: ChunkInput) -> int:
        async with (
            heartbeating(),
            of_generation(self._engine, data.ref, data.generation) as engine,
        ):
            counts = await enrichment.link_chunk(engine, data.ref, data.rows)
        metrics.dependencies_written(data.ref.category, counts.dependencies_touched)
        log.info("rows %s: %d dependencies written", _span(data), counts.dependencies_touched)
        return counts.dependencies_touched

    @activity.defn
    @classified
    @tenant_scoped
    async def enrich_and_link_chunk(self, data: ChunkInput) -> int:
        """An import of one row range: enrich, statistics and link in one activity."""
        async with (
            heartbeating(),
            of_generation(self._engine, data.ref, data.generation) as engine,
        ):
            counts = await enrichment.enrich_and_link_chunk(engine, data.ref, data.rows)
        metrics.assets_written(data.ref.category, counts.assets_touched)
        metrics.dependencies_written(data.ref.category, counts.dependencies_touched)
        log.info(
            "rows %s: %d assets, %d dependencies written",
            _span(data),
            counts.assets_touched,
            counts.dependencies_touched,
        )
        return counts.dependencies_touched

    @activity.defn
    @classified
    @tenant_scoped
    async def prepare_enrichment(self, ref: ImportRef) -> EnrichmentPlan:
        """Once per import before the parallel ranges: what they share, written once."""
        async with heartbeating():
            link = await enrichment.prepare(self._engine, ref)
        log.info("enrichment prepared (link ranges: %s)", link)
        return EnrichmentPlan(link_chunks=link)

    @activity.defn
    @classified
    @tenant_scoped
    async def analyze_inventory(self, ref: ImportRef) -> list[str]:
        """Between enrich and link ranges: statistics only where the tables grew a lot."""
        async with heartbeating():
            analysed = await enrichment.analyze_inventory(self._engine)
        if analysed:
            log.info("analysed %s", ", ".join(analysed))
        return analysed

    @activity.defn
    @classified
    @tenant_scoped
    async def refresh_statistics(self, ref: ImportRef) -> None:
        async with heartbeating():
            await enrichment.refresh_statistics(self._engine)

    @activity.defn
    @classified
    @tenant_scoped
    async def finalize_enrichment(self, data: FinalizeEnrichmentInput) -> EnrichmentResult:
        async with heartbeating():
            result = await enrichment.enrichment_totals(self._engine, data.ref)
        async with self._engine.begin() as conn:
            await steps.record_step(
                conn,
                data.ref,
                step="enrichment",
                agent="asset_enricher",
                started_at=data.started_at,
                records=result.processed_rows,
                findings=result.model_dump(),
            )
        return result
