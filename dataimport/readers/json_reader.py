"""JSON reader: an array of objects, a wrapper object around one, or NDJSON, streamed.

Layouts, decided at open from the text (never from the file name):
- "array": `[{...}, {...}]`;
- "wrapper": one top-level object whose records are the array under a known key (data, items,
  records, results, rows, value) or, failing that, its only array of objects;
- "ndjson": objects one after another, usually one per line (blank lines skipped).

Streaming. ijson parses the text (its C backend, yajl2_c, when installed; ijson's own choice of
backend otherwise) and hands over one record at a time, so memory is bounded by the largest
record, never by the file: a record longer than RECORD_LIMIT_FIELDS x max_field_size
characters is refused while it is being read. A top-level object is walked event by event at
open to tell a wrapper from NDJSON and to find its records: for a wrapper that costs one extra
pass over the file, in constant memory.

Where yajl differs from JSON as Python reads it, the text or the parse is adjusted: a lone
UTF-16 surrogate escape (yajl would turn it into "?") is rewritten to a private noncharacter
and turned back into a lone surrogate in the record, so it becomes a flagged U+FFFD cell as
before; an integer too large for yajl makes the pass go on with ijson's Python backend.

Malformed JSON names its line and column. ijson reports no position, so on a parse error the
file is parsed again up to the failing chunk, and that chunk one character at a time: the
character the parser refuses is the position (the error path only; it costs one more pass).

Records are flattened: nested objects to dotted keys ("host.name"), arrays of scalars to
"; "-joined text, other arrays to compact JSON text; null is "", true/false stay as written.
Nesting deeper than max_depth (the record itself is level 1) is FILE_NESTING_TOO_DEEP.

Headers are the union of the keys of the first HEADER_SAMPLE records, in first-seen order.
Rather than a second full pass, a key first seen later stays in its row's cells under its own
name (a JSON key has a name; a positional _extra_N would lose it) and is appended to
TableSource.headers when a pass meets it, so headers read after a full pass (as ingest does)
name every column. A row depends only on the sampled headers and its own record, so a resumed
pass yields exactly the rows a full pass would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import ijson

from dataimport.error_codes import ImportFailure, Level, register
from dataimport.readers import (
    FILE_NO_ROWS,
    SourceRow,
    TableSource,
    flag_replaced_bytes,
    is_storable,
    make_row,
    number_text,
    storable,
)
from dataimport.readers.detect import detect_encoding
from dataimport.readers.limits import FILE_FIELD_TOO_LARGE, MAX_JSON_KEYS, check_columns

FILE_INVALID_JSON = register(
    "invalid-json",
    Level.FILE,
    "Malformed JSON",
    "The JSON text does not parse; the message gives the line and column where it stops.",
    "Malformed JSON at {where}: {reason}.",
).code
FILE_JSON_STRUCTURE = register(
    "invalid-json-structure",
    Level.FILE,
    "JSON is not a table",
    "The JSON is valid but not a table of objects: an array of objects, an object wrapping one, "
    "or one object per line (NDJSON).",
    "{reason}. Expected an array of objects, an object wrapping one (e.g. "
    '{{"data": [...]}}), or one object per line (NDJSON).',
).code
FILE_NESTING_TOO_DEEP = register(
    "nesting-too-deep",
    Level.FILE,
    "JSON nested too deep",
    "Objects or arrays nest deeper than the reader's limit.",
    "Record {index} nests objects or arrays more than {depth} levels deep; flatten the export "
    "and upload it again.",
).code
TOO_MANY_KEYS = register(
    "too-many-keys",
    Level.FILE,
    "Too many JSON keys",
    "The records have more distinct keys (after flattening nested objects) than a JSON file "
    "may have.",
    "{where} has more than {cap:,} distinct keys (after flattening nested objects), the limit "
    "for a JSON file. Export only the fields you need and upload it again.",
)

HEADER_SAMPLE = 1000
RECORD_LIMIT_FIELDS = 16  # a record may be as long as this many maximal fields
WRAPPER_KEYS = ("data", "items", "records", "results", "rows", "value")
_CHUNK = 64 * 1024
_BLANKS = " \t\n\r"
_JOIN_SEPARATOR = "; "


def _backend(name: str) -> ModuleType | None:
    try:
        return ijson.get_backend(name)
    except ImportError:
        return None


# ijson itself picks its fastest backend at import (yajl2_c, else cffi, else pure Python).
FAST_BACKEND: ModuleType = _backend("yajl2_c") or ijson
PYTHON_BACKEND: ModuleType = _backend("python") or ijson

# A lone surrogate escape (a high one without its low one, or a low one alone), after a run of
# backslashes: an odd run makes it an escape, an even run is escaped backslashes and text.
_SURROGATE_ESCAPE = re.compile(
    r"(\\+)u(d[89ab][0-9a-f]{2})(\\ud[c-f][0-9a-f]{2})?|(\\+)u(d[c-f][0-9a-f]{2})",
    re.IGNORECASE,
)
_SURROGATE_STANDIN = "\ufdd0"  # a noncharacter, "for internal use" by Unicode's own words
_STANDIN_ESCAPE = "\\ufdd0"  # as long as the escape it replaces: positions stay true
_LONE_SURROGATE = "\ud800"
_CARRY = 12  # enough for an escape pair cut at a chunk's edge
# Nesting is followed in the text itself, before the parser sees it: ijson builds a dotted
# prefix per level, so a value nested 200,000 deep would cost it gigabytes (measured: 23 GB).
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_STRING_REST = re.compile(r'(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_DEPTH_CHANGE = {"[": 1, "{": 1, "]": -1, "}": -1}
_OUTER_LEVELS = 2  # a wrapper object and its array hold the records


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the records are: kind "array", "wrapper" (under key) or "ndjson"."""

    kind: str
    key: str = ""
    start: int = 0  # for a wrapper: about where its records begin (characters)


