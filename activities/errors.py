"""Turn classified domain failures into non-retryable Temporal errors (code as error type).

Any other exception of an activity of a category that masks values (sensitive_data) leaves
with its type only: its text (a database error quoting a cell, a parser quoting a line) would
otherwise reach Temporal history, the worker log and, through the workflow's failure
message, the import's status (invariant 7).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from dataimport.categories import REGISTRY
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
        except ApplicationError:
            raise
        except Exception as error:
            category = _masked_category(args)
            if category is None:
                raise
            kind = type(error).__name__
            raise ApplicationError(
                f"{kind} in a {category} import (its text is withheld: it may quote the "
                "file's values)",
                type=kind,
            ) from None

    return wrapper


def _masked_category(args: tuple[Any, ...]) -> str | None:
    """The category an activity's input names, when that category masks values."""
    for arg in args:
        for holder in (arg, getattr(arg, "ref", None), getattr(arg, "request", None)):
            category = getattr(holder, "category", None)
            if isinstance(category, str):
                found = REGISTRY.get(category)
                return category if found is not None and found.masks_values else None
    return None
