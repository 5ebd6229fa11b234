"""/api/v1/imports/{id}/plan, /approve and /reject: plan, then apply (require_approval)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from dataimport.api.errors import ApiError, error_responses, import_not_found
from dataimport.api.tenant import ReadService, WriteService, credential_of
from dataimport.approval_plan import ApprovalPlan
from dataimport.contracts import ImportStatus
from service.errors import DecisionRefused, ImportNotFound, InvalidRequest, NoPlan

# As the imports router: credential_of on the router, so no route here answers without one.
router = APIRouter(
    prefix="/api/v1/imports",
    tags=["approval"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(401, 403),
)


class RejectBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="Why the plan is rejected.")


@router.get(
    "/{data_import_id}/plan",
    response_model=ApprovalPlan,
    responses=error_responses(400, 404, 409),
)
async def get_plan(data_import_id: uuid.UUID, service: ReadService) -> ApprovalPlan:
    """What enrichment would do to the inventory: assets to create, assets to update (the
    fields that change, old and new, a capped sample), dependencies to add. 409 when the
    import has no plan (it never asked for approval, or is not validated yet)."""
    try:
        return await service.plan(data_import_id)
    except ImportNotFound:
        raise import_not_found(data_import_id) from None
    except NoPlan as missing:
        raise ApiError(409, "no-plan", str(missing)) from None


async def _decide(data_import_id: uuid.UUID, decision: Awaitable[ImportStatus]) -> ImportStatus:
    try:
        return await decision
    except ImportNotFound:
        raise import_not_found(data_import_id) from None
    # Not awaiting approval, the workflow's validator refused, or a blank reason.
    except (DecisionRefused, InvalidRequest) as error:
        raise ApiError(409, "decision-refused", str(error)) from None


@router.post(
    "/{data_import_id}/approve",
    response_model=ImportStatus,
    responses=error_responses(400, 404, 409),
)
async def approve_import(data_import_id: uuid.UUID, service: WriteService) -> ImportStatus:
    """Approve the plan of an import awaiting approval: enrichment runs. 409 with the reason
    when it is not awaiting approval."""
    return await _decide(data_import_id, service.approve(data_import_id))


@router.post(
    "/{data_import_id}/reject",
    response_model=ImportStatus,
    responses=error_responses(400, 404, 409, 422),
)
async def reject_import(
    data_import_id: uuid.UUID, body: RejectBody, service: WriteService
) -> ImportStatus:
    """Reject the plan: the import ends as rejected and the inventory stays as it is."""
    if not body.reason.strip():
        raise ApiError(422, "invalid-request", "reason must not be blank")
    return await _decide(data_import_id, service.reject(data_import_id, body.reason))