def open_json(
    path: Path, head: bytes, complete: bool, *, max_field_size: int, max_depth: int
) -> TableSource:
    """Open a JSON file whose first bytes are `head` (`complete`: head is the whole file)."""
    encoding = detect_encoding(head, complete)
    reader = JsonRowReader(path, encoding, max_field_size, max_depth)
    reader.read_header()
    details = {"layout": reader.layout.kind}
    if reader.layout.key:
        details["records_key"] = reader.layout.key
    return TableSource("json", encoding, "", reader.headers, reader, details)


class _NestingTooDeep(Exception):
    """A record nests deeper than the limit (translated with the row number by the caller)."""


# --- the text, as ijson reads it --------------------------------------------------------------


class _Feed:
    """A text stream as the UTF-8 bytes ijson reads, counting what it handed over.

    `mark` is where the record being read began (about: records are seen a chunk at a time);
    when more than `limit` characters follow it, the record is refused before it is held.
    """

    def __init__(self, stream: TextIO, limit: int | None, max_depth: int) -> None:
        self._stream = stream
        self._limit = limit
        self._max_depth = max_depth + _OUTER_LEVELS
        self._depth = 0
        self._in_string = False
        self._escaped = False  # the last text ended inside a string, on a lone backslash
        self._carry = ""
        self.chars = 0  # characters handed over
        self.lines = 0  # newlines handed over
        self.chunks = 0  # read calls that returned text
        self.mark = 0
        self.mark_line = 0
        self.standins = False  # a lone surrogate escape was rewritten

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson's probe for bytes or text
            return b""
        return self.next_text().encode("utf-8", "replace")

    def next_text(self) -> str:
        """The next piece of text ("" at the end), lone surrogate escapes rewritten."""
        if self._limit is not None and self.chars - self.mark > self._limit + _CHUNK:
            raise ImportFailure(
                FILE_FIELD_TOO_LARGE,
                f"The JSON record starting near line {self.mark_line + 1:,} is longer than "
                f"{self._limit:,} characters.",
            )
        text = self._carry + self._stream.read(_CHUNK)
        self._carry = ""
        if "\\" in text:
            cut = max(len(text) - _CARRY, 0)
            if len(text) >= _CHUNK:  # more may follow: keep a possibly cut escape for later
                floor = max(cut - 1024, 0)  # runs of backslashes longer than that: no escape
                while cut > floor and text[cut - 1] == "\\":
                    cut -= 1
                text, self._carry = text[:cut], text[cut:]
            if "\\u" in text or "\\U" in text:
                text = _SURROGATE_ESCAPE.sub(self._standin, text)
        if text:
            self._follow_depth(text)
            self.chunks += 1
            self.chars += len(text)
            self.lines += text.count("\n")
        return text

    def _follow_depth(self, text: str) -> None:
        """Refuse nesting beyond the limit (plus the outer levels) from brackets outside
        strings. Strings are skipped by splitting at quotes, or by regular expressions where
        backslashes are (an escaped quote), so this runs at C speed."""
        if not self._escaped and "\\" not in text:  # no escaped quote: quotes alternate
            parts = text.split('"')
            outside = "".join(parts[1 if self._in_string else 0 :: 2])
            self._in_string ^= len(parts) % 2 == 0
            self._check_brackets(outside)
            return
        if self._in_string:
            rest = _STRING_REST.match(text, 1 if self._escaped else 0)
            if rest is None:  # the whole text is inside the string
                self._escaped = _odd_backslashes(text[1:] if self._escaped else text)
                return
            text = text[rest.end() :]
            self._in_string = self._escaped = False
        outside = _STRING.sub("", text)
        opened = outside.find('"')  # a string that goes on in the next text
        if opened >= 0:
            tail = outside[opened + 1 :]
            self._in_string, self._escaped = True, _odd_backslashes(tail)
            outside = outside[:opened]
        self._check_brackets(outside)

    def _check_brackets(self, outside: str) -> None:
        brackets = _BRACKETS.findall(outside)
        if not brackets:
            return
        levels = list(accumulate(map(_DEPTH_CHANGE.__getitem__, brackets), initial=self._depth))
        if max(levels) > self._max_depth:
            raise ImportFailure(
                FILE_NESTING_TOO_DEEP,
                f"The JSON nests objects or arrays more than {self._max_depth - _OUTER_LEVELS} "
                f"levels deep (near line {self.lines + outside.count(chr(10)) + 1:,}); flatten "
                "the export and upload it again.",
            )
        self._depth = levels[-1]

    def record_read(self) -> None:
        self.mark = self.chars
        self.mark_line = self.lines

    def _standin(self, match: re.Match[str]) -> str:
        if match.group(4) is not None:  # a low surrogate alone
            run = match.group(4)
            if len(run) % 2 == 0:
                return match.group()
            self.standins = True
            return run[:-1] + _STANDIN_ESCAPE
        run, high, low = match.group(1), match.group(2), match.group(3)
        if len(run) % 2 == 0:  # text, not an escape; what follows may still be one
            if low is None:
                return match.group()
            self.standins = True
            return f"{run}u{high}{_STANDIN_ESCAPE}"
        if low is not None:
            return match.group()  # a proper pair
        self.standins = True
        return run[:-1] + _STANDIN_ESCAPE


