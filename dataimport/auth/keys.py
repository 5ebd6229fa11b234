"""API keys: issue, list, revoke, and `authenticate(key)`, the one lookup made before any
tenant is known.

A key is `dik_` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: with
that much entropy a fast hash is as safe as a slow one, and lookups stay one index probe. The
first 12 characters (`prefix`) are kept in clear to recognise a key in listings; they do not
help guess the rest. The key itself is returned once, by `create_key`, and never again.

`authenticate` is deliberately the only function that reads `api_keys` without a tenant: when
the table gets row-level security it becomes a SECURITY DEFINER function of the database with
the same contract (key hash in, credential out).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.auth.credentials import Credential, Scope
from dataimport.models import ApiKey

KEY_PREFIX = "dik_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8
MAX_NAME = 200
# last_used_at is written at most this often per key: a request costs one read, not a write.
LAST_USED_GRANULARITY = text("interval '60 seconds'")
_WELL_FORMED = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{20,200}}")


class ApiKeyRecord(BaseModel):
    """What is known of a key after it was issued: everything but the key."""

    id: uuid.UUID
    name: str
    prefix: str
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID  # the default engagement
    engagement_ids: list[uuid.UUID]
    scope: Scope
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedKey(BaseModel):
    """A new key and its record: the only time the key is ever seen."""

    key: str
    record: ApiKeyRecord


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(token: str) -> bool:
    """A bearer value meant as one of our keys (otherwise it may be an OIDC token)."""
    return token.startswith(KEY_PREFIX)


def _engagements(engagement_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    unique = list(dict.fromkeys(engagement_ids))
    if not unique:
        raise ValueError("a key needs at least one engagement")
    return unique


def _name(name: str) -> str:
    cleaned = " ".join(name.split())
    if len(cleaned) > MAX_NAME:
        raise ValueError(f"a key name has at most {MAX_NAME} characters")
    return cleaned


_RECORD_COLUMNS = (
    ApiKey.id,
    ApiKey.name,
    ApiKey.prefix,
    ApiKey.client_account_id,
    ApiKey.engagement_id,
    ApiKey.engagement_ids,
    ApiKey.scope,
    ApiKey.created_at,
    ApiKey.expires_at,
    ApiKey.last_used_at,
    ApiKey.revoked_at,
)


async def create_key(
    engine: AsyncEngine,
    client_account_id: uuid.UUID,
    engagement_ids: Sequence[uuid.UUID],
    scope: Scope,
    name: str = "",
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Issue a key for a client account and its engagements (the first is the default)."""
    engagements = _engagements(engagement_ids)
    key = generate_key()
    statement = (
        insert(ApiKey)
        .values(
            client_account_id=client_account_id,
            engagement_id=engagements[0],
            engagement_ids=engagements,
            scope=Scope(scope).value,
            name=_name(name),
            prefix=key[:PREFIX_LENGTH],
            key_hash=hash_key(key),
            expires_at=expires_at,
        )
        .returning(*_RECORD_COLUMNS)
    )
    async with engine.begin() as conn:
        row = (await conn.execute(statement)).one()
    return IssuedKey(key=key, record=ApiKeyRecord.model_validate(row._mapping))


def _visible(
    client_account_id: uuid.UUID | None, within_engagements: Sequence[uuid.UUID] | None
) -> list[ColumnElement[bool]]:
    """Keys of one client account whose every engagement is among `within_engagements`."""
    conditions: list[ColumnElement[bool]] = []
    if client_account_id is not None:
        conditions.append(ApiKey.client_account_id == client_account_id)
    if within_engagements is not None:
        conditions.append(ApiKey.engagement_ids.contained_by(list(within_engagements)))
    return conditions


async def list_keys(
    engine: AsyncEngine,
    client_account_id: uuid.UUID | None = None,
    within_engagements: Sequence[uuid.UUID] | None = None,
) -> list[ApiKeyRecord]:
    """Keys, newest first; all of them (the operator's CLI) or those of one tenant (the API)."""
    statement = (
        select(*_RECORD_COLUMNS)
        .where(*_visible(client_account_id, within_engagements))
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(statement)).all()
    return [ApiKeyRecord.model_validate(row._mapping) for row in rows]


async def revoke_key(
    engine: AsyncEngine,
    key_id: uuid.UUID,
    client_account_id: uuid.UUID | None = None,
    within_engagements: Sequence[uuid.UUID] | None = None,
) -> ApiKeyRecord | None:
    """Revoke a key (again is a no-op that keeps the first time); None when there is no such
    key, or it is not one the caller may see."""
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id, *_visible(client_account_id, within_engagements))
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
        .returning(*_RECORD_COLUMNS)
    )
    async with engine.begin() as conn:
        row = (await conn.execute(statement)).one_or_none()
    return None if row is None else ApiKeyRecord.model_validate(row._mapping)


async def authenticate(engine: AsyncEngine, key: str) -> Credential | None:
    """The credential of a live key (not revoked, not expired), or None.

    Records the use when the last recorded one is older than LAST_USED_GRANULARITY.
    """
    if not _WELL_FORMED.fullmatch(key):
        return None
    stale = or_(
        ApiKey.last_used_at.is_(None), ApiKey.last_used_at < func.now() - LAST_USED_GRANULARITY
    )
    statement = select(
        ApiKey.id,
        ApiKey.prefix,
        ApiKey.client_account_id,
        ApiKey.engagement_id,
        ApiKey.engagement_ids,
        ApiKey.scope,
        stale.label("stale"),
    ).where(
        ApiKey.key_hash == hash_key(key),
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > func.now()),
    )
    async with engine.connect() as conn:
        row = (await conn.execute(statement)).one_or_none()
        if row is None:
            return None
        if row.stale:
            touch = update(ApiKey).where(and_(ApiKey.id == row.id, stale))
            await conn.execute(touch.values(last_used_at=func.now()))
            await conn.commit()
    return Credential(
        client_account_id=row.client_account_id,
        engagement_ids=tuple(row.engagement_ids),
        scope=Scope(row.scope),
        subject=f"key {row.id} ({row.prefix}…)",
        default_engagement_id=row.engagement_id,
        key_id=row.id,
    )
