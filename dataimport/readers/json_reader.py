"""JSON reader: an array of objects, a wrapper object around one, or NDJSON, streamed.

Layouts, decided at open from the text (never from the file name):
- "array": `[{...}, {...}]`;
- "wrapper": one top-level object whose records are the array under a known key (data, items,
  records, results, rows, value) or, failing that, its only array of objects;
- "ndjson": objects one after another, usually one per line (blank lines skipped).

Streaming. A small tokenizer walks the outer structure and hands each record to
`json.JSONDecoder.raw_decode` on a sliding window of the text, so memory is bounded by the
largest record (at most RECORD_LIMIT_FIELDS x max_field_size characters), never by the file.
A top-level object is scanned member by member at open to tell a wrapper from NDJSON and to
find its records: for a wrapper that costs one extra pass over the file, in constant memory.

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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from dataimport.issues import (
    FILE_FIELD_TOO_LARGE,
    FILE_INVALID_JSON,
    FILE_JSON_STRUCTURE,
    FILE_NESTING_TOO_DEEP,
    FILE_NO_ROWS,
    TOO_MANY_KEYS,
    ImportFailure,
)
from dataimport.readers import (
    SourceRow,
    TableSource,
    flag_replaced_bytes,
    is_storable,
    make_row,
    number_text,
    storable,
)
from dataimport.readers.detect import detect_encoding
from dataimport.readers.limits import MAX_JSON_KEYS, check_columns

HEADER_SAMPLE = 1000
RECORD_LIMIT_FIELDS = 16  # a record may be as long as this many maximal fields
WRAPPER_KEYS = ("data", "items", "records", "results", "rows", "value")
_CHUNK = 64 * 1024
_NON_BLANK = re.compile(r"[^ \t\n\r]")
# A decode error this far before the end of the window is in the text itself, not caused by
# a record cut off at the window's edge (those fail at the edge, or as an unterminated string).
_EDGE = 64
_JOIN_SEPARATOR = "; "
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the records are: kind "array", "wrapper" (under key) or "ndjson"."""

    kind: str
    key: str = ""


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


# --- the tokenizer ----------------------------------------------------------------------------


class _Text:
    """A sliding window over a text stream: JSON values one at a time, with line/column."""

    def __init__(self, stream: TextIO, record_limit: int) -> None:
        self._stream = stream
        self._limit = record_limit
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._lines = 0  # newlines in the text already dropped from the window
        self._column = 0  # characters after the last dropped newline

    def peek(self) -> str | None:
        """The next non-blank character (blanks are consumed), or None at the end."""
        while True:
            match = _NON_BLANK.search(self.buf, self.pos)
            if match is not None:
                self.pos = match.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self._fill(_CHUNK):
                return None

    def expect(self, allowed: str, what: str) -> str:
        """Consume one structural character among `allowed`, or fail naming `what`."""
        char = self.peek()
        if char is None or char not in allowed:
            found = "the end of the file" if char is None else repr(char)
            raise self.error(f"expected {what} but found {found}", self.pos)
        self.pos += 1
        return char

    def value(self) -> object:
        """Decode the next JSON value, reading more text until it is complete."""
        if self.peek() is None:  # raw_decode does not skip leading blanks itself
            raise self.error("the file ends where a value should follow", self.pos)
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                genuine = exc.pos < len(self.buf) - _EDGE and not exc.msg.startswith(
                    "Unterminated string"
                )
                if self.eof or genuine:
                    raise self.error(exc.msg, exc.pos) from None
                self._grow()
                continue
            except RecursionError:  # the C decoder's own guard, thousands of levels down
                raise ImportFailure(
                    FILE_NESTING_TOO_DEEP,
                    f"The JSON value at {self.where(self.pos)} nests too deeply to be read.",
                ) from None
            except ValueError as exc:  # e.g. an integer longer than Python converts
                raise self.error(str(exc), self.pos) from None
            # A number at the window's edge may go on in the text not read yet.
            if end == len(self.buf) and isinstance(value, int | float) and self._grow():
                continue
            self.pos = end
            return value

    def error(self, message: str, pos: int) -> ImportFailure:
        return ImportFailure(FILE_INVALID_JSON, f"Malformed JSON at {self.where(pos)}: {message}.")

    def where(self, pos: int) -> str:
        """ "line L, column C" (1-based) of a window position."""
        line = self._lines + self.buf.count("\n", 0, pos) + 1
        newline = self.buf.rfind("\n", 0, pos)
        column = pos - newline if newline >= 0 else self._column + pos + 1
        return f"line {line}, column {column}"

    def _grow(self) -> bool:
        """Read more for a value that does not fit the window yet (doubling: linear cost)."""
        if len(self.buf) - self.pos > self._limit:
            raise ImportFailure(
                FILE_FIELD_TOO_LARGE,
                f"The JSON value at {self.where(self.pos)} is longer than {self._limit:,} "
                "characters.",
            )
        return self._fill(max(_CHUNK, len(self.buf) - self.pos))

    def _fill(self, size: int) -> bool:
        if self.eof:
            return False
        self._drop_consumed()
        chunk = self._stream.read(size)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _drop_consumed(self) -> None:
        if not self.pos:
            return
        dropped = self.buf[: self.pos]
        newlines = dropped.count("\n")
        if newlines:
            self._lines += newlines
            self._column = len(dropped) - dropped.rfind("\n") - 1
        else:
            self._column += len(dropped)
        self.buf = self.buf[self.pos :]
        self.pos = 0