def _odd_backslashes(text: str) -> bool:
    return (len(text) - len(text.rstrip("\\"))) % 2 == 1


def _restore(value: str) -> str:
    return value.replace(_SURROGATE_STANDIN, _LONE_SURROGATE)


class _Document:
    """One JSON file: its layout, its records, and the position of a syntax error."""

    def __init__(self, path: Path, encoding: str, record_limit: int, max_depth: int) -> None:
        self.path = path
        self.encoding = encoding
        self.record_limit = record_limit
        self.max_depth = max_depth
        self.backend = FAST_BACKEND
        self.standins = False  # some pass met a lone surrogate escape
        self.streams: set[TextIO] = set()

    def open(self) -> TextIO:
        return self.path.open(encoding=self.encoding, errors="replace", newline="")

    # layouts

    def detect_layout(self) -> Layout:
        """Read far enough to know where the records are (a wrapper: the whole file, streamed)."""
        with self.open() as stream:
            feed = _Feed(stream, None, self.max_depth)
            first = _first_char(stream)
            if first == "[":
                return Layout("array")
            if first != "{":
                raise _structure("The file does not start with a JSON array or object")
            stream.seek(0)
            try:
                return self._walk_top_object(feed)
            except ijson.JSONError as exc:
                if self.backend is not PYTHON_BACKEND and _overflow(exc):
                    self.backend = PYTHON_BACKEND
                    return self.detect_layout()
                raise self._malformed(exc, feed, multiple_values=True) from None

    def _walk_top_object(self, feed: _Feed) -> Layout:
        """Walk one top-level object event by event: its members, and for each array member
        whether it holds objects; then whether more values follow (NDJSON)."""
        lists: list[tuple[str, str, int]] = []
        keys: dict[str, int] = {}
        containers: set[str] = set()
        depth = members = 0
        key = ""
        complete = False
        current: list[Any] | None = None  # [key, kind, start] of the array being walked
        events = self.backend.basic_parse(feed, multiple_values=True, use_float=True)
        for event, value in events:
            if complete:
                return Layout("ndjson")  # more values follow: the first object was a record
            if event == "map_key" and depth == 1:
                members += 1
                if members > MAX_JSON_KEYS:
                    raise TOO_MANY_KEYS.failure(
                        where="The top-level JSON object", cap=MAX_JSON_KEYS
                    )
                key = value
                keys[key] = keys.get(key, 0) + 1
            elif event in ("start_map", "start_array"):
                if depth == 1:
                    containers.add(key)
                    if event == "start_array":
                        current = [key, "empty", feed.chars]
                elif depth == 2 and current is not None:
                    if event == "start_array":
                        current[1] = "other"
                    elif current[1] == "empty":
                        current[1] = "objects"
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
                if depth == 1 and current is not None:
                    lists.append((current[0], current[1], current[2]))
                    current = None
                complete = depth == 0
            elif depth == 2 and current is not None:
                current[1] = "other"  # a scalar element
        layout = _resolve_wrapper(lists)
        if layout.kind == "wrapper":
            _check_unambiguous(layout.key, keys, containers)
        return layout

    # records

    def records(self, layout: Layout) -> Generator[object, None, None]:
        """The records of the file, one at a time, for the given layout."""
        done = 0
        try:
            for record in self._records(layout, self.backend):
                done += 1
                yield record
        except _Overflow:
            self.backend = PYTHON_BACKEND  # and for every later pass
            for count, record in enumerate(self._records(layout, self.backend), 1):
                if count > done:
                    yield record

    def _records(self, layout: Layout, backend: ModuleType) -> Iterator[object]:
        multiple = layout.kind == "ndjson"
        prefix = {"array": "item", "ndjson": ""}.get(layout.kind, f"{layout.key}.item")
        with self.open() as stream:
            self.streams.add(stream)
            feed = _Feed(stream, self.record_limit, self.max_depth)
            feed.mark = max(layout.start - _CHUNK, 0)
            try:
                items = backend.items(feed, prefix, multiple_values=multiple, use_float=True)
                for record in items:
                    feed.record_read()
                    if feed.standins:
                        self.standins = True
                    yield record
            except ijson.JSONError as exc:
                if backend is not PYTHON_BACKEND and _overflow(exc):
                    raise _Overflow from None
                raise self._malformed(exc, feed, multiple_values=multiple) from None
            finally:
                self.streams.discard(stream)

    # errors

    def _malformed(self, exc: Exception, failed: _Feed, *, multiple_values: bool) -> ImportFailure:
        """FILE_INVALID_JSON at the line and column where the parser refuses the text."""
        reason = _reason(exc)
        where = self._locate(failed.chunks, multiple_values)
        if where is None:
            where = f"character {failed.chars:,} or before"
        return ImportFailure(FILE_INVALID_JSON, f"Malformed JSON at {where}: {reason}.")

    def _locate(self, failed_chunk: int, multiple_values: bool) -> str | None:
        """Parse again: whole chunks before the failing one, then one character at a time."""
        sink: list[object] = []
        parser = self.backend.basic_parse_coro(
            ijson.sendable_list(), multiple_values=multiple_values
        )
        line, column = 1, 0
        with self.open() as stream:
            feed = _Feed(stream, None, self.max_depth)
            try:
                while text := feed.next_text():
                    if feed.chunks < failed_chunk:
                        parser.send(text.encode("utf-8", "replace"))
                        newline = text.rfind("\n")
                        line += text.count("\n")
                        column = len(text) - newline - 1 if newline >= 0 else column + len(text)
                        continue
                    for char in text:
                        if char == "\n":
                            line, column = line + 1, 0
                        else:
                            column += 1
                        parser.send(char.encode("utf-8", "replace"))
                parser.close()
            except ijson.JSONError:
                return f"line {line}, column {max(column, 1)}"
            finally:
                sink.clear()
        return None


