"""Caps on what one untrusted file may make a reader hold, and the workbook checks they need.

Every cap is a classified error naming it (dataimport.issues), never a crashed worker:

- MAX_COLUMNS: cells in one row, the header row included (CSV, XLSX, JSON).
- MAX_JSON_KEYS: distinct keys a JSON file names (after flattening), and members of a
  top-level wrapper object.
- MAX_ZIP_ENTRIES: entries in a workbook's ZIP central directory, checked from the end
  record before any ZIP library parses the directory.
- MAX_SHEET_CELLS: cells a worksheet spans from A1 to its last cell (its `<dimension ref>` or
  the largest row and column its cells name). python-calamine allocates that whole rectangle
  at once (calamine issue #693: cells at A1 and XFD1048576 asked for 549 GB and aborted the
  process), so sheets spanning more than CALAMINE_MAX_CELLS are streamed with openpyxl instead.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.parsers import expat

from dataimport.error_codes import Level, register

# Parsers that cannot take the worker down: each cap is named in the message.
FILE_FIELD_TOO_LARGE = register(
    "field-too-large",
    Level.FILE,
    "Cell too long",
    "A cell (a CSV field, a workbook cell, a JSON value or record) is longer than the reader's "
    "limit; an unclosed quote can cause this.",
    "{where}: {what} is longer than {cap:,} characters.",
).code
TOO_MANY_COLUMNS = register(
    "too-many-columns",
    Level.FILE,
    "Too many columns",
    "A row or a sheet has more columns than the limit per row.",
    "{where} has {count:,} columns, more than the limit of {cap:,} columns per row. Remove the "
    "columns you do not need (or split the file) and upload it again.",
)
TOO_MANY_ZIP_ENTRIES = register(
    "too-many-zip-entries",
    Level.FILE,
    "Too many entries in the workbook archive",
    "The workbook's ZIP directory lists more entries than real workbooks have.",
    "The workbook's ZIP directory {what}, more than the limit of {cap:,} entries; real "
    "workbooks have far fewer. Open it in Excel, save it again as .xlsx and upload it again.",
)
SHEET_TOO_LARGE = register(
    "sheet-too-large",
    Level.FILE,
    "Sheet area too large",
    "A sheet's declared or used area spans more cells than the limit per sheet.",
    "Sheet {sheet!r} spans {rows:,} rows x {columns:,} columns ({cells:,} cells, from A1 to its "
    "{source}), more than the limit of {cap:,} cells per sheet. Delete the empty rows and "
    "columns beyond the data (or export the sheet as CSV) and upload it again.",
)

MAX_COLUMNS = 1024
MAX_JSON_KEYS = 4096
MAX_ZIP_ENTRIES = 10_000
# A central-directory entry is 46 bytes plus its name, extra field and comment.
_MAX_DIRECTORY_BYTES = MAX_ZIP_ENTRIES * 1024
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
MAX_SHEET_CELLS = 50_000_000  # e.g. a full-height sheet of 47 columns
CALAMINE_MAX_CELLS = 4_000_000  # ~130 MB of calamine cells, before their text

_SCAN_CHUNK = 1 << 20


def check_columns(count: int, where: str) -> None:
    if count > MAX_COLUMNS:
        raise TOO_MANY_COLUMNS.failure(where=where, count=count, cap=MAX_COLUMNS)


# --- the ZIP central directory ------------------------------------------------------------------

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"


def check_zip_directory(path: Path) -> None:
    """Refuse a ZIP whose end record announces more than MAX_ZIP_ENTRIES entries (or a
    directory too long for them), before zipfile builds an object per entry.

    A file without a readable end record is left to zipfile, which calls it damaged.
    """
    with path.open("rb") as raw:
        size = raw.seek(0, 2)
        tail_size = min(size, _EOCD.size + 0xFFFF)
        raw.seek(size - tail_size)
        tail = raw.read(tail_size)
        at = tail.rfind(_EOCD_SIGNATURE)
        if at < 0 or len(tail) - at < _EOCD.size:
            return
        fields = _EOCD.unpack_from(tail, at)
        entries, directory_bytes = fields[4], fields[5]
        if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF:
            entries, directory_bytes = _zip64_counts(raw, size - tail_size + at, entries)
    if entries > MAX_ZIP_ENTRIES:
        raise TOO_MANY_ZIP_ENTRIES.failure(what=f"lists {entries:,} entries", cap=MAX_ZIP_ENTRIES)
    if directory_bytes > _MAX_DIRECTORY_BYTES:
        what = f"is {directory_bytes:,} bytes long, room for"
        raise TOO_MANY_ZIP_ENTRIES.failure(what=what, cap=MAX_ZIP_ENTRIES)


def _zip64_counts(raw: BinaryIO, eocd_offset: int, entries: int) -> tuple[int, int]:
    if eocd_offset < _ZIP64_LOCATOR.size:
        return entries, 0
    raw.seek(eocd_offset - _ZIP64_LOCATOR.size)
    locator = raw.read(_ZIP64_LOCATOR.size)
    signature, _disk, record_offset, _disks = _ZIP64_LOCATOR.unpack(locator)
    if signature != _ZIP64_LOCATOR_SIGNATURE:
        return entries, 0
    raw.seek(record_offset)
    record = raw.read(_ZIP64_EOCD.size)
    if len(record) < _ZIP64_EOCD.size or record[:4] != _ZIP64_EOCD_SIGNATURE:
        return entries, 0
    fields = _ZIP64_EOCD.unpack(record)
    return fields[7], fields[8]


def check_entry_count(count: int) -> None:
    """The count zipfile parsed (the end record may understate it)."""
    if count > MAX_ZIP_ENTRIES:
        raise TOO_MANY_ZIP_ENTRIES.failure(what=f"lists {count:,} entries", cap=MAX_ZIP_ENTRIES)


# --- the area a worksheet spans -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SheetExtent:
    """Rows and columns from A1 to the last cell; `source` says what claimed them."""

    rows: int
    columns: int
    source: str

    @property
    def cells(self) -> int:
        return self.rows * self.columns


_DIMENSION = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?dimension\b[^>]*?\sref="([^"]*)"')
_REF = re.compile(r"\$?([A-Za-z]{1,7})\$?([0-9]{1,10})")
_SHEET_DATA = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?sheetData\b")
# Inside a worksheet only cells carry r="<letters><digits>" (rows carry r="<digits>"). Plain
# byte patterns, no lazy scan over the attributes: measured here, a 62 MB sheet of 2M cells is
# scanned in ~1.5 s (calamine takes ~2.3 s to load it).
_CELL_COLUMN = re.compile(rb' r="\$?([A-Z]{1,7})\$?[0-9]')
_CELL_ROW = re.compile(rb' r="\$?[A-Z]{1,7}\$?([0-9]{1,10})"')
_CELL_TAGS = (b"<c ", b"<c>", b"<c/>")


def column_number(letters: str | bytes) -> int:
    """A1-style column letters -> 1-based number ("A" 1, "XFD" 16384)."""
    number = 0
    for char in letters.upper() if isinstance(letters, str) else letters.decode().upper():
        number = number * 26 + ord(char) - 64
    return number


def check_sheet_extent(archive: zipfile.ZipFile, part: str, sheet: str, *, cells: bool) -> int:
    """Refuse a sheet spanning more than MAX_COLUMNS columns or MAX_SHEET_CELLS cells; returns
    the cells it spans. `cells`: also scan every cell (else only the dimension is read)."""
    extents = [_declared_extent(archive, part)]
    if cells:
        extents.append(_cell_extent(archive, part))
    largest = SheetExtent(0, 0, "")
    for extent in extents:
        if extent.columns > MAX_COLUMNS:
            where = f"Sheet {sheet!r} (by its {extent.source})"
            raise TOO_MANY_COLUMNS.failure(where=where, count=extent.columns, cap=MAX_COLUMNS)
        if extent.cells > MAX_SHEET_CELLS:
            raise SHEET_TOO_LARGE.failure(
                sheet=sheet,
                rows=extent.rows,
                columns=extent.columns,
                cells=extent.cells,
                source=extent.source,
                cap=MAX_SHEET_CELLS,
            )
        if extent.cells > largest.cells:
            largest = extent
    return largest.cells


def _declared_extent(archive: zipfile.ZipFile, part: str) -> SheetExtent:
    """What `<dimension ref="A1:XFD1048576">` claims (it comes before the cells)."""
    head = b""
    with archive.open(part) as stream:
        while len(head) < 16 * _SCAN_CHUNK:
            chunk = stream.read(64 * 1024)
            if not chunk:
                break
            head += chunk
            if _SHEET_DATA.search(head):
                break
    found = _DIMENSION.search(head)
    if found is None:
        return SheetExtent(0, 0, "dimension")
    rows = columns = 0
    for ref in _REF.finditer(found.group(1).decode("ascii", "replace")):
        columns = max(columns, column_number(ref.group(1)))
        rows = max(rows, int(ref.group(2)))
    return SheetExtent(rows, columns, "dimension")


def _chunks(archive: zipfile.ZipFile, part: str) -> Iterator[bytes]:
    """The part's bytes in pieces that end after a complete tag (cut before the last '<')."""
    carry = b""
    with archive.open(part) as stream:
        while chunk := stream.read(_SCAN_CHUNK):
            text = carry + chunk
            cut = text.rfind(b"<")
            if cut <= 0:
                carry = text
                continue
            yield text[:cut]
            carry = text[cut:]
    if carry:
        yield carry


