"""One import's report for the console: times, phase transitions, findings by code, masked sample.

Everything comes from the tenant's own rows (data_imports joined to its master flow); the
sample is the one create_flows stored, already masked for categories that mask values.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import pii
from dataimport.categories import get_category
from dataimport.categories.base import map_headers
from dataimport.category_catalog import fields_of
from dataimport.contracts import ProcessingConfig
from dataimport.imports import Tenant
from dataimport.models import DataImport, MasterFlow
from dataimport.tenant_scope import where_tenant

# The workflow appends the model's advice to the needs_attention message in this form.
_SUGGESTION = re.compile(r"A model suggests \(advisory, check it first\): (\{.*\})\s*$")


def _report(tenant: Tenant, data_import_id: uuid.UUID) -> Executable:
    """The import joined to its master flow (of the same tenant: flow ids are not secrets)."""
    d, m = DataImport, MasterFlow
    return (
        select(
            d.import_category,
            d.created_at,
            d.updated_at,
            d.completed_at,
            d.file_size,
            d.detected_format,
            d.processing_config,
            d.summary,
            d.request_id,
            d.error_message,
            d.staging_purged_at,
            m.phase_transitions,
            m.state_data["raw_data_sample"].label("sample"),
        )
        .outerjoin(m, (m.flow_id == d.master_flow_id) & where_tenant(m, tenant))
        .where(d.id == data_import_id, where_tenant(d, tenant))
    )


@dataclass
class ImportReport:
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    file_size: int
    request_id: str | None
    detected_format: dict[str, Any]
    processing_config: dict[str, Any]
    transitions: list[dict[str, Any]]
    issues: dict[str, Any]
    quality_score: float | None
    headers: list[str]
    unmapped_headers: list[str]
    category_fields: list[str]
    suggested_mapping: dict[str, str]
    sample: list[dict[str, Any]]
    staging_purged_at: datetime | None
    outcome: dict[str, Any] = field(default_factory=dict)


def suggested_mapping(message: str | None) -> dict[str, str]:
    """The model's column_mapping advice carried in a needs_attention message, if any."""
    found = _SUGGESTION.search(message or "")
    if found is None:
        return {}
    try:
        advice = json.loads(found.group(1))
    except json.JSONDecodeError:
        return {}
    if not isinstance(advice, dict):
        return {}
    return {str(k): str(v) for k, v in advice.items() if isinstance(v, str)}


def shown_headers(category_name: str, headers: list[str], mapping: dict[str, str]) -> list[str]:
    """Headers as the page may show them: where values are masked, a header no alias or
    mapping names may be a data row of a headerless file, so it is masked too (invariant 7)."""
    category = get_category(category_name)
    if not category.masks_values:
        return headers
    known = map_headers(headers, category.aliases, mapping).field_by_header
    return [header if header in known else pii.mask_value(header) for header in headers]


async def import_report(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> ImportReport | None:
    """The tenant's import as the console shows it (None: unknown to this tenant)."""
    async with engine.connect() as conn:
        row = (await conn.execute(_report(tenant, data_import_id))).first()
    if row is None:
        return None
    summary = row.summary or {}
    validation = summary.get("validation") or {}
    config = row.processing_config or {}
    mapping = ProcessingConfig.model_validate(config).column_mapping
    headers = list((row.detected_format or {}).get("headers", []))
    category = get_category(row.import_category)
    # From the headers as read and the stored config, so it is right before validation ran.
    unmapped = map_headers(headers, category.aliases, mapping).unmapped_headers
    return ImportReport(
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
        file_size=row.file_size,
        request_id=row.request_id,
        detected_format={k: v for k, v in (row.detected_format or {}).items() if k != "headers"},
        processing_config=config,
        transitions=list(row.phase_transitions or []),
        issues=dict(validation.get("issues") or {}),
        quality_score=validation.get("quality_score"),
        headers=shown_headers(row.import_category, headers, mapping),
        unmapped_headers=shown_headers(row.import_category, unmapped, mapping),
        category_fields=fields_of(category),
        suggested_mapping=suggested_mapping(row.error_message),
        sample=list(row.sample or []),
        staging_purged_at=row.staging_purged_at,
        outcome=dict(summary.get("outcome") or {}),
    )
