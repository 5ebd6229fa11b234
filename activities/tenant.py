"""Every import activity works for the tenant its input names, and the database knows it.

`tenant_scoped` sets the tenant context (dataimport.tenant_context) from the activity's
ImportRef or ImportRequest (the input itself, or its `ref` / `request`) for the whole
execution, so each transaction the activity opens is scoped to that tenant by row-level
security, whichever worker runs it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from dataimport.contracts import ImportRef, ImportRequest
from dataimport.tenant_context import acting_for

P = ParamSpec("P")
R = TypeVar("R")


def tenant_of_input(data: Any) -> ImportRef | ImportRequest:
    for candidate in (data, getattr(data, "ref", None), getattr(data, "request", None)):
        if isinstance(candidate, ImportRef | ImportRequest):
            return candidate
    raise TypeError(f"{type(data).__name__} names no import: no tenant to act for")


def tenant_scoped(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """The activity's database work is its input's tenant's (the input is the last argument)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with acting_for(tenant_of_input(args[-1])):
            return await fn(*args, **kwargs)

    return wrapper
