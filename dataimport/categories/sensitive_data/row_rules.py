"""sensitive_data rules, one row at a time: the row engine's form, kept for the golden
comparison with the columnar rules (`rules.py`) until the row engine is deleted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dataimport import pii
from dataimport.agents.pii_detector import value_categories
from dataimport.categories.base import RowOutcome
from dataimport.categories.sensitive_data.vocabulary import (
    _HOST_PORT,
    _PLACEHOLDERS,
    _SCOPE_SEPARATORS,
    MAX_RECORD_COUNT,
    _word_key,
    normalize_classification,
    normalize_scope,
    parse_flag,
    parse_record_count,
    store_key,
)
from dataimport.issues import Code, Issue, Severity
from dataimport.normalize import hostname_key, name_key, normalize_ip, split_list

# --- row validation ----------------------------------------------------------------------


class _Row:
    """One row being validated: its non-empty cells and the issues found."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.cells = {field: value.strip() for field, value in fields.items() if value.strip()}
        self.issues: list[Issue] = []

    def get(self, field: str) -> str | None:
        return self.cells.get(field)

    def issue(self, severity: Severity, code: Code, field: str | None, message: str) -> None:
        self.issues.append(Issue(code.value, severity, message, field))


def _host(row: _Row) -> tuple[dict[str, Any], str | None]:
    """The host asset's identity, and an instance name carried in "HOST\\INSTANCE"."""
    raw_host = row.get("hostname")
    ip_address = _ip_address(row, required=raw_host is None)
    instance = None
    host = None
    if raw_host:
        host = _HOST_PORT.sub("", raw_host)
        if "\\" in host:  # SQL Server "HOST\INSTANCE": in an inventory of data stores, the
            host, instance = host.split("\\", 1)  # part after the backslash is the instance
        try:
            ip_address = ip_address or normalize_ip(host)
            host = None if host.strip() == ip_address else host
        except ValueError:
            pass
    name = host or ip_address
    if name is None:
        if not any(issue.is_error for issue in row.issues):
            row.issue(
                Severity.ERROR, Code.MISSING_REQUIRED, "hostname", "host: no host name or IP given"
            )
        return {}, instance
    identity = {
        "name": name,
        "name_key": name_key(name),
        "hostname": host,
        "hostname_key": hostname_key(host) if host else None,
        "ip_address": ip_address,
    }
    return identity, instance or None


def _ip_address(row: _Row, *, required: bool) -> str | None:
    raw = row.get("ip_address")
    if raw is None:
        return None
    try:
        return normalize_ip(raw)
    except ValueError:
        # With a host name the asset is still known: the address is dropped, the row kept.
        severity = Severity.ERROR if required else Severity.WARNING
        row.issue(severity, Code.CONSTRAINT_ERROR, "ip_address", "ip_address: not a valid address")
        return None


def _classification(row: _Row) -> str | None:
    raw = row.get("classification")
    if raw is None:
        return None
    try:
        return normalize_classification(raw)
    except ValueError:
        levels = ", ".join(pii.CLASSIFICATIONS)
        row.issue(
            Severity.WARNING,
            Code.UNKNOWN_VALUE,
            "classification",
            f"classification: not a known label (expected one of {levels}); left unset",
        )
        return None


def _scopes(row: _Row) -> list[str]:
    raw = row.get("compliance_scopes")
    if raw is None:
        return []
    scopes: set[str] = set()
    unknown = 0
    for part in _SCOPE_SEPARATORS.split(raw):
        item = " ".join(part.split())
        if not item or _word_key(item) in _PLACEHOLDERS:
            continue
        scope = normalize_scope(item)
        if scope is None:
            unknown += 1
        scopes.add(scope or item)
    if unknown:
        row.issue(
            Severity.WARNING,
            Code.UNKNOWN_VALUE,
            "compliance_scopes",
            f"compliance_scopes: {unknown} scope(s) not recognised; kept as given",
        )
    return sorted(scopes)


def _flag(row: _Row, field: str) -> bool | None:
    raw = row.get(field)
    if raw is None:
        return None
    try:
        return parse_flag(raw)
    except ValueError:
        row.issue(
            Severity.WARNING,
            Code.UNKNOWN_VALUE,
            field,
            f"{field}: not a yes/no value or an encryption mechanism; left unknown",
        )
        return None


def _record_count(row: _Row) -> int | None:
    raw = row.get("record_count")
    if raw is None or _word_key(raw) in _PLACEHOLDERS:
        return None
    try:
        count = parse_record_count(raw)
    except ValueError:
        row.issue(
            Severity.ERROR,
            Code.TYPE_ERROR,
            "record_count",
            "record_count: not a number (expected e.g. 1200000, 1,200,000 or 1.2M)",
        )
        return None
    if not 0 <= count <= MAX_RECORD_COUNT:
        row.issue(
            Severity.ERROR,
            Code.CONSTRAINT_ERROR,
            "record_count",
            f"record_count: outside 0 … {MAX_RECORD_COUNT:.0e}",
        )
        return None
    return count


def _pii_categories(columns: list[str], categories: list[str], samples: str | None) -> list[str]:
    """From column names and declared data categories, and from sample values."""
    found: set[str] = set()
    for item in (*columns, *categories):
        found |= pii.detect_column(item)
    if samples:
        found |= value_categories(samples)
    return sorted(found)


def _store(row: _Row, instance: str | None) -> dict[str, Any]:
    store = row.get("store") or instance
    database, schema, table = row.get("database"), row.get("schema"), row.get("table")
    if not (store or database or table):
        row.issue(
            Severity.WARNING,
            Code.INCOMPLETE_ROW,
            "store",
            "no store, database or table: the sensitivity applies to the host as a whole",
        )
    columns = split_list(row.get("columns") or "")
    categories = split_list(row.get("data_categories") or "")
    return {
        "key": store_key(store, database, schema, table),
        "store": store,
        "store_type": row.get("store_type"),
        "database": database,
        "schema": schema,
        "table": table,
        "columns": columns,
        "data_categories": categories,
        "classification": _classification(row),
        "compliance_scopes": _scopes(row),
        "pii_categories": _pii_categories(columns, categories, row.get("sample_values")),
        "encryption_at_rest": _flag(row, "encryption_at_rest"),
        "encryption_in_transit": _flag(row, "encryption_in_transit"),
        "record_count": _record_count(row),
        "owner": row.get("owner"),
        "location": row.get("location"),
    }


def validate_row(fields: Mapping[str, str]) -> RowOutcome:
    row = _Row(fields)
    asset, instance = _host(row)
    store = _store(row, instance)
    return RowOutcome(normalized={"asset": asset, "store": store}, issues=row.issues)
