"""Streaming tabular readers: one interface over CSV, XLSX and JSON.

`open_table(path)` sniffs the file from its bytes (never its name), fails early with a
classified `ImportFailure` for files that cannot be imported, and returns a `TableSource` whose
`rows()` streams `SourceRow`s (cells as text, plus reader-level warnings) in bounded memory.
Every format builds its rows through `make_row`, so blank/extra/missing/formula warnings mean
the same thing whatever the file type.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from dataimport.error_codes import Level, register
from dataimport.issues import Code, ImportFailure, Issue, Severity
from dataimport.readers.detect import (
    SAMPLE_SIZE,
    detect_format,
    escape_formula,
    is_zip,
    looks_like_formula,
)
from dataimport.readers.limits import MAX_COLUMNS, check_columns
from dataimport.readers.plan import SheetPlan
from dataimport.storage import FILE_NOT_FOUND

# File codes every reader shares (csv, xlsx and json readers raise them too).
FILE_EMPTY = register(
    "empty-file",
    Level.FILE,
    "Empty file",
    "The file has no bytes, or only blanks, a byte-order mark or no rows at all.",
    "The file is empty (0 bytes).",
).code
FILE_NO_ROWS = register(
    "no-data-rows",
    Level.FILE,
    "No data rows",
    "The file (or the sheet, or the JSON document) has a header but no non-blank data row, or "
    "holds no records.",
    "The file has a header row but no data rows below it.",
).code
FILE_BAD_HEADER = register(
    "invalid-header",
    Level.FILE,
    "Invalid header row",
    "The first row must hold the column names, but none of its cells has text.",
    "The first row must hold the column names, but it is empty; remove any title or blank "
    "lines above the header and upload again.",
).code

__all__ = [
    "DEFAULT_MAX_JSON_DEPTH",
    "DEFAULT_MAX_UNCOMPRESSED_BYTES",
    "RowReader",
    "SheetPlan",
    "SourceRow",
    "TableSource",
    "detect_format",
    "escape_formula",
    "looks_like_formula",
    "make_row",
    "normalize_headers",
    "number_text",
    "open_table",
]

_LISTED_HEADERS = 5  # how many column names an issue message spells out
DEFAULT_MAX_UNCOMPRESSED_BYTES = 1024**3  # an XLSX may unpack to 1 GiB, no more
DEFAULT_MAX_JSON_DEPTH = 32
# Integral floats up to here print as integers; beyond, float precision is gone anyway.
_EXACT_FLOAT_LIMIT = 1e15


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
    """An opened table: detected parameters, headers, and a row stream. Use as a context manager.

    encoding and delimiter are "" where they do not apply (XLSX; delimiter for JSON). details
    holds format-specific facts for describe(), e.g. the sheet an XLSX table came from.
    """

    format: str
    encoding: str
    delimiter: str
    headers: list[str]
    _reader: RowReader = field(repr=False, compare=False)
    details: dict[str, str] = field(default_factory=dict)

    def rows(self, start_after: int = 0) -> Iterator[SourceRow]:
        """Stream the rows numbered above `start_after` (resume point after a crash).

        Each call starts a fresh pass over the file. Raises ImportFailure for a malformed row.
        """
        yield from self._reader.iter_rows(start_after)

    @property
    def row_reader(self) -> RowReader:
        """The format-specific reader (the ingest fast path reads CSV files natively)."""
        return self._reader

    def describe(self) -> dict[str, str]:
        """Detected parameters, JSON-ready (stored with the import for support and replays)."""
        return {
            "format": self.format,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            **self.details,
        }

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


def open_table(
    path: Path,
    *,
    max_field_size: int = 1_000_000,
    sheet_plan: SheetPlan | None = None,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
) -> TableSource:
    """Open a tabular file for streaming, or raise ImportFailure saying why it cannot be read.

    CSV, XLSX (zip magic) and JSON (array, wrapper object or NDJSON) are told apart by their
    bytes. sheet_plan picks the primary and companion sheets of a workbook (ignored for CSV and
    JSON); max_uncompressed_bytes caps what an XLSX may unpack to; max_json_depth caps nesting.

    Codes: FILE_NOT_FOUND, FILE_EMPTY, FILE_BINARY, FILE_ENCODING, FILE_BAD_HEADER,
    FILE_NO_ROWS, FILE_FIELD_TOO_LARGE; XLSX: FILE_TOO_LARGE_UNCOMPRESSED, FILE_TOO_MANY_SHEETS,
    FILE_INVALID_XLSX; JSON: FILE_INVALID_JSON, FILE_JSON_STRUCTURE, FILE_NESTING_TOO_DEEP.
    A malformed row further down surfaces later, from rows(), with its row number.
    """
    # The format modules are imported here, not at the top: they import the shared types
    # from this module.
    head, complete = _read_head(path)
    if is_zip(head):
        # Every zip goes to the XLSX reader, which judges the central directory, not just the
        # first 64 KiB: a workbook whose xl/ entries come late is still a workbook.
        from dataimport.readers.xlsx_reader import open_xlsx

        return open_xlsx(
            path,
            max_field_size=max_field_size,
            sheet_plan=sheet_plan,
            max_uncompressed_bytes=max_uncompressed_bytes,
        )
    if detect_format(head) == "json":
        from dataimport.readers.json_reader import open_json

        return open_json(
            path, head, complete, max_field_size=max_field_size, max_depth=max_json_depth
        )
    from dataimport.readers.csv_reader import open_csv

    return open_csv(path, head, complete, max_field_size=max_field_size)


def number_text(value: float) -> str:
    """A number as a person reads it: 8192.0 -> "8192", 2.5 -> "2.5", 1e20 -> "1e+20".

    Spreadsheets and JSON parsers hand over integral values as floats; a spurious ".0" would
    make "8192" and "8192.0" different values downstream.
    """
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < _EXACT_FLOAT_LIMIT:
        return str(int(value))
    return repr(value)


def normalize_headers(raw: Sequence[str]) -> list[str]:
    """Header cells -> usable, unique column keys.

    Strips whitespace and a stray BOM, names empty headers `_column_<position>`, and makes
    duplicates unique as Name, Name_2, ... without stealing a name a later header uses.
    Raises FILE_BAD_HEADER when no header cell has text.
    """
    check_columns(len(raw), "The header row")
    cleaned = [storable(cell).strip().lstrip("\ufeff").strip() for cell in raw]
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


REPLACEMENT_CHAR = "\ufffd"  # what errors="replace" puts where bytes did not decode

# Characters PostgreSQL cannot store in text or JSONB: NUL, and lone UTF-16 surrogates (a JSON
# "\ud800" escape decodes to one). A row holding one could never be staged, and a retried
# ingest would read the file again and again; so they go at read time and the cell is flagged.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable_char(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else REPLACEMENT_CHAR


def is_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def storable(text: str) -> str:
    """`text` without NUL characters, lone surrogates replaced by U+FFFD."""
    return _UNSTORABLE.sub(_storable_char, text) if _UNSTORABLE.search(text) else text


def flag_replaced_bytes(row: SourceRow, encoding: str) -> SourceRow:
    """Warn on every cell where undecodable bytes were replaced (text formats share this)."""
    flagged = {issue.field for issue in row.issues if issue.code == Code.ENCODING_ERROR}
    row.issues.extend(
        Issue(
            Code.ENCODING_ERROR,
            Severity.WARNING,
            f"Some bytes are not valid {encoding} and were replaced by U+FFFD.",
            field=key,
        )
        for key, value in row.cells.items()
        if REPLACEMENT_CHAR in value and key not in flagged
    )
    return row


def make_row(row_number: int, headers: Sequence[str], values: Sequence[str]) -> SourceRow:
    """Pair cells with headers and record the reader-level warnings every format shares.

    A cell holding NUL bytes (or lone surrogates) keeps the rest of its text and gets an
    ENCODING_ERROR warning: the row is kept, as for any damaged non-identifying value.
    """
    if len(values) > MAX_COLUMNS:
        check_columns(len(values), f"Data row {row_number}")
    storage_issues: list[Issue] = []
    if not is_storable("".join(values)):
        values, storage_issues = _storable_values(headers, values)
    cells = dict(zip(headers, values, strict=False))
    extras = values[len(headers) :]
    for position, value in enumerate(extras, 1):
        cells[f"_extra_{position}"] = value
    if all(not value.strip() for value in values):
        issue = Issue(Code.BLANK_ROW, Severity.WARNING, "Blank row: every cell is empty.")
        return SourceRow(row_number, cells, [issue, *storage_issues], is_blank=True)
    issues = _shape_issues(headers, values)
    issues.extend(storage_issues)
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


def _storable_values(
    headers: Sequence[str], values: Sequence[str]
) -> tuple[list[str], list[Issue]]:
    cleaned: list[str] = []
    issues: list[Issue] = []
    for position, value in enumerate(values):
        if _UNSTORABLE.search(value):
            nul = value.count("\x00")
            value = storable(value)
            if nul:
                message = f"The cell held {nul} NUL byte(s) (0x00), which were removed."
            else:
                message = "The cell held an invalid character (a lone UTF-16 surrogate), "
                message += "replaced by U+FFFD."
            field = (
                headers[position]
                if position < len(headers)
                else f"_extra_{position - len(headers) + 1}"
            )
            issues.append(Issue(Code.ENCODING_ERROR, Severity.WARNING, message, field=field))
        cleaned.append(value)
    return cleaned, issues


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
