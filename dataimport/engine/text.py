"""String expressions with Python's exact semantics, and Python run once per distinct value.

Python's `str.strip()`, `str.split()` and `str.lower()` differ from polars' in corners
(Unicode whitespace such as U+001C, special casing). The vectorised forms here are exact for
ASCII text; `per_distinct` settles the rest with the very Python function the rule names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

import polars as pl

# Every character Python's str.split()/str.strip() treat as whitespace.
PY_WHITESPACE = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
_WS_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE) + "]"


def py_strip(values: pl.Expr) -> pl.Expr:
    """`str.strip()` exactly, for any text."""
    return values.str.strip_chars(PY_WHITESPACE)


def is_ascii(values: pl.Expr) -> pl.Expr:
    """ASCII text: every character one UTF-8 byte (two length counts, far cheaper than a
    regex pass over the bytes)."""
    return values.str.len_bytes() == values.str.len_chars()


def collapse_whitespace(values: pl.Expr) -> pl.Expr:
    """`" ".join(text.split())` exactly, for any text."""
    return py_strip(values.str.replace_all(_WS_CLASS + "+", " "))


# Python's whitespace within ASCII: a much cheaper class for text known to be ASCII.
_ASCII_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "


def collapse_whitespace_ascii(values: pl.Expr) -> pl.Expr:
    """`" ".join(text.split())` for ASCII text."""
    runs = values.str.replace_all(r"[\t-\r\x1c-\x1f ]+", " ")
    return runs.str.strip_chars(_ASCII_WHITESPACE)


def name_key_ascii(values: pl.Expr) -> pl.Expr:
    """`normalize.name_key` for ASCII text (non-ASCII text goes through `per_distinct`)."""
    return collapse_whitespace_ascii(values).str.to_lowercase()


def lower_in(values: pl.Expr, tokens: Collection[str]) -> pl.Expr:
    """Whether polars' lower-casing of each text is one of tokens (False for null). Lower-casing
    never shortens a text, so a text longer than every token skips it."""
    longest = max((len(token) for token in tokens), default=-1)
    short = pl.when(values.str.len_chars() <= longest).then(values)
    return short.str.to_lowercase().is_in(list(tokens)).fill_null(False)


def regex(pattern: re.Pattern[str] | str) -> str:
    """A Python pattern for polars' (Rust) engine; patterns used here avoid lookaround."""
    return pattern.pattern if isinstance(pattern, re.Pattern) else pattern


def by_distinct(values: pl.Series, compute: Callable[[pl.Series], pl.Series]) -> pl.Series:
    """`compute(values)`, computed on the distinct values and joined back when values repeat
    (exports name the same hosts, apps, sizes in many rows). Only for a `compute` whose
    answer for a value depends on that value alone."""
    distinct = values.unique()
    if 2 * len(distinct) > len(values):
        return compute(values)
    computed = pl.DataFrame({"s": distinct, "k": compute(distinct)})
    joined = pl.DataFrame({"s": values}).join(
        computed, on="s", how="left", maintain_order="left", nulls_equal=True
    )
    return joined.get_column("k")


def per_distinct(
    frame: pl.DataFrame,
    keys: Sequence[str],
    fn: Callable[..., tuple[Any, ...]],
    schema: dict[str, pl.DataType | type[pl.DataType]],
    where: pl.Series | None = None,
) -> pl.DataFrame:
    """`fn(*key values)` once per distinct key tuple (of the rows in `where`), broadcast back.

    Returns a frame aligned with `frame` holding the columns of `schema` (null outside
    `where`). This is where exact Python checks run: on candidates only, each value once.
    """
    if where is not None and not where.any():
        results: list[tuple[Any, ...]] = []  # no candidate: nothing to compute or select
    else:
        keyed = frame.select(keys)
        candidates = keyed if where is None else keyed.filter(where)
        distinct = candidates.unique()
        results = [fn(*row) for row in distinct.iter_rows()]
    if all(value is None for result in results for value in result):
        # Nothing to broadcast (no candidate, or every answer null): skip the join.
        return pl.DataFrame(
            [
                pl.repeat(None, frame.height, dtype=dtype, eager=True).rename(name)
                for name, dtype in schema.items()
            ]
        )
    columns: list[Sequence[Any]] = (
        list(zip(*results, strict=True)) if results else [[] for _ in schema]
    )
    computed = distinct.with_columns(
        pl.Series(name, list(values), dtype=dtype)
        for (name, dtype), values in zip(schema.items(), columns, strict=True)
    )
    if where is not None:
        keyed = keyed.with_columns(pl.Series("__where", where))
    joined = keyed.join(
        computed, on=list(keys), how="left", maintain_order="left", nulls_equal=True
    )
    if where is not None:
        joined = joined.with_columns(
            pl.when(pl.col("__where")).then(pl.col(name)).otherwise(None).alias(name)
            for name in schema
        )
    return joined.select(list(schema))
