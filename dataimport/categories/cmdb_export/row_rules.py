"""cmdb_export row rules: the row-at-a-time engine, kept until the columnar rules replace it.

`tests/test_columnar_golden.py` compares these with `rules.py` row by row; once every category
has passed that comparison this module is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from dataimport.categories.base import RowOutcome
from dataimport.categories.cmdb_export.aliases import (
    CUSTOM_FIELDS,
    CUSTOM_PREFIX,
    FALLBACKS,
    MAX_CPU_CORES,
    MAX_MEMORY_GB,
    MAX_STORAGE_GB,
    TRUE_WORDS,
)
from dataimport.issues import Code, Issue, Severity
from dataimport.normalize import (
    hostname_key,
    name_key,
    normalize_asset_type,
    normalize_criticality,
    normalize_environment,
    normalize_ip,
    normalize_os,
    os_support_end,
    parse_int,
    parse_memory_gb,
    parse_storage_gb,
    quote_value,
    split_list,
)


class _RowCheck:
    """One row being validated: its non-empty cells, the issues found, the custom attributes."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.cells = {field: cell for field, text in fields.items() if (cell := text.strip())}
        self.issues: list[Issue] = []
        self.custom: dict[str, Any] = {}

    def text(self, *fields: str) -> str | None:
        """Text of the first of fields that has a value."""
        cells = self.cells
        for field in fields:
            cell = cells.get(field)
            if cell is not None:
                return cell
        return None

    def error(self, code: Code, field: str | None, message: str) -> None:
        self.issues.append(Issue(code.value, Severity.ERROR, message, field))

    def warn(self, code: Code, field: str | None, message: str) -> None:
        self.issues.append(Issue(code.value, Severity.WARNING, message, field))


def _identity(row: _RowCheck) -> dict[str, Any]:
    """Name (falling back to host name, then the FQDN's short name) and the natural keys."""
    hostname = row.text("hostname")
    fqdn = row.text("fqdn")
    domain = row.text("dns_domain")
    if fqdn is None and hostname and "." in hostname:
        fqdn = hostname  # exports put the FQDN in host_name more often than not
    elif fqdn is None and hostname and domain:
        fqdn = f"{hostname}.{domain.strip('.')}"
    name = row.text("name") or hostname or (fqdn.split(".", 1)[0] if fqdn else None)
    if name is None:
        row.error(Code.MISSING_REQUIRED, "name", "no name: name, hostname and fqdn are all empty")
    host_source = hostname or fqdn
    return {
        "name": name,
        "name_key": name_key(name) if name else None,
        "external_id": row.text("external_id"),
        "hostname": hostname,
        "hostname_key": hostname_key(host_source) if host_source else None,
        "fqdn": fqdn,
    }


def _ip_address(row: _RowCheck) -> str | None:
    raw = row.text("ip_address")
    if raw is None:
        return None
    try:
        return normalize_ip(raw)
    except ValueError as exc:
        row.error(Code.CONSTRAINT_ERROR, "ip_address", f"ip_address: {exc}")
        return None


def _vocabulary(row: _RowCheck, field: str, normalizer: Callable[[str], str | None]) -> str | None:
    """A controlled value; an unknown one is a warning and its raw text is kept."""
    raw = row.text(field)
    if raw is None:
        return None
    try:
        return normalizer(raw)
    except ValueError as exc:
        row.custom[f"{field}_raw"] = raw
        row.warn(
            Code.UNKNOWN_VALUE,
            field,
            f"{field}: {exc}; kept as custom_attributes.{field}_raw",
        )
        return None


def _classification(row: _RowCheck) -> dict[str, Any]:
    asset_type = _vocabulary(row, "asset_type", normalize_asset_type) or "server"
    # ServiceNow keeps VMs in the server classes and flags them with `virtual`.
    if asset_type == "server" and (row.text("virtual") or "").lower() in TRUE_WORDS:
        asset_type = "virtual_machine"
    return {
        "asset_type": asset_type,
        "environment": _vocabulary(row, "environment", normalize_environment),
        "criticality": _vocabulary(row, "criticality", normalize_criticality),
    }


