"""Streaming CSV reader: detected encoding and delimiter, quoted newlines, bounded memory.

The file is read through a text stream (TextIOWrapper over the binary file, newline="" so
quoted line breaks survive) line by line; nothing holds more than one row. Each pass over the
rows re-opens the file, so `rows(start_after=n)` can resume after a crash.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

from dataimport.contracts import MAX_FIELD_SIZE
from dataimport.error_codes import ImportFailure, Level, register
from dataimport.readers import (
    FILE_EMPTY,
    FILE_NO_ROWS,
    SourceRow,
    TableSource,
    flag_replaced_bytes,
    make_row,
    normalize_headers,
)
from dataimport.readers.detect import decode_sample, detect_delimiter, detect_encoding
from dataimport.readers.limits import FILE_FIELD_TOO_LARGE

FILE_UNCLOSED_QUOTE = register(
    "unclosed-quote",
    Level.FILE,
    "Malformed CSV quoting",
    "A quoted field is opened and never closed, or the CSV quoting is otherwise malformed.",
    "{where}: a quoted field is opened and never closed (the quote runs to the end of the "
    'file). Close the quote or double any " inside the field.',
).code

# A physical line, and a record spanning several lines, may hold this many maximal fields;
# longer ones are refused before they are read whole (a file without line breaks, or a quote
# that is never closed, must not be loaded into memory).
LINE_LIMIT_FIELDS = 16

# The csv module's field limit is process-wide. It is set once, here, to the largest
# max_field_size any config may ask for, so no import ever changes what another may read;
# each reader enforces its own max_field_size (per record while reading, per field after).
csv.field_size_limit(MAX_FIELD_SIZE)


def open_csv(path: Path, head: bytes, complete: bool, *, max_field_size: int) -> TableSource:
    """Open a CSV file whose first bytes are `head` (`complete`: head is the whole file)."""
    encoding = detect_encoding(head, complete)
    sample = decode_sample(head, encoding, complete)
    if complete and not sample.replace("\ufeff", "").strip():
        raise ImportFailure(FILE_EMPTY, "The file holds no text, only blanks or a byte-order mark.")
    reader = CsvRowReader(path, encoding, detect_delimiter(sample, complete), max_field_size)
    reader.read_header()
    return TableSource("csv", encoding, reader.delimiter, reader.headers, reader)


class _LineTooLong(Exception):
    """A physical line exceeded the line limit (translated with the row number by the caller)."""


class _TrackedLines:
    """Feeds csv.reader whole, length-bounded lines and records when the file has run out.

    Non-strict csv.reader silently returns a quoted field that runs into end of file as a
    normal row; a row produced after the lines ran out is exactly that case. The characters
    of the record being read are counted too (`record_done` starts the next one): a record
    that spans lines is bounded by the same limit as a line.
    """

    def __init__(self, stream: io.TextIOWrapper, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._record_chars = 0
        self.at_eof = False

    def __iter__(self) -> Iterator[str]:
        while line := self._stream.readline(self._limit):
            if len(line) >= self._limit and line[-1] not in "\r\n":
                raise _LineTooLong
            self._record_chars += len(line)
            if self._record_chars > self._limit:
                raise _LineTooLong
            yield line
        self.at_eof = True

    def record_done(self) -> None:
        self._record_chars = 0


class CsvRowReader:
    """The RowReader behind a CSV TableSource."""

    def __init__(self, path: Path, encoding: str, delimiter: str, max_field_size: int) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.max_field_size = max_field_size
        self.headers: list[str] = []
        self._open_streams: set[io.TextIOWrapper] = set()

    def read_header(self) -> None:
        """Read the header and make sure a non-blank data row follows (else FILE_NO_ROWS)."""
        with self._open() as stream:
            records = self._records(stream)
            header = next(records, None)
            if header is None:
                raise ImportFailure(FILE_EMPTY, "The file holds no rows.")
            self.headers = normalize_headers(header[1])
            if not _has_data_row(records):
                raise ImportFailure(
                    FILE_NO_ROWS, "The file has a header row but no data rows below it."
                )

    def iter_rows(self, start_after: int) -> Iterator[SourceRow]:
        with self._open() as stream:
            self._open_streams.add(stream)
            try:
                for index, values in self._records(stream):
                    if index > start_after:  # index 0 is the header, always skipped
                        yield self._build_row(index, values)
            finally:
                self._open_streams.discard(stream)

    def close(self) -> None:
        for stream in list(self._open_streams):
            stream.close()

    def _open(self) -> io.TextIOWrapper:
        return self.path.open(encoding=self.encoding, errors="replace", newline="")

    def _records(self, stream: io.TextIOWrapper) -> Iterator[tuple[int, list[str]]]:
        """(index, cells) per CSV record, index 0 being the header; malformed input raises."""
        lines = _TrackedLines(stream, self.max_field_size * LINE_LIMIT_FIELDS)
        reader = csv.reader(lines, delimiter=self.delimiter)
        index = 0
        while True:
            where = _where(index, reader.line_num + 1)
            try:
                values = next(reader)
            except StopIteration:
                return
            except _LineTooLong:  # a line, or a record spanning lines
                raise self._too_large(where, "a line") from None
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise self._too_large(where, "a field") from None
                raise ImportFailure(
                    FILE_UNCLOSED_QUOTE, f"{where}: malformed CSV ({exc})."
                ) from None
            lines.record_done()
            if lines.at_eof:
                raise ImportFailure(
                    FILE_UNCLOSED_QUOTE,
                    f"{where}: a quoted field is opened and never closed (the quote runs to the "
                    'end of the file). Close the quote or double any " inside the field.',
                )
            yield index, values
            index += 1

    def _build_row(self, index: int, values: list[str]) -> SourceRow:
        if max(map(len, values), default=0) > self.max_field_size:
            raise self._too_large(_where(index, None), "a field")
        row = make_row(index, self.headers, values)
        return flag_replaced_bytes(row, self.encoding)

    def _too_large(self, where: str, what: str) -> ImportFailure:
        return ImportFailure(
            FILE_FIELD_TOO_LARGE,
            f"{where}: {what} is longer than {self.max_field_size:,} characters "
            "(an unclosed quote can cause this).",
        )


def _has_data_row(records: Iterator[tuple[int, Sequence[str]]]) -> bool:
    try:
        return any(any(value.strip() for value in values) for _, values in records)
    except ImportFailure:
        return True  # a malformed row is still data; rows() reports it with its row number


def _where(index: int, line: int | None) -> str:
    """Human position of a record: "header row" or "data row N (line L)"."""
    label = "Header row" if index == 0 else f"Data row {index}"
    return label if line is None else f"{label} (line {line})"
