"""Master and child flow records: created once per import, kept consistent with data_imports."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Executable, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dataimport import pii
from dataimport.categories import REGISTRY, get_category
from dataimport.categories.base import ImportCategory, map_headers
from dataimport.contracts import (
    TERMINAL_STATUSES,
    FlowIds,
    ImportRef,
    ImportRequest,
    ProcessingConfig,
    StatusUpdate,
)
from dataimport.error_codes import Level, register
from dataimport.models import DataImport, DiscoveryFlow, MasterFlow, RawImportRecord
from dataimport.tenant_scope import the_import, where_tenant

IMPORT_ID_TAKEN = register(
    "import-id-taken",
    Level.IMPORT,
    "Import id already in use",
    "The import id of a workflow input is registered to another tenant.",
    "The import id {data_import_id} is already registered and does not belong to this tenant; "
    "start the import with a new id.",
)
REQUEST_ID_TAKEN = register(
    "request-id-taken",
    Level.IMPORT,
    "Request id already in use",
    "Another import of the tenant already has this request id (idempotent starts).",
    "Another import of this tenant already has this request id; a request id names one "
    "import. Start the import through the CLI or the API to be answered with that import.",
)
UNKNOWN_CATEGORY = register(
    "unknown-category",
    Level.IMPORT,
    "Unknown import category",
    "The import names a category that is not in the category registry.",
    "{category!r} is not an import category (known: {known}).",
)

_FLOW_NAMESPACE = uuid.UUID("6f1c8a52-3c1e-4c55-9a49-8f0f3d3a9b10")
SAMPLE_SIZE = 2


def flow_ids_for(data_import_id: uuid.UUID) -> FlowIds:
    """Deterministic ids: a retried create-flows call finds the same rows."""
    return FlowIds(
        master_flow_id=uuid.uuid5(_FLOW_NAMESPACE, f"master:{data_import_id}"),
        discovery_flow_id=uuid.uuid5(_FLOW_NAMESPACE, f"discovery:{data_import_id}"),
    )


def _tenant(ref: ImportRef) -> dict[str, Any]:
    return {"id": ref.data_import_id, "c": ref.client_account_id, "e": ref.engagement_id}


async def register_import(engine: AsyncEngine, request: ImportRequest, workflow_id: str) -> bool:
    """Insert the data_imports row if the client has not already (idempotent); True when this
    call inserted it.

    The request is workflow input, which anyone who can start a workflow writes: an import id
    that already exists for another tenant is refused (IMPORT_ID_TAKEN), so nothing is ever
    staged, validated or enriched under someone else's import. So is an unknown category, and
    a request id another import of the tenant already has (REQUEST_ID_TAKEN: the unique index
    decides, so two racing inserts cannot both get it).
    """
    if request.category not in REGISTRY:
        raise UNKNOWN_CATEGORY.failure(
            category=request.category[:64], known=", ".join(sorted(REGISTRY))
        )
    async with engine.begin() as conn:
        # No conflict target: the primary key and the (tenant, request_id) index both count.
        inserted = await conn.execute(
            insert(DataImport)
            .values(
                id=request.data_import_id,
                client_account_id=request.client_account_id,
                engagement_id=request.engagement_id,
                import_category=request.category,
                filename=request.filename,
                file_uri=request.file_uri,
                file_size=request.file_size,
                sha256=request.sha256,
                request_id=request.request_id,
                processing_config=request.processing_config.model_dump(mode="json"),
                status="pending",
                workflow_id=workflow_id,
            )
            .on_conflict_do_nothing()
            .returning(DataImport.id)
        )
        if inserted.first() is not None:
            return True
        if await _owned(conn, request):
            return False
        if request.request_id is not None and await _request_id_taken(conn, request):
            raise REQUEST_ID_TAKEN.failure()
        raise IMPORT_ID_TAKEN.failure(data_import_id=request.data_import_id)


async def _request_id_taken(conn: AsyncConnection, request: ImportRequest) -> bool:
    """Whether another import of the request's tenant has its request id."""
    found = await conn.scalar(
        select(DataImport.id).where(
            DataImport.request_id == request.request_id,
            DataImport.id != request.data_import_id,
            where_tenant(DataImport, request),
        )
    )
    return found is not None


