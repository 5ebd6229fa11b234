"""/api/v1/imports: start (streamed upload), list, status, error reports, retry and fail."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TextIO

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import imports
from dataimport.api.errors import ApiError, error_responses, import_not_found
from dataimport.api.schemas import (
    Decision,
    FailBody,
    ImportAccepted,
    ImportList,
    RetryBody,
    StepList,
)
from dataimport.api.tenant import ReadService, WriteService, credential_of
from dataimport.api.upload import FILE_FIELD, receive_upload
from dataimport.categories import REGISTRY
from dataimport.contracts import ImportStatus
from dataimport.imports import Tenant
from dataimport.reports import write_error_report, write_failed_rows
from dataimport.storage import remove_stored
from service.errors import DecisionRefused, ImportNotFound, InvalidRequest
from service.imports import ImportService, check_category, processing_config_of

# credential_of on the router: no route here answers an unauthenticated caller, whatever its
# own dependencies say (FastAPI runs it once per request, shared with the route's Access).
router = APIRouter(
    prefix="/api/v1/imports",
    tags=["imports"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(401, 403),
)

MAX_REQUEST_ID = 200
_CSV_CHUNK = 64 * 1024
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD, "import_category"],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV, XLSX or JSON, recognised from its bytes.",
                        },
                        "import_category": {"type": "string", "enum": sorted(REGISTRY)},
                        "processing_config": {
                            "type": "string",
                            "description": 'JSON object, e.g. {"max_invalid_ratio": 0.2}',
                        },
                        "request_id": {
                            "type": "string",
                            "maxLength": MAX_REQUEST_ID,
                            "description": "Idempotency key: same key, same import.",
                        },
                    },
                }
            }
        },
    }
}


def _category(value: str | None) -> str:
    if not value:
        raise ApiError(422, "missing-category", "the import_category form field is required")
    try:
        check_category(value)
    except InvalidRequest:
        known = sorted(REGISTRY)
        message = f"unknown import category {value!r}; known: {', '.join(known)}"
        raise ApiError(422, "unknown-category", message, {"known": known}) from None
    return value


def _config(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        try:
            processing_config_of(value)
        except InvalidRequest as error:
            raise ApiError(422, "invalid-processing-config", str(error)) from None
    return value


def _config_text(text: str | None) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        message = f"processing_config is not valid JSON: {error}"
        raise ApiError(422, "invalid-processing-config", message) from None
    if not isinstance(value, dict):
        message = "processing_config must be a JSON object"
        raise ApiError(422, "invalid-processing-config", message)
    return _config(value)


def _request_id(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_REQUEST_ID:
        message = f"request_id is longer than {MAX_REQUEST_ID} characters"
        raise ApiError(422, "invalid-request-id", message)
    stripped = (value or "").strip()
    return stripped or None


_FIELD_CHECKS: dict[str, Callable[[str], object]] = {
    "import_category": _category,
    "processing_config": _config_text,
    "request_id": _request_id,
}


def _check_field(name: str, value: str) -> None:
    """Refuse a bad field as soon as it arrives, before a large file after it is streamed."""
    check = _FIELD_CHECKS.get(name)
    if check is not None:
        check(value)


@router.post(
    "",
    status_code=202,
    response_model=ImportAccepted,
    openapi_extra=_UPLOAD_BODY,
    responses=error_responses(400, 413, 415, 422),
    summary="Upload a file and start its import",
)
async def start_import(
    request: Request, response: Response, service: WriteService
) -> ImportAccepted:
    settings = service.settings
    upload = await receive_upload(
        request, settings.uploads_dir, settings.max_upload_bytes, _check_field
    )
    try:
        category = _category(upload.fields.get("import_category"))
        config = _config_text(upload.fields.get("processing_config"))
        request_id = _request_id(upload.fields.get("request_id"))
    except ApiError:
        remove_stored(upload.stored.uri)  # refused: the file must not linger
        raise
    stored, name = upload.stored, upload.filename
    status = await service.start_stored(stored, name, category, config, request_id)
    url = request.app.url_path_for("get_import", data_import_id=str(status.data_import_id))
    response.headers["Location"] = url
    return ImportAccepted(
        data_import_id=status.data_import_id,
        workflow_id=status.workflow_id,
        status=status.status,
        status_url=url,
    )


@router.get("", response_model=ImportList, responses=error_responses(400))
async def list_imports(
    service: ReadService, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> ImportList:
    """The tenant's imports, newest first."""
    return ImportList(items=await service.list(limit))


