"""Callers authenticate: API keys and OIDC tokens, on every API route (DESIGN §11 "Callers").

Real PostgreSQL for the keys; OIDC tokens are signed in the test with an RSA key whose JWKS a
loopback HTTP server publishes, with an OpenID discovery document: nothing is patched.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import stat
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, FastAPI
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport.api import create_app
from dataimport.api.app import _refuse_unguarded_routes, api_routes
from dataimport.auth import Credential, EngagementNotChosen, NotGranted, Scope, keys
from dataimport.imports import Tenant
from dataimport.settings import Settings
from devstack import embedded

AUDIENCE = "dataimport-api"
CLI = Path(sys.executable).parent / "dataimport"
OPEN_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# The console's page and static files: no data, the page signs in against /api like anyone.
OPEN_PATHS |= {"/", "/console", "/console/", "/console/static/{name:path}"}


# ----- a loopback identity provider ----------------------------------------------------------


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IdentityProvider(ThreadingHTTPServer):
    """Serves /.well-known/openid-configuration and /jwks.json for one RSA signing key."""

    def __init__(self) -> None:
        self.key, self.kid = _rsa_key(), "test-key-1"
        self.rogue = _rsa_key()  # signs tokens but is not published
        self.jwks_fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body: dict[str, Any]
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": provider.issuer, "jwks_uri": provider.jwks_url}
                elif self.path == "/jwks.json":
                    provider.jwks_fetches += 1
                    jwk = RSAAlgorithm.to_jwk(provider.key.public_key(), as_dict=True)
                    body = {"keys": [{**jwk, "kid": provider.kid, "use": "sig", "alg": "RS256"}]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks.json"

    def token(
        self,
        tenant: Tenant | None = None,
        scope: str | None = "read",
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        expires_in: int = 300,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "someone@example.com",
            "iat": now,
            "exp": now + expires_in,
        }
        if tenant is not None:
            payload["client_account_id"] = str(tenant.client_account_id)
            payload["engagement_id"] = str(tenant.engagement_id)
        if scope is not None:
            payload["scope"] = scope
        payload.update(claims)
        headers = {"kid": kid or self.kid}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers=headers)


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    server = IdentityProvider()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def oidc_settings(settings: Settings, idp: IdentityProvider, **extra: Any) -> Settings:
    update = {"oidc_issuer": idp.issuer, "oidc_audience": AUDIENCE, **extra}
    return settings.model_copy(update=update)


@pytest.fixture
async def anonymous(
    settings: Settings, engine: AsyncEngine, client: Client, idp: IdentityProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with API keys and OIDC (by discovery), and no credential of its own."""
    app = create_app(oidc_settings(settings, idp), engine, client)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as h:
        yield h


async def new_key(engine: AsyncEngine, tenant: Tenant, scope: Scope, **extra: Any) -> str:
    issued = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], scope, **extra
    )
    return issued.key


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


# ----- every route, every refusal ------------------------------------------------------------


def needed_scope(method: str, path: str) -> Scope:
    """The policy: key management is admin, reads are read, everything else is write."""
    if path.startswith("/api/v1/keys"):
        return Scope.ADMIN
    return Scope.READ if method in {"GET", "HEAD"} else Scope.WRITE


ROUTES = sorted(
    (method, route.path)
    for route in api_routes(create_app(Settings()))
    for method in route.methods
    if method != "HEAD"
)


def concrete(path: str) -> str:
    return path.replace("{data_import_id}", str(uuid.uuid4())).replace(
        "{key_id}", str(uuid.uuid4())
    )


def test_the_route_table_is_the_apps() -> None:
    assert len(ROUTES) >= 14
    assert ("POST", "/api/v1/imports") in ROUTES and ("DELETE", "/api/v1/keys/{key_id}") in ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_refuses_missing_wrong_revoked_expired_and_underscoped_credentials(
    anonymous: httpx.AsyncClient,
    engine: AsyncEngine,
    tenant: Tenant,
    idp: IdentityProvider,
    method: str,
    path: str,
) -> None:
    url = concrete(path)
    needed = needed_scope(method, path)
    revoked = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], Scope.ADMIN
    )
    await keys.revoke_key(engine, revoked.record.id)
    expired = await new_key(engine, tenant, Scope.ADMIN, expires_at=_past())
    wrong_key = keys.generate_key()  # well formed, never issued

    missing = await anonymous.request(method, url)
    assert (missing.status_code, code_of(missing)) == (401, "missing-credential")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    basic = await anonymous.request(method, url, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert (basic.status_code, code_of(basic)) == (401, "missing-credential")
    for credential in (wrong_key, revoked.key, expired, "not-a-key-nor-a-token"):
        refused = await anonymous.request(method, url, headers=bearer(credential))
        assert (refused.status_code, code_of(refused)) == (401, "invalid-credential"), credential
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]

    if needed is Scope.READ:  # no key is below read: a token granting none of our scopes
        below = idp.token(tenant, scope="openid profile")
    else:
        below = await new_key(engine, tenant, list(Scope)[needed.rank - 1])
    underscoped = await anonymous.request(method, url, headers=bearer(below))
    assert (underscoped.status_code, code_of(underscoped)) == (403, "insufficient-scope")
    assert f'scope="{needed}"' in underscoped.headers["www-authenticate"]

    enough = await anonymous.request(
        method, url, headers=bearer(await new_key(engine, tenant, needed))
    )
    assert enough.status_code not in (401, 403), enough.text


