"""/api/v1/whoami: the tenant and scope a credential acts for, and where its workflows show."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from dataimport.api.errors import error_responses
from dataimport.api.tenant import CredentialDep, SessionTenant, credential_of

router = APIRouter(
    prefix="/api/v1",
    tags=["session"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(400, 401, 403),
)


class WhoAmI(BaseModel):
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID | None = Field(
        description="The engagement this request acts in: the one X-Engagement-ID names (403 "
        "when the credential does not grant it), else the credential's default; null when it "
        "grants several and has no default (choose one with X-Engagement-ID)."
    )
    engagement_ids: list[uuid.UUID] = Field(
        description="Every engagement the credential grants: the ones X-Engagement-ID may name."
    )
    scope: str | None
    subject: str = Field(description="Who the credential is (a key's id and prefix), no secret.")
    temporal_web_ui_url: str | None = Field(None, description="Base address of the Temporal UI.")
    temporal_namespace: str


@router.get("/whoami", response_model=WhoAmI)
async def whoami(request: Request, credential: CredentialDep, tenant: SessionTenant) -> WhoAmI:
    """Who the bearer credential is, which tenant it acts for, and the engagements it may
    switch to."""
    settings = request.app.state.settings
    return WhoAmI(
        client_account_id=credential.client_account_id,
        engagement_id=tenant.engagement_id if tenant else None,
        engagement_ids=list(credential.engagement_ids),
        scope=str(credential.scope) if credential.scope else None,
        subject=credential.subject,
        temporal_web_ui_url=settings.resolved_web_ui_url() or None,
        temporal_namespace=settings.temporal_namespace,
    )
