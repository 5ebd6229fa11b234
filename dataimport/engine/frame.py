"""One chunk of staged rows as a frame: a column per raw_data key, plus the row facts.

Keys are ordered as PostgreSQL's JSONB orders them (shorter first, then bytewise), which is
the order the row engine saw them in, so per-cell findings come out in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from dataimport.engine.text import py_strip

if TYPE_CHECKING:  # the categories import the engine: no import cycle at run time
    from dataimport.categories.base import HeaderMapping

ROW = "row_number"
BLANK = "is_blank"
READ_ISSUES = "read_issues"
_SEPARATORS = ["\x1c", "\x1d", "\x1e", "\x1f"]


def jsonb_key_order(keys: Iterable[str]) -> list[str]:
    """Keys sorted the way a JSONB object stores them."""
    return sorted(set(keys), key=lambda key: (len(key.encode()), key.encode()))


def key_column(index: int) -> str:
    return f"k{index}"


@dataclass(slots=True)
class ChunkFrame:
    """Rows of one chunk: `row_number`, `is_blank`, `read_issues` (JSON text or null) and,
    for each raw key, its cell text ("" where the row lacks the key)."""

    rows: pl.DataFrame
    keys: list[str]
    mapping: HeaderMapping
    _column_by_key: dict[str, str] = field(init=False)
    _header_by_field: dict[str, str] = field(init=False)
    _texts: pl.DataFrame | None = field(init=False, default=None)
    _stripped: dict[str, pl.Series] = field(init=False, default_factory=dict)
    # Per column, the null tokens already read as blank in `stripped` (see policy).
    blanked_tokens: dict[str, frozenset[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._column_by_key = {key: key_column(i) for i, key in enumerate(self.keys)}
        self._header_by_field = {f: h for h, f in self.mapping.field_by_header.items()}

    def stripped(self, column: str) -> pl.Series:
        """A raw column as `str.strip()` leaves it, null where that is empty; computed once
        per chunk (the rules and data quality both need it)."""
        if column not in self._stripped:
            self.strip_columns([column])
        return self._stripped[column]

    def strip_columns(self, columns: Iterable[str]) -> None:
        """Compute `stripped` of several columns in one pass (one call, columns in parallel)."""
        missing = list(dict.fromkeys(c for c in columns if c not in self._stripped))
        if not missing:
            return
        # polars' default strip set is Python's but for the separators U+001C..U+001F, so its
        # result is exact for a column holding none of those (a rare column holding one is
        # redone with the full set); one literal search finds them, cheaper than an edge regex.
        stripped = self.rows.select(pl.col(c).str.strip_chars() for c in missing)
        held = self.rows.select(pl.col(c).str.contains_any(_SEPARATORS).any() for c in missing)
        redo = [c for c, held_one in zip(missing, held.row(0), strict=True) if held_one]
        if redo:
            stripped = stripped.with_columns(self.rows.select(py_strip(pl.col(c)) for c in redo))
        stripped = stripped.select(
            pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in missing
        )
        for column in missing:
            self._stripped[column] = stripped.get_column(column)

    def column_texts(self) -> pl.DataFrame:
        """One row: per raw column, its cells joined by a newline (`<column>`), the longest
        cell's bytes (`<column>.bytes`; a bound on its characters too) and the newlines the
        joined text holds beyond the separators (`<column>.newlines`).

        Agents search these texts for what no cell of a column can hold without a match in
        its joined text (a trigger character, a PII shape line by line with `(?m)`), so a
        clean column costs one scan of one string instead of a search per cell."""
        if self._texts is None:
            columns = [column for _key, column in self.raw_columns()]
            separators = max(self.height - 1, 0)
            self._texts = self.rows.select(
                *(pl.col(c).str.join("\n") for c in columns),
                *(pl.col(c).str.len_bytes().max().alias(f"{c}.bytes") for c in columns),
            ).with_columns(
                (pl.col(c).str.count_matches("\n", literal=True) - separators).alias(
                    f"{c}.newlines"
                )
                for c in columns
            )
        return self._texts

    def read_as_blank(self, column: str, where: pl.Series) -> None:
        """From now on, `stripped(column)` is null where `where` holds (a null token)."""
        self._stripped[column] = self.stripped(column).set(where, None)

    def tokens_blanked(self, column: str, tokens: frozenset[str]) -> None:
        """Record that `stripped(column)` holds none of tokens any more."""
        self.blanked_tokens[column] = tokens

    @property
    def height(self) -> int:
        return self.rows.height

    def raw(self, key: str) -> pl.Series:
        """A raw cell column, exactly as staged."""
        return self.rows.get_column(self._column_by_key[key])

    def raw_columns(self) -> list[tuple[str, str]]:
        """(key, frame column) for every raw key, in JSONB order."""
        return [(key, self._column_by_key[key]) for key in self.keys]

    def mapped_fields(self) -> list[tuple[str, str]]:
        """(header, field) pairs of the mapping, in the mapping's order."""
        return list(self.mapping.field_by_header.items())

    def header_of(self, field_name: str) -> str | None:
        return self._header_by_field.get(field_name)

    def display_field(self, name: str | None) -> str | None:
        """What an issue names: the file's column for a mapped field (that is what the user
        can find and fix), otherwise the name as given."""
        return self._header_by_field.get(name or "") or name

    def column_of_field(self, field_name: str) -> str | None:
        header = self._header_by_field.get(field_name)
        return self._column_by_key.get(header) if header is not None else None


def frame_from_rows(
    rows: Sequence[tuple[int, Mapping[str, Any], str | None, bool]],
    mapping: HeaderMapping,
    keys: Iterable[str] = (),
) -> ChunkFrame:
    """A frame from (row_number, raw cells, read_issues JSON text, is_blank) tuples (tests and
    tools; workers load frames straight from PostgreSQL, see `staged_frames`)."""
    ordered = jsonb_key_order([*keys, *(key for _n, raw, _i, _b in rows for key in raw)])
    data: dict[str, Any] = {
        ROW: pl.Series(ROW, [r[0] for r in rows], dtype=pl.Int64),
        BLANK: pl.Series(BLANK, [r[3] for r in rows], dtype=pl.Boolean),
        READ_ISSUES: pl.Series(READ_ISSUES, [r[2] for r in rows], dtype=pl.Utf8),
    }
    for index, key in enumerate(ordered):
        cells = [str(raw.get(key) or "") for _n, raw, _i, _b in rows]
        data[key_column(index)] = pl.Series(key_column(index), cells, dtype=pl.Utf8)
    return ChunkFrame(pl.DataFrame(data), ordered, mapping)