class _Overflow(Exception):
    """A number too large for the C backend: read again with the Python one."""


def _overflow(exc: Exception) -> bool:
    return "overflow" in str(exc)


def _reason(exc: Exception) -> str:
    """The parser's own words, first line only, without its "parse error:" prefix."""
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    reason = str(text).strip().splitlines()[0] if str(text).strip() else "invalid JSON"
    reason = re.sub(r"^(parse|lexical) error: ", "", reason).rstrip(".")
    return {
        "premature EOF": "the file ends before the JSON is complete",
        "trailing garbage": "unexpected data after the top-level value",
    }.get(reason, reason)


def _first_char(stream: TextIO) -> str | None:
    while chunk := stream.read(_CHUNK):
        text = chunk.lstrip(_BLANKS)
        if text:
            return text[0]
    return None


def _check_unambiguous(key: str, keys: dict[str, int], containers: set[str]) -> None:
    """ijson finds the records by a dotted path: it must name that one array only."""
    if keys.get(key, 0) > 1:
        raise _structure(f'The object holds the key "{key}" more than once')
    for other in containers:
        if other != key and key.startswith(other + "."):
            raise _structure(f'The records key "{key}" reads like a path into the member "{other}"')


def _resolve_wrapper(lists: list[tuple[str, str, int]]) -> Layout:
    """A lone top-level object: a wrapper around records, or itself the one record."""
    for key, kind, start in lists:
        if key.strip().casefold() in WRAPPER_KEYS:
            if kind == "other":
                raise _structure(f'The array under "{key}" must hold objects (one per row)')
            return Layout("wrapper", key, start)
    with_objects = [(key, start) for key, kind, start in lists if kind == "objects"]
    if len(with_objects) > 1:
        listed = ", ".join(f'"{key}"' for key, _ in with_objects[:5])
        raise _structure(
            f"The object holds several arrays of objects ({listed}) and none under a known key "
            f"({', '.join(WRAPPER_KEYS)}); it is unclear which one holds the rows"
        )
    if with_objects:
        return Layout("wrapper", *with_objects[0])
    if len(lists) == 1 and lists[0][1] == "empty":
        return Layout("wrapper", lists[0][0], lists[0][2])  # a wrapper around no records
    return Layout("ndjson")  # a single record


