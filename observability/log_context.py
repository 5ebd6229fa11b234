"""Which import and tenant an activity works on, so every log line it writes can say so.

A worker interceptor reads the ids from the activity's input (an ImportRequest, an ImportRef,
or a model carrying one as `ref` or `request`) into a context variable before the activity
runs. Tasks and threads the activity starts inherit it, so no log call has to pass ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from dataimport.contracts import WORKFLOW_ID_PREFIX, ImportRef, ImportRequest

_context: ContextVar[Mapping[str, str] | None] = ContextVar("dataimport_log_context", default=None)


def current() -> Mapping[str, str]:
    """The ids known for the running activity (empty outside one)."""
    return _context.get() or {}


def import_ids(arg: Any) -> dict[str, str]:
    """data_import_id, tenant and category of an activity argument, when it names an import."""
    for candidate in (arg, getattr(arg, "ref", None), getattr(arg, "request", None)):
        if isinstance(candidate, ImportRef | ImportRequest):
            return {
                "data_import_id": str(candidate.data_import_id),
                "client_account_id": str(candidate.client_account_id),
                "engagement_id": str(candidate.engagement_id),
                "category": candidate.category,
            }
    return {}


def import_id_of_workflow(workflow_id: str) -> str | None:
    if workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return workflow_id[len(WORKFLOW_ID_PREFIX) :]
    return None


class ImportLogContext(Interceptor):
    """Worker interceptor: sets the log context around every activity execution."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(next)


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        fields = {"workflow_id": info.workflow_id or "", "activity": info.activity_type}
        if input.args:
            fields.update(import_ids(input.args[0]))
        token = _context.set(fields)
        try:
            return await super().execute_activity(input)
        finally:
            _context.reset(token)
