"""Who is calling, and for which tenant: the bearer credential decides, headers only choose.

Every /api route depends on one `Access` (read, write or admin). It authenticates the
`Authorization: Bearer` value (an API key, or an OIDC token when an issuer is configured),
checks the scope, and gives the route its tenant: the credential's client account, and the
engagement named by `X-Engagement-ID` when the credential grants it (else its default).
`X-Client-Account-ID` is optional and only checked against the credential.

401 (with `WWW-Authenticate: Bearer`) without a valid credential, 403 for a scope or tenant
the credential does not grant. Nothing here logs or echoes a credential.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dataimport.api.errors import ApiError
from dataimport.auth import Credential, EngagementNotChosen, NotGranted, Scope, keys
from dataimport.auth.oidc import IdentityProviderUnavailable, InvalidToken, OidcVerifier
from dataimport.imports import Tenant
from dataimport.tenant_context import acting_for
from service.imports import ImportService

log = logging.getLogger("dataimport.api")

CLIENT_HEADER = "X-Client-Account-ID"
ENGAGEMENT_HEADER = "X-Engagement-ID"
REALM = 'Bearer realm="dataimport"'

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`dik_…`, from `dataimport keys create`) or, when configured, an "
    "OpenID Connect access token of the configured issuer.",
)


def unauthenticated(code: str, message: str) -> ApiError:
    challenge = REALM if code == "missing-credential" else f'{REALM}, error="invalid_token"'
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


def forbidden(code: str, message: str, scope: Scope | None = None) -> ApiError:
    challenge = f'{REALM}, error="insufficient_scope"' + (f', scope="{scope}"' if scope else "")
    return ApiError(403, code, message, headers={"WWW-Authenticate": challenge})


async def credential_of(
    request: Request,
    authorization: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Credential:
    """The verified caller of a request (401 without one)."""
    if authorization is None or not authorization.credentials.strip():
        raise unauthenticated(
            "missing-credential", "send Authorization: Bearer <API key or access token>"
        )
    token = authorization.credentials.strip()
    state = request.app.state
    if keys.looks_like_key(token):
        credential = await keys.authenticate(state.engine, token)
        if credential is None:
            raise unauthenticated(
                "invalid-credential", "the API key is unknown, revoked or expired"
            )
        return credential
    verifier: OidcVerifier | None = state.oidc
    if verifier is None:
        raise unauthenticated(
            "invalid-credential", "not an API key (dik_…), and no OIDC issuer is configured"
        )
    try:
        return await asyncio.to_thread(verifier.verify, token)
    except InvalidToken as error:
        raise unauthenticated("invalid-credential", str(error)) from None
    except IdentityProviderUnavailable as error:
        log.error("OIDC issuer unavailable: %s", error)
        raise ApiError(
            503, "identity-provider-unavailable", "the identity provider cannot be reached"
        ) from None


CredentialDep = Annotated[Credential, Depends(credential_of)]


def _uuid_header(name: str, value: str | None) -> uuid.UUID | None:
    if value is None or not value.strip():
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise ApiError(400, "invalid-tenant", f"the {name} header must be a UUID") from None


class Access:
    """A route's guard: the scope it needs, and the tenant it runs for.

    `engagement_optional`: a credential that grants several engagements and names no default
    may call without choosing one; the route then gets None (whoami, so a page can list the
    engagements to choose from). A named engagement is checked all the same."""

    def __init__(self, scope: Scope, engagement_optional: bool = False) -> None:
        self.scope = scope
        self.engagement_optional = engagement_optional

    async def __call__(
        self,
        credential: CredentialDep,
        client_account_id: Annotated[
            str | None,
            Header(
                alias=CLIENT_HEADER,
                description="Optional: checked against the credential's client account.",
            ),
        ] = None,
        engagement_id: Annotated[
            str | None,
            Header(
                alias=ENGAGEMENT_HEADER,
                description="Which of the credential's engagements (default: its first).",
            ),
        ] = None,
    ) -> AsyncIterator[Tenant | None]:
        """The credential's tenant; the request's database work is that tenant's (row-level
        security) until it is answered. A generator in the request's own task and context (a
        sync dependency would set the tenant in a worker thread's copy of it)."""
        if not credential.allows(self.scope):
            raise forbidden(
                "insufficient-scope", f"this needs the {self.scope} scope", scope=self.scope
            )
        client = _uuid_header(CLIENT_HEADER, client_account_id)
        engagement = _uuid_header(ENGAGEMENT_HEADER, engagement_id)
        try:
            tenant = credential.tenant(client, engagement)
        except NotGranted as error:
            raise forbidden("tenant-not-granted", str(error)) from None
        except EngagementNotChosen as error:
            if not self.engagement_optional:
                raise ApiError(400, "missing-tenant", str(error)) from None
            yield None  # no tenant chosen: the route reads nothing of a tenant's
            return
        with acting_for(tenant):
            yield tenant


read_access, write_access, admin_access = (
    Access(Scope.READ),
    Access(Scope.WRITE),
    Access(Scope.ADMIN),
)

# whoami: read, with the engagement not yet chosen allowed (None).
session_access = Access(Scope.READ, engagement_optional=True)

ReadTenant = Annotated[Tenant, Depends(read_access)]
SessionTenant = Annotated[Tenant | None, Depends(session_access)]
WriteTenant = Annotated[Tenant, Depends(write_access)]
AdminTenant = Annotated[Tenant, Depends(admin_access)]


def _service(request: Request, tenant: Tenant) -> ImportService:
    state = request.app.state
    return ImportService(state.settings, state.engine, state.client, tenant)


def read_service(request: Request, tenant: ReadTenant) -> ImportService:
    return _service(request, tenant)


def write_service(request: Request, tenant: WriteTenant) -> ImportService:
    return _service(request, tenant)


ReadService = Annotated[ImportService, Depends(read_service)]
WriteService = Annotated[ImportService, Depends(write_service)]
