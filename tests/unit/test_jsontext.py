"""jsontext.json_object: the same text as members encoded one by one, for any null pattern."""

from __future__ import annotations

import json
import random

import polars as pl
import pytest

from dataimport.engine.jsontext import json_object, json_value

_HOSTILE = ['a"b', "back\\slash", "tab\tnew\nline", "é ü 中", "\u2028", "\x7f", "", " ", "}{,"]


def _reference(frame: pl.DataFrame, members: list[tuple[str, str, bool]]) -> list[str]:
    """Each row's object built member by member: `json.dumps(key):json_value(value)`,
    optional members left out where null."""
    values = {
        column: frame.select(json_value(pl.col(column))).to_series().to_list()
        for _key, column, _optional in members
    }
    rows = []
    for i in range(frame.height):
        parts = [
            json.dumps(key) + ":" + values[column][i]
            for key, column, optional in members
            if not (optional and frame.get_column(column)[i] is None)
        ]
        rows.append("{" + ",".join(parts) + "}")
    return rows


def _frame(rng: random.Random, height: int, nulls: list[float]) -> pl.DataFrame:
    """Columns of text, numbers and lists, each null in the given share of rows."""
    data: dict[str, pl.Series] = {}
    for i, share in enumerate(nulls):
        kind = i % 3
        cells: list[object] = []
        for _ in range(height):
            if rng.random() < share:
                cells.append(None)
            elif kind == 0:
                cells.append(rng.choice(_HOSTILE) + str(rng.randint(0, 9)))
            elif kind == 1:
                cells.append(rng.choice([0.1, 1e20, -0.0, 3.0, 2.5e-7]))
            else:
                cells.append([rng.choice(_HOSTILE), "x"])
        dtype = (pl.Utf8, pl.Float64, pl.List(pl.Utf8))[kind]
        data[f"c{i}"] = pl.Series(f"c{i}", cells, dtype=dtype)
    return pl.DataFrame(data)


@pytest.mark.parametrize("seed", range(6))
def test_matches_member_by_member(seed: int) -> None:
    rng = random.Random(seed)
    # Every kind of column: never null, always null, sometimes null; optional or required.
    nulls = [rng.choice([0.0, 1.0, 0.3]) for _ in range(9)]
    frame = _frame(rng, 200, nulls)
    members = [(f"key {i}", f"c{i}", rng.random() < 0.6) for i in range(len(nulls))]
    got = frame.select(json_object(frame, members)).to_series().to_list()
    assert got == _reference(frame, members)
    for text in got:
        assert list(json.loads(text)) == [
            k for k, c, o in members if k in json.loads(text)
        ]  # member order kept


def test_keys_json_escapes_and_duplicates_go_member_by_member() -> None:
    frame = pl.DataFrame({"a": ["x", None], "b": [None, "y"]})
    for members in (
        [("é", "a", True), ("b", "b", True)],
        [("k", "a", True), ("k", "b", True)],  # duplicate key: both written, JSONB keeps the last
    ):
        got = frame.select(json_object(frame, members)).to_series().to_list()
        assert got == _reference(frame, members)
    assert frame.select(json_object(frame, [])).to_series().to_list() == ["{}", "{}"]
    everything_null = [("a", "a", True)]
    assert frame.head(0).select(json_object(frame.head(0), everything_null)).height == 0
    only_nulls = pl.DataFrame({"a": [None, None]}, schema={"a": pl.Utf8})
    assert only_nulls.select(json_object(only_nulls, everything_null)).to_series().to_list() == [
        "{}",
        "{}",
    ]
