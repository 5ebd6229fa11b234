"""The `cmdb_export` category: CMDB rows (ServiceNow cmdb_ci_server, home-grown CSVs) to assets.

Headers map through an alias table onto category fields; `validate_row` turns one row's cells
into `{"asset": {<Asset column>: value, ...}, "dependencies": [names]}` plus issues. A field
named after its unit ("memory_mb", "memory_gb") says what a bare number in that column means.
Mapped fields without an Asset column land in `custom_attributes`, as do ServiceNow custom
columns (`u_*`), which map to fields named `custom.<header key>`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import inventory
from dataimport.agents.base import ValidationAgent
from dataimport.categories.base import AliasTable, EnrichCounts, ImportScope, RowOutcome
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
from dataimport.readers.plan import SheetPlan

CUSTOM_PREFIX = "custom."

# Plausibility limits: beyond these a value is a unit or typing mistake, not a machine.
MAX_CPU_CORES = 4096
MAX_MEMORY_GB = 64 * 1024  # 64 TB
MAX_STORAGE_GB = 64 * 1024 * 1024  # 64 PB, room for whole storage arrays

_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "asset_name", "server_name", "ci_name", "display_name", "device_name"),
    "external_id": ("sys_id", "asset_id", "ci_id", "external_id", "cmdb_id"),
    "asset_type": (
        "sys_class_name",
        "type",
        "asset_type",
        "ci_type",
        "ci_class",
        "class",
        "device_type",
        "server_type",
    ),
    "hostname": ("host_name", "hostname", "computer_name", "host", "server_hostname"),
    "fqdn": ("fqdn", "dns_name", "fully_qualified_domain_name"),
    "dns_domain": ("dns_domain", "domain", "domain_name"),
    "ip_address": (
        "ip_address",
        "ip",
        "ip_addr",
        "primary_ip",
        "primary_ip_address",
        "ipv4",
        "ipv4_address",
        "ip_addresses",
    ),
    "operating_system": ("os", "operating_system", "os_name", "operating_system_name", "guest_os"),
    "os_version": ("os_version", "operating_system_version", "os_release"),
    "os_service_pack": ("os_service_pack", "service_pack"),
    # ServiceNow cpu_count counts cores as far as sizing is concerned.
    "cpu_cores": (
        "cpu_count",
        "cpu",
        "cpus",
        "cores",
        "cpu_cores",
        "core_count",
        "total_cores",
        "vcpu",
        "vcpus",
        "num_cpu",
        "num_cpus",
        "number_of_cpus",
    ),
    "cpu_core_count": ("cpu_core_count",),
    # ServiceNow `ram` is in MB.
    "memory_mb": ("ram", "ram_mb", "ram_mib", "memory_mb", "memory_mib", "mem_mb"),
    "memory_gb": ("memory", "memory_gb", "memory_gib", "ram_gb", "ram_gib", "mem", "mem_gb"),
    # ServiceNow `disk_space` is in GB.
    "storage_gb": (
        "disk_space",
        "disk_space_gb",
        "storage",
        "storage_gb",
        "storage_gib",
        "disk",
        "disk_gb",
        "disk_size",
        "disk_size_gb",
        "total_storage",
        "total_storage_gb",
    ),
    "storage_mb": ("storage_mb", "disk_mb", "disk_space_mb", "disk_size_mb"),
    "environment": ("environment", "env", "used_for", "u_environment"),
    "criticality": (
        "criticality",
        "business_criticality",
        "tier",
        "service_tier",
        "u_criticality",
        "u_business_criticality",
    ),
    "owner": (
        "owner",
        "owned_by",
        "application_owner",
        "app_owner",
        "business_owner",
        "asset_owner",
        "system_owner",
    ),
    "technical_owner": ("technical_owner", "tech_owner", "it_owner"),
    "managed_by": ("managed_by",),
    "assigned_to": ("assigned_to",),
    "support_group": ("support_group", "assignment_group", "support_team"),
    "business_unit": ("business_unit", "bu", "division", "line_of_business", "u_business_unit"),
    "department": ("department", "dept"),
    "company": ("company",),
    "location": ("location", "datacenter", "data_center", "data_centre", "site", "dc"),
    "operational_status": ("operational_status", "status"),
    "install_status": ("install_status",),
    "serial_number": ("serial_number", "serial", "serial_no"),
    "asset_tag": ("asset_tag",),
    "model": ("model_id", "model", "model_number"),
    "manufacturer": ("manufacturer", "vendor", "make"),
    "description": ("description", "short_description"),
    "comments": ("comments", "notes", "remarks"),
    "virtual": ("virtual", "is_virtual"),
    "dependencies": (
        "dependencies",
        "dependency",
        "depends_on",
        "depends",
        "dependent_on",
        "upstream",
        "upstream_dependencies",
        "u_depends_on",
    ),
}

# Mapped fields that have no Asset column: kept verbatim in custom_attributes.
CUSTOM_FIELDS = (
    "dns_domain",
    "os_service_pack",
    "cpu_core_count",
    "technical_owner",
    "managed_by",
    "assigned_to",
    "support_group",
    "department",
    "company",
    "install_status",
    "asset_tag",
    "model",
    "manufacturer",
    "comments",
    "virtual",
)

# When the Asset column's own field is empty, these fields stand in, in order.
_FALLBACKS: dict[str, tuple[str, ...]] = {
    "owner": ("owner", "technical_owner", "managed_by", "assigned_to"),
    "business_unit": ("business_unit", "department"),
    "operational_status": ("operational_status", "install_status"),
    "description": ("description", "comments"),
}

_TRUE_WORDS = frozenset({"true", "yes", "y", "1", "t"})


def _servicenow_custom(key: str) -> str | None:
    """Any other ServiceNow custom column (u_*) is a custom field."""
    return CUSTOM_PREFIX + key if key.startswith("u_") and len(key) > 2 else None


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
    if asset_type == "server" and (row.text("virtual") or "").lower() in _TRUE_WORDS:
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
    values = {column: row.text(*fields) for column, fields in _FALLBACKS.items()}
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


class CmdbExportCategory:
    """CMDB exports: one row per configuration item, declared dependencies in one column."""

    name = "cmdb_export"
    aliases: Mapping[str, str] = AliasTable(_FIELD_ALIASES, _servicenow_custom)
    # Any one identifying column is enough: rows fall back from name to hostname to fqdn.
    required_fields = frozenset({"name", "hostname", "fqdn"})
    agents: Sequence[ValidationAgent] = ()
    sheet_plan: SheetPlan | None = None
    masks_values = False

    def __init__(self, as_of: date | None = None) -> None:
        self._as_of = as_of  # fixed date for tests; None means today, evaluated per row

    def validate_row(self, fields: Mapping[str, str]) -> RowOutcome:
        row = _RowCheck(fields)
        identity = _identity(row)
        asset: dict[str, Any] = {
            **identity,
            "ip_address": _ip_address(row),
            **_classification(row),
            **_operating_system(row, self._as_of or date.today()),
            **_capacity(row),
            **_business(row),
        }
        dependencies = _dependencies(row, identity)
        asset["custom_attributes"] = _custom_attributes(row)
        return RowOutcome(
            normalized={"asset": asset, "dependencies": dependencies}, issues=row.issues
        )

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        # The name key is what the inventory is unique on, so two rows sharing it are one asset.
        asset = normalized.get("asset") or {}
        key = asset.get("name_key")
        return str(key) if key else None

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        return await inventory.upsert_assets(conn, scope)

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        return await inventory.link_declared_dependencies(conn, scope)


CATEGORY = CmdbExportCategory()