def _operating_system(row: _RowCheck, as_of: date) -> dict[str, Any]:
    raw_name = row.text("operating_system")
    family, version, past_support = normalize_os(raw_name or "", row.text("os_version"), as_of)
    if raw_name and family != raw_name:
        row.custom["operating_system_raw"] = raw_name  # keeps the edition ("Enterprise")
    if past_support and family:
        ended = os_support_end(family, version)
        when = f" (ended {ended.isoformat()})" if ended else ""
        label = f"{family} {version}" if version else family
        row.warn(
            Code.END_OF_SUPPORT,
            "operating_system",
            f"operating_system: {label} is past end of vendor support{when}",
        )
    return {"operating_system": family, "os_version": version, "os_end_of_support": past_support}


def _checked_number(
    row: _RowCheck,
    candidates: tuple[tuple[str, Callable[[str], float]], ...],
    maximum: float,
    unit: str,
) -> float | None:
    """Parse the first present field of candidates; type and plausibility errors reported."""
    for field, parse in candidates:
        raw = row.text(field)
        if raw is None:
            continue
        try:
            value = parse(raw)
        except ValueError as exc:
            row.error(Code.TYPE_ERROR, field, f"{field}: {exc}")
            return None
        if value < 0:
            row.error(Code.CONSTRAINT_ERROR, field, f"{field}: {quote_value(raw)} is negative")
            return None
        if value > maximum:
            row.error(
                Code.CONSTRAINT_ERROR,
                field,
                f"{field}: {quote_value(raw)} is {value:g} {unit}, "
                f"above the plausible maximum of {maximum:g} {unit}",
            )
            return None
        # CMDB exports write 0 for "not discovered": unknown, not a zero-sized machine.
        return value or None
    return None


def _capacity(row: _RowCheck) -> dict[str, Any]:
    cores = _checked_number(row, (("cpu_cores", parse_int),), MAX_CPU_CORES, "cores")
    memory = _checked_number(
        row,
        (
            ("memory_gb", lambda text: parse_memory_gb(text, "GB")),
            ("memory_mb", lambda text: parse_memory_gb(text, "MB")),
        ),
        MAX_MEMORY_GB,
        "GB",
    )
    storage = _checked_number(
        row,
        (
            ("storage_gb", lambda text: parse_storage_gb(text, "GB")),
            ("storage_mb", lambda text: parse_storage_gb(text, "MB")),
        ),
        MAX_STORAGE_GB,
        "GB",
    )
    return {
        "cpu_cores": int(cores) if cores is not None else None,
        "memory_gb": memory,
        "storage_gb": storage,
    }


def _business(row: _RowCheck) -> dict[str, Any]:
    values = {column: row.text(*fields) for column, fields in FALLBACKS.items()}
    values["location"] = row.text("location")
    values["serial_number"] = row.text("serial_number")
    return values


def _custom_attributes(row: _RowCheck) -> dict[str, Any]:
    custom = {field: row.cells[field] for field in CUSTOM_FIELDS if field in row.cells}
    for field, text in row.cells.items():
        if field.startswith(CUSTOM_PREFIX):
            custom[field.removeprefix(CUSTOM_PREFIX)] = text
    return {**custom, **row.custom}


def _dependencies(row: _RowCheck, identity: Mapping[str, Any]) -> list[str]:
    """Declared dependency names, without the asset itself."""
    raw = row.text("dependencies")
    if raw is None:
        return []
    own = {name_key(value) for key in ("name", "hostname", "fqdn") if (value := identity[key])}
    kept: list[str] = []
    for item in split_list(raw):
        target = " ".join(item.split())
        if name_key(target) in own:
            row.warn(
                Code.SELF_DEPENDENCY,
                "dependencies",
                f"dependencies: {quote_value(target)} is the asset itself; dropped",
            )
        else:
            kept.append(target)
    return kept


def validate_row(fields: Mapping[str, str], as_of: date) -> RowOutcome:
    row = _RowCheck(fields)
    identity = _identity(row)
    asset: dict[str, Any] = {
        **identity,
        "ip_address": _ip_address(row),
        **_classification(row),
        **_operating_system(row, as_of),
        **_capacity(row),
        **_business(row),
    }
    dependencies = _dependencies(row, identity)
    asset["custom_attributes"] = _custom_attributes(row)
    return RowOutcome(normalized={"asset": asset, "dependencies": dependencies}, issues=row.issues)
