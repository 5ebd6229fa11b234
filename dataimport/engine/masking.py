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


def _needles(cell: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(stripped value, needle, second needle) of a raw cell; a null needle with a non-empty
    value means "always a candidate"."""
    value = py_strip(cell)
    escaped_value = value.str.replace_all("\\", "\\\\", literal=True)
    double = value.str.contains("'", literal=True) & ~value.str.contains('"', literal=True)
    quoted = (
        pl.when(double)
        .then(pl.concat_str([pl.lit('"'), escaped_value, pl.lit('"')]))
        .otherwise(pl.concat_str([pl.lit("'"), escaped_value, pl.lit("'")]))
    )
    opaque = value.str.contains(_escaped_class()) | (
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
    """Per row of `rows` (columns idx, e), its messages decoded and joined by NUL: a needle
    (never NUL) is in the joined text exactly when it is in one of the messages. Each
    distinct message member is decoded once, in Python."""
    members = rows.select("idx", pl.col("e").str.extract_all(_MESSAGE_MEMBER).alias("m"))
    members = members.explode("m").drop_nulls("m")
    distinct = members.get_column("m").unique()
    decoded = pl.DataFrame(
        {
            "m": distinct,
            "t": [json.loads("{" + member + "}")["message"] for member in distinct],
        },
        schema={"m": pl.Utf8, "t": pl.Utf8},
    )
    joined = (
        members.join(decoded, on="m", how="left", maintain_order="left")
        .group_by("idx", maintain_order=True)
        .agg(pl.col("t").str.join(_JOIN))
    )
    aligned = rows.select("idx").join(joined, on="idx", how="left", maintain_order="left")
    return aligned.get_column("t").fill_null("")


def _values_in(messages: pl.DataFrame, cells: pl.Series, i: int) -> tuple[pl.DataFrame, pl.Series]:
    """For column i: per distinct message (`m`), the distinct cells whose needle it contains
    (`in<i>`), and the cells that are always candidates (a value with no needle). Needles
    are computed once per distinct cell, and all of a column's are searched at once in each
    distinct message (Aho-Corasick): messages repeat, cells often do."""
    values = cells.unique()
    value, first, second = _needles(pl.col("c"))
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
    column = f"in{i}"
    patterns = pairs.get_column("needle").unique()
    if patterns.is_empty():
        return messages.select("m", pl.lit([], dtype=pl.List(pl.Utf8)).alias(column)), always
    found = (
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
    return found, always


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
    hits: list[pl.Expr] = []
    for i in range(len(raw)):
        found, always = _values_in(messages, rows.get_column(f"c{i}"), i)
        messages = messages.join(found, on="m", how="left")
        cell = pl.col(f"c{i}")
        hits.append(
            pl.col(f"in{i}").list.contains(cell).fill_null(False) | cell.is_in(always.implode())
        )
    candidates = (
        rows.select("idx", "m", *(f"c{i}" for i in range(len(raw))))
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
