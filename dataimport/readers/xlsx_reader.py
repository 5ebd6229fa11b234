"""XLSX reader: a guarded zip, python-calamine (openpyxl as fallback), sheet plans.

Safety before parsing. A workbook is a zip, and a zip can unpack to far more than it weighs.
Before any spreadsheet library sees the file, the central directory is checked (total
uncompressed size against a cap, compression ratio of big members, sheet count), then every
member is inflated once with its output discarded, proving that the declared sizes and CRCs
are true. From then on the declared sizes bound everything a library can decompress, so a zip
bomb ends as FILE_TOO_LARGE_UNCOMPRESSED, not as an out-of-memory worker. The central directory
may list at most MAX_ZIP_ENTRIES entries (read from its end record before zipfile parses it),
and every sheet's area (A1 to its dimension, and to the largest row and column its cells name)
is checked before a library reads it (limits.py): calamine allocates that whole rectangle.
No workbook part needs a DTD, so a part declaring one (the carrier of entity expansion, "billion
laughs", and of external entities) is refused before any library parses it: the parts this
reader parses itself go through defusedxml with DTDs forbidden, and every other XML part has
its prolog (up to the root element) checked the same way.

Engines. python-calamine is about 20x faster than openpyxl but loads a whole sheet into memory
(measured here: a 105 MB sheet XML holding 2M cells took ~180 MB). Sheets whose XML is larger
than CALAMINE_MAX_SHEET_BYTES, or spanning more than CALAMINE_MAX_CELLS, are therefore
streamed with openpyxl read-only (constant memory, slower); openpyxl is also the fallback for
any sheet calamine rejects. Shared strings are held in memory by both libraries; the
uncompressed-size cap bounds them.

Sheet plans (see plan.py). The primary sheet gives the rows. Companion sheets are read once, at
open, into an on-disk store keyed by the join key (e.g. RVTools "VM UUID", else "VM"), so the
worker's memory does not grow with the number of VMs, disks or partitions. Each primary row
then carries "<sheet>.<column>" cells and "<sheet>.#rows": per key and column, numbers summed,
distinct texts joined and capped at JOINED_TEXT_LIMIT characters.
"""

from __future__ import annotations

import marshal
import os
import posixpath
import sqlite3
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

