"""Database engine and the raw asyncpg connection behind it (for COPY and array statements)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dataimport.settings import async_database_url


def create_engine(database_url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        async_database_url(database_url),
        pool_size=pool_size,
        max_overflow=max(2, pool_size // 2),
        pool_pre_ping=True,
    )


async def driver_connection(conn: AsyncConnection) -> asyncpg.Connection[Any]:
    """The asyncpg connection under a SQLAlchemy connection, inside the same transaction."""
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection[Any] = raw.driver_connection
    return driver


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        yield conn
