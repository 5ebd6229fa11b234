"""Enrichment: valid staged rows become inventory through the category's set-based writes."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import inventory
from dataimport.categories import get_category
from dataimport.categories.base import EnrichCounts, ImportScope
from dataimport.contracts import EnrichmentResult, ImportRef, RowRange
from dataimport.dependency_groups import refresh_dependency_groups


def import_scope(ref: ImportRef, rows: RowRange | None = None) -> ImportScope:
    return ImportScope(
        data_import_id=str(ref.data_import_id),
        client_account_id=str(ref.client_account_id),
        engagement_id=str(ref.engagement_id),
        first_row=rows.first_row if rows else 1,
        last_row=rows.last_row if rows else 2**31 - 1,
    )


async def enrich_chunk(engine: AsyncEngine, ref: ImportRef, rows: RowRange) -> EnrichCounts:
    """Assets for one row range, in one transaction (a retry redoes it whole or not at all)."""
    async with engine.begin() as conn:
        return await get_category(ref.category).enrich(conn, import_scope(ref, rows))


async def link_chunk(engine: AsyncEngine, ref: ImportRef, rows: RowRange) -> EnrichCounts:
    """Dependencies for one row range; runs after every chunk's assets exist."""
    async with engine.begin() as conn:
        return await get_category(ref.category).link(conn, import_scope(ref, rows))


async def refresh_statistics(engine: AsyncEngine) -> None:
    """Fresh planner statistics for the inventory tables before a pass over them: a table
    analysed while empty makes every lookup look like a cheap sequential scan."""
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE assets"))
        await conn.execute(text("ANALYZE asset_dependencies"))
        await conn.commit()


async def enrichment_totals(engine: AsyncEngine, ref: ImportRef) -> EnrichmentResult:
    """Exact totals, and the tenant's move groups refreshed with the new dependencies."""
    scope = import_scope(ref)
    async with engine.begin() as conn:
        totals = await inventory.import_totals(conn, scope)
        groups = await refresh_dependency_groups(conn, scope.client_account_id, scope.engagement_id)
        await conn.execute(
            text(
                "UPDATE data_imports SET summary = summary || CAST(:summary AS jsonb) "
                "WHERE id = :id AND client_account_id = :c AND engagement_id = :e"
            ),
            {
                "summary": json.dumps({"dependency_groups": groups}, default=str),
                "id": ref.data_import_id,
                "c": ref.client_account_id,
                "e": ref.engagement_id,
            },
        )
    return EnrichmentResult(**totals, dependency_groups=int(groups.get("groups", 0)))
