"""pii_detector: which kinds of personal data a data store holds, from names and from values.

A sensitive-data row describes one store or table. The kinds of personal data it holds come
from what the row declares (its column names and data categories, see `pii.detect_column`)
and from what its cells show (sample values, notes, any unmapped column, see
`pii.detect_value`). The detector adds everything it finds to the row's
`normalized["store"]["pii_categories"]`, which enrichment unions onto the asset, and reports
kinds seen in values that the row does not declare: the inventory under-states what the store
holds. Findings name the column and the kind, never the value.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from dataimport import pii
from dataimport.agents.base import RowContext
from dataimport.engine.cells import FieldCells
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.text import per_distinct, py_strip
from dataimport.issues import Code, Issue, Severity
from dataimport.normalize import split_list

# Mapped fields that describe the store rather than its content: an owner's e-mail address
# or the host's IP is not personal data held in the store.
METADATA_FIELDS = frozenset(
    {
        "hostname",
        "ip_address",
        "store",
        "store_type",
        "database",
        "schema",
        "table",
        "classification",
        "compliance_scopes",
        "encryption_at_rest",
        "encryption_in_transit",
        "record_count",
        "owner",
        "location",
    }
)
# Mapped fields whose text declares content (names), rather than showing it.
DECLARING_FIELDS = ("columns", "data_categories")


def declared_categories(fields: Mapping[str, str]) -> frozenset[str]:
    """PII categories the row's column names and data categories declare."""
    found: set[str] = set()
    for field in DECLARING_FIELDS:
        for item in split_list(fields.get(field) or ""):
            found |= pii.detect_column(item)
    return frozenset(found)


def value_categories(value: str, hints: frozenset[str] = frozenset()) -> frozenset[str]:
    """PII categories in a cell, also when it lists several values ("a@x.com; b@y.org")."""
    found = set(pii.detect_value(value, hints))
    if not found and any(separator in value for separator in ",;|\n"):
        for item in split_list(value):
            found |= pii.detect_value(item, hints)
    return frozenset(found)


class PiiDetector:
    """Named rule set `pii_detector`: column names, data categories and cell values."""

    name = "pii_detector"

    def examine(self, row: RowContext) -> list[Issue]:
        declared = declared_categories(row.fields)
        metadata = {text for field, text in row.fields.items() if field in METADATA_FIELDS}
        seen: set[str] = set()
        issues: list[Issue] = []
        for header, cell in row.raw.items():
            value = str(cell or "").strip()
            if not value or value in metadata:
                continue
            kinds = value_categories(value, pii.detect_column(header))
            seen |= kinds
            undeclared = kinds - declared
            if undeclared:
                issues.append(self._undeclared(header, undeclared))
        self._record(row.normalized, declared | seen)
        return issues

    def examine_frame(self, frame: ChunkFrame, findings: Findings) -> None:
        examine_frame(frame, findings)

    def _undeclared(self, header: str, kinds: frozenset[str]) -> Issue:
        message = (
            f"values in column {header!r} look like {', '.join(sorted(kinds))} data that the "
            "row's column names and data categories do not declare"
        )
        return Issue(Code.UNDECLARED_PII.value, Severity.WARNING, message, header, self.name)

    @staticmethod
    def _record(normalized: dict[str, Any], found: set[str] | frozenset[str]) -> None:
        """Union the findings into the store's pii_categories (a new list, never in place)."""
        store = normalized.get("store")
        if not isinstance(store, dict) or not found:
            return
        known = set(store.get("pii_categories") or ())
        normalized["store"] = {**store, "pii_categories": sorted(known | set(found))}


# --- the columnar form -------------------------------------------------------------------

# Every cell `value_categories` can flag passes this search: `pii.CANDIDATE`, or the length a
# codice fiscale needs (a list item is a substring of the cell, so the cell passes too).
_CANDIDATE = pii.CANDIDATE.pattern
# Plain IPv4 addresses and ISO dates hold nothing without a column hint (no separators either).
_IP_OR_ISO_DATE = r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9]{4}-[0-9]{2}-[0-9]{2})$"
_KINDS = pl.List(pl.Utf8)