def _cell_extent(archive: zipfile.ZipFile, part: str) -> SheetExtent:
    """The largest row and column the cells name. Fast path: every cell has its r attribute
    (what every common writer does); otherwise positions are followed as calamine does."""
    max_row = max_column = 0
    cells = with_ref = 0
    for text in _chunks(archive, part):
        if b":c " in text or b":c>" in text:
            return _followed_extent(archive, part)  # namespace-prefixed cells: the exact way
        cells += sum(text.count(tag) for tag in _CELL_TAGS)
        columns = _CELL_COLUMN.findall(text)
        with_ref += len(columns)
        if columns:
            max_column = max(max_column, column_number(_largest(columns)))
        numbers = _CELL_ROW.findall(text)  # calamine places a cell by its r, not its row's
        if numbers:
            max_row = max(max_row, int(_largest(numbers)))
    if cells != with_ref:
        return _followed_extent(archive, part)
    return SheetExtent(max_row, max_column, "cells")


def _largest(names: list[bytes]) -> bytes:
    """The largest column name or row number: longer is larger, then by characters (a leading
    zero can only make the estimate larger, never smaller)."""
    distinct = set(names)  # few: a sheet has few columns, a chunk few rows
    longest = max(map(len, distinct))
    return max(name for name in distinct if len(name) == longest)


def _followed_extent(archive: zipfile.ZipFile, part: str) -> SheetExtent:
    """Exact positions of cells without r: the next column (or row), as spreadsheets place them."""
    state = {"row": 0, "column": 0, "max_row": 0, "max_column": 0}

    def start(name: str, attributes: dict[str, str]) -> None:
        local = name.rpartition(":")[2]
        if local == "row":
            given = attributes.get("r", "")
            state["row"] = int(given) if given.isdigit() else state["row"] + 1
            state["column"] = 0
            state["max_row"] = max(state["max_row"], state["row"])
        elif local == "c":
            found = _REF.fullmatch(attributes.get("r", ""))
            if found:
                state["column"] = column_number(found.group(1))
                state["max_row"] = max(state["max_row"], int(found.group(2)))
            else:
                state["column"] += 1
            state["max_column"] = max(state["max_column"], state["column"])

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    try:
        with archive.open(part) as stream:
            parser.ParseFile(stream)
    except expat.ExpatError:
        pass  # a damaged sheet: the spreadsheet library reports it as unreadable
    return SheetExtent(max(state["max_row"], state["row"]), state["max_column"], "cells")