# --- layouts ----------------------------------------------------------------------------------


def detect_layout(text: _Text) -> Layout:
    """Read far enough to know where the records are (a wrapper: the whole file, streamed)."""
    first = text.peek()
    if first == "[":
        return Layout("array")
    if first != "{":
        raise _structure("The file does not start with a JSON array or object")
    lists = _scan_object(text)
    if text.peek() is not None:
        return Layout("ndjson")  # more values follow: the first object was a record
    return _resolve_wrapper(lists)


def _scan_object(text: _Text) -> list[tuple[str, str]]:
    """Walk one object member by member; (key, kind) of its array members, kind being
    "objects", "empty" or "other". Arrays are walked element by element, never held."""
    text.expect("{", "'{'")
    lists: list[tuple[str, str]] = []
    if text.peek() == "}":
        text.pos += 1
        return lists
    members = 0
    while True:
        members += 1
        if members > MAX_JSON_KEYS:
            raise TOO_MANY_KEYS.failure(where="The top-level JSON object", cap=MAX_JSON_KEYS)
        key = _member_key(text)
        if text.peek() == "[":
            lists.append((key, _walk_array(text)))
        else:
            text.value()
        if text.expect(",}", "',' or '}'") == "}":
            return lists


def _member_key(text: _Text) -> str:
    if text.peek() != '"':
        raise text.error("expected a quoted property name", text.pos)
    key = text.value()
    text.expect(":", "':'")
    return str(key)


def _walk_array(text: _Text) -> str:
    kind = "empty"
    for element in _elements(text):
        if not isinstance(element, dict):
            kind = "other"
        elif kind == "empty":
            kind = "objects"
    return kind


def _elements(text: _Text) -> Iterator[object]:
    """The values of the array starting at the window position, one at a time."""
    text.expect("[", "'['")
    if text.peek() == "]":
        text.pos += 1
        return
    while True:
        yield text.value()
        if text.expect(",]", "',' or ']'") == "]":
            return


def _resolve_wrapper(lists: list[tuple[str, str]]) -> Layout:
    """A lone top-level object: a wrapper around records, or itself the one record."""
    for key, kind in lists:
        if key.strip().casefold() in WRAPPER_KEYS:
            if kind == "other":
                raise _structure(f'The array under "{key}" must hold objects (one per row)')
            return Layout("wrapper", key)
    with_objects = [key for key, kind in lists if kind == "objects"]
    if len(with_objects) > 1:
        listed = ", ".join(f'"{key}"' for key in with_objects[:5])
        raise _structure(
            f"The object holds several arrays of objects ({listed}) and none under a known key "
            f"({', '.join(WRAPPER_KEYS)}); it is unclear which one holds the rows"
        )
    if with_objects:
        return Layout("wrapper", with_objects[0])
    if len(lists) == 1 and lists[0][1] == "empty":
        return Layout("wrapper", lists[0][0])  # a wrapper around no records: no rows
    return Layout("ndjson")  # a single record


def records(text: _Text, layout: Layout) -> Iterator[object]:
    """The records of the file, one at a time, for the given layout."""
    if layout.kind == "array":
        yield from _elements(text)
        if text.peek() is not None:
            raise text.error("unexpected data after the top-level array", text.pos)
    elif layout.kind == "ndjson":
        while text.peek() is not None:
            yield text.value()
    else:
        yield from _wrapped(text, layout.key)


def _wrapped(text: _Text, records_key: str) -> Iterator[object]:
    text.expect("{", "'{'")
    while text.peek() != "}":
        key = _member_key(text)
        if key == records_key and text.peek() == "[":
            yield from _elements(text)
            return  # detect_layout already checked the rest of the file
        if text.peek() == "[":
            _walk_array(text)  # element by element, so a big sibling array is never held
        else:
            text.value()
        text.expect(",}", "',' or '}'")


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
        self._open_streams: set[TextIO] = set()
        self._closed = False

    def read_header(self) -> None:
        """Find the layout and take the headers from the first HEADER_SAMPLE records."""
        with self._open() as stream:
            self.layout = detect_layout(self._text(stream))
        with self._open() as stream:
            seen: dict[str, None] = {}
            count = 0
            for count, record in enumerate(records(self._text(stream), self.layout), 1):
                seen.update(dict.fromkeys(self._flat(count, record)))
                # Every row carries the sampled columns: their union is a row's width.
                check_columns(len(seen), f"The first {count:,} JSON records together")
                if count == HEADER_SAMPLE:
                    break
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
        with self._open() as stream:
            self._open_streams.add(stream)
            try:
                for index, record in enumerate(records(self._text(stream), self.layout), 1):
                    if self._closed:
                        raise ValueError("I/O operation on a closed table")
                    # Skipped rows are still flattened: same failures, and their late keys
                    # still reach the headers, as in a full pass.
                    flat = self._flat(index, record)
                    if index > start_after:
                        yield self._build_row(index, flat)
                    else:
                        self._note_late_keys([k for k in flat if k not in self._known])
            finally:
                self._open_streams.discard(stream)

    def close(self) -> None:
        self._closed = True
        for stream in list(self._open_streams):
            stream.close()

    def _open(self) -> TextIO:
        return self.path.open(encoding=self.encoding, errors="replace", newline="")

    def _text(self, stream: TextIO) -> _Text:
        return _Text(stream, self.max_field_size * RECORD_LIMIT_FIELDS)

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
