"""ImportService: start, status, list and decide imports, tenant-checked, then Temporal."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError

from dataimport import approval_plan, imports
from dataimport.approval_plan import ApprovalPlan, PlanMissing
from dataimport.categories import REGISTRY
from dataimport.contracts import (
    ApproveInput,
    FailInput,
    ImportRef,
    ImportRequest,
    ImportStatus,
    ProcessingConfig,
    RejectInput,
    RetryInput,
    workflow_id_for,
)
from dataimport.db import for_tenant
from dataimport.imports import Tenant
from dataimport.settings import Settings
from dataimport.storage import StoredFile, remove_stored, store_upload
from dataimport.tenant_context import acting_for
from service.errors import (
    DecisionRefused,
    ImportNotFound,
    InvalidRequest,
    NoPlan,
    PlanChanged,
    PlanStale,
)
from workflows.data_import import DataImportWorkflow

_REQUEST_NAMESPACE = uuid.UUID("0b7f3c4e-9d1a-4f5e-8c2b-6a1d2e3f4a5b")


@dataclass
class ImportService:
    settings: Settings
    engine: AsyncEngine
    client: Client
    tenant: Tenant

    def __post_init__(self) -> None:
        # Every transaction of the service is its tenant's (row-level security), including
        # those of callers handed `service.engine` (reports, the CLI's queries).
        self.engine = for_tenant(self.engine, self.tenant)

    async def start_import(
        self,
        path: Path,
        category: str,
        config: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> ImportStatus:
        """Store the file, record the import, start its workflow. Same request id, same import."""
        check_category(category)
        if not path.is_file():
            raise InvalidRequest(f"no such file: {path}")
        processing_config = processing_config_of(config)
        existing = await self._same_request(request_id)
        if existing:
            return existing
        data_import_id = self._import_id(request_id)
        # A name of its own, never the import id: a racing upload of the same request id
        # must not overwrite the file the first one stored (its own copy is removed instead).
        stored = store_upload(path, self.settings.uploads_dir, uuid.uuid4())
        return await self._start(
            data_import_id, stored, path.name, category, processing_config, request_id
        )

    async def start_stored(
        self,
        stored: StoredFile,
        filename: str,
        category: str,
        config: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> ImportStatus:
        """Start an import from a file already in storage (the API streams uploads there).

        The stored file belongs to the service from here on: when the request id names an
        existing import, that import answers and the new copy is removed.
        """
        check_category(category)
        processing_config = processing_config_of(config)
        existing = await self._same_request(request_id)
        if existing:
            remove_stored(stored.uri)
            return existing
        data_import_id = self._import_id(request_id)
        return await self._start(
            data_import_id, stored, filename, category, processing_config, request_id
        )

    async def _same_request(self, request_id: str | None) -> ImportStatus | None:
        if not request_id:
            return None
        return await imports.find_by_request_id(self.engine, self.tenant, request_id)

    async def _start(
        self,
        data_import_id: uuid.UUID,
        stored: StoredFile,
        filename: str,
        category: str,
        processing_config: ProcessingConfig,
        request_id: str | None,
    ) -> ImportStatus:
        """Record the import, then start its workflow (status works from the first moment)."""
        request = ImportRequest(
            data_import_id=data_import_id,
            client_account_id=self.tenant.client_account_id,
            engagement_id=self.tenant.engagement_id,
            category=category,
            file_uri=stored.uri,
            filename=filename,
            file_size=stored.size,
            sha256=stored.sha256,
            request_id=request_id,
            processing_config=processing_config,
        )
        workflow_id = workflow_id_for(data_import_id)
        existing = await imports.create_pending_import(self.engine, request, workflow_id)
        if existing is not None:  # the same request id won a race: that import answers
            remove_stored(stored.uri)
            return existing
        try:
            await self._start_workflow(request, workflow_id)
        except Exception:
            await self._forget_unless_started(request, workflow_id)
            raise
        status = await imports.get_import(self.engine, self.tenant, data_import_id)
        assert status is not None
        return status

    def _import_id(self, request_id: str | None) -> uuid.UUID:
        if not request_id:
            return uuid.uuid4()
        key = f"{self.tenant.client_account_id}:{self.tenant.engagement_id}:{request_id}"
        return uuid.uuid5(_REQUEST_NAMESPACE, key)

    async def _start_workflow(self, request: ImportRequest, workflow_id: str) -> None:
        # The same request again finds its workflow running: that import answers.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow(
                DataImportWorkflow.run,
                request,
                id=workflow_id,
                task_queue=self.settings.task_queue,
                search_attributes=search_attributes(request),
                static_summary=f"Import {request.filename} ({request.category})",
                static_details=(
                    f"data import {request.data_import_id}\n\n"
                    f"{request.file_size} bytes · sha256 {request.sha256}"
                ),
            )

    async def _forget_unless_started(self, request: ImportRequest, workflow_id: str) -> None:
        """Temporal refused or could not be reached: no workflow will ever run this import, so
        its record and file go (the same request id can then start afresh). If the start did
        get through (an answer lost on the way back), the workflow owns both: keep them."""
        with contextlib.suppress(Exception):
            await self.client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=timedelta(seconds=5)
            )
            return
        await imports.forget_unstarted_import(self.engine, self.tenant, request.data_import_id)
        remove_stored(request.file_uri)

    async def status(self, data_import_id: uuid.UUID) -> ImportStatus | None:
        """Live status from the workflow when it runs; the database record otherwise."""
        recorded = await imports.get_import(self.engine, self.tenant, data_import_id)
        if recorded is None or recorded.is_terminal:
            return recorded
        try:
            live: ImportStatus = await self._handle(recorded).query(
                DataImportWorkflow.status, rpc_timeout=timedelta(seconds=5)
            )
        except Exception:  # no worker to answer yet: the record is still right
            return recorded
        return live

    async def list(self, limit: int = 50) -> list[ImportStatus]:
        return await imports.list_imports(self.engine, self.tenant, limit)

    async def retry(self, data_import_id: uuid.UUID, config: dict[str, Any] | None) -> ImportStatus:
        status = await self._waiting(data_import_id)
        if config is not None:
            processing_config_of(config)  # a clear message before asking the workflow
        return await self._decide(
            status, DataImportWorkflow.retry_import, RetryInput(processing_config=config)
        )

    async def fail(self, data_import_id: uuid.UUID, reason: str) -> ImportStatus:
        status = await self._waiting(data_import_id)
        return await self._decide(status, DataImportWorkflow.fail_import, FailInput(reason=reason))

    async def approve(
        self, data_import_id: uuid.UUID, plan_id: uuid.UUID | None = None
    ) -> ImportStatus:
        """Approve the plan of an import awaiting approval: its enrichment runs.

        `plan_id`, the plan the approver saw, must be the import's current plan (PlanChanged).
        A stale plan (the tenant's inventory changed since it was made) is not approved: the
        import is planned again and PlanStale names the fresh plan, to review and approve.
        What another import writes between this check and enrichment is not covered."""
        status = await self._awaiting_approval(data_import_id, "approved")
        current = await self.plan(data_import_id)
        if plan_id is not None and current.plan_id != plan_id:
            raise PlanChanged(
                f"plan {plan_id} is not the current plan of import {data_import_id} (that is "
                f"{current.plan_id}, made {current.computed_at}): review it and approve that one"
            )
        if current.stale:
            fresh = await self.replan(data_import_id)
            raise PlanStale(
                f"not approved: {current.stale_reason}. A fresh plan was made "
                f"(plan {fresh.plan_id}): review it and approve again",
                fresh.plan_id,
            )
        return await self._decide(status, DataImportWorkflow.approve_import, ApproveInput())

    async def replan(self, data_import_id: uuid.UUID) -> ApprovalPlan:
        """Make the plan of an import awaiting approval again, from the inventory as it is now
        (the same dry run as the workflow's plan_enrichment activity, run here)."""
        status = await self._awaiting_approval(data_import_id, "planned again")
        ref = ImportRef(
            data_import_id=data_import_id,
            client_account_id=self.tenant.client_account_id,
            engagement_id=self.tenant.engagement_id,
            category=status.category,
        )
        with acting_for(self.tenant):
            await approval_plan.compute_plan(self.engine, ref)
        return await self.plan(data_import_id)

    async def reject(self, data_import_id: uuid.UUID, reason: str) -> ImportStatus:
        """Reject the plan: the import ends as rejected, the inventory untouched."""
        if not reason.strip():
            raise InvalidRequest("a reason is required")
        status = await self._awaiting_approval(data_import_id, "rejected")
        return await self._decide(
            status, DataImportWorkflow.reject_import, RejectInput(reason=reason)
        )

    async def plan(self, data_import_id: uuid.UUID) -> ApprovalPlan:
        """What enrichment would do (or, once approved, was planned to do) to the inventory."""
        try:
            found = await approval_plan.stored_plan(self.engine, self.tenant, data_import_id)
        except PlanMissing as missing:
            raise NoPlan(str(missing)) from None
        if found is None:
            raise ImportNotFound(f"no import {data_import_id}")
        return found

    async def _awaiting_approval(self, data_import_id: uuid.UUID, action: str) -> ImportStatus:
        status = await self.status(data_import_id)
        if status is None:
            raise ImportNotFound(f"no import {data_import_id}")
        if status.status != "awaiting_approval":
            raise DecisionRefused(
                f"import {data_import_id} is {status.status}; only an import awaiting "
                f"approval can be {action}"
            )
        return status

    async def _decide(self, status: ImportStatus, update: Any, data: Any) -> ImportStatus:
        """Send the decision as an Update: a refusal comes back at once with its reason."""
        try:
            answer: ImportStatus = await self._handle(status).execute_update(update, data)
        except WorkflowUpdateFailedError as error:
            reason = getattr(error.cause, "message", None) or str(error.cause or error)
            raise DecisionRefused(f"import {status.data_import_id} refused: {reason}") from None
        return answer

    async def _waiting(self, data_import_id: uuid.UUID) -> ImportStatus:
        status = await self.status(data_import_id)
        if status is None:
            raise ImportNotFound(f"no import {data_import_id}")
        if status.status != "needs_attention":
            raise DecisionRefused(
                f"import {data_import_id} is {status.status}; only an import that needs "
                "attention can be retried or failed"
            )
        return status

    def _handle(self, status: ImportStatus) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(status.workflow_id)


def check_category(category: str) -> None:
    if category not in REGISTRY:
        raise InvalidRequest(f"unknown category {category!r}; known: {', '.join(sorted(REGISTRY))}")


def processing_config_of(config: dict[str, Any] | None) -> ProcessingConfig:
    """The validated processing config; InvalidRequest with pydantic's reasons when it is bad."""
    try:
        return ProcessingConfig.model_validate(config or {})
    except ValueError as error:
        raise InvalidRequest(f"invalid processing config: {error}") from None


def search_attributes(request: ImportRequest) -> TypedSearchAttributes:
    values = {
        "ClientAccountId": str(request.client_account_id),
        "EngagementId": str(request.engagement_id),
        "ImportCategory": request.category,
        "ImportStatus": "pending",
        "DataImportId": str(request.data_import_id),
    }
    return TypedSearchAttributes(
        [SearchAttributePair(SearchAttributeKey.for_keyword(k), v) for k, v in values.items()]
    )
