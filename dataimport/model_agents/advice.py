"""Reading the advice back: the stored suggestions, and the mapper's as a column_mapping."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.imports import Tenant
from dataimport.model_agents.jobs import COLUMN_MAPPER
from dataimport.model_agents.recording import STEP_NAME

_SUGGESTIONS = """
SELECT agent, status, findings FROM import_processing_steps
WHERE data_import_id = :id AND client_account_id = :c AND engagement_id = :e
  AND step_name = :step ORDER BY agent
"""


async def model_suggestions(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> dict[str, dict[str, Any]]:
    """agent -> {status, outcome, suggestions, model, tokens, ...} for the tenant's import."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(_SUGGESTIONS), {**tenant.params(), "id": data_import_id, "step": STEP_NAME}
        )
        return {row.agent: {"status": row.status, **row.findings} for row in rows}


def suggested_column_mapping(
    suggestions: dict[str, dict[str, Any]], min_confidence: float = 0.0
) -> dict[str, str]:
    """The column mapper's advice as a processing_config.column_mapping (header -> field)."""
    found = suggestions.get(COLUMN_MAPPER, {}).get("suggestions", [])
    return {item["header"]: item["field"] for item in found if item["confidence"] >= min_confidence}
