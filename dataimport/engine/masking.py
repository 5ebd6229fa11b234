"""Invariant 7, column-wise: no issue message of a masked category quotes one of its row's cells.

The row engine runs `pii.mask_text(message, <the row's cell values>)` on every issue of every
non-blank row. `mask_text` changes a message only where it contains, for some cell value `v`
(stripped), `quote_value(v)`, `repr(v)` or (4 characters or more) `v` itself. Each of those
contains a "needle" computed here column-wise:

- `v` of 4 characters or more: its first 79 characters (a prefix of `v`, of `repr(v)` and of
  `quote_value(v)`, which shortens to 79 characters plus an ellipsis), and the same with
  backslashes doubled (how `repr` writes them);
- a shorter `v`: `repr(v)` itself, quotes included (only quoted forms are replaced);
- `v` that `repr` escapes otherwise (non-printable characters, both kinds of quote): no
  needle, the row is examined exactly.

So one vectorised search of every message against the needles of its row's cells finds the
candidate rows, and only those go through `mask_text` itself, with the row's values in the
order the row engine passes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache

import polars as pl

from dataimport import pii
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.text import py_strip
from dataimport.normalize import quote_value

QUOTE_LIMIT = 79  # normalize.quote_value keeps limit - 1 characters of a longer value


def _ranges(codes: list[int]) -> str:
    parts: list[str] = []
    start = previous = codes[0]
    for code in [*codes[1:], -1]:
        if code == previous + 1:
            previous = code
            continue
        parts.append(f"\\x{{{start:x}}}" + (f"-\\x{{{previous:x}}}" if previous > start else ""))
        start = previous = code
    return "".join(parts)


@lru_cache(maxsize=1)
def _escaped_class() -> str:
    """Characters `repr` writes escaped (not str.isprintable()), without surrogates (never in
    text), as one regex class. Built on first use: scanning every code point costs ~0.5 s,
    which every CLI command paid at import."""
    return (
        "["
        + _ranges(
            [c for c in range(0x110000) if not (0xD800 <= c <= 0xDFFF) and not chr(c).isprintable()]
        )
        + "]"
    )


# What repr escapes in ASCII text: the C0 controls and DEL (0x20..0x7e print as they are).
_ESCAPED_ASCII = r"[\x00-\x1f\x7f]"


def _needles(cell: pl.Expr, escaped: str) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(stripped value, needle, second needle) of a raw cell, given the class of characters
    repr escapes in it; a null needle with a non-empty value means "always a candidate"."""
    value = py_strip(cell)
    escaped_value = value.str.replace_all("\\", "\\\\", literal=True)
    double = value.str.contains("'", literal=True) & ~value.str.contains('"', literal=True)
    quoted = (
        pl.when(double)
        .then(pl.concat_str([pl.lit('"'), escaped_value, pl.lit('"')]))
        .otherwise(pl.concat_str([pl.lit("'"), escaped_value, pl.lit("'")]))
    )
    opaque = value.str.contains(escaped) | (
        value.str.contains("'", literal=True) & value.str.contains('"', literal=True)
    )
    long = value.str.len_chars() >= 4
    prefix = value.str.slice(0, QUOTE_LIMIT)
    first = pl.when(opaque).then(None).when(long).then(prefix).otherwise(quoted)
    second = (
        pl.when(opaque | ~long)
        .then(None)
        .otherwise(prefix.str.replace_all("\\", "\\\\", literal=True))
    )
    return value, first, second


_mask_value = lru_cache(maxsize=65_536)(pii.mask_value)
Form = tuple[str, tuple[str, str], bool]


@lru_cache(maxsize=65_536)
def _form(value: str) -> Form:
    """A stripped value's forms, built once per distinct value (repr and quote_value are the
    costly part of a row's exact masking)."""
    return value, (quote_value(value), repr(value)), len(value) >= pii._BARE_QUOTE_MIN_LEN


def forms_of(values: Iterable[str]) -> list[Form]:
    """What `pii.mask_text` replaces for these values, in the order it replaces them (the
    same set, built in the same order, so equal lengths keep the row engine's order)."""
    distinct = {stripped for value in values if value and (stripped := value.strip())}
    return [_form(value) for value in sorted(distinct, key=len, reverse=True)]


def mask_text(message: str, forms: list[Form]) -> str:
    """`pii.mask_text(message, values)` exactly for `forms_of(values)`: the work of a value is
    skipped where none of the forms it would replace occurs in the message (its replacements
    would change nothing), and the masked forms are cached."""
    for value, quoted_forms, bare in forms:
        if not (
            (bare and value in message) or quoted_forms[0] in message or quoted_forms[1] in message
        ):
            continue
        masked = _mask_value(value)
        for quoted in quoted_forms:
            message = message.replace(quoted, repr(masked))
        if bare:
            message = message.replace(value, masked)
    return message


# A message member of an issue's JSON text, as json.dumps and PostgreSQL's jsonb output both
# write it (inside a JSON string every quote is escaped, so this never matches in a value).
_MESSAGE_MEMBER = r'"message": "(?:[^"\\]|\\.)*"'
_JOIN = "\x00"  # never in a message or a cell (JSONB refuses NUL)


