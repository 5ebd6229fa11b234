"""/api/v1/imports/{id}/report: one import's times, transitions, findings by code and sample."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from dataimport.api.errors import error_responses, import_not_found
from dataimport.api.tenant import ReadTenant, credential_of
from dataimport.import_report import import_report

router = APIRouter(
    prefix="/api/v1/imports",
    tags=["imports"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(400, 401, 403, 404),
)


class ImportReportOut(BaseModel):
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    file_size: int
    request_id: str | None = None
    detected_format: dict[str, Any]
    processing_config: dict[str, Any]
    transitions: list[dict[str, Any]] = Field(
        description="Status changes in order: status, phase, at, error_code, error_message."
    )
    issues: dict[str, Any] = Field(
        description="Findings by code: severity, count, first examples (largest first)."
    )
    quality_score: float | None = None
    headers: list[str] = Field(description="The file's header row (masked where values are).")
    unmapped_headers: list[str]
    category_fields: list[str] = Field(description="Fields a column_mapping may name.")
    suggested_mapping: dict[str, str] = Field(
        description="A model's column_mapping advice, when the import waits with one."
    )
    sample: list[dict[str, Any]] = Field(description="Two staged rows (masked where needed).")
    staging_purged_at: datetime | None = None
    outcome: dict[str, Any]


@router.get("/{data_import_id}/report", response_model=ImportReportOut)
async def get_report(
    data_import_id: uuid.UUID, request: Request, tenant: ReadTenant
) -> ImportReportOut:
    """What the console shows of one import beyond its status."""
    report = await import_report(request.app.state.engine, tenant, data_import_id)
    if report is None:
        raise import_not_found(data_import_id)
    return ImportReportOut.model_validate(report, from_attributes=True)
