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

from collections.abc import Mapping
from typing import Any

from dataimport import pii
from dataimport.agents.base import RowContext
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
