"""security_scanner: content that could attack whoever opens or renders the data later.

Formula-looking cells are flagged by the readers already (they see every cell first); this
agent adds script/markup content, oversized cells and control characters.
"""

from __future__ import annotations

import re

import polars as pl

from dataimport.agents.base import RowContext
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.text import per_distinct
from dataimport.issues import Code, Issue, Severity

EXCEL_CELL_LIMIT = 32_767  # longer cells are truncated by spreadsheets: the data would be lost
_SCRIPT = re.compile(
    r"<\s*script|javascript\s*:|<\s*iframe|\bon(?:error|load|click)\s*=|;\s*drop\s+table",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A character every finding of `_SCRIPT` or `_CONTROL` needs (see `_all_clean`).
_TRIGGER = re.compile(r"[<:=;]|" + _CONTROL.pattern)


class SecurityScanner:
    name = "security_scanner"

    def examine(self, row: RowContext) -> list[Issue]:
        if _all_clean(row):
            return []
        issues: list[Issue] = []
        for header, value in row.raw.items():
            if not value:
                continue
            if len(value) > EXCEL_CELL_LIMIT:
                issues.append(self._issue(Code.OVERSIZED_CELL, header, f"{len(value)} characters"))
            if _SCRIPT.search(value):
                issues.append(self._issue(Code.SCRIPT_CONTENT, header, "script or markup content"))
            elif _CONTROL.search(value):
                issues.append(self._issue(Code.SCRIPT_CONTENT, header, "control characters"))
        return issues

    def _issue(self, code: Code, header: str, what: str) -> Issue:
        message = f"column {header!r} holds {what}; kept as text, escaped on export"
        return Issue(code.value, Severity.WARNING, message, header, self.name)


def _all_clean(row: RowContext) -> bool:
    """True when no cell can give a finding, from one scan of the joined row.

    Sound: an oversized cell makes the joined text oversized; every `_SCRIPT` alternative
    contains one of `<:=;` literally (no case variants); `_CONTROL` is in `_TRIGGER` as is.
    The newline separator is neither. Rows that fail this are scanned cell by cell.
    """
    joined = "\n".join(filter(None, row.raw.values()))  # falsy cells are skipped anyway
    return len(joined) <= EXCEL_CELL_LIMIT and _TRIGGER.search(joined) is None


# `_SCRIPT` for ASCII text in polars' regex engine: Python's `\s` also matches U+001C-U+001F,
# Rust's does not, so the class is spelt out; `\b` agrees on ASCII.
_ASCII_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f ]"
_SCRIPT_ASCII = "(?i)" + _SCRIPT.pattern.replace(r"\s", _ASCII_SPACE)


# Every byte a `_TRIGGER` match starts with (UTF-8 continuation and lead bytes are >= 0x80).
_TRIGGER_BYTES = bytes(b for b in range(128) if _TRIGGER.match(chr(b)))
_NOT_TRIGGER = bytes(b for b in range(256) if b not in _TRIGGER_BYTES)


def _clean_columns(frame: ChunkFrame) -> set[str]:
    """Columns no cell of which can give a finding, settled on their joined texts: no cell
    oversized (bytes bound characters), and no trigger byte (one `translate`, far cheaper
    than a regex pass) or, for ASCII text, no `_SCRIPT_ASCII` / `_CONTROL` match in the
    whole text (a match in a cell is one in the text; one across the newline separator is
    only a false alarm: the column is then scanned cell by cell)."""
    texts = frame.column_texts()
    lengths = texts.row(0, named=True)
    clean: set[str] = set()
    triggered: list[str] = []
    for _key, column in frame.raw_columns():
        if (lengths[f"{column}.bytes"] or 0) > EXCEL_CELL_LIMIT:
            continue
        text: str = lengths[column]
        if not text.encode().translate(None, _NOT_TRIGGER):
            clean.add(column)
        elif text.isascii():
            triggered.append(column)
    if triggered:
        found = texts.select(
            (pl.col(c).str.contains(_SCRIPT_ASCII) | pl.col(c).str.contains(_CONTROL.pattern))
            for c in triggered
        ).row(0)
        clean.update(column for column, hit in zip(triggered, found, strict=True) if not hit)
    return clean


def examine_frame(frame: ChunkFrame, findings: Findings) -> None:
    """The columnar scan: columns settled clean on their joined texts are skipped; in the
    others `_TRIGGER` (or the length) picks candidate cells, ASCII candidates are settled by
    the same patterns in polars, and only the distinct others (non-ASCII, oversized) are
    examined in Python, with `_cell_issues`."""
    if frame.height == 0:
        return
    clean = _clean_columns(frame)
    for key, column in frame.raw_columns():
        if column in clean:
            continue
        values = frame.rows.get_column(column)
        candidates = values.str.contains(_TRIGGER.pattern) | (
            values.str.len_chars() > EXCEL_CELL_LIMIT
        )
        if not candidates.any():
            continue
        field = frame.display_field(key)
        scanner = SecurityScanner()
        script = _as_json(
            scanner._issue(Code.SCRIPT_CONTENT, key, "script or markup content"), field
        )
        control = _as_json(scanner._issue(Code.SCRIPT_CONTENT, key, "control characters"), field)
        cell = pl.col(column)
        simple = (
            candidates
            & (values.str.len_bytes() == values.str.len_chars())  # ASCII
            & (values.str.len_chars() <= EXCEL_CELL_LIMIT)
        )
        vectorised = frame.rows.select(
            pl.when(cell.str.contains(_SCRIPT_ASCII))
            .then(pl.lit([script]))
            .when(cell.str.contains(_CONTROL.pattern))
            .then(pl.lit([control]))
            .alias("issues")
        ).to_series()
        exact = per_distinct(
            frame.rows,
            [column],
            lambda value, field=field, key=key: (_cell_issues(key, field, value),),
            {"issues": pl.List(pl.Utf8)},
            candidates & ~simple,
        )["issues"]
        found = pl.select(
            pl.when(pl.lit(simple)).then(pl.lit(vectorised)).otherwise(pl.lit(exact))
        ).to_series()
        findings.add(found, Severity.WARNING)


def _cell_issues(header: str, field: str | None, value: str) -> list[str]:
    scanner = SecurityScanner()
    found: list[Issue] = []
    if not value:
        return []
    if len(value) > EXCEL_CELL_LIMIT:
        found.append(scanner._issue(Code.OVERSIZED_CELL, header, f"{len(value)} characters"))
    if _SCRIPT.search(value):
        found.append(scanner._issue(Code.SCRIPT_CONTENT, header, "script or markup content"))
    elif _CONTROL.search(value):
        found.append(scanner._issue(Code.SCRIPT_CONTENT, header, "control characters"))
    return [_as_json(issue, field) for issue in found]


def _as_json(issue: Issue, field: str | None) -> str:
    return issue_json(issue.code, issue.severity, issue.message, field, issue.agent)
