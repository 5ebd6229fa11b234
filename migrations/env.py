"""Alembic environment: runs revisions online against the configured database (async engine)."""

from __future__ import annotations

import asyncio
import re

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from dataimport.category_check import sync_category_check
from dataimport.migrate import LOCK_TIMEOUT
from dataimport.models import Base
from dataimport.settings import async_database_url, get_settings

target_metadata = Base.metadata


def _database_url() -> str:
    """Revisions run as the schema's owner (the service role owns nothing, docs/security.md)."""
    url = context.config.get_main_option("sqlalchemy.url")
    return async_database_url(url or get_settings().resolved_owner_database_url())


def _lock_timeout() -> str:
    """A revision behind a lock another session holds (a stuck session, a long import) fails
    with "canceling statement due to lock timeout" instead of waiting without end."""
    wanted = context.config.get_main_option("lock_timeout") or LOCK_TIMEOUT
    if not re.fullmatch(r"\d+(ms|s|min)?", wanted):
        raise ValueError(f"lock_timeout {wanted!r}: a number with ms, s or min")
    return wanted


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{_lock_timeout()}'")
        context.run_migrations()
        # The category CHECK follows the registry, not a revision (dataimport.category_check).
        sync_category_check(connection)


async def _run_online() -> None:
    engine = create_async_engine(_database_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


asyncio.run(_run_online())
