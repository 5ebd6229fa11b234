"""/api/v1/imports/{id}/plan, /approve and /reject: plan, then apply (require_approval).

A plan says when it is stale (another import changed the tenant's inventory since it was
made); POST .../plan makes it again, and approving a stale plan makes it again and refuses
(409 plan-stale, with the fresh plan's id), so what is approved is what was last shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from dataimport.api.errors import ApiError, error_responses, import_not_found
from dataimport.api.tenant import ReadService, WriteService, credential_of
from dataimport.approval_plan import ApprovalPlan
from dataimport.contracts import ImportStatus
from service.errors import (
    DecisionRefused,
    ImportNotFound,
    InvalidRequest,
    NoPlan,
    PlanChanged,
    PlanStale,
)

T = TypeVar("T")

# As the imports router: credential_of on the router, so no route here answers without one.
router = APIRouter(
    prefix="/api/v1/imports",
    tags=["approval"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(401, 403),
)


class ApproveBody(BaseModel):
    plan_id: uuid.UUID | None = Field(
        None,
        description="The plan being approved (its plan_id): refused with 409 plan-changed "
        "when the import's current plan is another one.",
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


@router.post(
    "/{data_import_id}/plan",
    response_model=ApprovalPlan,
    responses=error_responses(400, 404, 409),
)
async def recompute_plan(data_import_id: uuid.UUID, service: WriteService) -> ApprovalPlan:
    """Make the plan of an import awaiting approval again, from the inventory as it is now
    (a stale plan becomes current; it gets a new plan_id). 409 when it is not awaiting
    approval. A dry run of the whole enrichment: as long as the import's planning took."""
    return await _decide(data_import_id, service.replan(data_import_id))


async def _decide(data_import_id: uuid.UUID, decision: Awaitable[T]) -> T:
    try:
        return await decision
    except ImportNotFound:
        raise import_not_found(data_import_id) from None
    except PlanStale as stale:
        details = {"plan_id": str(stale.fresh_plan_id)}
        raise ApiError(409, "plan-stale", str(stale), details=details) from None
    except PlanChanged as changed:
        raise ApiError(409, "plan-changed", str(changed)) from None
    # Not awaiting approval, the workflow's validator refused, or a blank reason.
    except (DecisionRefused, InvalidRequest) as error:
        raise ApiError(409, "decision-refused", str(error)) from None


@router.post(
    "/{data_import_id}/approve",
    response_model=ImportStatus,
    responses=error_responses(400, 404, 409),
)
async def approve_import(
    data_import_id: uuid.UUID, service: WriteService, body: ApproveBody | None = None
) -> ImportStatus:
    """Approve the plan of an import awaiting approval: enrichment runs. 409 with the reason
    when it is not awaiting approval, `plan-changed` when `plan_id` is not its current plan,
    `plan-stale` when the inventory changed since the plan was made (a fresh plan is made:
    `details.plan_id`; review it, then approve that one)."""
    plan_id = body.plan_id if body else None
    return await _decide(data_import_id, service.approve(data_import_id, plan_id))


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
