"""A pooled connection is handed out only outside any server-side transaction.

A task cancelled while the engine's `begin` listener runs (dataimport.db) can leave asyncpg
inside a transaction SQLAlchemy does not know of (sqlalchemy#13381). Handed out again, the
next BEGIN would become a savepoint and its COMMIT would commit nothing: rows staged twice, a
lock held for ever (the CI hang of the staging cancel). Here the leftover transaction is made
directly on the driver, as that cancellation leaves it.
"""

from __future__ import annotations

from sqlalchemy import text

from dataimport.db import create_engine, driver_connection


async def test_a_connection_left_inside_a_transaction_is_never_handed_out(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            driver = await driver_connection(conn)
            left_behind = driver.get_server_pid()
            await driver.execute("BEGIN")  # SQLAlchemy's reset on return does not see it

        async with engine.begin() as conn:
            driver = await driver_connection(conn)
            handed_out = driver.get_server_pid()
            xid = await conn.scalar(text("SELECT pg_current_xact_id()::text"))

        async with engine.connect() as conn:
            status = await conn.scalar(
                text("SELECT pg_xact_status(CAST(CAST(:xid AS text) AS xid8))"), {"xid": xid}
            )
        assert handed_out != left_behind
        assert status == "committed"  # a savepoint inside the old transaction would not be
    finally:
        await engine.dispose()
