"""OpenID Connect / JWT bearer tokens, verified against the configured issuer's JWKS.

A token is accepted when it is signed by a key of the issuer's JWKS with an asymmetric
algorithm we allow (never `none`, never a shared secret), is unexpired, and names our issuer
(`iss`) and audience (`aud`). Its claims then say who the caller is:

- `DATAIMPORT_OIDC_CLIENT_CLAIM` (default `client_account_id`): the client account, a UUID;
- `DATAIMPORT_OIDC_ENGAGEMENT_CLAIM` (default `engagement_id`): one engagement UUID, or a
  list of them (the request then names one with `X-Engagement-ID`);
- `scope` (space-separated) or `scp` (a list or space-separated): `read`, `write`, `admin`,
  each optionally behind `DATAIMPORT_OIDC_SCOPE_PREFIX` (e.g. `dataimport:read`); the highest
  one counts. A token with none of them is valid but may do nothing (403).

Fetching is PyJWT's PyJWKClient: the key set is cached for five minutes; an unknown `kid`
refetches it (key rotation) at most once every thirty seconds, so forged tokens cannot make us
hammer the identity provider. Verification blocks on that fetch: callers run it in a thread.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientError, PyJWKSetError

from dataimport.auth.credentials import Credential, Scope
from dataimport.settings import Settings

ASYMMETRIC = {
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
}  # fmt: skip
FETCH_TIMEOUT = 10.0
REFRESH_COOLDOWN = 30.0  # seconds between key-set refetches caused by an unknown kid
DISCOVERY_PATH = "/.well-known/openid-configuration"


class InvalidToken(Exception):
    """The token cannot be used: the message says why, never what the token holds."""


class IdentityProviderUnavailable(Exception):
    """The issuer's discovery document or key set could not be fetched."""


def _algorithms(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    refused = [name for name in names if name not in ASYMMETRIC]
    if refused or not names:
        allowed = ", ".join(sorted(ASYMMETRIC))
        raise ValueError(f"DATAIMPORT_OIDC_ALGORITHMS: only asymmetric algorithms ({allowed})")
    return names


def _http_url(url: str, what: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{what} must be an http(s) URL")
    return url


class OidcVerifier:
    """Verifies bearer tokens of one issuer for one audience; one per API process."""

    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise ValueError("OIDC needs both DATAIMPORT_OIDC_ISSUER and DATAIMPORT_OIDC_AUDIENCE")
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.algorithms = _algorithms(settings.oidc_algorithms)
        self.leeway = settings.oidc_leeway_seconds
        self.client_claim = settings.oidc_client_claim
        self.engagement_claim = settings.oidc_engagement_claim
        self.scope_prefix = settings.oidc_scope_prefix
        self._jwks_url = settings.oidc_jwks_url and _http_url(
            settings.oidc_jwks_url, "DATAIMPORT_OIDC_JWKS_URL"
        )
        self._jwks: PyJWKClient | None = None
        self._lock = threading.Lock()
        self._refreshed = float("-inf")

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        return cls(settings) if settings.oidc_issuer else None

    # ----- keys --------------------------------------------------------------------------

    def _discover(self) -> str:
        """The issuer's jwks_uri, from its discovery document (which must name the issuer)."""
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        try:
            with urllib.request.urlopen(_http_url(url, "the issuer"), timeout=FETCH_TIMEOUT) as r:
                document = json.load(r)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise IdentityProviderUnavailable(f"cannot read {url}: {error}") from None
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise IdentityProviderUnavailable(f"{url} does not describe issuer {self.issuer}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IdentityProviderUnavailable(f"{url} names no jwks_uri")
        return _http_url(jwks_uri, "jwks_uri")

    def _key_set(self) -> PyJWKClient:
        with self._lock:
            if self._jwks is None:
                url = self._jwks_url or self._discover()
                self._jwks = PyJWKClient(url, timeout=FETCH_TIMEOUT)
            return self._jwks

    def _signing_key(self, kid: object) -> PyJWK:
        """The issuer's key with this kid; an unknown kid refetches the set, rate-limited."""
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no signing key (kid)")
        client = self._key_set()
        for refresh in (False, True):
            if refresh:
                with self._lock:
                    if time.monotonic() - self._refreshed < REFRESH_COOLDOWN:
                        break
                    self._refreshed = time.monotonic()
            try:
                key_set = client.get_jwk_set(refresh=refresh)
            except (PyJWKClientError, PyJWKSetError) as error:
                raise IdentityProviderUnavailable(
                    f"cannot read the issuer's keys: {error}"
                ) from None
            for key in key_set.keys:
                if key.key_id == kid and key.public_key_use in (None, "sig"):
                    return key
        raise InvalidToken("the token is not signed by a key of the issuer")

    # ----- tokens ------------------------------------------------------------------------

    def verify(self, token: str) -> Credential:
        """The caller a token names, or InvalidToken / IdentityProviderUnavailable. Blocking."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the bearer credential is neither an API key nor a JWT") from None
        if header.get("alg") not in self.algorithms:
            raise InvalidToken("the token's signing algorithm is not accepted")
        signing_key = self._signing_key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                signing_key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is not for this API (audience)") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is not from the configured issuer") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid") from None
        return self.credential_of(claims)

    def credential_of(self, claims: dict[str, Any]) -> Credential:
        """The documented claim → tenant and scope mapping."""
        client = _uuid(claims.get(self.client_claim), self.client_claim)
        raw = claims.get(self.engagement_claim)
        values = raw if isinstance(raw, list) else [raw]
        engagements = tuple(dict.fromkeys(_uuid(v, self.engagement_claim) for v in values))
        return Credential(
            client_account_id=client,
            engagement_ids=engagements,
            scope=self._scope(claims),
            subject=f"token of {claims.get('sub', '?')} from {self.issuer}",
            default_engagement_id=engagements[0] if len(engagements) == 1 else None,
        )

    def _scope(self, claims: dict[str, Any]) -> Scope | None:
        granted: set[str] = set()
        for name in ("scope", "scp"):
            value = claims.get(name)
            if isinstance(value, str):
                granted.update(value.split())
            elif isinstance(value, list):
                granted.update(item for item in value if isinstance(item, str))
        ours = [scope for scope in Scope if f"{self.scope_prefix}{scope.value}" in granted]
        return max(ours, key=lambda scope: scope.rank, default=None)


def _uuid(value: object, claim: str) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidToken(f"the token's {claim} claim is missing or not a UUID")
