"""JSON text built column-wise: values encoded by polars, objects joined as strings.

Objects whose keys depend on the row (custom attributes hold only the cells that have a
value) are assembled from `"key":value` parts, so an absent value is an absent key, not null.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import polars as pl

_PREFIX = len('{"v":')
# A key json.dumps writes as is (printable ASCII, no quote, no backslash): polars' struct
# encoding writes it the same way.
_PLAIN_KEY = re.compile(r"[ !#-\[\]-~]*")


def json_value(values: pl.Expr) -> pl.Expr:
    """Each value as JSON text (`null` for null)."""
    return pl.struct(values.alias("v")).struct.json_encode().str.slice(_PREFIX).str.head(-1)


def json_object_of_present(parts: Sequence[tuple[str, pl.Expr]]) -> pl.Expr:
    """`{"key": value, ...}` holding only the keys whose value is not null."""
    if not parts:
        return pl.lit("{}")
    members = [
        pl.when(value.is_not_null()).then(pl.lit(json.dumps(key) + ":") + json_value(value))
        for key, value in parts
    ]
    joined = pl.concat_str(members, separator=",", ignore_nulls=True)  # null value: no member
    return pl.lit("{") + joined + pl.lit("}")


def with_members(obj: pl.Expr, members: Sequence[tuple[str, pl.Expr]]) -> pl.Expr:
    """A JSON object text with more members (given as JSON text) appended."""
    tail = [pl.lit("," + json.dumps(key) + ":") + value for key, value in members]
    return pl.concat_str([obj.str.head(-1), *tail, pl.lit("}")])


def json_object(frame: pl.DataFrame, members: Sequence[tuple[str, str, bool]]) -> pl.Expr:
    """`{"key": value, ...}` of frame columns (key, column, optional), in that order; an
    optional member is absent where its value is null (a required one reads `null`).

    Encoded in as few struct encodes as the chunk allows: an optional column null in every
    row is left out, one null in no row is as good as required, and each run of required
    members is one encode; only an optional column null in some rows is encoded alone."""
    height = frame.height
    kept: list[tuple[str, str, bool]] = []
    for key, column, optional in members:
        nulls = frame.get_column(column).null_count()
        if optional and height and nulls == height:
            continue
        kept.append((key, column, optional and nulls > 0))
    keys = [key for key, _column, _optional in kept]
    if len(set(keys)) < len(keys) or not all(_PLAIN_KEY.fullmatch(key) for key in keys):
        # Duplicate keys (the later wins in JSONB) or keys json.dumps escapes: member by member.
        return _members_one_by_one(kept)
    if not any(optional for *_, optional in kept):
        if not kept:
            return pl.repeat("{}", pl.len())  # one per row, even where nothing else is
        return pl.struct(pl.col(column).alias(key) for key, column, _ in kept).struct.json_encode()
    pieces: list[pl.Expr] = []
    run: list[pl.Expr] = []
    for key, column, optional in kept:
        if not optional:
            run.append(pl.col(column).alias(key))
            continue
        if run:
            pieces.append(_inner(run))
            run = []
        present = pl.col(column).is_not_null()
        pieces.append(pl.when(present).then(_inner([pl.col(column).alias(key)])))
    if run:
        pieces.append(_inner(run))
    joined = pl.concat_str(pieces, separator=",", ignore_nulls=True)  # null: no member
    return pl.lit("{") + joined + pl.lit("}")


def _inner(values: list[pl.Expr]) -> pl.Expr:
    """The members of one struct encode, without the braces (a slice: no copy)."""
    return pl.struct(values).struct.json_encode().str.slice(1).str.head(-1)


def _members_one_by_one(members: Sequence[tuple[str, str, bool]]) -> pl.Expr:
    parts = [
        (
            pl.lit(json.dumps(key) + ":") + json_value(pl.col(column))
            if not optional
            else pl.when(pl.col(column).is_not_null()).then(
                pl.lit(json.dumps(key) + ":") + json_value(pl.col(column))
            )
        )
        for key, column, optional in members
    ]
    if not parts:
        return pl.lit("{}")
    return pl.lit("{") + pl.concat_str(parts, separator=",", ignore_nulls=True) + pl.lit("}")