async def _existing(service: ImportService, data_import_id: uuid.UUID) -> ImportStatus:
    status = await service.status(data_import_id)
    if status is None:
        raise import_not_found(data_import_id)
    return status


@router.get(
    "/{data_import_id}",
    response_model=ImportStatus,
    responses=error_responses(400, 404),
    name="get_import",
)
async def get_import(data_import_id: uuid.UUID, service: ReadService) -> ImportStatus:
    """Status of one import: the same JSON as `dataimport status ID --json`."""
    return await _existing(service, data_import_id)


@router.get("/{data_import_id}/steps", response_model=StepList, responses=error_responses(400, 404))
async def processing_steps(data_import_id: uuid.UUID, service: ReadService) -> StepList:
    """Every agent run of the import (rule-based and model-backed) with its findings."""
    await _existing(service, data_import_id)
    return StepList(
        items=await imports.processing_steps(service.engine, service.tenant, data_import_id)
    )


Report = Callable[[AsyncEngine, Tenant, uuid.UUID, TextIO], Awaitable[int]]
_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    **error_responses(400, 404),
}


async def _csv(
    service: ImportService, data_import_id: uuid.UUID, report: Report, name: str
) -> StreamingResponse:
    """Write the CLI's own report to a temporary file (bounded memory), then stream it."""
    await _existing(service, data_import_id)
    spool: TextIO = tempfile.TemporaryFile("w+", newline="", encoding="utf-8")  # noqa: SIM115
    try:
        await report(service.engine, service.tenant, data_import_id, spool)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    disposition = f'attachment; filename="import-{data_import_id}-{name}.csv"'
    return StreamingResponse(
        _chunks(spool),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition},
    )


async def _chunks(spool: TextIO) -> AsyncIterator[bytes]:
    with spool:
        while text := spool.read(_CSV_CHUNK):
            yield text.encode("utf-8")


@router.get("/{data_import_id}/errors", response_class=StreamingResponse, responses=_CSV_RESPONSE)
async def error_report(data_import_id: uuid.UUID, service: ReadService) -> StreamingResponse:
    """Every finding as CSV (row, column, code, severity, message), as `dataimport errors --out`."""
    return await _csv(service, data_import_id, write_error_report, "errors")


@router.get(
    "/{data_import_id}/failed-rows", response_class=StreamingResponse, responses=_CSV_RESPONSE
)
async def failed_rows(data_import_id: uuid.UUID, service: ReadService) -> StreamingResponse:
    """The rejected rows in the file's own columns, to fix and import again (masked for
    sensitive data), as `dataimport errors --failed-rows`."""
    return await _csv(service, data_import_id, write_failed_rows, "failed-rows")


async def _decide(data_import_id: uuid.UUID, decision: Awaitable[ImportStatus]) -> Decision:
    try:
        return Decision(status=await decision)
    except ImportNotFound:
        raise import_not_found(data_import_id) from None
    except DecisionRefused as error:  # not waiting, or the workflow's validator refused it
        raise ApiError(409, "decision-refused", str(error)) from None


@router.post(
    "/{data_import_id}/retry",
    status_code=202,
    response_model=Decision,
    responses=error_responses(400, 404, 409, 422),
)
async def retry_import(
    data_import_id: uuid.UUID,
    service: WriteService,
    body: Annotated[RetryBody | None, Body()] = None,
) -> Decision:
    """Re-run an import that needs attention from its failed phase, optionally with a new
    processing config (no re-upload). 409 with the reason when it is not waiting."""
    config = _config(body.processing_config if body else None)
    return await _decide(data_import_id, service.retry(data_import_id, config))


@router.post(
    "/{data_import_id}/fail",
    status_code=202,
    response_model=Decision,
    responses=error_responses(400, 404, 409, 422),
)
async def fail_import(data_import_id: uuid.UUID, body: FailBody, service: WriteService) -> Decision:
    """Finish an import that needs attention as failed, with a reason."""
    if not body.reason.strip():
        raise ApiError(422, "invalid-request", "reason must not be blank")
    return await _decide(data_import_id, service.fail(data_import_id, body.reason))