from defusedxml import (
    DefusedXmlException,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import DefusedXMLParser
from defusedxml.ElementTree import iterparse as defused_iterparse

from dataimport.error_codes import ImportFailure, Level, register
from dataimport.readers import (
    FILE_NO_ROWS,
    SourceRow,
    TableSource,
    make_row,
    normalize_headers,
    number_text,
)
from dataimport.readers.detect import FILE_BINARY
from dataimport.readers.limits import (
    CALAMINE_MAX_CELLS,
    FILE_FIELD_TOO_LARGE,
    check_entry_count,
    check_sheet_extent,
    check_zip_directory,
)
from dataimport.readers.plan import SheetPlan
from dataimport.readers.sandbox import (
    PendingSheet,
    RowUnreadable,
    SandboxFailed,
    SheetRejected,
    SpooledSheet,
    start_sheet,
)

FILE_INVALID_XLSX = register(
    "invalid-xlsx",
    Level.FILE,
    "Unreadable workbook",
    "The file is a ZIP archive with a workbook inside, but its parts cannot be read as XLSX.",
    "The file is not a readable XLSX workbook: {reason}. Open it in Excel, save it again as "
    ".xlsx and upload it again.",
).code
FILE_TOO_MANY_SHEETS = register(
    "too-many-sheets",
    Level.FILE,
    "Too many sheets",
    "The workbook has more sheets than the reader's limit.",
    "The workbook has more than {cap} sheets; keep the sheets with the data to import and "
    "upload it again.",
).code
FILE_TOO_LARGE_UNCOMPRESSED = register(
    "archive-too-large",
    Level.FILE,
    "Workbook too large when unpacked",
    "The workbook's ZIP parts unpack beyond the limit, or compress suspiciously well (a zip bomb).",
    "The workbook is refused because {reason}. Split it, or export the sheets you need as CSV.",
).code
UNREADABLE_FILE = register(
    "unreadable-file",
    Level.FILE,
    "File could not be read safely",
    "The sandboxed reader process crashed, was killed by a signal or hit a resource limit; "
    "the file is not retried.",
    "The file could not be read within the reader's limits ({reason}); it is not retried. "
    "Export it again as CSV, or split it, and upload it again.",
)

_MIB = 1024 * 1024
MAX_SHEETS = 64
CALAMINE_MAX_SHEET_BYTES = 128 * _MIB
JOINED_TEXT_LIMIT = 400
# Ratios are judged on big members only: small XML parts legitimately compress very well, and
# a small member cannot hurt whatever its ratio.
_BOMB_MIN_MEMBER_BYTES = 16 * _MIB
_BOMB_MAX_RATIO = 100
_WORKBOOK_PART = "xl/workbook.xml"
_WORKBOOK_RELS_PART = "xl/_rels/workbook.xml.rels"
_WORKSHEET_REL_TYPE = "/worksheet"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then name and extra-field lengths
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_INFLATE_CHUNK = _MIB
_PROLOG_CHUNK = 16 * 1024
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_JOIN_SEPARATOR = "; "
_STORE_BATCH = 4096  # companion rows per insert
_LOOKUP_BATCH = 512  # primary rows whose companion rows are fetched in one query


@dataclass(frozen=True, slots=True)
class SheetRef:
    """A worksheet as the workbook lists it: its name, zip member and uncompressed size."""

    name: str
    part: str
    size: int


def open_xlsx(
    path: Path, *, max_field_size: int, sheet_plan: SheetPlan | None, max_uncompressed_bytes: int
) -> TableSource:
    """Open a workbook: check the archive, pick the sheets, read headers and companions."""
    sheets = inspect_workbook(path, max_uncompressed_bytes)
    primary, companions = choose_sheets(sheets, sheet_plan)
    reader = XlsxRowReader(path, primary, max_field_size)
    try:
        reader.read_header()
        join_keys = sheet_plan.join_keys if sheet_plan is not None else ()
        unjoined = reader.join_all(companions, join_keys)
    except BaseException:
        reader.close()  # no spool or store left behind by a workbook that fails to open
        raise
    details = {
        "sheet": primary.name,
        "companions": ",".join(companion.sheet for companion in reader.companions),
        "engine": reader.engine,
    }
    if unjoined:
        details["companions_unjoined"] = ",".join(unjoined)
    return TableSource("xlsx", "", "", reader.headers, reader, details)


# --- the archive ------------------------------------------------------------------------------


def inspect_workbook(path: Path, max_uncompressed_bytes: int) -> list[SheetRef]:
    """The workbook's worksheets in order, after proving the archive is safe to unpack."""
    check_zip_directory(path)  # before zipfile builds an object per directory entry
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise _invalid("the ZIP container is damaged or truncated") from None
    with archive:
        check_entry_count(len(archive.infolist()))
        members = {info.filename: info for info in archive.infolist()}
        if _WORKBOOK_PART not in members:
            raise ImportFailure(
                FILE_BINARY,
                "The file is a ZIP archive but not an XLSX workbook (it has no xl/workbook.xml); "
                "upload the CSV, XLSX or JSON file itself, not an archive.",
            )
        _check_declared_sizes(members.values(), max_uncompressed_bytes)
        # zipfile stops at the declared size and checks the CRC, so reading these two small
        # parts is safe before the full inflate check below.
        sheets = _worksheets(archive, members)
    _verify_members(path, members.values())
    with zipfile.ZipFile(path) as archive:
        for info in members.values():
            if info.filename.endswith(_XML_SUFFIXES):
                _check_prolog(archive, info.filename)
    return sheets


def _check_declared_sizes(infos: Iterable[zipfile.ZipInfo], cap: int) -> None:
    total = 0
    for info in infos:
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= _BOMB_MIN_MEMBER_BYTES and ratio > _BOMB_MAX_RATIO:
            raise _too_large(
                f"{info.filename} would unpack {ratio:,.0f}:1 ({_mib(info.file_size)}); "
                "real workbooks never compress like that (zip bomb pattern)"
            )
    if total > cap:
        raise _too_large(f"it unpacks to {_mib(total)}, more than the {_mib(cap)} limit")


def _worksheets(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> list[SheetRef]:
    """Worksheets listed in xl/workbook.xml, resolved to zip members via its relationships."""
    if _WORKBOOK_RELS_PART not in members:
        raise _invalid(f"{_WORKBOOK_RELS_PART} is missing")
    relations: dict[str, tuple[str, str]] = {}
    for element in _elements(archive, _WORKBOOK_RELS_PART, "Relationship"):
        target = element.get("Target", "")
        part = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
        relations[element.get("Id", "")] = (posixpath.normpath(part), element.get("Type", ""))
    sheets: list[SheetRef] = []
    for listed, element in enumerate(_elements(archive, _WORKBOOK_PART, "sheet"), 1):
        if listed > MAX_SHEETS:
            raise ImportFailure(
                FILE_TOO_MANY_SHEETS,
                f"The workbook has more than {MAX_SHEETS} sheets; keep the sheets with the data "
                "to import and upload it again.",
            )
        relation_id = next((v for k, v in element.attrib.items() if _local(k) == "id"), "")
        part, kind = relations.get(relation_id, ("", ""))
        if kind.endswith(_WORKSHEET_REL_TYPE) and part in members:  # charts hold no rows
            sheets.append(SheetRef(element.get("name", ""), part, members[part].file_size))
    if not sheets:
        raise _invalid("the workbook lists no worksheets")
    return sheets


def _elements(
    archive: zipfile.ZipFile, part: str, local_name: str
) -> Iterator[ElementTree.Element]:
    """Stream the elements of one XML part with the given local name (namespace ignored)."""
    try:
        with archive.open(part) as stream:
            for _event, element in defused_iterparse(stream, forbid_dtd=True):
                if _local(element.tag) == local_name:
                    yield element
                element.clear()  # these parts are small, but nothing obliges them to be
    except DefusedXmlException as exc:
        raise _invalid(f"{part} declares {_refused(exc)}") from None
    except (ElementTree.ParseError, zipfile.BadZipFile, EOFError) as exc:
        raise _invalid(f"{part} is not valid ({exc})") from None


def _check_prolog(archive: zipfile.ZipFile, part: str) -> None:
    """Refuse a part that declares a DTD, reading only up to its root element (a DTD must come
    before it), so a multi-gigabyte sheet costs a few bytes here. A damaged part is left to the
    library that reads it, which reports it as unreadable."""
    parser = DefusedXMLParser(forbid_dtd=True)
    events = ElementTree.XMLPullParser(["start"], _parser=parser)
    try:
        with archive.open(part) as stream:
            while chunk := stream.read(_PROLOG_CHUNK):
                events.feed(chunk)
                if next(events.read_events(), None) is not None:
                    return  # the root element: no DTD can follow
    except DefusedXmlException as exc:
        raise _invalid(f"{part} declares {_refused(exc)}") from None
    except (ElementTree.ParseError, zipfile.BadZipFile, EOFError):
        return


def _refused(exc: DefusedXmlException) -> str:
    what = "a DTD"
    if isinstance(exc, EntitiesForbidden):
        what = "entities"
    elif isinstance(exc, ExternalReferenceForbidden):
        what = "an external reference"
    return f"{what} ({exc}), which workbooks never need (refused as unsafe)"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _verify_members(path: Path, infos: Iterable[zipfile.ZipInfo]) -> None:
    """Inflate every member once (output discarded): sizes and CRCs must be what they claim.

    Python's zipfile stops at the declared size, but other readers (calamine's Rust zip) inflate
    until the stream ends: a member that lies about its size must be caught here.
    """
    with path.open("rb") as raw:
        for info in infos:
            _verify_member(raw, info)


def _verify_member(raw: BinaryIO, info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x1:
        raise _invalid("it is password-protected; remove the password and upload it again")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _invalid(f"{info.filename} uses compression method {info.compress_type}")
    raw.seek(info.header_offset)
    header = raw.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_HEADER_SIGNATURE:
        raise _invalid(f"the entry for {info.filename} is damaged")
    _signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    raw.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    produced, crc = 0, 0
    for piece in _inflated(raw, info):
        produced += len(piece)
        if produced > info.file_size:
            raise _too_large(
                f"{info.filename} unpacks to more than the {_mib(info.file_size)} it declares "
                "(zip bomb pattern)"
            )
        crc = zlib.crc32(piece, crc)
    if produced != info.file_size or crc != info.CRC:
        raise _invalid(f"{info.filename} is damaged (size or checksum mismatch)")


def _inflated(raw: BinaryIO, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The member's content in pieces of at most _INFLATE_CHUNK bytes, never more at once."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type else None
    left = info.compress_size
    try:
        while left > 0:
            chunk = raw.read(min(_INFLATE_CHUNK, left))
            if not chunk:
                raise _invalid(f"{info.filename} is truncated")
            left -= len(chunk)
            if inflater is None:
                yield chunk
                continue
            # max_length bounds each output piece; the rest waits in unconsumed_tail.
            yield inflater.decompress(chunk, _INFLATE_CHUNK)
            while inflater.unconsumed_tail:
                yield inflater.decompress(inflater.unconsumed_tail, _INFLATE_CHUNK)
        if inflater is not None:
            yield inflater.flush()
            if not inflater.eof:
                raise _invalid(f"{info.filename} is truncated")
    except zlib.error as exc:
        raise _invalid(f"{info.filename} is damaged ({exc})") from None


# --- choosing sheets --------------------------------------------------------------------------


def choose_sheets(
    sheets: Sequence[SheetRef], plan: SheetPlan | None
) -> tuple[SheetRef, list[SheetRef]]:
    """Primary = first plan.primary present (case-insensitive), else the first worksheet;
    companions = those of plan.companions present, in plan order. No plan: first sheet only."""
    if plan is None:
        return sheets[0], []
    by_name: dict[str, SheetRef] = {}
    for sheet in sheets:
        by_name.setdefault(_fold(sheet.name), sheet)
    wanted = (by_name.get(_fold(name)) for name in plan.primary)
    primary = next((sheet for sheet in wanted if sheet is not None), sheets[0])
    present = (by_name.get(_fold(name)) for name in plan.companions)
    companions: list[SheetRef] = []
    for companion in present:
        if companion is not None and companion != primary and companion not in companions:
            companions.append(companion)
    return primary, companions


def _fold(text: str) -> str:
    return text.strip().casefold()


# --- reading a sheet --------------------------------------------------------------------------


class _SheetSource:
    """One sheet's raw rows: from calamine (loaded once, replayable) or openpyxl (streamed,
    re-opened for every pass). Constructing it starts the calamine child; the first pass (or
    ready()) waits for it, so a reader can start the next sheet while it works on this one."""

    def __init__(self, path: Path, sheet: SheetRef) -> None:
        self.path = path
        self.sheet = sheet
        # calamine allocates the whole area from A1 to the last cell at once: the area is
        # checked first (a huge one is refused, a large one streamed with openpyxl).
        small = sheet.size <= CALAMINE_MAX_SHEET_BYTES
        with zipfile.ZipFile(path) as archive:
            cells = check_sheet_extent(archive, sheet.part, sheet.name, cells=small)
        use_calamine = small and cells <= CALAMINE_MAX_CELLS
        self._pending: PendingSheet | None = start_sheet(path, sheet.name) if use_calamine else None
        self._loaded: SpooledSheet | None = None
        self.engine = "calamine" if use_calamine else "openpyxl"

    def ready(self) -> None:
        """Wait for the calamine child: its rows, or openpyxl when calamine rejects the file.
        A crash or a limit there is UNREADABLE_FILE: classified, never retried."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            self._loaded = pending.wait()
        except SheetRejected:
            self.engine = "openpyxl"
        except SandboxFailed as failed:
            raise UNREADABLE_FILE.failure(reason=failed.reason) from None

    def raw_rows(self) -> Iterator[Sequence[object]]:
        self.ready()
        if self._loaded is None:
            yield from _openpyxl_rows(self.path, self.sheet)
            return
        rows = self._loaded.iter_rows()
        while True:
            try:
                values = next(rows)
            except StopIteration:
                return
            except RowUnreadable as exc:  # a cell calamine cannot convert, e.g. an absurd date
                raise _invalid(f"sheet {self.sheet.name} cannot be read ({exc})") from None
            yield values

    def release(self) -> None:
        """Stop a child still running, remove a calamine-loaded sheet's spool file."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._loaded is not None:
            self._loaded.release()
        self._loaded = None


def _openpyxl_rows(path: Path, sheet: SheetRef) -> Iterator[Sequence[object]]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises anything from KeyError to XML errors
        raise _invalid(f"the workbook cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        if sheet.name not in workbook.sheetnames:
            raise _invalid(f"sheet {sheet.name} cannot be found")
        worksheet = workbook[sheet.name]
        # The stored dimension may be missing or wrong; without it rows are read as they are.
        worksheet.reset_dimensions()
        rows = worksheet.iter_rows(values_only=True)
        while True:
            try:
                values = next(rows)
            except StopIteration:
                return
            except Exception as exc:
                raise _invalid(f"sheet {sheet.name} cannot be read ({exc})") from None
            yield values
    finally:
        workbook.close()


def _numbered(
    raw_rows: Iterable[Sequence[object]],
) -> Generator[tuple[int, list[object]], None, None]:
    """(0, header) for the first non-empty row, then (n, cells) for data rows n = 1, 2, ...

    Rows above the header are skipped; blank rows inside the data keep their numbers, trailing
    blank rows (formatting left below the data) are dropped; trailing empty cells are trimmed.
    """
    index = -1
    pending_blank = 0  # counted, not stored: blank rows are yielded once data follows them
    for raw in raw_rows:
        cells = _trimmed(raw)
        blank = all(_is_empty(value, strip=True) for value in cells)
        if index < 0:
            if not blank:
                index = 0
                yield index, cells
            continue
        if blank:
            pending_blank += 1
            continue
        for _ in range(pending_blank):
            index += 1
            yield index, []
        pending_blank = 0
        index += 1
        yield index, cells


def _trimmed(raw: Sequence[object]) -> list[object]:
    end = len(raw)
    while end and _is_empty(raw[end - 1], strip=False):
        end -= 1
    return list(raw[:end])


def _is_empty(value: object, *, strip: bool) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not (value.strip() if strip else value)
    return False


def cell_text(value: object) -> str:
    """A cell value as the text a user sees: 8192.0 -> "8192", True -> "True", dates in
    ISO 8601 (a datetime at midnight is a date: openpyxl reports date cells that way)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)  # durations and anything newer the engines may hand over


# --- companion sheets ------------------------------------------------------------------------


@dataclass(slots=True)
class _Aggregate:
    """Several companion cells for one key and column: numbers summed, distinct texts joined."""

    total: int | float | None = None
    texts: list[str] = field(default_factory=list)
    length: int = 0
    truncated: bool = False

    def add(self, value: object) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.total = value if self.total is None else self.total + value
            return
        text = cell_text(value).strip()
        # `in` on a list is fine: the list holds at most JOINED_TEXT_LIMIT characters.
        if not text or self.truncated or text in self.texts:
            return
        if self.length + len(text) > JOINED_TEXT_LIMIT:
            self.truncated = True
            return
        self.texts.append(text)
        self.length += len(text) + len(_JOIN_SEPARATOR)

    def text(self) -> str:
        parts = list(self.texts)
        if self.total is not None:
            # Summing floats leaves noise (0.1 + 0.2); nine decimals is beyond any unit here.
            total = round(self.total, 9) if isinstance(self.total, float) else self.total
            parts.insert(0, number_text(total))
        if self.truncated:
            parts.append("…")
        return _JOIN_SEPARATOR.join(parts)


_Packed = int | float | str | None  # a companion cell as _Aggregate.add sees it


def _packed(value: object) -> _Packed:
    """A number, a stripped non-empty text, or None for a cell that adds nothing."""
    # Exact types first (`type(...) is`, no isinstance chain): this runs for every cell.
    if type(value) is str:
        return value.strip() or None
    if value is None or type(value) is int or type(value) is float:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return cell_text(value).strip() or None


def _single_text(value: _Packed) -> str:
    """What _Aggregate.text() gives for this one value: the common case, one row per key."""
    if isinstance(value, str):
        return value if len(value) <= JOINED_TEXT_LIMIT else "…"
    if value is None:
        return ""
    if type(value) is int:
        return str(value)
    return number_text(round(value, 9) if isinstance(value, float) else value)


class _CompanionStore:
    """The companion rows of one workbook, on disk by join key (SQLite, a private temp file).

    Aggregates held in memory grew with the number of VMs (about 620 MiB at 100k VMs); here the
    reader holds SQLite's bounded page cache, and a key's rows are aggregated when a primary
    row asks for them. Rows are packed with marshal: written and read by this process only, in
    a 0600 file nobody else can name (the child's spool, which crosses a trust boundary, is
    JSON). Insertion order (rowid) keeps a key's rows in sheet order, which sums and the order
    of joined texts depend on.
    """

    _CACHE_KIB = 16 * 1024

    def __init__(self) -> None:
        handle, name = tempfile.mkstemp(prefix="dataimport-companions-", suffix=".sqlite")
        os.close(handle)
        self._path: Path | None = Path(name)
        # Used from the ingest's worker threads one at a time, never concurrently.
        self._db = sqlite3.connect(name, isolation_level=None, check_same_thread=False)
        for pragma in (
            "journal_mode = OFF",  # a scratch file: nothing to roll back or recover
            "synchronous = OFF",
            f"cache_size = -{self._CACHE_KIB}",
        ):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE rows (key TEXT NOT NULL, sheet INTEGER, cells BLOB)")
        self._indexed = False

    def insert(self, rows: Iterable[tuple[str, int, bytes]]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO rows VALUES (?, ?, ?)", rows)

    def lookup(self, keys: Sequence[str]) -> dict[str, list[tuple[int, bytes]]]:
        """key -> [(sheet, packed row)] in sheet order, for the keys that have rows."""
        if not self._indexed:  # built once after every sheet is in: a sort, not N inserts
            self._db.execute("CREATE INDEX rows_by_key ON rows (key, sheet)")
            self._indexed = True
        found: dict[str, list[tuple[int, bytes]]] = {}
        wanted = f"key IN ({','.join('?' * len(keys))})"
        query = f"SELECT key, sheet, cells FROM rows WHERE {wanted} ORDER BY key, sheet, rowid"
        for key, sheet, cells in self._db.execute(query, keys):
            found.setdefault(key, []).append((sheet, cells))
        return found

    def close(self) -> None:
        if self._path is not None:
            self._db.close()
            self._path.unlink(missing_ok=True)
            self._path = None

    def __del__(self) -> None:
        self.close()


class _Companion:
    """A companion sheet joined by key: its headers, and its rows' aggregate per key."""

    def __init__(
        self, sheet: str, number: int, headers: list[str], key_index: int, primary_key_index: int
    ) -> None:
        self.sheet = sheet
        self.number = number  # its rows' tag in the store
        self.key_index = key_index
        self.primary_key_index = primary_key_index
        self.columns = [i for i in range(len(headers)) if i != key_index]
        self.headers = [f"{sheet}.{headers[i]}" for i in self.columns] + [f"{sheet}.#rows"]

    def packed(self, cells: Sequence[object]) -> tuple[str, bytes] | None:
        """(key, packed cells) of a companion row; None for a row that names no VM."""
        key = _key(cells[self.key_index] if self.key_index < len(cells) else None)
        if not key:
            return None  # a row that names no VM cannot be joined to one
        width = len(cells)
        values = tuple(_packed(cells[i]) if i < width else None for i in self.columns)
        return key, marshal.dumps(values)

    def values_for(self, rows: Sequence[bytes]) -> list[str]:
        """The joined cells of one key from its packed rows, in sheet order."""
        if not rows:
            return [""] * len(self.columns) + ["0"]
        if len(rows) == 1:
            return [*map(_single_text, marshal.loads(rows[0])), "1"]
        aggregates = [_Aggregate() for _ in self.columns]
        for row in rows:
            for aggregate, value in zip(aggregates, marshal.loads(row), strict=True):
                if value is not None:
                    aggregate.add(value)
        return [*(aggregate.text() for aggregate in aggregates), str(len(rows))]


def _key(value: object) -> str:
    return _fold(cell_text(value))


def _join_columns(
    join_keys: Sequence[str], primary: Sequence[str], companion: Sequence[str]
) -> tuple[int, int] | None:
    """(primary index, companion index) of the first join key both sheets have."""
    primary_at = {_fold(name): i for i, name in reversed(list(enumerate(primary)))}
    companion_at = {_fold(name): i for i, name in reversed(list(enumerate(companion)))}
    for name in join_keys:
        folded = _fold(name)
        if folded in primary_at and folded in companion_at:
            return primary_at[folded], companion_at[folded]
    return None


# --- the row reader ---------------------------------------------------------------------------


class XlsxRowReader:
    """The RowReader behind an XLSX TableSource: primary rows plus joined companion cells."""

    def __init__(self, path: Path, primary: SheetRef, max_field_size: int) -> None:
        self.path = path
        self.max_field_size = max_field_size
        self._primary = _SheetSource(path, primary)
        self.own_headers: list[str] = []
        self.headers: list[str] = []
        self.companions: list[_Companion] = []
        self._store: _CompanionStore | None = None
        self._closed = False

    def read_header(self) -> None:
        """Header = first non-empty row; a non-blank data row must follow (else FILE_NO_ROWS)."""
        name = self._primary.sheet.name
        rows = _numbered(self._primary.raw_rows())
        try:
            first = next(rows, None)
            if first is None:
                raise ImportFailure(FILE_NO_ROWS, f"The sheet {name} is empty.")
            self.own_headers = normalize_headers([cell_text(value) for value in first[1]])
            if not any(cells for _, cells in rows):
                raise ImportFailure(
                    FILE_NO_ROWS, f"The sheet {name} has a header row but no data rows below it."
                )
        finally:
            rows.close()
        self.headers = list(self.own_headers)

    @property
    def engine(self) -> str:
        return self._primary.engine

    def join_all(self, sheets: Sequence[SheetRef], join_keys: Sequence[str]) -> list[str]:
        """Join the companion sheets in order; the names of those not joined (empty, or no
        shared key). Each sheet's child starts once the previous one has finished, so it reads
        while this process stores the previous sheet's rows, and only one child runs at a time.
        """
        unjoined: list[str] = []
        upcoming = _SheetSource(self.path, sheets[0]) if sheets else None
        try:
            for position, sheet in enumerate(sheets):
                assert upcoming is not None
                source, upcoming = upcoming, None
                try:
                    source.ready()
                    if position + 1 < len(sheets):
                        upcoming = _SheetSource(self.path, sheets[position + 1])
                    if not self._join(source, join_keys):
                        unjoined.append(sheet.name)
                finally:
                    source.release()
        finally:
            if upcoming is not None:
                upcoming.release()
        return unjoined

    def _join(self, source: _SheetSource, join_keys: Sequence[str]) -> bool:
        """Store a companion sheet's rows by key; False when it is empty or shares no key."""
        sheet = source.sheet
        rows = _numbered(source.raw_rows())
        try:
            header = next(rows, None)
            if header is None:
                return False
            headers = normalize_headers([cell_text(value) for value in header[1]])
            columns = _join_columns(join_keys, self.own_headers, headers)
            if columns is None:
                return False
            companion = _Companion(
                sheet.name,
                len(self.companions),
                headers,
                key_index=columns[1],
                primary_key_index=columns[0],
            )
            if self._store is None:
                self._store = _CompanionStore()
            store, number = self._store, companion.number
            batch: list[tuple[str, int, bytes]] = []
            for _, cells in rows:
                packed = companion.packed(cells)
                if packed is not None:
                    batch.append((packed[0], number, packed[1]))
                    if len(batch) >= _STORE_BATCH:
                        store.insert(batch)
                        batch = []
            store.insert(batch)
        finally:
            rows.close()
        self.companions.append(companion)
        self.headers.extend(companion.headers)
        return True

    def iter_rows(self, start_after: int) -> Iterator[SourceRow]:
        batch: list[tuple[int, list[object]]] = []
        for index, cells in _numbered(self._primary.raw_rows()):
            if self._closed:
                raise ValueError("I/O operation on a closed table")
            if index > start_after:  # index 0 is the header, always skipped
                batch.append((index, cells))
                if len(batch) >= _LOOKUP_BATCH:
                    yield from self._build_rows(batch)
                    batch = []
        yield from self._build_rows(batch)

    def close(self) -> None:
        self._closed = True
        self._primary.release()
        if self._store is not None:
            self._store.close()
            self._store = None

    def _build_rows(self, batch: list[tuple[int, list[object]]]) -> Iterator[SourceRow]:
        """The batch's rows, its companion rows fetched in one query (not one per row)."""
        positions = sorted({companion.primary_key_index for companion in self.companions})
        keyed = [
            (index, cells, {at: _key(cells[at] if at < len(cells) else None) for at in positions})
            for index, cells in batch
        ]
        found: dict[str, list[tuple[int, bytes]]] = {}
        if positions and self._store is not None:
            wanted = {key for _, _, keys in keyed for key in keys.values() if key}
            found = self._store.lookup(sorted(wanted)) if wanted else {}
        for index, cells, keys in keyed:
            if self._closed:
                raise ValueError("I/O operation on a closed table")
            yield self._build_row(index, cells, keys, found)

    def _build_row(
        self,
        index: int,
        cells: Sequence[object],
        keys: dict[int, str],
        found: dict[str, list[tuple[int, bytes]]],
    ) -> SourceRow:
        texts = [cell_text(value) for value in cells]
        if max(map(len, texts), default=0) > self.max_field_size:
            raise ImportFailure(
                FILE_FIELD_TOO_LARGE,
                f"Sheet {self._primary.sheet.name}, data row {index}: a cell is longer than "
                f"{self.max_field_size:,} characters.",
            )
        width = len(self.own_headers)
        # An empty spreadsheet cell is empty, not missing: pad to the header width.
        own = texts[:width] + [""] * (width - len(texts))
        joined: list[str] = []
        blank = not any(text.strip() for text in own)
        for companion in self.companions:
            if blank:
                joined.extend([""] * len(companion.headers))
                continue
            rows = found.get(keys[companion.primary_key_index], ())
            number = companion.number
            joined.extend(companion.values_for([row for sheet, row in rows if sheet == number]))
        return make_row(index, self.headers, own + joined + texts[width:])


def _invalid(reason: str) -> ImportFailure:
    return ImportFailure(
        FILE_INVALID_XLSX,
        f"The file is not a readable XLSX workbook: {reason}. Open it in Excel, save it again "
        "as .xlsx and upload it again.",
    )


def _too_large(reason: str) -> ImportFailure:
    return ImportFailure(
        FILE_TOO_LARGE_UNCOMPRESSED,
        f"The workbook is refused because {reason}. Split it, or export the sheets you need "
        "as CSV.",
    )


def _mib(size: int) -> str:
    return f"{size / _MIB:,.1f} MiB"
