"""/api/v1/imports/{id}/mapping-preview: the first staged rows as a proposed mapping maps them."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from dataimport.api.errors import error_responses, import_not_found
from dataimport.api.tenant import WriteTenant, credential_of
from dataimport.contracts import MAX_MAPPED_COLUMNS, MAX_NAME_LENGTH
from dataimport.mapping_preview import preview_mapping

router = APIRouter(
    prefix="/api/v1/imports",
    tags=["imports"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(400, 401, 403, 404, 422),
)


class PreviewBody(BaseModel):
    column_mapping: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_MAPPED_COLUMNS,
        description="Source header -> field, as a retry's processing_config would carry it.",
    )


class PreviewOut(BaseModel):
    field_by_header: dict[str, str]
    unmapped_headers: list[str]
    fields: list[str]
    rows: list[dict[str, Any]] = Field(description='[{"row": n, "values": {field: cell}}]')


@router.post("/{data_import_id}/mapping-preview", response_model=PreviewOut)
async def mapping_preview(
    data_import_id: uuid.UUID, body: PreviewBody, request: Request, tenant: WriteTenant
) -> PreviewOut:
    """Nothing is saved: send the mapping with a retry to use it. The write scope, as the
    retry it prepares (and every POST of this API)."""
    mapping = {
        k[:MAX_NAME_LENGTH]: v.strip()[:MAX_NAME_LENGTH]
        for k, v in body.column_mapping.items()
        if k and v.strip()
    }
    preview = await preview_mapping(request.app.state.engine, tenant, data_import_id, mapping)
    if preview is None:
        raise import_not_found(data_import_id)
    return PreviewOut.model_validate(preview, from_attributes=True)
