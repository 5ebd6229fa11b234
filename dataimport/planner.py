"""Planner settings for a group of set-based statements, the transaction's values restored after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# Hash joins only: estimates of a fresh temp table or of a tenant that grew since the last
# ANALYZE must not pick row-by-row (nested loop) plans.
HASH_JOINS = {"enable_nestloop": "off", "enable_mergejoin": "off"}


@asynccontextmanager
async def planner(conn: AsyncConnection, **settings: str) -> AsyncIterator[None]:
    """Planner settings for a statement group, the transaction's previous values restored
    afterwards (the caller's other statements in the same transaction plan as before)."""
    names = list(settings)
    previous = [
        row[0]
        for row in await conn.execute(
            text("SELECT current_setting(n) FROM unnest(CAST(:names AS text[])) AS n"),
            {"names": names},
        )
    ]
    await _set(conn, names, [settings[n] for n in names])
    yield
    await _set(conn, names, previous)


async def _set(conn: AsyncConnection, names: Sequence[str], values: Sequence[str]) -> None:
    await conn.execute(
        text(
            "SELECT set_config(n, v, true) FROM unnest(CAST(:names AS text[]), "
            "CAST(:values AS text[])) AS s(n, v)"
        ),
        {"names": list(names), "values": list(values)},
    )
