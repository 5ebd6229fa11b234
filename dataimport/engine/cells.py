"""A chunk's mapped fields as stripped text, and small helpers every category's rules share."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from dataimport.engine.findings import issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.issues import Code, Severity


class FieldCells:
    """Mapped fields as stripped text (`str.strip()` exactly); null where a cell is empty or
    its field is not mapped. Each field is computed once per chunk."""

    def __init__(self, frame: ChunkFrame) -> None:
        self.frame = frame
        self._cache: dict[str, pl.Series] = {}
        self._nulls: pl.Series | None = None

    def __call__(self, field: str) -> pl.Series:
        if field not in self._cache:
            column = self.frame.column_of_field(field)
            if column is None:
                # One all-null column shared by every unmapped field (series are immutable).
                if self._nulls is None:
                    self._nulls = pl.repeat(None, self.frame.height, dtype=pl.Utf8, eager=True)
                values = self._nulls
            else:
                values = self.frame.stripped(column)
            self._cache[field] = values.rename(field)
        return self._cache[field]

    def first(self, *fields: str) -> pl.Series:
        """Text of the first of fields that has a value."""
        return pl.select(pl.coalesce([self(field) for field in fields])).to_series()

    def issue(self, code: Code, severity: Severity) -> Callable[[str, str], str]:
        """Builds (field, message) -> issue JSON naming the file's column of the field."""

        def build(field: str, message: str) -> str:
            return issue_json(code, severity, message, self.frame.display_field(field))

        return build


def where(condition: pl.Series, values: pl.Series) -> pl.Series:
    """values where condition holds, null elsewhere."""
    return pl.select(pl.when(condition).then(values)).to_series()
