"""Database engine and the raw asyncpg connection behind it (for COPY and array statements).

Every transaction an engine begins is scoped to a tenant (row-level security, migration
0006): the first thing it runs is one `SELECT set_config(...), set_config(...)` naming the
tenant, local to that transaction. The tenant is the engine's own when it is tenant-bound
(`for_tenant`, what ImportService uses) or else the one of the running activity or request
(dataimport.tenant_context). Without a tenant the settings are empty, and the tenant tables
read as empty: a forgotten tenant fails closed.

Raw asyncpg work outside a SQLAlchemy transaction (COPY on a connection from
`engine.connect()` before any statement) gets the same settings for its session; they are
cleared before the pooled connection is handed out again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

from dataimport import tenant_context
from dataimport.settings import async_database_url
from dataimport.tenant_context import HasTenant, TenantKey

TENANT_OPTION = "tenant"
_SESSION_FLAG = "dataimport_tenant_session"

# One round trip per transaction; as a prepared statement after the first use on a connection.
_SET_LOCAL = (
    "SELECT set_config('app.client_account_id', $1, true), "
    "set_config('app.engagement_id', $2, true)"
)
_SET_SESSION = (
    "SELECT set_config('app.client_account_id', $1, false), "
    "set_config('app.engagement_id', $2, false)"
)
_CLEAR_SESSION = "RESET app.client_account_id; RESET app.engagement_id"


def create_engine(database_url: str, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        async_database_url(database_url),
        pool_size=pool_size,
        max_overflow=max(2, pool_size // 2),
        pool_pre_ping=True,
    )
    install_tenant_scope(engine)
    return engine


def install_tenant_scope(engine: AsyncEngine) -> None:
    """Scope every transaction of `engine` to the current tenant (idempotent)."""
    sync_engine = engine.sync_engine
    if not event.contains(sync_engine, "begin", _scope_transaction):
        event.listen(sync_engine, "begin", _scope_transaction)
        event.listen(sync_engine.pool, "checkin", _discard_open_transaction)
        event.listen(sync_engine.pool, "checkout", _clear_session_tenant)


def for_tenant(engine: AsyncEngine, tenant: HasTenant) -> AsyncEngine:
    """The same engine and pool, every transaction of it scoped to `tenant`."""
    return engine.execution_options(**{TENANT_OPTION: TenantKey.of(tenant)})


def _tenant_of(conn: Connection) -> TenantKey | None:
    bound = conn.get_execution_options().get(TENANT_OPTION)
    return bound if isinstance(bound, TenantKey) else tenant_context.current()


def _scope_transaction(conn: Connection) -> None:
    """`begin` event: runs before the DBAPI transaction starts, so the statement goes through
    the driver's cursor, which starts it (SQLAlchemy's own execute would begin again).

    Without a tenant the settings are set empty, not skipped: the transaction has started
    either way, so raw asyncpg work inside `engine.begin()` is always inside it too."""
    key = _tenant_of(conn)
    values = ("", "") if key is None else (key.client_account_id, key.engagement_id)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_SET_LOCAL, values)
    finally:
        cursor.close()


def _discard_open_transaction(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """`checkin` event: a connection whose server session is still inside a transaction is
    closed, never pooled (the next checkout opens a fresh one).

    A task cancelled while our `begin` listener runs can leave asyncpg's transaction open
    behind SQLAlchemy's back (sqlalchemy#13381); handed out again, the next BEGIN becomes a
    savepoint, its COMMIT commits nothing and the hidden transaction keeps its rows and
    locks. The check reads the protocol's last status: no round trip."""
    if dbapi_connection is not None and dbapi_connection.driver_connection.is_in_transaction():
        record.invalidate(exc.DisconnectionError("returned inside a transaction"))


def _clear_session_tenant(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """`checkout` event: a connection whose session was given a tenant loses it first."""
    if record.info.pop(_SESSION_FLAG, False):
        await_only(dbapi_connection.driver_connection.execute(_CLEAR_SESSION))


async def driver_connection(conn: AsyncConnection) -> asyncpg.Connection[Any]:
    """The asyncpg connection under a SQLAlchemy connection, inside the same transaction.

    Outside a transaction (a connection nobody has run a statement on), its session is given
    the tenant instead, until the connection goes back to the pool.
    """
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection[Any] = raw.driver_connection
    if not conn.in_transaction() and conn.sync_connection is not None:
        key = _tenant_of(conn.sync_connection)
        if key is not None:
            raw.info[_SESSION_FLAG] = True
            await driver.fetchrow(_SET_SESSION, key.client_account_id, key.engagement_id)
    return driver


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        yield conn