def _past() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(minutes=1)


async def test_only_the_docs_and_the_schema_are_open(anonymous: httpx.AsyncClient) -> None:
    app = create_app(Settings())
    from fastapi import routing

    paths = {str(c.path) for c in routing.iter_route_contexts(app.routes)}
    assert {p for p in paths if not p.startswith("/api/")} == OPEN_PATHS
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert (await anonymous.get(path)).status_code == 200, path
    unknown = await anonymous.get("/api/v1/nothing-here")  # no route: 404, as before
    assert unknown.status_code == 404


def test_an_api_route_without_a_scope_cannot_be_added() -> None:
    app: FastAPI = create_app(Settings())
    careless = APIRouter(prefix="/api/v1")

    @careless.get("/everything")
    async def everything() -> dict[str, str]:
        return {}

    app.include_router(careless)
    with pytest.raises(RuntimeError, match="/api/v1/everything"):
        _refuse_unguarded_routes(app)


# ----- tenant from the credential ------------------------------------------------------------


def test_a_credential_gives_its_tenant_and_lets_headers_choose_only_granted_engagements() -> None:
    client, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    several = Credential(client, (first, second), Scope.READ, "k", default_engagement_id=first)
    assert several.tenant() == Tenant(client, first)
    assert several.tenant(client, second) == Tenant(client, second)
    with pytest.raises(NotGranted):
        several.tenant(engagement_id=uuid.uuid4())
    with pytest.raises(NotGranted):
        several.tenant(uuid.uuid4(), first)
    no_default = Credential(client, (first, second), Scope.READ, "t")
    with pytest.raises(EngagementNotChosen):
        no_default.tenant()
    assert Credential(client, (first,), Scope.READ, "t").tenant() == Tenant(client, first)
    assert Scope.ADMIN.includes(Scope.WRITE) and not Scope.READ.includes(Scope.WRITE)