def _decoded_messages(rows: pl.DataFrame) -> pl.Series:
    """Per row of `rows` (column e), its messages decoded and joined by NUL: a needle (never
    NUL) is in the joined text exactly when it is in one of the messages. Each distinct
    validation_errors text is decoded once (rows repeat the same findings), each distinct
    message member once, in Python."""
    texts = rows.select(pl.col("e").unique())
    members = texts.get_column("e").str.extract_all(_MESSAGE_MEMBER).to_list()
    message: dict[str, str] = {}
    joined = []
    for found in members:
        for member in found:
            if member not in message:
                message[member] = json.loads("{" + member + "}")["message"]
        joined.append(_JOIN.join(message[member] for member in found))
    decoded = texts.with_columns(pl.Series("t", joined, dtype=pl.Utf8))
    aligned = rows.select("e").join(decoded, on="e", how="left", maintain_order="left")
    return aligned.get_column("t")


def _needle_table(cells: pl.Series) -> tuple[pl.DataFrame, pl.Series, pl.Series]:
    """For a column's cells: (cell, needle) pairs, the distinct needles, and the cells that are
    always candidates (a value with no needle). Needles are computed once per distinct cell."""
    values = cells.unique()
    ascii_only = (values.str.len_bytes() == values.str.len_chars()).all()
    # The full class is a large one: ASCII text needs only its ASCII part.
    value, first, second = _needles(pl.col("c"), _ESCAPED_ASCII if ascii_only else _escaped_class())
    table = pl.DataFrame({"c": values}).select(
        "c", (value != "").alias("v"), first.alias("f"), second.alias("s")
    )
    table = table.filter(pl.col("v"))
    always = table.filter(pl.col("f").is_null()).get_column("c")
    pairs = pl.concat(
        [
            table.select("c", pl.col("f").alias("needle")),
            table.select("c", pl.col("s").alias("needle")),
        ]
    ).drop_nulls("needle")
    return pairs, pairs.get_column("needle").unique(), always


def _values_in(
    messages: pl.DataFrame, pairs: pl.DataFrame, patterns: pl.Series, i: int
) -> pl.DataFrame:
    """For column i: per distinct message (`m`), the distinct cells whose needle it contains
    (`in<i>`). All of a column's needles are searched at once in each distinct message
    (Aho-Corasick): messages repeat, cells often do."""
    column = f"in{i}"
    if patterns.is_empty():
        return messages.select("m", pl.lit([], dtype=pl.List(pl.Utf8)).alias(column))
    return (
        messages.select(
            "m", pl.col("m").str.extract_many(patterns.implode(), overlapping=True).alias("needle")
        )
        .explode("needle")
        .drop_nulls("needle")
        .unique()
        .join(pairs, on="needle")
        .group_by("m")
        .agg(pl.col("c").unique().alias(column))
    )


def mask_errors(frame: ChunkFrame, errors: pl.Series, blank: pl.Series) -> pl.Series:
    """`errors` (validation_errors JSON text per row) with every message masked as the row
    engine masks it; blank rows are left as they are (the row engine does not mask them)."""
    keep = ~blank & (errors != "[]")
    raw = frame.raw_columns()
    if not raw or not keep.any():
        return errors
    rows = pl.DataFrame([pl.Series("idx", range(frame.height), dtype=pl.Int64), errors.rename("e")])
    rows = rows.with_columns(
        frame.rows.get_column(column).rename(f"c{i}") for i, (_k, column) in enumerate(raw)
    )
    rows = rows.filter(keep)
    rows = rows.with_columns(_decoded_messages(rows).alias("m"))
    # A row is a candidate where a cell's needle is in its messages (or the cell has none).
    messages = rows.select(pl.col("m").unique())
    tables = [_needle_table(rows.get_column(f"c{i}")) for i in range(len(raw))]
    # A needle in a row's messages is one in all the distinct messages joined (NUL is in
    # neither): a column none of whose needles is there, and no cell of which is always a
    # candidate, holds no candidate, and is not searched message by message.
    searched = [i for i, (_p, patterns, _a) in enumerate(tables) if not patterns.is_empty()]
    everything = messages.select(pl.col("m").str.join(_JOIN))
    held = everything.select(
        pl.col("m").str.contains_any(tables[i][1].implode()).alias(f"p{i}") for i in searched
    )
    held_by = dict(zip(searched, held.row(0), strict=True)) if searched else {}
    columns = [i for i, (_p, _n, always) in enumerate(tables) if held_by.get(i) or len(always)]
    if not columns:
        return errors
    hits: list[pl.Expr] = []
    for i in columns:
        pairs, patterns, always = tables[i]
        messages = messages.join(_values_in(messages, pairs, patterns, i), on="m", how="left")
        cell = pl.col(f"c{i}")
        hits.append(
            pl.col(f"in{i}").list.contains(cell).fill_null(False) | cell.is_in(always.implode())
        )
    candidates = (
        rows.select("idx", "m", *(f"c{i}" for i in columns))
        .join(messages, on="m", how="left", maintain_order="left")
        .filter(pl.any_horizontal(hits))
        .get_column("idx")
    )
    if candidates.is_empty():
        return errors
    exact = rows.filter(pl.col("idx").is_in(candidates.implode())).drop("m")
    indices: list[int] = []
    masked: list[str] = []
    for idx, text, *cells in exact.iter_rows():
        forms = forms_of([cell for cell in cells if cell])
        issues = json.loads(text)
        changed = [
            {**issue, "message": mask_text(str(issue.get("message", "")), forms)}
            for issue in issues
        ]
        if changed != issues:
            indices.append(idx)
            masked.append(json.dumps(changed))
    if not indices:
        return errors
    return errors.scatter(indices, masked)
