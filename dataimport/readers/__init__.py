"""Streaming tabular readers: one interface over CSV (now) and XLSX/JSON (later).

`open_table(path)` sniffs the file from its bytes, fails early with a classified
`ImportFailure` for files that cannot be imported, and returns a `TableSource` whose `rows()`
streams `SourceRow`s (cells exactly as read, plus reader-level warnings) in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from dataimport.issues import (
    FILE_BAD_HEADER,
    FILE_BINARY,
    FILE_EMPTY,
    FILE_NOT_FOUND,
    Code,
    ImportFailure,
    Issue,
    Severity,
)
from dataimport.readers.detect import (
    SAMPLE_SIZE,
    detect_format,
    escape_formula,
    looks_like_formula,
)

__all__ = [
    "RowReader",
    "SourceRow",
    "TableSource",
    "detect_format",
    "escape_formula",
    "looks_like_formula",
    "make_row",
    "normalize_headers",
    "open_table",
]

_LISTED_HEADERS = 5  # how many column names an issue message spells out


@dataclass(slots=True)
class SourceRow:
    """One data row as read.

    row_number is 1-based, header excluded, blank rows counted (physical order). cells maps
    header -> text exactly as read; extra cells sit under _extra_N, missing ones are absent.
    """

    row_number: int
    cells: dict[str, str]
    issues: list[Issue]
    is_blank: bool


class RowReader(Protocol):
    """What a format-specific reader supplies to a TableSource."""

    def iter_rows(self, start_after: int) -> Iterator[SourceRow]: ...

    def close(self) -> None: ...


@dataclass
class TableSource:
    """An opened table: detected parameters, headers, and a row stream. Use as a context manager."""

    format: str
    encoding: str
    delimiter: str
    headers: list[str]
    _reader: RowReader = field(repr=False, compare=False)

    def rows(self, start_after: int = 0) -> Iterator[SourceRow]:
        """Stream the rows numbered above `start_after` (resume point after a crash).

        Each call starts a fresh pass over the file. Raises ImportFailure for a malformed row.
        """
        yield from self._reader.iter_rows(start_after)

    def describe(self) -> dict[str, str]:
        """Detected parameters, JSON-ready (stored with the import for support and replays)."""
        return {"format": self.format, "encoding": self.encoding, "delimiter": self.delimiter}

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> TableSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_table(path: Path, *, max_field_size: int = 1_000_000) -> TableSource:
    """Open a tabular file for streaming, or raise ImportFailure saying why it cannot be read.

    Codes: FILE_NOT_FOUND, FILE_EMPTY, FILE_BINARY (also XLSX/JSON for now), FILE_ENCODING,
    FILE_BAD_HEADER, FILE_NO_ROWS; a malformed first data row may surface later, from rows().
    """
    head, complete = _read_head(path)
    file_format = detect_format(head)
    if file_format != "csv":
        raise ImportFailure(
            FILE_BINARY,
            f"The file is {file_format.upper()}; {file_format.upper()} support is not "
            "available for this reader yet. Export the data as CSV and upload it again.",
        )
    # Imported here, not at the top: csv_reader imports the shared types from this module.
    from dataimport.readers.csv_reader import open_csv

    return open_csv(path, head, complete, max_field_size=max_field_size)


def normalize_headers(raw: Sequence[str]) -> list[str]:
    """Header cells -> usable, unique column keys.

    Strips whitespace and a stray BOM, names empty headers `_column_<position>`, and makes
    duplicates unique as Name, Name_2, ... without stealing a name a later header uses.
    Raises FILE_BAD_HEADER when no header cell has text.
    """
    cleaned = [cell.strip().lstrip("\ufeff").strip() for cell in raw]
    if not any(cleaned):
        raise ImportFailure(
            FILE_BAD_HEADER,
            "The first row must hold the column names, but it is empty; "
            "remove any title or blank lines above the header and upload again.",
        )
    named = [name or f"_column_{position}" for position, name in enumerate(cleaned, 1)]
    taken = set(named)
    used: set[str] = set()
    result: list[str] = []
    for name in named:
        unique, suffix = name, 2
        while unique in used or (unique != name and unique in taken):
            unique, suffix = f"{name}_{suffix}", suffix + 1
        used.add(unique)
        result.append(unique)
    return result


def make_row(row_number: int, headers: Sequence[str], values: Sequence[str]) -> SourceRow:
    """Pair cells with headers and record the reader-level warnings every format shares."""
    cells = dict(zip(headers, values, strict=False))
    extras = values[len(headers) :]
    for position, value in enumerate(extras, 1):
        cells[f"_extra_{position}"] = value
    if all(not value.strip() for value in values):
        issue = Issue(Code.BLANK_ROW, Severity.WARNING, "Blank row: every cell is empty.")
        return SourceRow(row_number, cells, [issue], is_blank=True)
    issues = _shape_issues(headers, values)
    issues.extend(
        Issue(
            Code.FORMULA_INJECTION,
            Severity.WARNING,
            "Cell starts like a spreadsheet formula; it is escaped when written to CSV.",
            field=key,
        )
        for key, value in cells.items()
        if looks_like_formula(value)
    )
    return SourceRow(row_number, cells, issues, is_blank=False)


def _shape_issues(headers: Sequence[str], values: Sequence[str]) -> list[Issue]:
    """EXTRA_CELL / MISSING_CELL when the row is wider or narrower than the header."""
    width, expected = len(values), len(headers)
    if width > expected:
        message = (
            f"Row has {width} cells but the header has {expected}; "
            f"the extra cells are kept as _extra_1.._extra_{width - expected}."
        )
        return [Issue(Code.EXTRA_CELL, Severity.WARNING, message)]
    if width < expected:
        missing = list(headers[width:])
        listed = ", ".join(missing[:_LISTED_HEADERS]) + (
            ", ..." if len(missing) > _LISTED_HEADERS else ""
        )
        message = f"Row has {width} cells but the header has {expected}; missing: {listed}."
        only = missing[0] if len(missing) == 1 else None
        return [Issue(Code.MISSING_CELL, Severity.WARNING, message, field=only)]
    return []


def _read_head(path: Path) -> tuple[bytes, bool]:
    """The first SAMPLE_SIZE bytes and whether they are the whole file."""
    try:
        with path.open("rb") as raw:
            head = raw.read(SAMPLE_SIZE + 1)
    except FileNotFoundError:
        raise ImportFailure(FILE_NOT_FOUND, f"The file {path.name} does not exist.") from None
    if not head:
        raise ImportFailure(FILE_EMPTY, "The file is empty (0 bytes).")
    return head[:SAMPLE_SIZE], len(head) <= SAMPLE_SIZE