async def test_a_key_of_several_engagements_acts_in_the_one_the_header_names(
    anonymous: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    client, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    admin = await keys.create_key(engine, client, [first, second], Scope.ADMIN)
    auth = bearer(admin.key)

    async def default_engagement_of_new_key(**headers: str) -> httpx.Response:
        return await anonymous.post(
            "/api/v1/keys", json={"scope": "read"}, headers={**auth, **headers}
        )

    by_default = await default_engagement_of_new_key()
    chosen = await default_engagement_of_new_key(**{"X-Engagement-ID": str(second)})
    foreign = await default_engagement_of_new_key(**{"X-Engagement-ID": str(uuid.uuid4())})
    other_client = await default_engagement_of_new_key(**{"X-Client-Account-ID": str(uuid.uuid4())})

    assert by_default.status_code == chosen.status_code == 201, by_default.text
    assert by_default.json()["record"]["engagement_id"] == str(first)
    assert chosen.json()["record"]["engagement_id"] == str(second)
    assert (foreign.status_code, code_of(foreign)) == (403, "tenant-not-granted")
    assert (other_client.status_code, code_of(other_client)) == (403, "tenant-not-granted")


# ----- key management over the API -----------------------------------------------------------


async def test_admins_manage_their_tenants_keys_and_nobody_elses(
    anonymous: httpx.AsyncClient, engine: AsyncEngine, tenant: Tenant
) -> None:
    admin = bearer(await new_key(engine, tenant, Scope.ADMIN))
    stranger = Tenant(uuid.uuid4(), uuid.uuid4())
    theirs = await keys.create_key(
        engine, stranger.client_account_id, [stranger.engagement_id], Scope.READ
    )

    made = await anonymous.post(
        "/api/v1/keys", json={"scope": "write", "name": "nightly upload"}, headers=admin
    )
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    issued = made.json()
    assert issued["key"].startswith("dik_") and issued["record"]["scope"] == "write"
    assert issued["key"].startswith(issued["record"]["prefix"])
    assert (
        await anonymous.get("/api/v1/imports", headers=bearer(issued["key"]))
    ).status_code == 200

    listed = await anonymous.get("/api/v1/keys", headers=admin)
    assert listed.status_code == 200
    assert issued["key"] not in listed.text
    ids = {item["id"] for item in listed.json()["items"]}
    assert issued["record"]["id"] in ids and str(theirs.record.id) not in ids

    elsewhere = await anonymous.post(
        "/api/v1/keys", json={"scope": "read", "engagement_ids": [str(uuid.uuid4())]}, headers=admin
    )
    assert (elsewhere.status_code, code_of(elsewhere)) == (403, "tenant-not-granted")
    not_mine = await anonymous.delete(f"/api/v1/keys/{theirs.record.id}", headers=admin)
    assert (not_mine.status_code, code_of(not_mine)) == (404, "key-not-found")
    assert await keys.authenticate(engine, theirs.key) is not None

    revoked = await anonymous.delete(f"/api/v1/keys/{issued['record']['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    after = await anonymous.get("/api/v1/imports", headers=bearer(issued["key"]))
    assert (after.status_code, code_of(after)) == (401, "invalid-credential")


# ----- keys at rest and in logs --------------------------------------------------------------


async def test_a_key_is_stored_only_as_its_hash(engine: AsyncEngine, tenant: Tenant) -> None:
    issued = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], Scope.READ, name="at rest"
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT row_to_json(k)::text FROM api_keys k"))).scalars()
        stored = "\n".join(rows)
    secret_part = issued.key[len(issued.record.prefix) :]
    assert issued.key not in stored and secret_part not in stored
    assert hashlib.sha256(issued.key.encode()).hexdigest() in stored
    assert len(issued.key) >= 47 and issued.record.prefix == issued.key[:12]


async def test_a_key_never_reaches_a_log_line(
    anonymous: httpx.AsyncClient,
    engine: AsyncEngine,
    tenant: Tenant,
    idp: IdentityProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = await new_key(engine, tenant, Scope.WRITE)
    revoked = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], Scope.READ
    )
    await keys.revoke_key(engine, revoked.record.id)
    token = idp.token(tenant, "read")
    wrong = keys.generate_key()
    with caplog.at_level(logging.DEBUG):
        for credential in (good, revoked.key, token, wrong, good + "x"):
            await anonymous.get("/api/v1/imports", headers=bearer(credential))
            await anonymous.post("/api/v1/imports/not-a-uuid/fail", headers=bearer(credential))
            await anonymous.post("/api/v1/keys", json={"scope": "x"}, headers=bearer(credential))
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records  # something was logged (httpx, the database driver...)
    for secret in (good, revoked.key, token, wrong):
        assert secret not in logged
        assert secret[12:40] not in logged


async def test_last_use_is_recorded_at_most_once_a_minute(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    issued = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], Scope.READ
    )

    async def last_used() -> Any:
        async with engine.connect() as conn:
            return await conn.scalar(
                text("SELECT last_used_at FROM api_keys WHERE id = :id"), {"id": issued.record.id}
            )

    assert issued.record.last_used_at is None and await last_used() is None
    assert await keys.authenticate(engine, issued.key) is not None
    first = await last_used()
    assert first is not None
    await keys.authenticate(engine, issued.key)
    assert await last_used() == first  # within the minute: no write
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = :id"),
            {"id": issued.record.id},
        )
    aged = await last_used()
    await keys.authenticate(engine, issued.key)
    assert await last_used() > aged


# ----- OIDC ----------------------------------------------------------------------------------


