"""One error shape for every answer that is not a success: {"error": {"code", "message"}}.

Handlers turn expected failures (bad input, unknown ids, refused decisions, a backend that is
down) into that shape with the right status; nothing ever answers with a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from dataimport.retention import StagingPurged

log = logging.getLogger("dataimport.api")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An expected failure with its HTTP status, a stable code and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers


def import_not_found(data_import_id: object) -> ApiError:
    # The same words for an unknown id and another tenant's id: nothing leaks across tenants.
    return ApiError(404, "import-not-found", f"no import {data_import_id}")


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
    )


# Shown in the OpenAPI schema of every route that can answer with them.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(error.status, error.code, error.message, error.details, error.headers)


async def _invalid_request(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {"location": ".".join(str(part) for part in item["loc"]), "message": item["msg"]}
        for item in error.errors()
    ]
    summary = "; ".join(f"{p['location']}: {p['message']}" for p in problems)
    return error_response(422, "invalid-request", summary, problems)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    codes = {404: "not-found", 405: "method-not-allowed"}
    return error_response(
        error.status_code, codes.get(error.status_code, f"http-{error.status_code}"), error.detail
    )


async def _database_down(_: Request, error: Exception) -> JSONResponse:
    log.error("database error: %s", getattr(error, "orig", None) or error)
    return error_response(503, "database-unavailable", "the database cannot be reached")


async def _temporal_down(_: Request, error: Exception) -> JSONResponse:
    log.error("Temporal error: %s", error)
    return error_response(503, "temporal-unavailable", "the Temporal server refused the request")


async def _staging_purged(_: Request, error: Exception) -> JSONResponse:
    # Gone, not missing: the import exists, its row-level data was removed on purpose.
    return error_response(410, "staging-purged", str(error))


async def _internal(_: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)
    return error_response(500, "internal-error", "unexpected server error; see the API log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _database_down)
    app.add_exception_handler(ConnectionError, _database_down)
    app.add_exception_handler(RPCError, _temporal_down)
    app.add_exception_handler(StagingPurged, _staging_purged)
    app.add_exception_handler(Exception, _internal)