# --- records to rows --------------------------------------------------------------------------


def flatten(record: dict[str, object], max_depth: int) -> dict[str, str]:
    """A record as dotted key -> text; raises _NestingTooDeep beyond max_depth levels."""
    flat: dict[str, str] = {}
    _flatten_into(flat, "", record, 1, max_depth)
    return flat


def _flatten_into(
    flat: dict[str, str], prefix: str, record: dict[str, object], depth: int, max_depth: int
) -> None:
    # Recursion is safe: the depth check comes first, so it never goes below max_depth levels.
    if depth > max_depth:
        raise _NestingTooDeep
    for key, value in record.items():
        name = prefix + key
        if type(value) is str:  # the common case first: this loop runs for every cell
            flat[name] = value
        elif isinstance(value, dict) and value:
            _flatten_into(flat, name + ".", value, depth + 1, max_depth)
        elif isinstance(value, list):
            flat[name] = _list_text(value, depth + 1, max_depth)
        else:
            flat[name] = _scalar_text(value)


def _list_text(items: list[object], depth: int, max_depth: int) -> str:
    if depth > max_depth:
        raise _NestingTooDeep
    if any(isinstance(item, dict | list) for item in items):
        _check_depth(items, depth, max_depth)
        return json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    return _JOIN_SEPARATOR.join(_scalar_text(item) for item in items if item is not None)