async def test_a_valid_token_acts_for_the_tenant_its_claims_name(
    anonymous: httpx.AsyncClient, engine: AsyncEngine, tenant: Tenant, idp: IdentityProvider
) -> None:
    theirs = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], Scope.READ
    )
    listed = await anonymous.get("/api/v1/keys", headers=bearer(idp.token(tenant, "openid admin")))
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [str(theirs.record.id)]
    other = Tenant(uuid.uuid4(), uuid.uuid4())
    elsewhere = await anonymous.get("/api/v1/keys", headers=bearer(idp.token(other, "admin")))
    assert elsewhere.json()["items"] == []
    reader = bearer(idp.token(tenant, scp=["read"], scope=None))
    assert (await anonymous.get("/api/v1/imports", headers=reader)).status_code == 200
    assert (await anonymous.post("/api/v1/imports", headers=reader)).status_code == 403


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("expired", "expired"),
        ("wrong-audience", "audience"),
        ("wrong-issuer", "issuer"),
        ("unknown-kid", "not signed by a key of the issuer"),
        ("forged-signature", "not valid"),
        ("no-tenant-claim", "client_account_id claim"),
        ("bad-engagement-claim", "engagement_id claim"),
        ("hs256-shared-secret", "algorithm"),
        ("alg-none", "algorithm"),
    ],
)
async def test_a_token_that_does_not_verify_is_401(
    anonymous: httpx.AsyncClient, tenant: Tenant, idp: IdentityProvider, case: str, says: str
) -> None:
    token = {
        "expired": lambda: idp.token(tenant, expires_in=-3600),
        "wrong-audience": lambda: idp.token(tenant, aud="another-api"),
        "wrong-issuer": lambda: idp.token(tenant, iss="https://evil.example"),
        "unknown-kid": lambda: idp.token(tenant, key=idp.rogue, kid="rogue"),
        "forged-signature": lambda: idp.token(tenant, key=idp.rogue),
        "no-tenant-claim": lambda: idp.token(None),
        "bad-engagement-claim": lambda: idp.token(tenant, engagement_id="all of them"),
        "hs256-shared-secret": lambda: jwt.encode(
            {"iss": idp.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 60},
            "not-the-private-key-but-long-enough-for-hmac-0123456789",
            algorithm="HS256",
            headers={"kid": idp.kid},
        ),
        "alg-none": lambda: jwt.encode(
            {"iss": idp.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 60},
            "",  # PyJWT's way of spelling "no key" for alg none (it turns "" into None)
            algorithm="none",
        ),
    }[case]()
    response = await anonymous.get("/api/v1/imports", headers=bearer(token))
    assert (response.status_code, code_of(response)) == (401, "invalid-credential"), response.text
    assert says in response.json()["error"]["message"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_token_of_several_engagements_must_name_one(
    anonymous: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    client, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    token = idp.token(
        None, "read", client_account_id=str(client), engagement_id=[str(first), str(second)]
    )
    unnamed = await anonymous.get("/api/v1/imports", headers=bearer(token))
    named = await anonymous.get(
        "/api/v1/imports", headers={**bearer(token), "X-Engagement-ID": str(second)}
    )
    foreign = await anonymous.get(
        "/api/v1/imports", headers={**bearer(token), "X-Engagement-ID": str(uuid.uuid4())}
    )
    assert (unnamed.status_code, code_of(unnamed)) == (400, "missing-tenant")
    assert named.status_code == 200
    assert (foreign.status_code, code_of(foreign)) == (403, "tenant-not-granted")


async def test_whoami_lists_the_engagements_to_choose_from_before_one_is_chosen(
    anonymous: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    """The console's engagement picker: whoami answers a token of several engagements with no
    default (engagement_id null, the granted ones listed), checks a named one all the same."""
    client, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    token = idp.token(
        None, "read", client_account_id=str(client), engagement_id=[str(first), str(second)]
    )
    unnamed = await anonymous.get("/api/v1/whoami", headers=bearer(token))
    named = await anonymous.get(
        "/api/v1/whoami", headers={**bearer(token), "X-Engagement-ID": str(second)}
    )
    foreign = await anonymous.get(
        "/api/v1/whoami", headers={**bearer(token), "X-Engagement-ID": str(uuid.uuid4())}
    )
    assert unnamed.status_code == 200, unnamed.text
    assert unnamed.json()["engagement_id"] is None
    assert unnamed.json()["engagement_ids"] == [str(first), str(second)]
    assert unnamed.json()["client_account_id"] == str(client)
    assert named.json()["engagement_id"] == str(second)
    assert (foreign.status_code, code_of(foreign)) == (403, "tenant-not-granted")


async def test_claim_names_scope_prefix_and_jwks_url_are_configurable(
    settings: Settings, engine: AsyncEngine, client: Client, idp: IdentityProvider, tenant: Tenant
) -> None:
    configured = oidc_settings(
        settings,
        idp,
        oidc_jwks_url=idp.jwks_url,
        oidc_client_claim="https://example.com/client",
        oidc_engagement_claim="https://example.com/engagements",
        oidc_scope_prefix="dataimport:",
    )
    app = create_app(configured, engine, client)
    claims: dict[str, Any] = {
        "https://example.com/client": str(tenant.client_account_id),
        "https://example.com/engagements": [str(tenant.engagement_id)],
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as h:
        prefixed = await h.get(
            "/api/v1/imports", headers=bearer(idp.token(None, "dataimport:read", **claims))
        )
        bare = await h.get("/api/v1/imports", headers=bearer(idp.token(None, "read", **claims)))
    assert prefixed.status_code == 200, prefixed.text
    assert (bare.status_code, code_of(bare)) == (403, "insufficient-scope")


async def test_unknown_kids_refetch_the_key_set_at_most_once_per_cooldown(
    anonymous: httpx.AsyncClient, tenant: Tenant, idp: IdentityProvider
) -> None:
    before = idp.jwks_fetches
    for n in range(5):
        forged = idp.token(tenant, key=idp.rogue, kid=f"made-up-{n}")
        assert (await anonymous.get("/api/v1/imports", headers=bearer(forged))).status_code == 401
    assert idp.jwks_fetches - before <= 2  # the first load, and one refresh


async def test_an_unreachable_issuer_is_503_and_keys_still_work(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, idp: IdentityProvider
) -> None:
    gone = settings.model_copy(
        update={"oidc_issuer": "http://127.0.0.1:9", "oidc_audience": AUDIENCE}
    )
    app = create_app(gone, engine, client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as h:
        token = await h.get("/api/v1/imports", headers=bearer(idp.token(tenant)))
        key = await h.get(
            "/api/v1/imports", headers=bearer(await new_key(engine, tenant, Scope.READ))
        )
    assert (token.status_code, code_of(token)) == (503, "identity-provider-unavailable")
    assert key.status_code == 200


# ----- the CLI and the embedded stack --------------------------------------------------------


async def run_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    assert settings.database_url
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DATAIMPORT_"))}
    env |= {"DATABASE_URL": settings.database_url, "DATAIMPORT_HOME": str(settings.home_dir)}
    process = await asyncio.create_subprocess_exec(
        str(CLI),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_keys_cli_creates_shows_once_lists_and_revokes(
    settings: Settings, engine: AsyncEngine, tenant: Tenant
) -> None:
    other_engagement = uuid.uuid4()
    code, out, err = await run_cli(
        settings,
        "keys",
        "create",
        "--client",
        str(tenant.client_account_id),
        "--engagement",
        str(tenant.engagement_id),
        "--engagement",
        str(other_engagement),
        "--scope",
        "write",
        "--name",
        "nightly upload",
    )
    assert code == 0, err
    key = out.strip().splitlines()[-1]
    assert key.startswith("dik_") and out.count(key) == 1
    credential = await keys.authenticate(engine, key)
    assert credential is not None and credential.scope is Scope.WRITE
    assert credential.engagement_ids == (tenant.engagement_id, other_engagement)

    code, out, err = await run_cli(
        settings, "keys", "list", "--client", str(tenant.client_account_id), "--json"
    )
    assert code == 0, err
    listed = json.loads(out)
    assert [item["name"] for item in listed] == ["nightly upload"]
    assert key not in out and listed[0]["prefix"] == key[:12]
    code, table, err = await run_cli(settings, "keys", "list")
    assert code == 0, err
    assert key[:12] in table and key not in table and "nightly upload" in table

    code, out, err = await run_cli(settings, "keys", "revoke", listed[0]["id"])
    assert code == 0, err
    assert await keys.authenticate(engine, key) is None
    code, _, err = await run_cli(settings, "keys", "revoke", str(uuid.uuid4()))
    assert code == 2 and "no API key" in err
    code, _, err = await run_cli(
        settings, "keys", "create", "--client", str(tenant.client_account_id),
        "--engagement", str(tenant.engagement_id), "--scope", "root",
    )  # fmt: skip
    assert code == 2 and "--scope" in err


def test_the_embedded_stack_keeps_one_demo_key_in_a_private_file(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    tenant = Tenant(uuid.uuid4(), uuid.uuid4())
    key = embedded.ensure_demo_api_key(
        tmp_path, database_url, tenant.client_account_id, tenant.engagement_id
    )
    path = embedded.demo_api_key_file(tmp_path)
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = embedded.ensure_demo_api_key(
        tmp_path, database_url, tenant.client_account_id, tenant.engagement_id
    )
    assert again == key

    async def revoke() -> None:
        from dataimport.db import create_engine

        engine = create_engine(database_url, pool_size=1)
        try:
            credential = await keys.authenticate(engine, key)
            assert credential is not None and credential.allows(Scope.ADMIN)
            assert credential.key_id is not None
            await keys.revoke_key(engine, credential.key_id)
        finally:
            await engine.dispose()

    asyncio.run(revoke())
    replaced = embedded.ensure_demo_api_key(
        tmp_path, database_url, tenant.client_account_id, tenant.engagement_id
    )
    assert replaced != key and path.read_text().strip() == replaced
