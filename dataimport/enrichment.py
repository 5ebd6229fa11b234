"""Enrichment: valid staged rows become inventory through the category's set-based writes.

Per import: `prepare` (once, before the parallel ranges: what ranges share, e.g. the endpoint
assets and edges of app_discovery, is written in one set-based pass), `enrich_chunk` and
`link_chunk` per row range (parallel, never waiting on each other's locks), `finish` and
the totals (once). Statistics are refreshed only where an import changed a large share of a
table, after its writes, in a transaction of their own.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dataimport import inventory, steps, table_statistics
from dataimport.categories import get_category
from dataimport.categories.base import EnrichCounts, ImportCategory, ImportScope
from dataimport.contracts import EnrichmentResult, ImportRef, RowRange
from dataimport.dependency_groups import update_dependency_groups
from dataimport.models import DataImport, ImportProcessingStep
from dataimport.tenant_scope import the_import, where_tenant

PREPARE_STEP = "enrichment_prepare"
PREPARE_AGENT = "asset_resolver"

# Analysed only where a large share changed (table_statistics.analyze_if_grown): a small import
# into a big inventory never pays for sampling it, nor queues behind another's ANALYZE.
ANALYZED_TABLES = ("assets", "asset_dependencies", "dependency_group_members")


@runtime_checkable
class PreparingCategory(Protocol):
    """A category whose ranges share rows: it writes them once per import before the ranges."""

    async def prepare(self, conn: AsyncConnection, scope: ImportScope) -> bool:
        """Set-based pass over the whole import; returns whether a link pass is needed."""
        ...

    async def enrich_unprepared(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of an import that was not prepared (its enrichment began before prepare)."""
        ...


@runtime_checkable
class FinishingCategory(Protocol):
    async def finish(self, conn: AsyncConnection, scope: ImportScope) -> None:
        """Once per prepared import, after every range (e.g. edge figures recomputed)."""
        ...


def import_scope(ref: ImportRef, rows: RowRange | None = None) -> ImportScope:
    return ImportScope(
        data_import_id=str(ref.data_import_id),
        client_account_id=str(ref.client_account_id),
        engagement_id=str(ref.engagement_id),
        first_row=rows.first_row if rows else 1,
        last_row=rows.last_row if rows else 2**31 - 1,
    )


async def _prepare_findings(conn: AsyncConnection, ref: ImportRef) -> dict[str, Any] | None:
    """What `prepare` recorded in its marker step for the import (None: not prepared)."""
    step = ImportProcessingStep
    found = await conn.execute(
        select(step.findings).where(
            step.data_import_id == ref.data_import_id,
            where_tenant(step, ref),
            step.step_key == PREPARE_STEP,
        )
    )
    row = found.first()
    return None if row is None else dict(row.findings or {})


async def _is_prepared(conn: AsyncConnection, ref: ImportRef) -> bool:
    return await _prepare_findings(conn, ref) is not None


async def prepare(engine: AsyncEngine, ref: ImportRef) -> bool:
    """Once per import before the ranges, in one transaction with its marker step (ranges of
    a prepared import only look up what it wrote). Returns whether link ranges are needed."""
    category: ImportCategory = get_category(ref.category)
    started = datetime.now(UTC)
    await analyze_inventory(engine)  # what earlier imports grew, before this one's lookups
    async with engine.begin() as conn:
        link = True
        # Read before anything of this import is written (its own assets would count).
        known = await inventory.tenant_has_external_ids(conn, import_scope(ref))
        if isinstance(category, PreparingCategory):
            link = await category.prepare(conn, import_scope(ref))
        await steps.record_step(
            conn,
            ref,
            step=PREPARE_STEP,
            agent=PREPARE_AGENT,
            started_at=started,
            records=0,
            findings={"link_ranges": link, "external_ids_known": known},
        )
    return link


async def enrich_chunk(engine: AsyncEngine, ref: ImportRef, rows: RowRange) -> EnrichCounts:
    """Assets for one row range, in one transaction (a retry redoes it whole or not at all)."""
    category = get_category(ref.category)
    async with engine.begin() as conn:
        prepared = await _prepare_findings(conn, ref)
        if isinstance(category, PreparingCategory) and prepared is None:
            return await category.enrich_unprepared(conn, import_scope(ref, rows))
        known = prepared is None or bool(prepared.get("external_ids_known", True))
        scope = replace(import_scope(ref, rows), external_ids_known=known)
        return await category.enrich(conn, scope)


async def link_chunk(engine: AsyncEngine, ref: ImportRef, rows: RowRange) -> EnrichCounts:
    """Dependencies for one row range; runs after every chunk's assets exist."""
    async with engine.begin() as conn:
        return await get_category(ref.category).link(conn, import_scope(ref, rows))


async def enrich_and_link_chunk(
    engine: AsyncEngine, ref: ImportRef, rows: RowRange
) -> EnrichCounts:
    """An import of one row range: its assets, the statistics, then its dependencies, the
    order a larger import takes with three activities, here in one (no round trips)."""
    assets = await enrich_chunk(engine, ref, rows)
    await analyze_inventory(engine)
    links = await link_chunk(engine, ref, rows)
    return EnrichCounts(
        assets_touched=assets.assets_touched, dependencies_touched=links.dependencies_touched
    )


async def refresh_statistics(engine: AsyncEngine) -> None:
    """Whole-table ANALYZE of the inventory tables: only imports recorded before
    `prepare_enrichment` existed still call this (their histories must replay)."""
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE assets"))
        await conn.execute(text("ANALYZE asset_dependencies"))
        await conn.commit()


async def analyze_inventory(engine: AsyncEngine) -> list[str]:
    """The inventory tables analysed where they grew by a large share since their last
    ANALYZE, in a short transaction of its own (never a whole-table ANALYZE per import)."""
    async with engine.begin() as conn:
        return await table_statistics.analyze_if_grown(conn, ANALYZED_TABLES)


async def enrichment_totals(engine: AsyncEngine, ref: ImportRef) -> EnrichmentResult:
    """Exact totals, and the tenant's move groups updated with this import's dependencies."""
    scope = import_scope(ref)
    category = get_category(ref.category)
    async with engine.begin() as conn:
        if isinstance(category, FinishingCategory) and await _is_prepared(conn, ref):
            await category.finish(conn, scope)
        totals = await inventory.import_totals(conn, scope)
        groups = await update_dependency_groups(conn, scope)
        await _record_groups(conn, ref, groups)
    await analyze_inventory(engine)  # for the next import and the inventory queries
    return EnrichmentResult(**totals, dependency_groups=int(groups.get("groups", 0)))


async def _record_groups(conn: AsyncConnection, ref: ImportRef, groups: dict[str, Any]) -> None:
    # Through JSON text and back: values JSON does not know (datetimes) become strings.
    entry = json.loads(json.dumps({"dependency_groups": groups}, default=str))
    await conn.execute(
        update(DataImport)
        .where(the_import(ref))
        .values(summary=DataImport.summary.op("||")(literal(entry, JSONB)))
    )
