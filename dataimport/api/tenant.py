"""The tenant of a request (X-Client-Account-ID / X-Engagement-ID) and its ImportService."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request

from dataimport.api.errors import ApiError
from dataimport.imports import Tenant
from dataimport.tenant_context import acting_for
from starter.client import ImportService

CLIENT_HEADER = "X-Client-Account-ID"
ENGAGEMENT_HEADER = "X-Engagement-ID"


def _uuid_header(name: str, value: str | None) -> uuid.UUID:
    if value is None or not value.strip():
        raise ApiError(400, "missing-tenant", f"the {name} header (a UUID) is required")
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise ApiError(400, "invalid-tenant", f"the {name} header must be a UUID") from None


def tenant_of(
    client_account_id: Annotated[
        str | None,
        Header(alias=CLIENT_HEADER, description="Tenant: client account UUID (required)."),
    ] = None,
    engagement_id: Annotated[
        str | None,
        Header(alias=ENGAGEMENT_HEADER, description="Tenant: engagement UUID (required)."),
    ] = None,
) -> Tenant:
    """Every route is tenant-scoped: no headers, no answer."""
    return Tenant(
        _uuid_header(CLIENT_HEADER, client_account_id),
        _uuid_header(ENGAGEMENT_HEADER, engagement_id),
    )


async def tenant_scope(tenant: Annotated[Tenant, Depends(tenant_of)]) -> AsyncIterator[Tenant]:
    """The request's database work is its tenant's (row-level security) until it is answered.

    Async, so it runs in the request's own task and context (a sync dependency would set the
    tenant in a worker thread's copy of it)."""
    with acting_for(tenant):
        yield tenant


TenantDep = Annotated[Tenant, Depends(tenant_scope)]


def service_of(request: Request, tenant: TenantDep) -> ImportService:
    state = request.app.state
    return ImportService(state.settings, state.engine, state.client, tenant)


ServiceDep = Annotated[ImportService, Depends(service_of)]
