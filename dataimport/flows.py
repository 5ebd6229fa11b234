"""Master and child flow records: created once per import, kept consistent with data_imports."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
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
            text(
                "INSERT INTO data_imports (id, client_account_id, engagement_id, import_category, "
                "filename, file_uri, file_size, sha256, request_id, processing_config, status, "
                "workflow_id) VALUES (:id, :c, :e, :category, :filename, :uri, :size, :sha, :rid, "
                "CAST(:config AS jsonb), 'pending', :wf) ON CONFLICT DO NOTHING "
                "RETURNING id"
            ),
            {
                "id": request.data_import_id,
                "c": request.client_account_id,
                "e": request.engagement_id,
                "category": request.category,
                "filename": request.filename,
                "uri": request.file_uri,
                "size": request.file_size,
                "sha": request.sha256,
                "rid": request.request_id,
                "config": request.processing_config.model_dump_json(),
                "wf": workflow_id,
            },
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
        text(
            "SELECT 1 FROM data_imports WHERE request_id = :rid AND id <> :id "
            "AND client_account_id = :c AND engagement_id = :e"
        ),
        {
            "rid": request.request_id,
            "id": request.data_import_id,
            "c": request.client_account_id,
            "e": request.engagement_id,
        },
    )
    return found is not None


async def _owned(conn: AsyncConnection, request: ImportRequest) -> bool:
    """Whether the existing row of this import id belongs to the request's tenant."""
    found = await conn.scalar(
        text(
            "SELECT 1 FROM data_imports WHERE id = :id "
            "AND client_account_id = :c AND engagement_id = :e"
        ),
        {"id": request.data_import_id, "c": request.client_account_id, "e": request.engagement_id},
    )
    return found is not None


async def _raw_sample(conn: AsyncConnection, ref: ImportRef) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            "SELECT raw_data FROM raw_import_records WHERE data_import_id = :id "
            "AND client_account_id = :c AND engagement_id = :e AND NOT is_blank "
            "ORDER BY row_number LIMIT :n"
        ),
        {**_tenant(ref), "n": SAMPLE_SIZE},
    )
    return [row[0] for row in rows]


async def _mapped_headers(
    conn: AsyncConnection, ref: ImportRef, category: ImportCategory
) -> set[str]:
    """Headers that map to a field (an alias or the import's column_mapping names them)."""
    found = (
        await conn.execute(
            text(
                "SELECT detected_format, processing_config FROM data_imports WHERE id = :id "
                "AND client_account_id = :c AND engagement_id = :e"
            ),
            _tenant(ref),
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
    params = {**_tenant(ref), "mf": ids.master_flow_id, "df": ids.discovery_flow_id}
    async with engine.begin() as conn:
        sample = await _raw_sample(conn, ref)
        category = get_category(ref.category)
        if category.masks_values:
            known = await _mapped_headers(conn, ref, category)
            sample = [_masked_sample_row(row, known) for row in sample]
        state = {"raw_data_sample": sample, "category": ref.category, "filename": filename}
        await conn.execute(
            text(
                "INSERT INTO master_flows (flow_id, client_account_id, engagement_id, flow_type, "
                "flow_name, flow_status, configuration, state_data) VALUES (:mf, :c, :e, "
                "'data_import', :name, 'validating', CAST(:config AS jsonb), "
                "CAST(:state AS jsonb)) ON CONFLICT (flow_id) DO NOTHING"
            ),
            {
                **params,
                "name": f"Import {filename} ({ref.category})",
                "config": json.dumps({"import_category": ref.category}),
                "state": json.dumps(state, ensure_ascii=False),
            },
        )
        await conn.execute(
            text(
                "INSERT INTO discovery_flows (id, master_flow_id, data_import_id, "
                "client_account_id, engagement_id, current_phase, status, data_import_completed) "
                "VALUES (:df, :mf, :id, :c, :e, 'validation', 'validating', true) "
                "ON CONFLICT (id) DO NOTHING"
            ),
            params,
        )
        await conn.execute(
            text(
                "UPDATE data_imports SET master_flow_id = :mf, updated_at = now() "
                "WHERE id = :id AND client_account_id = :c AND engagement_id = :e"
            ),
            params,
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
    terminal = update.status in TERMINAL_STATUSES
    counters = {k: v for k, v in update.counters.items() if k in _COUNTER_COLUMNS}
    counter_sql = "".join(f", {name} = :{name}" for name in counters)
    params = {
        **_tenant(update.ref),
        **counters,
        "status": update.status,
        "phase": update.phase,
        "code": update.error_code,
        "message": update.error_message,
        "summary": json.dumps(update.summary),
        "transition": _transition(update),
        "terminal": terminal,
    }
    async with engine.begin() as conn:
        before = await conn.scalar(text(_UPDATE_IMPORT.format(counters=counter_sql)), params)
        await conn.execute(text(_UPDATE_MASTER), params)
        await conn.execute(text(_UPDATE_CHILD.format(flag=_phase_flag_sql(update))), params)
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

# Returns the status the import had before (the CTE reads the row as it was, locked).
_UPDATE_IMPORT = """
WITH before AS (
  SELECT id, status FROM data_imports
  WHERE id = :id AND client_account_id = :c AND engagement_id = :e FOR UPDATE
)
UPDATE data_imports d SET status = :status, phase = :phase, error_code = :code,
  error_message = :message, summary = d.summary || CAST(:summary AS jsonb), updated_at = now(),
  completed_at = CASE WHEN :terminal THEN now() ELSE NULL END {counters}
FROM before WHERE d.id = before.id
RETURNING before.status
"""

# Append a transition only when it differs from the last one, so a retried call is a no-op.
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

_UPDATE_CHILD = """
UPDATE discovery_flows SET status = :status, current_phase = :phase,
  error_message = :message, updated_at = now(),
  phase_state = phase_state || CAST(:summary AS jsonb),
  completed_at = CASE WHEN :terminal THEN now() ELSE NULL END {flag}
WHERE data_import_id = :id AND client_account_id = :c AND engagement_id = :e
"""


def _phase_flag_sql(update: StatusUpdate) -> str:
    """Completion flags follow the phase reached: reaching enrichment means validation is done."""
    flags = []
    if update.phase in ("validation", "enrichment", "complete"):
        flags.append("data_import_completed")
    # Awaiting approval is after validation (the plan is of validated rows), before enrichment.
    if update.phase in ("enrichment", "complete") or update.status == "awaiting_approval":
        flags.append("data_validation_completed")
    if update.phase == "complete" and update.status in ("completed", "completed_with_errors"):
        flags.append("enrichment_completed")
    return "".join(f", {flag} = true" for flag in flags)
