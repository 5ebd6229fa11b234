"""Keep a long activity visibly alive, so a dead worker is noticed within the heartbeat timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import activity

DEFAULT_INTERVAL = timedelta(seconds=10)


def _interval() -> float:
    timeout = activity.info().heartbeat_timeout
    return (timeout / 3 if timeout else DEFAULT_INTERVAL).total_seconds()


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat in the background while the body runs (a single long SQL statement, say)."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(_interval())

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
