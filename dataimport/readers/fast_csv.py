"""The native fast path of CSV ingest: whole blocks of text parsed and JSON-encoded by polars.

`CsvRowReader` (the csv module, one `SourceRow` per row) stays the reference. This module
produces the very same staged rows for the common case without Python work per row:

1. The file is read in blocks of bytes, decoded with the detected codec (errors="replace",
   the incremental decoder TextIOWrapper uses, so U+FFFD lands where it does there) and cut
   after the last line break that lies outside quotes (even number of quotes before it).
2. A block is split into field tokens by one regex (Rust engine, linear time): a quoted field
   `"..."` (doubled quotes inside) or an unquoted field without quote/CR/LF, each followed by
   the delimiter or a line end. When the tokens tile the block exactly, every quote sits where
   RFC 4180 puts it, and the csv module (excel dialect) splits the block into the very same
   records and fields. Anything else (a stray quote, a lone CR, NUL, an over-long field or
   line) is "irregular": the stream stops at the last row it produced and the caller goes on
   with the reference reader from there (`fallback_after`).
3. Rows whose width matches the header and whose cells cannot carry a reader finding (no cell
   that might be blank-only, a formula, or hold U+FFFD: exact regex pre-filters) get their
   `raw_data` from `struct.json_encode`, no issues. All other rows (ragged, blank, formula
   candidates, replaced bytes) go through the reference `make_row`/`flag_replaced_bytes` in
   Python, so their cells and findings are the reference's by construction.

Memory: one block (about BLOCK_BYTES of text, more only for a record longer than that, up to
the reader's line limit) and one batch.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import polars as pl

from dataimport.readers import REPLACEMENT_CHAR, SourceRow, flag_replaced_bytes, make_row
from dataimport.readers.csv_reader import LINE_LIMIT_FIELDS, CsvRowReader

BLOCK_BYTES = 1 << 20
# Python's str.isspace() set (what make_row's strip() removes), checked by a test.
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WS_CLASS = "".join(f"\\x{{{ord(char):x}}}" for char in PY_WHITESPACE)
_BLANK_CELL = f"^[{_WS_CLASS}]*$"  # would strip() to ""
_FORMULA_START = r"^[=@+\-\t\r]"  # looks_like_formula is False for any other first char
RECORD_COLUMNS = ("row_number", "raw_data", "read_issues", "is_blank")


class Irregular(Exception):
    """This block needs the reference reader (the stream falls back before it)."""


def row_json(row: SourceRow) -> tuple[str, str | None]:
    """raw_data and read_issues of a staged row as JSON text (read_issues None: no findings)."""
    issues = [issue.to_json() for issue in row.issues]
    return json.dumps(row.cells, ensure_ascii=False), json.dumps(issues) if issues else None


def _token_pattern(delimiter: str) -> str:
    d = re.escape(delimiter)
    end = f"(?:{d}|\\r?\\n)"
    return f'"(?:[^"]|"")*"{end}|[^{d}"\\r\\n]*{end}'


class FastCsvStream:
    """Staged-row frames (RECORD_COLUMNS) of a CSV file, for rows above `start_after`.

    Iterate `batches()`; when it ends with `fallback_after` set, rows up to that number were
    produced and the rest must come from the reference reader (`rows(start_after=...)`).
    """

    def __init__(
        self, reader: CsvRowReader, *, block_bytes: int | None = None, with_cells: bool = False
    ) -> None:
        self.path = reader.path
        self.encoding = reader.encoding
        self.delimiter = reader.delimiter
        self.headers = list(reader.headers)
        self.max_field_size = reader.max_field_size
        self.line_limit = reader.max_field_size * LINE_LIMIT_FIELDS
        self.block_bytes = block_bytes or BLOCK_BYTES
        self.fallback_after: int | None = None
        self._pattern = _token_pattern(reader.delimiter)
        self._names = [f"c{position}" for position in range(len(self.headers))]
        # Each header's cell text also as a column of its own (`cell_column(i)` for the i-th
        # header), null in the rare rows the reference reader made (ragged, blank, flagged):
        # a validation reads the columns instead of decoding raw_data again.
        self._with_cells = with_cells
        cells: dict[str, type[pl.DataType]] = {
            cell_column(i): pl.String for i in range(len(self.headers))
        }
        self._schema = {**_SCHEMA, **cells} if with_cells else _SCHEMA

    def batches(self, start_after: int, batch_size: int) -> Iterator[pl.DataFrame]:
        """Frames of at most batch_size rows, in row order, each a contiguous row range."""
        self.fallback_after = None
        pending: list[pl.DataFrame] = []
        pending_rows = 0
        produced = start_after  # last row handed out (or skipped as already staged)
        records_before = 0  # records (header included) in the blocks before this one
        try:
            for text in self._blocks():
                frame, records = self._block_rows(text, records_before, start_after)
                records_before += records
                if frame.height:
                    pending.append(frame)
                    pending_rows += frame.height
                while pending_rows >= batch_size:
                    merged = pl.concat(pending, rechunk=False)
                    yield merged.slice(0, batch_size)
                    rest = merged.slice(batch_size)
                    pending, pending_rows = ([rest], rest.height) if rest.height else ([], 0)
                produced = max(produced, records_before - 1)
        except Irregular:
            self.fallback_after = produced
        if pending:
            yield pl.concat(pending)

    # -- blocks ----------------------------------------------------------------------------

    def _blocks(self) -> Iterator[str]:
        """Decoded text in pieces that end at a record boundary (if the text is regular)."""
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        carry = ""
        with self.path.open("rb") as raw:
            while chunk := raw.read(self.block_bytes):
                carry += decoder.decode(chunk)
                cut = _record_cut(carry)
                if cut:
                    yield carry[:cut]
                    carry = carry[cut:]
                elif len(carry) >= self.line_limit:
                    raise Irregular  # the reference reader reports the over-long line
            carry += decoder.decode(b"", final=True)
        if carry:
            yield carry

    def _block_rows(
        self, text: str, records_before: int, start_after: int
    ) -> tuple[pl.DataFrame, int]:
        """The staged rows of one block (records numbered from records_before) and its
        record count. Raises Irregular when the block is not plain RFC 4180 CSV."""
        if "\x00" in text:
            raise Irregular
        if not text.endswith("\n"):
            text += "\n"  # the last record of the file (csv reads it the same either way)
        if len(text) >= self.line_limit - 1 and (
            max(map(len, text.split("\n"))) >= self.line_limit - 1
        ):
            raise Irregular
        tokens = pl.Series("tok", [text]).str.extract_all(self._pattern).explode()
        lengths = tokens.str.len_chars()
        if tokens.null_count() or lengths.sum() != len(text):
            raise Irregular  # the tokens do not tile the block: stray quote, lone CR, ...
        if lengths.cast(pl.Int64).max() > self.max_field_size:  # type: ignore[operator]
            raise Irregular
        # A token is its field plus one terminator (delimiter, LF, or CRLF: an unquoted field
        # holds no CR, a quoted one ends in a quote).
        values = tokens.str.head(-1).str.strip_suffix("\r")
        eol = tokens.str.ends_with("\n")
        if '"' in text:
            quoted = tokens.str.starts_with('"').arg_true()
            unquoted = (
                values.gather(quoted)
                .str.slice(1)
                .str.head(-1)
                .str.replace_all('""', '"', literal=True)
            )
            values = values.scatter(quoted, unquoted)
        ends = eol.arg_true().cast(pl.Int64)
        records = ends.len()
        starts = ends.shift(1, fill_value=-1) + 1
        width = ends - starts + 1
        # A line with nothing on it is a record without fields (csv yields []).
        empty_line = (width == 1) & (tokens.gather(ends).str.strip_prefix("\r") == "\n")
        width = pl.select(pl.when(empty_line).then(0).otherwise(width)).to_series()
        index = pl.int_range(records_before, records_before + records, eager=True)
        shape = pl.DataFrame({"index": index, "start": starts, "width": width}).filter(
            pl.col("index") > start_after  # index 0, the header, is never above start_after
        )
        if not shape.height:
            return pl.DataFrame(schema=self._schema), records
        return self._rows(values, shape), records

    # -- rows ------------------------------------------------------------------------------

    def _rows(self, values: pl.Series, shape: pl.DataFrame) -> pl.DataFrame:
        count = len(self.headers)
        regular = shape.filter(pl.col("width") == count)
        cells = pl.DataFrame(
            {
                name: values.gather(regular["start"] + position)
                for position, name in enumerate(self._names)
            }
        ).with_columns(index=regular["index"])
        columns = [pl.col(name) for name in self._names]
        special = (
            pl.all_horizontal([column.str.contains(_BLANK_CELL) for column in columns])
            | pl.any_horizontal([column.str.contains(_FORMULA_START) for column in columns])
            | pl.any_horizontal(
                [column.str.contains(REPLACEMENT_CHAR, literal=True) for column in columns]
            )
        )
        cells = cells.with_columns(special=special)
        clean = cells.filter(~pl.col("special")).select(
            pl.col("index").alias("row_number"),
            pl.struct(
                [
                    pl.col(name).alias(header)
                    for name, header in zip(self._names, self.headers, strict=True)
                ]
            )
            .struct.json_encode()
            .alias("raw_data"),
            pl.lit(None, dtype=pl.String).alias("read_issues"),
            pl.lit(False).alias("is_blank"),
            *(
                pl.col(name).alias(cell_column(position))
                for position, name in enumerate(self._names)
                if self._with_cells
            ),
        )
        slow = pl.concat(
            [
                shape.filter(pl.col("width") != count).select("index", "start", "width"),
                cells.filter(pl.col("special")).select(
                    "index",
                    pl.lit(0, dtype=pl.Int64).alias("start"),
                    pl.lit(-1, dtype=pl.Int64).alias("width"),
                ),
            ]
        )
        schema = self._schema
        if not slow.height:
            return clean.cast(schema)  # type: ignore[arg-type]
        special_cells = {
            int(row[0]): list(row[1:])
            for row in cells.filter(pl.col("special")).select("index", *self._names).iter_rows()
        }
        records: list[tuple[Any, ...]] = []
        for index, start, width in slow.iter_rows():
            cell_values = (
                special_cells[index] if width < 0 else values.slice(start, width).to_list()
            )
            row = flag_replaced_bytes(make_row(index, self.headers, cell_values), self.encoding)
            records.append((index, *row_json(row), row.is_blank))
        python_rows = pl.DataFrame(records, schema=_SCHEMA, orient="row").with_columns(
            pl.lit(None, dtype=pl.String).alias(name) for name in schema if name not in _SCHEMA
        )
        return pl.concat([clean.cast(schema), python_rows]).sort(  # type: ignore[arg-type]
            "row_number"
        )


_SCHEMA: dict[str, type[pl.DataType]] = {
    "row_number": pl.Int64,
    "raw_data": pl.String,
    "read_issues": pl.String,
    "is_blank": pl.Boolean,
}


def cell_column(position: int) -> str:
    """The column of a batch (`FastCsvStream(..., with_cells=True)`) holding the position-th
    header's cells (a name no header can clash with: headers are raw_data's keys, not columns)."""
    return f"cell {position}"


def _record_cut(text: str) -> int:
    """Length of the longest prefix ending in a line break outside quotes (0: none).

    In regular CSV every quoted field holds an even number of quote characters, so a line
    break is a record boundary exactly when an even number of quotes precede it. (In
    irregular text the cut may be wrong; the block then fails to tile and is not used.)
    """
    position = text.rfind("\n")
    if position < 0:
        return 0
    quotes = text.count('"', 0, position)
    while quotes % 2:
        previous = text.rfind("\n", 0, position)
        if previous < 0:
            return 0
        quotes -= text.count('"', previous, position)
        position = previous
    return position + 1


def copy_text(frame: pl.DataFrame, constants: dict[str, str]) -> bytes:
    """A batch as COPY ... (FORMAT text) input: constant columns first, then RECORD_COLUMNS.

    JSON text holds no raw tab, CR or LF (json.dumps and polars escape control characters),
    so a backslash is the one character the text format needs escaped; NULL is \\N.
    """
    out = frame.select(
        *(pl.lit(value).alias(name) for name, value in constants.items()),
        "row_number",
        pl.col("raw_data").str.replace_all("\\", "\\\\", literal=True),
        pl.col("read_issues").str.replace_all("\\", "\\\\", literal=True),
        "is_blank",
    )
    buffer = io.BytesIO()
    out.write_csv(
        buffer, include_header=False, separator="\t", quote_style="never", null_value="\\N"
    )
    return buffer.getvalue()
