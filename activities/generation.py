"""Chunk results of an older config generation are refused, race-free in PostgreSQL.

Every `retry` bumps `data_imports.config_generation` (`bump_generation`, under FOR UPDATE);
every chunk activity carries the generation it was started under. The chunk's whole database
work runs in one transaction that first reads the import's row FOR KEY SHARE and checks the
generation. The two locks conflict, so either the chunk committed before the bump (and the
re-run phase overwrites it), or the bump committed first and the chunk sees the new number
and writes nothing. A late chunk of an old config can never commit after the new run began.
(FOR KEY SHARE does not block the status updates of data_imports, nor other chunks.)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import cast

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.exceptions import ApplicationError

from dataimport.contracts import ImportRef, ProcessingConfig
from dataimport.error_codes import Level, register
from dataimport.models import DataImport
from dataimport.tenant_scope import the_import

STALE_CHUNK = register(
    "stale-chunk",
    Level.IMPORT,
    "Chunk of an outdated run",
    "A validation or enrichment chunk started under an older processing config (before a "
    "retry) is refused before it writes; the run of the new config does the work.",
    "chunk of config generation {generation} refused: the import is at generation {current} "
    "(a retry started a new run)",
).code


class _OneTransaction:
    """Stands in for the engine inside a chunk: every connection the domain code asks for is
    the one holding the generation lock, every transaction a savepoint inside it."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        yield self._conn

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._conn.begin_nested():
            yield self._conn


@contextlib.asynccontextmanager
async def of_generation(
    engine: AsyncEngine, ref: ImportRef, generation: int | None
) -> AsyncIterator[AsyncEngine]:
    """The engine a chunk's domain function uses: the real one for chunks of workflows from
    before generations (None), else one transaction that commits only if `generation` is
    still the import's (refused with STALE_CHUNK, non-retryable, otherwise)."""
    if generation is None:
        yield engine
        return
    async with engine.connect() as conn, conn.begin():
        hold = (
            select(DataImport.config_generation)
            .where(the_import(ref))
            .with_for_update(read=True, key_share=True)  # FOR KEY SHARE
        )
        current = await conn.scalar(hold)
        if current != generation:
            raise ApplicationError(
                f"chunk of config generation {generation} refused: the import is at "
                f"generation {current} (a retry started a new run)",
                type=STALE_CHUNK,
                non_retryable=True,
            )
        # The domain functions only ask the engine for connect() and begin().
        yield cast(AsyncEngine, _OneTransaction(conn))


async def bump_generation(
    engine: AsyncEngine, ref: ImportRef, generation: int, config: ProcessingConfig
) -> None:
    """Record the config of a retry and its generation; waits for any chunk still holding
    an older generation's lock (idempotent: a retried call changes nothing more)."""
    async with engine.begin() as conn:
        lock = select(DataImport.config_generation).where(the_import(ref)).with_for_update()
        await conn.execute(lock)
        await conn.execute(
            update(DataImport)
            .where(the_import(ref))
            .values(
                config_generation=func.greatest(DataImport.config_generation, generation),
                processing_config=config.model_dump(mode="json"),
                updated_at=func.now(),
            )
        )
