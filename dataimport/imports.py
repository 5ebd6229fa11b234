"""Tenant-scoped reads and writes of imports for the client side (CLI, API).

Every function takes the tenant and filters on it: another tenant's import id answers
exactly like an id that does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Executable, column, delete, func, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import pii, validation
from dataimport.contracts import ImportRef, ImportRequest, ImportStatus, ProcessingStep
from dataimport.error_codes import ImportFailure
from dataimport.flows import REQUEST_ID_TAKEN, register_import
from dataimport.models import DataImport, ImportProcessingStep, RawImportRecord
from dataimport.tenant_scope import where_tenant


@dataclass(frozen=True, slots=True)
class Tenant:
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID

    def params(self) -> dict[str, Any]:
        return {"c": self.client_account_id, "e": self.engagement_id}


_STATUS_COLUMNS = (
    DataImport.id,
    DataImport.workflow_id,
    DataImport.import_category,
    DataImport.status,
    DataImport.phase,
    DataImport.filename,
    DataImport.total_rows,
    DataImport.valid_rows,
    DataImport.invalid_rows,
    DataImport.blank_rows,
    DataImport.warning_rows,
    DataImport.processed_rows,
    DataImport.error_code,
    DataImport.error_message,
    DataImport.summary,
)


def _status_from_row(row: Any) -> ImportStatus:
    outcome = (row.summary or {}).get("outcome", {})
    return ImportStatus(
        data_import_id=row.id,
        workflow_id=row.workflow_id,
        category=row.import_category,
        status=row.status,
        phase=row.phase,
        filename=row.filename,
        total_rows=row.total_rows,
        valid_rows=row.valid_rows,
        invalid_rows=row.invalid_rows,
        blank_rows=row.blank_rows,
        warning_rows=row.warning_rows,
        processed_rows=row.processed_rows,
        assets_created=outcome.get("assets_created", 0),
        assets_updated=outcome.get("assets_updated", 0),
        dependencies_created=outcome.get("dependencies_created", 0),
        dependency_groups=outcome.get("dependency_groups", 0),
        progress=1.0 if row.status.startswith("completed") else 0.0,
        error_code=row.error_code,
        error_message=row.error_message,
    )


async def create_pending_import(
    engine: AsyncEngine, request: ImportRequest, workflow_id: str
) -> ImportStatus | None:
    """The client records the import before starting its workflow, so status works at once.

    None when this call recorded it; otherwise the import that already has the request's id
    or request id (a repeated or racing upload: the unique keys decide, not a prior read).
    """
    try:
        if await register_import(engine, request, workflow_id):
            return None
    except ImportFailure as failure:
        if failure.code != REQUEST_ID_TAKEN.code:
            raise
    tenant = Tenant(request.client_account_id, request.engagement_id)
    existing = await get_import(engine, tenant, request.data_import_id)
    if existing is None and request.request_id is not None:
        existing = await find_by_request_id(engine, tenant, request.request_id)
    if existing is None:  # gone again in between (its start failed): a plain conflict
        raise REQUEST_ID_TAKEN.failure()
    return existing


async def forget_unstarted_import(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> None:
    """Remove an import record whose workflow never started (only while still pending)."""
    async with engine.begin() as conn:
        await conn.execute(
            delete(DataImport).where(
                DataImport.id == data_import_id,
                DataImport.status == "pending",
                where_tenant(DataImport, tenant),
            )
        )


async def _one_import(
    engine: AsyncEngine, tenant: Tenant, condition: ColumnElement[bool]
) -> ImportStatus | None:
    """The tenant's import matching `condition`, or None."""
    stmt = select(*_STATUS_COLUMNS).where(condition, where_tenant(DataImport, tenant))
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    return _status_from_row(row) if row else None