async def _owned(conn: AsyncConnection, request: ImportRequest) -> bool:
    """Whether the existing row of this import id belongs to the request's tenant."""
    found = await conn.scalar(select(DataImport.id).where(the_import(request)))
    return found is not None


async def _raw_sample(conn: AsyncConnection, ref: ImportRef) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(RawImportRecord.raw_data)
        .where(
            RawImportRecord.data_import_id == ref.data_import_id,
            where_tenant(RawImportRecord, ref),
            ~RawImportRecord.is_blank,
        )
        .order_by(RawImportRecord.row_number)
        .limit(SAMPLE_SIZE)
    )
    return [row[0] for row in rows]


async def _mapped_headers(
    conn: AsyncConnection, ref: ImportRef, category: ImportCategory
) -> set[str]:
    """Headers that map to a field (an alias or the import's column_mapping names them)."""
    found = (
        await conn.execute(
            select(DataImport.detected_format, DataImport.processing_config).where(the_import(ref))
        )
    ).first()
    if found is None:
        return set()
    headers = list((found.detected_format or {}).get("headers", []))
    config = ProcessingConfig.model_validate(found.processing_config or {})
    return set(map_headers(headers, category.aliases, config.column_mapping).field_by_header)


def _masked_sample_row(row: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """Every value masked, and every header no alias knows: in a file without a header row
    the first data row is read as headers (invariant 7)."""
    masked: dict[str, Any] = {}
    for header, value in pii.mask_record(row).items():
        key = header if header in known else pii.mask_value(header)
        while key in masked:  # two headers masked alike both stay
            key += "'"
        masked[key] = value
    return masked


async def create_flows(engine: AsyncEngine, ref: ImportRef, filename: str) -> FlowIds:
    """Master flow + child discovery flow + data_imports link, in one transaction."""
    ids = flow_ids_for(ref.data_import_id)
    tenant = {"client_account_id": ref.client_account_id, "engagement_id": ref.engagement_id}
    async with engine.begin() as conn:
        sample = await _raw_sample(conn, ref)
        category = get_category(ref.category)
        if category.masks_values:
            known = await _mapped_headers(conn, ref, category)
            sample = [_masked_sample_row(row, known) for row in sample]
        state = {"raw_data_sample": sample, "category": ref.category, "filename": filename}
        await conn.execute(
            insert(MasterFlow)
            .values(
                **tenant,
                flow_id=ids.master_flow_id,
                flow_type="data_import",
                flow_name=f"Import {filename} ({ref.category})",
                flow_status="validating",
                configuration={"import_category": ref.category},
                state_data=state,
            )
            .on_conflict_do_nothing(index_elements=[MasterFlow.flow_id])
        )
        await conn.execute(
            insert(DiscoveryFlow)
            .values(
                **tenant,
                id=ids.discovery_flow_id,
                master_flow_id=ids.master_flow_id,
                data_import_id=ref.data_import_id,
                current_phase="validation",
                status="validating",
                data_import_completed=True,
            )
            .on_conflict_do_nothing(index_elements=[DiscoveryFlow.id])
        )
        await conn.execute(
            update(DataImport)
            .where(the_import(ref))
            .values(master_flow_id=ids.master_flow_id, updated_at=func.now())
        )
    return ids


def _transition(update: StatusUpdate) -> str:
    entry: dict[str, Any] = {"status": update.status, "phase": update.phase}
    if update.error_code:
        entry.update(error_code=update.error_code, error_message=update.error_message)
    return json.dumps(entry)


async def record_status(engine: AsyncEngine, update: StatusUpdate) -> bool:
    """Move data_imports, master flow and child flow to one status together (invariant 4).

    True when the import entered this status now (False: a retried call, already there)."""
    params = {
        **_tenant(update.ref),
        "status": update.status,
        "phase": update.phase,
        "code": update.error_code,
        "message": update.error_message,
        "transition": _transition(update),
    }
    async with engine.begin() as conn:
        before = await conn.scalar(_update_import(update))
        await conn.execute(text(_UPDATE_MASTER), params)
        await conn.execute(_update_child(update))
    return before != update.status


_COUNTER_COLUMNS = frozenset(
    {
        "total_rows",
        "valid_rows",
        "invalid_rows",
        "blank_rows",
        "warning_rows",
        "processed_rows",
    }
)


def _update_import(change: StatusUpdate) -> Executable:
    """Returns the status the import had before (the CTE reads the row as it was, locked)."""
    before = (
        select(DataImport.id, DataImport.status)
        .where(the_import(change.ref))
        .with_for_update()
        .cte("before")
    )
    counters = {k: v for k, v in change.counters.items() if k in _COUNTER_COLUMNS}
    return (
        update(DataImport)
        .where(DataImport.id == before.c.id)
        .values(
            status=change.status,
            phase=change.phase,
            error_code=change.error_code,
            error_message=change.error_message,
            summary=DataImport.summary.op("||")(literal(change.summary, JSONB)),
            updated_at=func.now(),
            completed_at=func.now() if change.status in TERMINAL_STATUSES else None,
            **counters,
        )
        .returning(before.c.status)
    )


# Append a transition only when it differs from the last one, so a retried call is a no-op.
# Hand-written: two JSONB CASEs over the previous entry read clearer as SQL.
_UPDATE_MASTER = """
UPDATE master_flows m SET flow_status = :status, updated_at = now(),
  phase_transitions = CASE
    WHEN m.phase_transitions -> -1 @> CAST(:transition AS jsonb) THEN m.phase_transitions
    ELSE m.phase_transitions || jsonb_build_array(
      CAST(:transition AS jsonb) || jsonb_build_object('at', now())) END,
  error_history = CASE
    WHEN CAST(:code AS text) IS NULL
      OR m.error_history -> -1 @> jsonb_build_object('error_code', CAST(:code AS text),
        'phase', CAST(:phase AS text))
      THEN m.error_history
    ELSE m.error_history || jsonb_build_array(jsonb_build_object(
      'error_code', CAST(:code AS text), 'error_message', CAST(:message AS text),
      'phase', CAST(:phase AS text), 'at', now())) END
FROM data_imports d
WHERE d.id = :id AND d.client_account_id = :c AND d.engagement_id = :e
  AND m.flow_id = d.master_flow_id
"""


def _update_child(change: StatusUpdate) -> Executable:
    ref = change.ref
    return (
        update(DiscoveryFlow)
        .where(DiscoveryFlow.data_import_id == ref.data_import_id, where_tenant(DiscoveryFlow, ref))
        .values(
            status=change.status,
            current_phase=change.phase,
            error_message=change.error_message,
            updated_at=func.now(),
            phase_state=DiscoveryFlow.phase_state.op("||")(literal(change.summary, JSONB)),
            completed_at=func.now() if change.status in TERMINAL_STATUSES else None,
            **dict.fromkeys(_phase_flags(change), True),
        )
    )


def _phase_flags(change: StatusUpdate) -> list[str]:
    """Completion flags follow the phase reached: reaching enrichment means validation is done."""
    flags = []
    if change.phase in ("validation", "enrichment", "complete"):
        flags.append("data_import_completed")
    # Awaiting approval is after validation (the plan is of validated rows), before enrichment.
    if change.phase in ("enrichment", "complete") or change.status == "awaiting_approval":
        flags.append("data_validation_completed")
    if change.phase == "complete" and change.status in ("completed", "completed_with_errors"):
        flags.append("enrichment_completed")
    return flags
