"""Turn classified domain failures into non-retryable Temporal errors (code as error type)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from dataimport.issues import ImportFailure

P = ParamSpec("P")
R = TypeVar("R")


def classified(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Bad input is not retried: it fails at once with its code and a human message."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ImportFailure as failure:
            raise ApplicationError(failure.message, type=failure.code, non_retryable=True) from None

    return wrapper
