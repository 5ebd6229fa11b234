"""Tenant-scoped reads and writes of imports for the client side (CLI, API).

Every function takes the tenant and filters on it: another tenant's import id answers
exactly like an id that does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import pii, validation
from dataimport.contracts import ImportRef, ImportRequest, ImportStatus, ProcessingStep
from dataimport.error_codes import ImportFailure
from dataimport.flows import REQUEST_ID_TAKEN, register_import


@dataclass(frozen=True, slots=True)
class Tenant:
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID

    def params(self) -> dict[str, Any]:
        return {"c": self.client_account_id, "e": self.engagement_id}


_STATUS_COLUMNS = """
id, workflow_id, import_category, status, phase, filename, total_rows, valid_rows,
invalid_rows, blank_rows, warning_rows, processed_rows, error_code, error_message, summary
"""


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
            text(
                "DELETE FROM data_imports WHERE id = :id AND status = 'pending' "
                "AND client_account_id = :c AND engagement_id = :e"
            ),
            {**tenant.params(), "id": data_import_id},
        )


async def _one_import(
    engine: AsyncEngine, tenant: Tenant, condition: str, params: dict[str, Any]
) -> ImportStatus | None:
    """The tenant's import matching `condition` (a fixed SQL fragment), or None."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                f"SELECT {_STATUS_COLUMNS} FROM data_imports WHERE {condition} "
                "AND client_account_id = :c AND engagement_id = :e"
            ),
            {**tenant.params(), **params},
        )
        row = result.first()
    return _status_from_row(row) if row else None


async def get_import(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> ImportStatus | None:
    return await _one_import(engine, tenant, "id = :id", {"id": data_import_id})


async def find_by_request_id(
    engine: AsyncEngine, tenant: Tenant, request_id: str
) -> ImportStatus | None:
    return await _one_import(engine, tenant, "request_id = :rid", {"rid": request_id})


async def list_imports(engine: AsyncEngine, tenant: Tenant, limit: int = 50) -> list[ImportStatus]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT {_STATUS_COLUMNS} FROM data_imports WHERE client_account_id = :c "
                "AND engagement_id = :e ORDER BY created_at DESC LIMIT :limit"
            ),
            {**tenant.params(), "limit": limit},
        )
        return [_status_from_row(row) for row in rows]


_ERROR_ROWS = """
SELECT r.row_number, e ->> 'field' AS field, e ->> 'code' AS code,
  e ->> 'severity' AS severity, e ->> 'message' AS message
FROM raw_import_records r
JOIN data_imports d ON d.id = r.data_import_id
CROSS JOIN LATERAL jsonb_array_elements(r.validation_errors) AS e
WHERE d.id = :id AND d.client_account_id = :c AND d.engagement_id = :e
ORDER BY r.row_number
"""


async def error_rows(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> AsyncIterator[dict[str, Any]]:
    """Every finding of an import (row, field, code, severity, message), streamed; in a masked
    category a header that may be a data row's value (see validation.headers_to_mask) masked."""
    async with engine.connect() as conn:
        hidden: list[str] = []
        category = await conn.scalar(
            text(
                "SELECT import_category FROM data_imports WHERE id = :id "
                "AND client_account_id = :c AND engagement_id = :e"
            ),
            {**tenant.params(), "id": data_import_id},
        )
        if category is not None:
            ref = ImportRef(
                data_import_id=data_import_id,
                client_account_id=tenant.client_account_id,
                engagement_id=tenant.engagement_id,
                category=category,
            )
            hidden = await validation.headers_to_mask(conn, ref)
        result = await conn.stream(text(_ERROR_ROWS), {**tenant.params(), "id": data_import_id})
        async for row in result.mappings():
            yield validation.mask_finding(dict(row), hidden)


_FAILED_ROWS = """
SELECT r.row_number, r.raw_data
FROM raw_import_records r
JOIN data_imports d ON d.id = r.data_import_id
WHERE d.id = :id AND d.client_account_id = :c AND d.engagement_id = :e
  AND r.is_valid IS FALSE AND NOT r.is_blank
ORDER BY r.row_number
"""


async def source_headers(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> list[str] | None:
    """The file's header row as read (None when the import is unknown to this tenant)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT detected_format FROM data_imports WHERE id = :id "
                    "AND client_account_id = :c AND engagement_id = :e"
                ),
                {**tenant.params(), "id": data_import_id},
            )
        ).first()
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
    async with engine.connect() as conn:
        result = await conn.stream(text(_FAILED_ROWS), {**tenant.params(), "id": data_import_id})
        async for row in result:
            yield row[0], pii.mask_record(row[1]) if masked else row[1]


_STEPS = """
SELECT step_key AS step, agent, status, started_at, duration_ms, records_processed, findings,
  model, input_tokens, output_tokens, latency_ms
FROM import_processing_steps
WHERE data_import_id = :id AND client_account_id = :c AND engagement_id = :e
ORDER BY started_at, step_key
"""


async def processing_steps(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> list[ProcessingStep]:
    """Every agent/step run recorded for the tenant's import, in the order they started."""
    async with engine.connect() as conn:
        rows = await conn.execute(text(_STEPS), {**tenant.params(), "id": data_import_id})
        return [ProcessingStep.model_validate(dict(row._mapping)) for row in rows]