@dataclass(frozen=True, slots=True)
class FramePii:
    """What the detector sees in one chunk: per row the declared kinds, and per raw column
    the kinds its cells show (sorted; null where none, or where the cell is metadata)."""

    declared: pl.Series
    cells: list[tuple[str, pl.Series]]

    def seen(self) -> pl.Series:
        """Per row, every kind seen in its cells (sorted, possibly empty)."""
        if not self.cells:
            return pl.repeat([], self.declared.len(), dtype=_KINDS, eager=True)
        lists = [kinds.fill_null(pl.lit([], dtype=_KINDS)) for _key, kinds in self.cells]
        frame = pl.DataFrame([kinds.rename(f"c{i}") for i, kinds in enumerate(lists)])
        union = pl.concat_list(pl.all()).list.unique().list.sort()
        return frame.select(union.alias("seen")).to_series()


# One chunk's FramePii, shared by the category's rules (they add `seen` to pii_categories,
# as `_record` does) and `examine_frame` (the findings), computed once per chunk.
_BY_CHUNK: weakref.WeakKeyDictionary[Findings, FramePii] = weakref.WeakKeyDictionary()


def frame_pii(frame: ChunkFrame, findings: Findings) -> FramePii:
    found = _BY_CHUNK.get(findings)
    if found is None:
        found = _frame_pii(frame)
        _BY_CHUNK[findings] = found
    return found


def _frame_pii(frame: ChunkFrame) -> FramePii:
    cells = FieldCells(frame)
    declared_by = pl.DataFrame([cells(field).rename(field) for field in DECLARING_FIELDS])

    def declared_of(*texts: str | None) -> tuple[list[str]]:
        fields = {field: text or "" for field, text in zip(DECLARING_FIELDS, texts, strict=True)}
        return (sorted(declared_categories(fields)),)

    declared = per_distinct(declared_by, list(DECLARING_FIELDS), declared_of, {"d": _KINDS})["d"]
    metadata = [
        cells(field) for _header, field in frame.mapped_fields() if field in METADATA_FIELDS
    ]
    found: list[tuple[str, pl.Series]] = []
    for key, column in frame.raw_columns():
        values = frame.rows.get_column(column)
        hints = pii.detect_column(key)
        length = values.str.len_chars()
        candidates = (length >= pii.MIN_LEN) & (values.str.contains(_CANDIDATE) | (length >= 16))
        if not hints:
            candidates = candidates & ~values.str.contains(_IP_OR_ISO_DATE)
        if not candidates.any():
            continue

        def exact(value: str, hints: frozenset[str] = hints) -> tuple[list[str] | None]:
            return (sorted(value_categories(value.strip(), hints)) or None,)

        kinds = per_distinct(frame.rows, [column], exact, {"k": _KINDS}, candidates)["k"]
        if kinds.null_count() == kinds.len():
            continue
        found.append((key, _not_metadata(values, kinds, metadata)))
    return FramePii(declared, found)


def _not_metadata(values: pl.Series, kinds: pl.Series, metadata: list[pl.Series]) -> pl.Series:
    """kinds, null where the cell's text is the text of one of the row's metadata fields."""
    if not metadata:
        return kinds
    frame = pl.DataFrame([values.rename("v"), kinds.rename("k")])
    frame = frame.with_columns(m.rename(f"m{i}") for i, m in enumerate(metadata))
    stripped = py_strip(pl.col("v"))
    is_metadata = pl.any_horizontal(
        (stripped == pl.col(f"m{i}")).fill_null(False) for i in range(len(metadata))
    )
    return frame.select(pl.when(~is_metadata).then(pl.col("k")).alias("k")).to_series()


def examine_frame(frame: ChunkFrame, findings: Findings) -> None:
    """The columnar form of `PiiDetector.examine`: one finding per cell whose kinds the row
    does not declare, in the row's column order."""
    found = frame_pii(frame, findings)
    declared = found.declared.list.join(",")
    for key, kinds in found.cells:
        field = frame.display_field(key)
        keyed = pl.DataFrame([kinds.list.join(",").rename("k"), declared.rename("d")])

        def issue(seen: str, declared: str, key: str = key, field: str | None = field) -> tuple:
            undeclared = set(seen.split(",")) - set(filter(None, declared.split(",")))
            if not undeclared:
                return (None,)
            found = PiiDetector()._undeclared(key, frozenset(undeclared))
            return (issue_json(found.code, found.severity, found.message, field, found.agent),)

        issues = per_distinct(keyed, ["k", "d"], issue, {"i": pl.Utf8}, kinds.is_not_null())
        findings.add(issues["i"], Severity.WARNING)
