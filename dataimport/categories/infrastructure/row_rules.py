"""infrastructure rules, one row at a time: the row engine's rules, kept for the golden
comparison with the columnar rules (`rules.py`) until the row engine is deleted."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dataimport.categories.base import RowOutcome
from dataimport.categories.cmdb_export import MAX_CPU_CORES, MAX_MEMORY_GB, MAX_STORAGE_GB
from dataimport.categories.infrastructure.aliases import (
    _BLANK,
    _DISK_FIELD,
    _FALSE,
    _TRUE,
    CUSTOM_PREFIX,
)
from dataimport.issues import Code, Issue, Severity
from dataimport.normalize import (
    hostname_key,
    name_key,
    normalize_ip,
    normalize_os,
    parse_float,
    parse_int,
    parse_memory_gb,
    parse_storage_gb,
    quote_value,
)
from dataimport.rightsizing import recommend_from_samples

# --- one row being validated ---------------------------------------------------------------

Parser = Callable[[str], float]


def _mib(text: str) -> float:
    return parse_storage_gb(text, "MB")


def _gb(text: str) -> float:
    return parse_storage_gb(text, "GB")


def _mb(text: str) -> float:
    return parse_memory_gb(text, "MB")


class _Row:
    """The non-blank cells of one row, the issues found and the custom attributes gathered."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.mapped = frozenset(fields)
        self.cells = {
            field: value.strip()
            for field, value in fields.items()
            if value.strip().lower() not in _BLANK
        }
        self.issues: list[Issue] = []
        self.custom: dict[str, Any] = {}
        # Several rules read one cell (memory sizes utilisation too): parse and report it once.
        self._numbers: dict[str, float | None] = {}

    def text(self, *fields: str) -> str | None:
        for field in fields:
            if field in self.cells:
                return self.cells[field]
        return None

    def error(self, code: Code, field: str | None, message: str) -> None:
        self.issues.append(Issue(code.value, Severity.ERROR, message, field))

    def warn(self, code: Code, field: str | None, message: str) -> None:
        self.issues.append(Issue(code.value, Severity.WARNING, message, field))

    def number(
        self, field: str, parse: Parser = parse_float, maximum: float | None = None, unit: str = ""
    ) -> float | None:
        """The field's value, or None (blank, or invalid: reported once as an error)."""
        if field not in self._numbers:
            self._numbers[field] = self._parse_number(field, parse, maximum, unit)
        return self._numbers[field]

    def _parse_number(
        self, field: str, parse: Parser, maximum: float | None, unit: str
    ) -> float | None:
        raw = self.cells.get(field)
        if raw is None:
            return None
        try:
            value = parse(raw)
        except ValueError as exc:
            self.error(Code.TYPE_ERROR, field, f"{field}: {exc}")
            return None
        if value < 0:
            self.error(Code.CONSTRAINT_ERROR, field, f"{field}: {quote_value(raw)} is negative")
            return None
        if maximum is not None and value > maximum:
            self.error(
                Code.CONSTRAINT_ERROR,
                field,
                f"{field}: {quote_value(raw)} is {value:g}{unit}, above the maximum of "
                f"{maximum:g}{unit}",
            )
            return None
        return value

    def first_number(
        self, candidates: Sequence[tuple[str, Parser]], maximum: float | None, unit: str = ""
    ) -> float | None:
        """Value of the first candidate field that has a cell (later ones are fallbacks)."""
        for field, parse in candidates:
            if field in self.cells:
                return self.number(field, parse, maximum, unit)
        return None

    def percent(self, field: str) -> float | None:
        return self.number(field, parse_float, 100.0, " %")

    def flag(self, field: str) -> bool:
        raw = self.cells.get(field)
        if raw is None or raw.lower() in _FALSE:
            return False
        if raw.lower() in _TRUE:
            return True
        self.warn(Code.UNKNOWN_VALUE, field, f"{field}: {quote_value(raw)} is not true/false")
        return False


