"""JSON text built column-wise: values encoded by polars, objects joined as strings.

Objects whose keys depend on the row (custom attributes hold only the cells that have a
value) are assembled from `"key":value` parts, so an absent value is an absent key, not null.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import polars as pl

_PREFIX = len('{"v":')


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