def _check_depth(items: list[object], depth: int, max_depth: int) -> None:
    """Depth of the containers inside an array kept as JSON text (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(items, depth)]
    while stack:
        value, level = stack.pop()
        if level > max_depth:
            raise _NestingTooDeep
        children: Iterable[object] = value.values() if isinstance(value, dict) else ()
        if isinstance(value, list):
            children = value
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))


def _scalar_text(value: object) -> str:
    if value is None or isinstance(value, dict):  # null, or an empty object
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    return str(value)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


# --- the row reader ---------------------------------------------------------------------------


class JsonRowReader:
    """The RowReader behind a JSON TableSource."""

    def __init__(self, path: Path, encoding: str, max_field_size: int, max_depth: int) -> None:
        self.path = path
        self.encoding = encoding
        self.max_field_size = max_field_size
        self.max_depth = max_depth
        self.layout = Layout("array")
        self.headers: list[str] = []  # shared with the TableSource: late keys are appended
        self._sampled = 0  # how many leading headers came from the sample (fixed per row)
        self._known: set[str] = set()
        self._document = _Document(path, encoding, max_field_size * RECORD_LIMIT_FIELDS, max_depth)
        self._closed = False

    def read_header(self) -> None:
        """Find the layout and take the headers from the first HEADER_SAMPLE records."""
        self.layout = self._document.detect_layout()
        seen: dict[str, None] = {}
        count = 0
        records = self._document.records(self.layout)
        try:
            for count, record in enumerate(records, 1):
                seen.update(dict.fromkeys(self._flat(count, record)))
                # Every row carries the sampled columns: their union is a row's width.
                check_columns(len(seen), f"The first {count:,} JSON records together")
                if count == HEADER_SAMPLE:
                    break
        finally:
            records.close()
        if not count:
            raise ImportFailure(FILE_NO_ROWS, "The JSON holds no records (an empty array).")
        if not seen:
            raise ImportFailure(
                FILE_NO_ROWS, f"The first {count:,} JSON records are empty objects."
            )
        self.headers.extend(seen)
        self._sampled = len(self.headers)
        self._known.update(seen)

    def iter_rows(self, start_after: int) -> Iterator[SourceRow]:
        for index, record in enumerate(self._document.records(self.layout), 1):
            if self._closed:
                raise ValueError("I/O operation on a closed table")
            # Skipped rows are still flattened: same failures, and their late keys still
            # reach the headers, as in a full pass.
            flat = self._flat(index, record)
            if index > start_after:
                yield self._build_row(index, flat)
            else:
                self._note_late_keys([k for k in flat if k not in self._known])

    def close(self) -> None:
        self._closed = True
        for stream in list(self._document.streams):
            stream.close()

    def _flat(self, index: int, record: object) -> dict[str, str]:
        if not isinstance(record, dict):
            raise _structure(
                f"Record {index} is {_kind(record)}, not an object; every record must be a "
                'JSON object such as {"name": "web01"}'
            )
        try:
            flat = flatten(record, self.max_depth)
        except _NestingTooDeep:
            raise ImportFailure(
                FILE_NESTING_TOO_DEEP,
                f"Record {index} nests objects or arrays more than {self.max_depth} levels deep; "
                "flatten the export and upload it again.",
            ) from None
        check_columns(len(flat), f"Record {index}")
        if self._document.standins:  # lone surrogate escapes, rewritten for the parser
            flat = {_restore(key): _restore(value) for key, value in flat.items()}
        if not is_storable("".join(flat)):  # a "\u0000" escape in a key: never storable
            flat = {storable(key): value for key, value in flat.items()}
        return flat

    def _build_row(self, index: int, flat: dict[str, str]) -> SourceRow:
        sampled = self.headers[: self._sampled]
        values = [flat.pop(name, "") for name in sampled]
        late = list(flat)  # keys the header sample did not see, in record order
        self._note_late_keys(late)
        values.extend(flat.values())
        if max(map(len, values), default=0) > self.max_field_size:
            raise ImportFailure(
                FILE_FIELD_TOO_LARGE,
                f"Record {index}: a value is longer than {self.max_field_size:,} characters.",
            )
        row = make_row(index, [*sampled, *late], values)
        return flag_replaced_bytes(row, self.encoding)

    def _note_late_keys(self, late: list[str]) -> None:
        for name in late:
            if name not in self._known:
                if len(self.headers) >= MAX_JSON_KEYS:
                    raise TOO_MANY_KEYS.failure(where="The JSON file", cap=MAX_JSON_KEYS)
                self._known.add(name)
                self.headers.append(name)


def _structure(reason: str) -> ImportFailure:
    return ImportFailure(
        FILE_JSON_STRUCTURE,
        f"{reason}. Expected an array of objects, an object wrapping one (e.g. "
        '{"data": [...]}), or one object per line (NDJSON).',
    )
