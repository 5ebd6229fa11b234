"""Findings of a chunk, column-wise: issue columns added in rule order, joined once.

An issue column holds, per row, the issue's JSON text (or null), or a list of them. The
order columns are added in is the order a row's issues are reported in, as in the row engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import polars as pl

from dataimport.issues import Code, Severity


def issue_json(
    code: str | Code,
    severity: Severity,
    message: str,
    field: str | None,
    agent: str | None = None,
) -> str:
    data: dict[str, str | None] = {
        "code": str(code),
        "severity": str(severity),
        "message": message,
        "field": field,
    }
    if agent is not None:
        data["agent"] = agent
    return json.dumps(data)


_LIST = pl.List(pl.Utf8)


def _as_text(column: pl.Series) -> pl.Expr:
    """An issue column as comma-joined JSON texts, null where it holds none."""
    if column.dtype == _LIST:
        joined = pl.col(column.name).list.join(",")
        return pl.when(joined.str.len_bytes() > 0).then(joined)
    return pl.col(column.name)


class Findings:
    """The issues found so far in one chunk, with each row's error flag and warning count."""

    def __init__(self, height: int) -> None:
        self._columns: list[pl.Series] = []
        self._severities: list[Severity] = []
        self.has_error = pl.repeat(False, height, eager=True)
        self.warnings = pl.repeat(0, height, dtype=pl.Int32, eager=True)

    def add(self, issues: pl.Series, severity: Severity) -> None:
        """Issue JSON per row (null: none), or a list of issue JSON texts per row."""
        if issues.null_count() == len(issues):
            return  # no issue in any row: nothing to count, join or rewrite
        if issues.dtype == _LIST:
            count = issues.list.len().fill_null(0).cast(pl.Int32)
        else:
            count = issues.is_not_null().cast(pl.Int32)
        if severity is Severity.ERROR:
            self.has_error = self.has_error | (count > 0)
        else:
            self.warnings = self.warnings + count
        self._columns.append(issues.rename(f"i{len(self._columns)}"))
        self._severities.append(severity)

    def rewrite_errors(self, rewrite: Callable[[str], str]) -> None:
        """Pass every error found so far through `rewrite` (issue JSON in, issue JSON out; once
        per distinct text), then recount: an error rewritten as a warning no longer rejects
        its row and counts as a warning."""
        has_error = pl.repeat(False, len(self.has_error), eager=True)
        for index, (column, severity) in enumerate(
            zip(self._columns, self._severities, strict=True)
        ):
            if severity is not Severity.ERROR:
                continue
            texts = column.explode() if column.dtype == _LIST else column
            changed = {
                text: new for text in texts.drop_nulls().unique() if (new := rewrite(text)) != text
            }
            if changed:
                column = _replaced(column, changed).rename(column.name)
                self._columns[index] = column
                self.warnings = self.warnings + _count(column, _WARNING)
            has_error = has_error | (_count(column, _ERROR) > 0)
        self.has_error = has_error

    def when(self, condition: pl.Series, issue: str, severity: Severity) -> None:
        """One fixed issue on every row where condition holds."""
        frame = pl.DataFrame({"c": condition})
        column = frame.select(pl.when(pl.col("c")).then(pl.lit(issue)).otherwise(None)).to_series()
        self.add(column, severity)

    def json_lists(self, read_issues: pl.Series, blank: pl.Series) -> pl.Series:
        """The validation_errors JSON array per row: read issues first, then ours (none on a
        blank row, where only the reader's findings apply)."""
        frame = pl.DataFrame([read_issues.rename("read"), blank.rename("blank"), *self._columns])
        read = pl.col("read").str.strip_prefix("[").str.strip_suffix("]")
        ours = (
            pl.concat_str([_as_text(c) for c in self._columns], separator=",", ignore_nulls=True)
            if self._columns
            else pl.lit(None, dtype=pl.Utf8)
        )
        parts = [_non_empty(read), pl.when(~pl.col("blank")).then(_non_empty(ours))]
        joined = pl.concat_str(parts, separator=",", ignore_nulls=True).fill_null("")
        return frame.select((pl.lit("[") + joined + pl.lit("]")).alias("errors")).to_series()


_ERROR = r'"severity":\s*"error"'
_WARNING = r'"severity":\s*"warning"'


def _replaced(column: pl.Series, changed: dict[str, str]) -> pl.Series:
    frame = pl.DataFrame({"c": column})
    if column.dtype == _LIST:
        expr = pl.col("c").list.eval(pl.element().replace(changed))
    else:
        expr = pl.col("c").replace(changed)
    return frame.select(expr).to_series()


def _count(column: pl.Series, severity: str) -> pl.Series:
    """Per row, how many of the column's issues have that severity."""
    frame = pl.DataFrame({"c": column})
    if column.dtype == _LIST:
        expr = pl.col("c").list.eval(pl.element().str.contains(severity)).list.sum()
    else:
        expr = pl.col("c").str.contains(severity)
    return frame.select(expr.cast(pl.Int32).fill_null(0)).to_series()


def _non_empty(text: pl.Expr) -> pl.Expr:
    return pl.when(text.str.len_bytes() > 0).then(text)
