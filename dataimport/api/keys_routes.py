"""/api/v1/keys: an admin caller manages the API keys of its own tenant.

A key made here is for the caller's client account and only engagements the caller holds;
listing and revoking see only keys whose every engagement the caller holds. The new key is in
the 201 answer and nowhere else, ever.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from dataimport.api.errors import ApiError, error_responses
from dataimport.api.tenant import AdminTenant, CredentialDep, credential_of, forbidden
from dataimport.auth import Scope, keys
from dataimport.auth.keys import ApiKeyRecord, IssuedKey

router = APIRouter(
    prefix="/api/v1/keys",
    tags=["keys"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(400, 401, 403, 422),
)


class KeyRequest(BaseModel):
    scope: Scope
    name: Annotated[str, Field(max_length=keys.MAX_NAME)] = ""
    engagement_ids: Annotated[
        list[uuid.UUID] | None,
        Field(
            min_length=1,
            max_length=100,
            description="Default: the request's engagement. The first is the key's default.",
        ),
    ] = None
    expires_in_days: Annotated[int | None, Field(ge=1, le=3650)] = None


class KeyList(BaseModel):
    items: list[ApiKeyRecord]


def key_not_found(key_id: uuid.UUID) -> ApiError:
    return ApiError(404, "key-not-found", f"no API key {key_id}")


@router.get("", response_model=KeyList)
async def list_api_keys(request: Request, credential: CredentialDep, _: AdminTenant) -> KeyList:
    """The tenant's keys, newest first (prefix, scope, last use; never the key)."""
    found = await keys.list_keys(
        request.app.state.engine, credential.client_account_id, credential.engagement_ids
    )
    return KeyList(items=found)


@router.post("", status_code=201, response_model=IssuedKey)
async def create_api_key(
    request: Request,
    response: Response,
    body: KeyRequest,
    credential: CredentialDep,
    tenant: AdminTenant,
) -> IssuedKey:
    """Issue a key: the answer is the only time it is shown."""
    engagements = body.engagement_ids or [tenant.engagement_id]
    if any(engagement not in credential.engagement_ids for engagement in engagements):
        raise forbidden("tenant-not-granted", "a key may only grant engagements you hold")
    expires = (
        datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    )
    issued = await keys.create_key(
        request.app.state.engine,
        credential.client_account_id,
        engagements,
        body.scope,
        name=body.name,
        expires_at=expires,
    )
    response.headers["Cache-Control"] = "no-store"
    return issued


@router.delete("/{key_id}", response_model=ApiKeyRecord, responses=error_responses(404))
async def revoke_api_key(
    key_id: uuid.UUID, request: Request, credential: CredentialDep, _: AdminTenant
) -> ApiKeyRecord:
    """Revoke a key at once (its record stays, with revoked_at)."""
    revoked = await keys.revoke_key(
        request.app.state.engine, key_id, credential.client_account_id, credential.engagement_ids
    )
    if revoked is None:
        raise key_not_found(key_id)
    return revoked