async def get_import(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> ImportStatus | None:
    return await _one_import(engine, tenant, DataImport.id == data_import_id)


async def find_by_request_id(
    engine: AsyncEngine, tenant: Tenant, request_id: str
) -> ImportStatus | None:
    return await _one_import(engine, tenant, DataImport.request_id == request_id)


async def list_imports(engine: AsyncEngine, tenant: Tenant, limit: int = 50) -> list[ImportStatus]:
    stmt = (
        select(*_STATUS_COLUMNS)
        .where(where_tenant(DataImport, tenant))
        .order_by(DataImport.created_at.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [_status_from_row(row) for row in await conn.execute(stmt)]


def _staged_rows(tenant: Tenant, data_import_id: uuid.UUID) -> ColumnElement[bool]:
    """The staged rows of the tenant's import (its unique (import, row_number) index)."""
    return (RawImportRecord.data_import_id == data_import_id) & where_tenant(
        RawImportRecord, tenant
    )


def _error_rows(tenant: Tenant, data_import_id: uuid.UUID) -> Executable:
    """One row per finding: each staged row JOIN LATERAL jsonb_array_elements(its findings)."""
    findings = (
        func.jsonb_array_elements(RawImportRecord.validation_errors)
        .table_valued(column("value", JSONB))
        .lateral("e")
    )
    finding = findings.c.value
    return (
        select(
            RawImportRecord.row_number,
            *(finding[key].astext.label(key) for key in ("field", "code", "severity", "message")),
        )
        .join(findings, true())
        .where(_staged_rows(tenant, data_import_id))
        .order_by(RawImportRecord.row_number)
    )


async def error_rows(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> AsyncIterator[dict[str, Any]]:
    """Every finding of an import (row, field, code, severity, message), streamed; in a masked
    category a header that may be a data row's value (see validation.headers_to_mask) masked."""
    async with engine.connect() as conn:
        hidden: list[str] = []
        category = await conn.scalar(
            select(DataImport.import_category).where(
                DataImport.id == data_import_id, where_tenant(DataImport, tenant)
            )
        )
        if category is not None:
            ref = ImportRef(
                data_import_id=data_import_id,
                client_account_id=tenant.client_account_id,
                engagement_id=tenant.engagement_id,
                category=category,
            )
            hidden = await validation.headers_to_mask(conn, ref)
        result = await conn.stream(_error_rows(tenant, data_import_id))
        async for row in result.mappings():
            yield validation.mask_finding(dict(row), hidden)


async def source_headers(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> list[str] | None:
    """The file's header row as read (None when the import is unknown to this tenant)."""
    async with engine.connect() as conn:
        stmt = select(DataImport.detected_format).where(
            DataImport.id == data_import_id, where_tenant(DataImport, tenant)
        )
        row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return list((row[0] or {}).get("headers", []))


async def failed_rows(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID, *, masked: bool
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """The rejected rows in their original columns (row number, header -> cell), streamed.

    `masked` (sensitive categories) hides every value: the columns and row numbers still tell
    the user which rows to fix in their own copy of the file.
    """
    stmt = (
        select(RawImportRecord.row_number, RawImportRecord.raw_data)
        .where(
            _staged_rows(tenant, data_import_id),
            RawImportRecord.is_valid.is_(False),
            ~RawImportRecord.is_blank,
        )
        .order_by(RawImportRecord.row_number)
    )
    async with engine.connect() as conn:
        result = await conn.stream(stmt)
        async for row in result:
            yield row[0], pii.mask_record(row[1]) if masked else row[1]


async def processing_steps(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> list[ProcessingStep]:
    """Every agent/step run recorded for the tenant's import, in the order they started."""
    step = ImportProcessingStep
    stmt = (
        select(
            step.step_key.label("step"),
            step.agent,
            step.status,
            step.started_at,
            step.duration_ms,
            step.records_processed,
            step.findings,
            step.model,
            step.input_tokens,
            step.output_tokens,
            step.latency_ms,
        )
        .where(step.data_import_id == data_import_id, where_tenant(step, tenant))
        .order_by(step.started_at, step.step_key)
    )
    async with engine.connect() as conn:
        rows = await conn.execute(stmt)
        return [ProcessingStep.model_validate(dict(row._mapping)) for row in rows]