def _total(*values: float | None) -> float | None:
    present = [value for value in values if value is not None]
    return round(sum(present), 6) if present else None


def _share_pct(used: float | None, total: float | None) -> float | None:
    return round(used / total * 100.0, 2) if used is not None and total else None


# --- normalisers ---------------------------------------------------------------------------

_POWER_STATES: dict[str, str] = {
    **dict.fromkeys(
        ["poweredon", "on", "running", "started", "active", "up", "powered on"], "powered_on"
    ),
    **dict.fromkeys(
        [
            "poweredoff",
            "off",
            "stopped",
            "shutdown",
            "shut down",
            "deallocated",
            "down",
            "powered off",
        ],
        "powered_off",
    ),
    **dict.fromkeys(["suspended", "paused", "saved"], "suspended"),
}
_UUID_HEX = re.compile(r"[0-9a-f]{32}")
_TIMESTAMP_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d.%m.%Y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
)
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
_EXCEL_SERIAL = re.compile(r"\d{5}(\.\d+)?")  # a workbook date cell read as its serial number


def parse_timestamp(raw: str) -> datetime:
    """Timezone-aware time from ISO 8601, common US/EU layouts or an Excel serial; naive = UTC."""
    text_value = raw.strip()
    if _EXCEL_SERIAL.fullmatch(text_value):
        return _EXCEL_EPOCH + timedelta(days=float(text_value))
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text_value.replace("Z", "+00:00"))
    except ValueError:
        for layout in _TIMESTAMP_FORMATS:
            try:
                parsed = datetime.strptime(text_value, layout)
                break
            except ValueError:
                continue
    if parsed is None:
        raise ValueError(f"{quote_value(raw)} is not a date and time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalize_power_state(raw: str) -> str:
    """powered_on, powered_off or suspended from RVTools/Azure/StratoZone spellings."""
    key = " ".join(re.sub(r"[^a-z]+", " ", raw.lower()).split())
    found = _POWER_STATES.get(key) or _POWER_STATES.get(key.replace(" ", ""))
    if found is None:
        raise ValueError(f"unknown power state {quote_value(raw)}")
    return found


def normalize_vm_uuid(raw: str) -> str:
    """Canonical lower-case 8-4-4-4-12 form; RVTools and vCenter spell it several ways."""
    digits = re.sub(r"[\s{}\-]", "", raw.lower())
    if not _UUID_HEX.fullmatch(digits):
        raise ValueError(f"{quote_value(raw)} is not a UUID")
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _ip_addresses(text_value: str) -> list[str]:
    """Every valid address in a list cell ("10.0.0.1; 10.0.0.2", "a, b"), in order, once."""
    found: list[str] = []
    for token in re.split(r"[,;\s|]+", text_value):
        try:
            address = normalize_ip(token)
        except ValueError:
            continue
        if address not in found:
            found.append(address)
    return found


# --- parts of a machine row ----------------------------------------------------------------


def _identity(row: _Row) -> dict[str, Any]:
    """Name (else host name, else DNS name), host keys, ids and addresses."""
    hostname = row.text("hostname")
    dns_name = row.text("dns_name")
    name = row.text("name") or hostname or dns_name
    if name is None:
        row.error(Code.MISSING_REQUIRED, "name", "no name: VM/server name and host name are empty")
    # RVTools "DNS Name" is the guest's name as the guest reports it; sometimes an address.
    dns_host = dns_name.split(".", 1)[0] if dns_name and hostname_key(dns_name) else None
    fqdn = next((value for value in (dns_name, hostname) if value and "." in value), None)
    if fqdn and hostname_key(fqdn) is None:
        fqdn = None
    # The VM name stands in for the host name when matching: most estates name VMs after hosts.
    key_source = hostname or dns_name or name
    machine_id = row.text("machine_id")
    if machine_id:
        row.custom["machine_id"] = machine_id
    return {
        "name": name,
        "name_key": name_key(name) if name else None,
        "hostname": hostname or dns_host,
        "hostname_key": hostname_key(key_source) if key_source else None,
        "fqdn": fqdn,
        "external_id": row.text("external_id") or machine_id,
        "vm_uuid": _vm_uuid(row),
        "ip_address": _primary_ip(row),
    }


def _vm_uuid(row: _Row) -> str | None:
    raw = row.text("vm_uuid")
    if raw is None:
        return None
    try:
        return normalize_vm_uuid(raw)
    except ValueError as exc:
        row.custom["vm_uuid_raw"] = raw
        row.warn(Code.CONSTRAINT_ERROR, "vm_uuid", f"vm_uuid: {exc}; not used for matching")
        return None


def _primary_ip(row: _Row) -> str | None:
    """The primary address (else the first listed); every address goes to custom attributes."""
    listed = [
        address
        for field in ("ip_list", "ip_list_v6")
        if (cell := row.text(field))
        for address in _ip_addresses(cell)
    ]
    primary: str | None = None
    raw = row.text("ip_address")
    if raw is not None:
        try:
            primary = normalize_ip(raw)
        except ValueError as exc:
            row.warn(Code.CONSTRAINT_ERROR, "ip_address", f"ip_address: {exc}; dropped")
    addresses = list(dict.fromkeys([primary, *listed] if primary else listed))
    if len(addresses) > 1:
        row.custom["ip_addresses"] = addresses
    return primary or (addresses[0] if addresses else None)


def _operating_system(row: _Row, as_of: date) -> dict[str, Any]:
    """VMware Tools' view of the guest wins over the configured guest type (it is observed)."""
    raw_name = row.text("os_name", "os_config", "os_type")
    family, version, past_support = normalize_os(raw_name or "", row.text("os_version"), as_of)
    if raw_name and family != raw_name:
        row.custom["operating_system_raw"] = raw_name
    return {"operating_system": family, "os_version": version, "os_end_of_support": past_support}


def _asset_type(row: _Row) -> str:
    physical = row.flag("is_physical") or "physical" in (row.text("machine_type") or "").lower()
    return "server" if physical else "virtual_machine"


def _capacity(row: _Row, disks: Mapping[str, float]) -> dict[str, Any]:
    """Cores, memory and provisioned/used storage; a 0 is kept (the validator reports it)."""
    cores = row.first_number(
        (("cpu_cores", parse_int), ("cpu_logical_cores", parse_int)), MAX_CPU_CORES, " cores"
    )
    memory = row.first_number(
        (
            ("memory_gb", lambda t: parse_memory_gb(t, "GB")),
            ("memory_mb", _mb),
            ("memory_mib", _mb),
            ("memory_size_mib", _mb),
        ),
        MAX_MEMORY_GB,
        " GB",
    )
    provisioned = row.first_number(
        (
            ("provisioned_gb", _gb),
            ("provisioned_mib", _mib),
            ("disk_capacity_mib", _mib),
            ("vdisk_capacity_mib", _mib),
        ),
        MAX_STORAGE_GB,
        " GB",
    )
    # Guest partitions show what the OS holds; "In Use" is datastore space (thin disks,
    # snapshots, swap), the fallback when the guest view is missing.
    used = row.first_number(
        (("partition_consumed_mib", _mib), ("in_use_mib", _mib), ("used_gb", _gb)),
        MAX_STORAGE_GB,
        " GB",
    )
    return {
        "cpu_cores": int(cores) if cores is not None else None,
        "memory_gb": memory,
        "storage_gb": provisioned if provisioned is not None else disks.get("size_gb"),
        "storage_used_gb": used,
    }


def _azure_disk_totals(row: _Row) -> dict[str, float]:
    """Azure Migrate's per-disk columns summed per measure (size, ops, throughput)."""
    totals: dict[str, float] = {}
    for field in sorted(row.cells):
        match = _DISK_FIELD.fullmatch(field)
        if not match:
            continue
        parse = _gb if match["measure"] == "size_gb" else parse_float
        value = row.number(field, parse)
        if value is not None:
            totals[match["measure"]] = round(totals.get(match["measure"], 0.0) + value, 6)
    return totals


def _utilisation(row: _Row, memory_gb: float | None) -> dict[str, float | None]:
    """Average and peak CPU and memory utilisation, given or derived from used / total."""
    cpu = row.percent("cpu_util")
    cpu_peak = row.percent("cpu_util_peak")
    memory = row.percent("mem_util")
    memory_peak = row.percent("mem_util_peak")
    if memory is None:
        size = row.number("memory_size_mib", _mb) or memory_gb
        memory = _share_pct(row.number("mem_used_mb", _mb), memory_gb)
        if memory is None:
            memory = _share_pct(row.number("memory_active_mib", _mb), size)
    if memory_peak is None:
        memory_peak = _share_pct(row.number("mem_used_mb_peak", _mb), memory_gb)
    return {"cpu": cpu, "cpu_peak": cpu_peak, "memory": memory, "memory_peak": memory_peak}


def _iops(row: _Row, disks: Mapping[str, float]) -> float | None:
    """Read + write operations per second: given, or summed over what the source lists."""
    given = row.number("iops")
    if given is not None:
        return given
    return _total(
        row.number("read_iops"), row.number("write_iops"), disks.get("read_ops"),
        disks.get("write_ops"),
    )  # fmt: skip


def _network_mbps(row: _Row) -> float | None:
    """In + out throughput in Mbit/s from MB/s (Azure), KB/s (AWS) or bytes/s (StratoZone)."""
    given = row.number("network_mbps")
    if given is not None:
        return given
    megabits = [
        _total(row.number("net_in_mb_s"), row.number("net_out_mb_s")),
        _total(row.number("net_in_kb_s"), row.number("net_out_kb_s")),
        _total(row.number("net_in_bytes_s"), row.number("net_out_bytes_s")),
    ]
    for value, factor in zip(megabits, (8.0, 8.0 / 1000, 8.0 / 1_000_000), strict=True):
        if value is not None:
            return round(value * factor, 3)
    return None


def _keep_disk_throughput(row: _Row, disks: Mapping[str, float]) -> None:
    """Disk MB/s has no inventory column; kept as a custom attribute for storage sizing."""
    azure = _total(disks.get("read_mb_s"), disks.get("write_mb_s"))
    aws = _total(row.number("disk_read_kb_s"), row.number("disk_write_kb_s"))
    value = azure if azure is not None else (aws / 1000 if aws is not None else None)
    if value is not None:
        row.custom["disk_throughput_mb_per_s"] = round(value, 3)


def _power_state(row: _Row) -> str | None:
    raw = row.text("power_state")
    if raw is None:
        return None
    try:
        return normalize_power_state(raw)
    except ValueError as exc:
        row.custom["power_state_raw"] = raw
        row.warn(Code.UNKNOWN_VALUE, "power_state", f"power_state: {exc}")
        return None


def _observed_at(row: _Row, *, required: bool) -> str | None:
    """ISO time of the observation; a bad one rejects a sample but only warns on a machine."""
    raw = row.text("observed_at")
    if raw is None:
        if required:
            row.error(Code.MISSING_REQUIRED, "observed_at", "observed_at: a sample needs a time")
        return None
    try:
        return parse_timestamp(raw).isoformat()
    except ValueError as exc:
        if required:
            row.error(Code.TYPE_ERROR, "observed_at", f"observed_at: {exc}")
        else:
            row.warn(Code.TYPE_ERROR, "observed_at", f"observed_at: {exc}; import time used")
        return None


def _custom_attributes(row: _Row) -> dict[str, Any]:
    custom = {
        field.removeprefix(CUSTOM_PREFIX): value
        for field, value in row.cells.items()
        if field.startswith(CUSTOM_PREFIX)
    }
    return {**custom, **row.custom}


# --- the three kinds of row ----------------------------------------------------------------


def _machine_row(row: _Row, as_of: date) -> RowOutcome:
    disks = _azure_disk_totals(row)
    capacity = _capacity(row, disks)
    usage = _utilisation(row, capacity["memory_gb"])
    power_state = _power_state(row)
    # Peaks have no inventory column; rightsizing uses them and they stay visible here.
    peaks = {
        "cpu_utilization_peak_pct": usage["cpu_peak"],
        "memory_utilization_peak_pct": usage["memory_peak"],
    }
    row.custom.update({key: value for key, value in peaks.items() if value is not None})
    _keep_disk_throughput(row, disks)
    asset: dict[str, Any] = {
        **_identity(row),
        "asset_type": _asset_type(row),
        **_operating_system(row, as_of),
        **capacity,
        "cpu_utilization_pct": usage["cpu"],
        "memory_utilization_pct": usage["memory"],
        "iops": _iops(row, disks),
        "network_throughput_mbps": _network_mbps(row),
        "power_state": power_state,
        "host_name": row.text("host_name"),
        "cluster": row.text("cluster"),
        "datacenter": row.text("datacenter"),
        "location": row.text("location"),
        "description": row.text("description"),
        "rightsizing": recommend_from_samples(
            capacity["cpu_cores"],
            capacity["memory_gb"],
            cpu_average=usage["cpu"],
            cpu_peak=usage["cpu_peak"],
            memory_average=usage["memory"],
            memory_peak=usage["memory_peak"],
            powered_off=power_state == "powered_off",
        ),
        "custom_attributes": _custom_attributes(row),
    }
    normalized = {
        "kind": "machine",
        "asset": asset,
        "observed_at": _observed_at(row, required=False),
    }
    return RowOutcome(normalized=normalized, issues=row.issues)


def _template_row(row: _Row) -> RowOutcome:
    """A template is a VM image, not a machine to migrate: kept in staging, never an asset."""
    name = row.text("name") or "(unnamed)"
    row.warn(Code.TEMPLATE_SKIPPED, "template", f"{quote_value(name)} is a template; skipped")
    template = {"name": row.text("name"), "vm_uuid": row.text("vm_uuid")}
    return RowOutcome({"kind": "template", "skip": True, "template": template}, row.issues)


def _performance_row(row: _Row) -> RowOutcome:
    """One StratoZone perfInfo sample; aggregated per machine when the import is linked."""
    machine_id = row.text("machine_id")
    if machine_id is None:
        row.error(Code.MISSING_REQUIRED, "machine_id", "machine_id: a sample needs its machine")
    performance = {
        "cpu_utilization_pct": row.percent("cpu_util"),
        "memory_utilization_pct": row.percent("mem_util"),
        "iops": _iops(row, {}),
        "network_throughput_mbps": _network_mbps(row),
    }
    normalized = {
        "kind": "performance",
        "machine_id": machine_id,
        "observed_at": _observed_at(row, required=True),
        "performance": performance,
    }
    return RowOutcome(normalized=normalized, issues=row.issues)


def _is_performance_layout(mapped: frozenset[str]) -> bool:
    """perfInfo rows: a machine id and a time, no name column (vmInfo has MachineName)."""
    names = {"name", "hostname", "dns_name"}
    return "machine_id" in mapped and "observed_at" in mapped and not mapped & names


def validate_row(fields: Mapping[str, str], as_of: date) -> RowOutcome:
    row = _Row(fields)
    if _is_performance_layout(row.mapped):
        return _performance_row(row)
    if row.flag("template"):
        return _template_row(row)
    return _machine_row(row, as_of)
