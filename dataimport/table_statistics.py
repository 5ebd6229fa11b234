"""Statistics refreshed only where a large share of a table changed (never per import)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# A table is analysed when it has doubled in pages since its last ANALYZE (pages count at
# once, rows of open transactions too; the cumulative row counters lag by up to seconds), or
# it has no statistics yet; never below ANALYZE_MIN_PAGES, where plans cannot go far wrong.
# Growth is geometric, so a growing table is analysed about log2(n) times: at 20 % growth,
# 100 small imports at once into an empty inventory ran ANALYZE of assets 14 times (24 s of
# statement time under load), and the statements that depend on statistics only need their
# order of magnitude (the rest pin their plans).
ANALYZE_SHARE = 1.0
ANALYZE_MIN_PAGES = 16

_TABLE_STATE = """
SELECT c.relname, c.relpages, c.reltuples,
  pg_relation_size(c.oid) / current_setting('block_size')::int AS pages
FROM pg_class c
WHERE c.relname = ANY(CAST(:tables AS text[])) AND c.relkind IN ('r', 'p')
  AND pg_table_is_visible(c.oid)
"""


def needs_analyze(relpages: int, reltuples: float, pages: int) -> bool:
    """From pg_class (as of the last ANALYZE/VACUUM) and the table's size now."""
    if pages < ANALYZE_MIN_PAGES:
        return False
    return reltuples < 0 or relpages <= 0 or pages >= (1 + ANALYZE_SHARE) * relpages


async def analyze_if_grown(
    conn: AsyncConnection, tables: Sequence[str], *, skip_locked: bool = True
) -> list[str]:
    """ANALYZE those of `tables` that grew by a large share; returns the ones analysed.

    Runs in the caller's transaction (there it also samples the rows that transaction wrote,
    and holds the table's ShareUpdateExclusiveLock until commit: commit soon). With
    `skip_locked`, a table another session analyses right now is skipped, never waited for.
    """
    rows = await conn.execute(text(_TABLE_STATE), {"tables": list(tables)})
    chosen = [
        name
        for name, relpages, reltuples, pages in rows
        if needs_analyze(int(relpages), float(reltuples), int(pages))
    ]
    option = "(SKIP_LOCKED) " if skip_locked else ""
    for table in chosen:
        await conn.execute(text(f"ANALYZE {option}{table}"))
    return chosen
