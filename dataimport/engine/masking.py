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

import polars as pl

from dataimport import pii
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.text import py_strip

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


# Characters `repr` writes escaped (not str.isprintable()), without surrogates (never in text).
_ESCAPED = (
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
    opaque = value.str.contains(_ESCAPED) | (
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


_MESSAGES = pl.List(pl.Struct({"message": pl.Utf8}))


def mask_errors(frame: ChunkFrame, errors: pl.Series, blank: pl.Series) -> pl.Series:
    """`errors` (validation_errors JSON text per row) with every message masked as the row
    engine masks it; blank rows are left as they are (the row engine does not mask them)."""
    keep = ~blank & (errors != "[]")
    if not keep.any():
        return errors
    raw = frame.raw_columns()
    rows = pl.DataFrame([pl.Series("idx", range(frame.height), dtype=pl.Int64), errors.rename("e")])
    rows = rows.with_columns(
        frame.rows.get_column(column).rename(f"c{i}") for i, (_k, column) in enumerate(raw)
    )
    rows = rows.filter(keep)
    messages = rows.select(
        "idx",
        *(f"c{i}" for i in range(len(raw))),
        pl.col("e").str.json_decode(_MESSAGES).alias("m"),
    ).explode("m")
    messages = messages.with_columns(pl.col("m").struct.field("message").fill_null("").alias("m"))
    hits = []
    for i in range(len(raw)):
        value, first, second = _needles(pl.col(f"c{i}"))
        message = pl.col("m")
        found = (
            pl.when(value == "")
            .then(False)
            .when(first.is_null())
            .then(True)
            .otherwise(
                message.str.contains(first, literal=True)
                | message.str.contains(second.fill_null(first), literal=True)
            )
        )
        hits.append(found)
    candidates = (
        messages.filter(pl.any_horizontal(hits) if hits else pl.lit(False))
        .get_column("idx")
        .unique()
    )
    if candidates.is_empty():
        return errors
    exact = rows.filter(pl.col("idx").is_in(candidates.implode()))
    indices: list[int] = []
    masked: list[str] = []
    for idx, text, *cells in exact.iter_rows():
        values = [cell for cell in cells if cell]
        issues = json.loads(text)
        changed = [
            {**issue, "message": pii.mask_text(str(issue.get("message", "")), values)}
            for issue in issues
        ]
        if changed != issues:
            indices.append(idx)
            masked.append(json.dumps(changed))
    if not indices:
        return errors
    return errors.scatter(indices, masked)
