"""Reading the advice back: the stored suggestions, and the mapper's as a column_mapping."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.imports import Tenant
from dataimport.model_agents.jobs import COLUMN_MAPPER
from dataimport.model_agents.recording import STEP_NAME
from dataimport.models import ImportProcessingStep
from dataimport.tenant_scope import where_tenant


async def model_suggestions(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> dict[str, dict[str, Any]]:
    """agent -> {status, outcome, suggestions, model, tokens, ...} for the tenant's import."""
    step = ImportProcessingStep
    stmt = (
        select(step.agent, step.status, step.findings)
        .where(
            step.data_import_id == data_import_id,
            where_tenant(step, tenant),
            step.step_name == STEP_NAME,
        )
        .order_by(step.agent)
    )
    async with engine.connect() as conn:
        rows = await conn.execute(stmt)
        return {row.agent: {"status": row.status, **row.findings} for row in rows}


def suggested_column_mapping(
    suggestions: dict[str, dict[str, Any]], min_confidence: float = 0.0
) -> dict[str, str]:
    """The column mapper's advice as a processing_config.column_mapping (header -> field)."""
    found = suggestions.get(COLUMN_MAPPER, {}).get("suggestions", [])
    return {item["header"]: item["field"] for item in found if item["confidence"] >= min_confidence}
