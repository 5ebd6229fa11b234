"""The tenant the running code works for, which every database transaction is scoped to.

Row-level security (migration 0006, docs/security.md) lets a session see and write only the
rows of the tenant named by the transaction-local settings `app.client_account_id` and
`app.engagement_id`. The engine (dataimport.db) sets them when a transaction begins, from the
connection's `tenant` execution option (a tenant-bound engine: `db.for_tenant`) or else from
the context variable here, which activities (activities.tenant) and API routes set from their
ImportRef or authenticated tenant. Tasks and threads started inside inherit it.

No tenant set means no settings: every tenant table then reads as empty and refuses writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol


class HasTenant(Protocol):
    """Anything naming a tenant: Tenant, ImportRef, ImportRequest, a purge candidate."""

    @property
    def client_account_id(self) -> uuid.UUID: ...

    @property
    def engagement_id(self) -> uuid.UUID: ...


@dataclass(frozen=True, slots=True)
class TenantKey:
    """The two settings values, as text (what set_config takes)."""

    client_account_id: str
    engagement_id: str

    @classmethod
    def of(cls, holder: HasTenant) -> TenantKey:
        # Through uuid.UUID: a value that is not a UUID never reaches a setting.
        return cls(
            str(uuid.UUID(str(holder.client_account_id))),
            str(uuid.UUID(str(holder.engagement_id))),
        )


_current: ContextVar[TenantKey | None] = ContextVar("dataimport_tenant", default=None)


def current() -> TenantKey | None:
    """The tenant of the running activity or request (None outside one)."""
    return _current.get()


@contextmanager
def acting_for(holder: HasTenant) -> Iterator[TenantKey]:
    """Scope the database work inside the block to the tenant `holder` names."""
    token = _current.set(TenantKey.of(holder))
    try:
        yield _current.get() or TenantKey.of(holder)
    finally:
        _current.reset(token)


def set_current(holder: HasTenant | None) -> None:
    """Set (or clear) the tenant for the rest of the current task: for request handlers,
    each of which runs in a task (and so a context) of its own."""
    _current.set(None if holder is None else TenantKey.of(holder))
