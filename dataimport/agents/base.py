"""Validation agents: named rule sets that examine every staged row after the category's own
mapping and typing, and whose runs are recorded in import_processing_steps.

An agent is pure Python over one row at a time (no I/O), so it runs inside the validation
chunk activity. Its findings are ordinary Issues tagged with the agent's name; the per-agent
step row (status, duration, rows examined, findings per code) is written at finalize time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.issues import Issue


@dataclass(slots=True)
class RowContext:
    """What an agent sees of one row."""

    row_number: int
    raw: Mapping[str, str]  # source header -> cell, exactly as staged
    fields: Mapping[str, str]  # mapped field -> stripped cell text
    normalized: dict[str, Any]  # the category's normalised output (agents may add keys)
    category: str
    issues: list[Issue] = field(default_factory=list)  # issues found so far for this row


class ValidationAgent(Protocol):
    name: str  # e.g. "security_scanner": stable, shown in reports

    def examine(self, row: RowContext) -> list[Issue]:
        """Findings about one row; tag each with `agent=self.name`."""
        ...


@runtime_checkable
class CrossRowAgent(Protocol):
    """An agent with a rule over the whole import (e.g. duplicate VM UUIDs), run set-based
    once every row range is validated; it appends its issues to the rows' validation_errors."""

    name: str

    async def finalize(self, conn: AsyncConnection, data_import_id: str) -> int:
        """Flag rows across the import; idempotent; returns the rows newly flagged."""
        ...
