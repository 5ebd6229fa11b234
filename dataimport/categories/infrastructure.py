"""The `infrastructure` category: VM and server inventories with capacity and performance.

Accepted layouts, told apart by their headers (one alias table serves them all):
- RVTools: the XLSX (vInfo joined with vCPU, vMemory, vDisk, vPartition, vNetwork through
  `sheet_plan`; companion cells arrive as "<sheet>.<column>") or the vInfo tab as CSV. Old
  ("Provisioned MB", "In Use MB") and new ("… MiB") spellings mean the same binary unit.
  Columns RVTools does not define are vCenter custom attributes: they land in
  `custom_attributes`; standard vInfo columns nobody sizes on stay unmapped.
- Azure Migrate import CSV ("Server name*", "Cores*", "Memory (In MB)*", per-disk columns
  "Disk N …", summed over the disks).
- AWS Migration Hub import template ("VMware.VMName", "CPU.UsagePct.Avg", "RAM.TotalSizeInMB").
- StratoZone vmInfo (one row per machine) and perfInfo (time series, one row per machine and
  sample, matched to machines by MachineId; never creates assets).

Units: memory and storage in GB (binary, as the rest of the inventory); utilisation in %;
IOPS as read + write operations per second; network throughput in megabits per second
(in + out; byte rates are decimal, as network rates are: 1 MB/s = 8 Mbit/s).

Memory utilisation for RVTools comes from vMemory "Active" / "Size MiB" (or vInfo "Active
Memory" / "Memory"): Active is what the guest touched recently, the working set sizing needs;
"Consumed" counts every page the host ever backed (guest caches, zeroed pages) and would
overstate nearly every VM, so it is kept as a custom attribute only.

Precedence (DESIGN §6): identity and business fields only fill blanks (CMDB wins them);
performance and placement fields are taken when the row's observation is at least as new as
the asset's `performance_observed_at` (a row without a timestamp counts as observed at import
time); older data only fills blanks. Templates are skipped with a warning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.agents.base import ValidationAgent
from dataimport.agents.infrastructure_validator import (
    InfrastructureValidator,
    flag_shared_vm_uuids,
)
from dataimport.asset_resolution import resolve_assets, scope_params
from dataimport.categories.base import AliasTable, EnrichCounts, ImportScope, RowOutcome
from dataimport.categories.cmdb_export import MAX_CPU_CORES, MAX_MEMORY_GB, MAX_STORAGE_GB
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
from dataimport.readers.plan import SheetPlan
from dataimport.rightsizing import recommend_from_samples

CUSTOM_PREFIX = "custom."
RVTOOLS_COMPANIONS = ("vCPU", "vMemory", "vDisk", "vPartition", "vNetwork")

_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    # identity
    "name": (
        "vm",
        "vm_name",
        "vmname",
        "name",
        "server_name",
        "servername",
        "machinename",
        "machine_name",
        "vmware_vmname",
        "display_name",
    ),
    "hostname": ("hostname", "host_name", "computer_name", "guest_hostname"),
    "dns_name": ("dns_name", "fqdn"),
    "external_id": ("externalid", "external_id", "server_id"),
    "machine_id": ("machineid", "machine_id"),
    "vm_uuid": ("vm_uuid", "vmuuid", "uuid", "bios_uuid"),
    "ip_address": ("primary_ip_address", "primaryipaddress", "ipaddress", "ip_address", "ip"),
    "ip_list": ("ip_addresses", "ipaddresslistsemicolondelimited", "vnetwork_ipv4_address"),
    "ip_list_v6": ("vnetwork_ipv6_address",),
    # operating system and kind of machine
    "os_name": ("os_according_to_the_vmware_tools", "os_name", "osname", "operating_system"),
    "os_config": ("os_according_to_the_configuration_file", "guest_os"),
    "os_type": ("ostype", "os_type"),
    "os_version": ("os_version", "osversion"),
    "template": ("template", "is_template"),
    "is_physical": ("isphysical", "is_physical"),
    "machine_type": ("machine_type", "server_type"),
    # placement and business context
    "power_state": ("powerstate", "power_state", "machinestatus", "vm_power_state"),
    "host_name": ("host", "esx_host", "esxi_host", "vm_host"),
    "cluster": ("cluster", "cluster_name"),
    "datacenter": ("datacenter", "data_center", "datacentre"),
    "location": ("hostinglocation", "hosting_location", "location"),
    "description": ("annotation", "description", "notes"),
    # capacity
    "cpu_cores": (
        "cpus",
        "cores",
        "cpu_cores",
        "allocatedprocessorcorecount",
        "cpu_numberofcores",
        "vcpus",
        "vcpu",
        "num_cpu",
    ),
    "cpu_logical_cores": ("cpu_numberoflogicalcores",),
    "memory_mib": ("memory", "memory_mib"),  # RVTools vInfo "Memory" is MiB
    "memory_mb": ("memory_in_mb", "ram_totalsizeinmb", "memory_mb", "ram_mb"),
    "memory_gb": ("memorygib", "memory_gb", "memory_gib", "ram_gb"),
    "memory_size_mib": ("vmemory_size_mib", "vmemory_size_mb"),
    "memory_active_mib": ("vmemory_active", "active_memory"),
    "provisioned_mib": ("provisioned_mib", "provisioned_mb"),
    "provisioned_gb": ("totaldiskallocatedgib", "provisioned_gb", "storage_gb", "total_disk_gb"),
    "disk_capacity_mib": ("total_disk_capacity_mib", "total_disk_capacity_mb"),
    "vdisk_capacity_mib": ("vdisk_capacity_mib", "vdisk_capacity_mb"),
    "in_use_mib": ("in_use_mib", "in_use_mb"),
    "used_gb": ("totaldiskusedgib", "storage_used_gb", "used_storage_gb", "used_gb"),
    "partition_consumed_mib": ("vpartition_consumed_mib", "vpartition_consumed_mb"),
    # utilisation
    "cpu_util": (
        "cpu_usage",
        "cpu_utilization_percentage",
        "cpuutilizationpercentage",
        "cpu_usagepct_avg",
        "cpu_utilization",
        "cpu_utilization_pct",
    ),
    "cpu_util_peak": ("cpu_usagepct_max", "cpu_utilization_peak", "cpu_utilization_peak_pct"),
    "mem_util": (
        "memory_utilization_percentage",
        "memoryutilizationpercentage",
        "memory_utilization",
        "memory_utilization_pct",
        "memory_usage",
    ),
    "mem_util_peak": ("memory_utilization_peak", "memory_utilization_peak_pct"),
    "mem_used_mb": ("ram_usedsizeinmb_avg",),
    "mem_used_mb_peak": ("ram_usedsizeinmb_max",),
    # disk and network activity
    "iops": ("iops", "total_iops"),
    "read_iops": ("diskreadopspersecond_avg", "diskreadoperationspersec"),
    "write_iops": ("diskwriteopspersecond_avg", "diskwriteoperationspersec"),
    "disk_read_kb_s": ("diskreadspersecondinkb_avg",),
    "disk_write_kb_s": ("diskwritespersecondinkb_avg",),
    "network_mbps": ("network_throughput_mbps", "network_mbps"),
    "net_in_mb_s": ("network_in_throughput",),
    "net_out_mb_s": ("network_out_throughput",),
    "net_in_kb_s": ("networkreadspersecondinkb_avg",),
    "net_out_kb_s": ("networkwritespersecondinkb_avg",),
    "net_in_bytes_s": ("networkbytespersecreceived",),
    "net_out_bytes_s": ("networkbytespersecsent",),
    "observed_at": ("timestamp", "time_stamp", "observed_at", "collected_at", "sample_time"),
    # known columns kept verbatim, under one name whatever the tool called them
    "custom.folder": ("folder",),
    "custom.resource_pool": ("resource_pool",),
    "custom.firmware": ("firmware",),
    "custom.hw_version": ("hw_version",),
    "custom.creation_date": ("creation_date", "createdate"),
    "custom.vcenter": ("vi_sdk_server",),
    "custom.vm_id": ("vm_id",),
    "custom.nics": ("nics", "network_adapters"),
    "custom.disks": ("disks", "number_of_disks"),
    "custom.unshared_mib": ("unshared_mib", "unshared_mb"),
    "custom.memory_consumed_mib": ("vmemory_consumed",),
    "custom.cpu_demand_mhz": ("vcpu_overall",),
    "custom.mac_addresses": ("vnetwork_mac_address", "mac_address", "macaddress"),
    "custom.networks": ("vnetwork_network",),
}

# Standard RVTools vInfo columns with nothing to say about sizing or identity: left unmapped
# (and reported so), so that the remaining unknown columns can be read as custom attributes.
_RVTOOLS_UNUSED = frozenset(
    {
        "srm_placeholder",
        "config_status",
        "connection_state",
        "guest_state",
        "heartbeat",
        "consolidation_needed",
        "poweron",
        "suspended_to_memory",
        "suspend_time",
        "suspend_interval",
        "change_version",
        "overall_cpu_readiness",
        "fixed_passthru_hotplug",
        "min_required_evc_mode_key",
        "latency_sensitivity",
        "op_notification_timeout",
        "enableuuid",
        "cbt",
        "num_monitors",
        "video_ram_kib",
        "video_ram_kb",
        "folder_id",
        "vapp",
        "das_protection",
        "ft_state",
        "ft_role",
        "ft_latency",
        "ft_bandwidth",
        "ft_secondary_latency",
        "vm_failover_in_progress",
        "ha_restart_priority",
        "ha_isolation_response",
        "ha_vm_monitoring",
        "cluster_rule_s",
        "cluster_rule_name_s",
        "boot_required",
        "boot_delay",
        "boot_retry_delay",
        "boot_retry_enabled",
        "boot_bios_setup",
        "reboot_poweroff",
        "efi_secure_boot",
        "hw_upgrade_status",
        "hw_upgrade_policy",
        "hw_target",
        "path",
        "log_directory",
        "snapshot_directory",
        "suspend_directory",
        "customization_info",
        "guest_detailed_data",
        "smbios_uuid",
        "vi_sdk_server_type",
        "vi_sdk_api_version",
        "vi_sdk_uuid",
    }
)
_COMPANION_PREFIXES = tuple(f"{sheet.lower()}_" for sheet in RVTOOLS_COMPANIONS)
_READER_EXTRA = re.compile(r"extra_\d+")
# Azure Migrate repeats five columns per disk: "Disk 1 size (In GB)", "Disk 2 …", …
_AZURE_DISK = re.compile(
    r"disk_(?P<n>\d+)_(?P<measure>size_in_gb|read_throughput_mb_per_second"
    r"|write_throughput_mb_per_second|read_ops_operations_per_second"
    r"|write_ops_operations_per_second)"
)
_AZURE_DISK_MEASURES = {
    "size_in_gb": "size_gb",
    "read_throughput_mb_per_second": "read_mb_s",
    "write_throughput_mb_per_second": "write_mb_s",
    "read_ops_operations_per_second": "read_ops",
    "write_ops_operations_per_second": "write_ops",
}
_DISK_FIELD = re.compile(r"disk\.(?P<n>\d+)\.(?P<measure>[a-z_]+)")


def _pattern_field(key: str) -> str | None:
    """Azure per-disk columns, else a custom attribute unless the column is known and unused."""
    disk = _AZURE_DISK.fullmatch(key)
    if disk:
        return f"disk.{disk['n']}.{_AZURE_DISK_MEASURES[disk['measure']]}"
    if (
        not key
        or key in _RVTOOLS_UNUSED
        or key.startswith(_COMPANION_PREFIXES)
        or _READER_EXTRA.fullmatch(key)
    ):
        return None
    return CUSTOM_PREFIX + key


# --- one row being validated ---------------------------------------------------------------

_BLANK = frozenset({"", "-", "--", "n/a", "na", "null", "none"})
_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})
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


# --- enrichment SQL ------------------------------------------------------------------------

# Asset columns the category fills only when empty: CMDB owns identity and business fields.
_FILL_BLANKS: dict[str, str] = {
    "hostname": "text",
    "hostname_key": "text",
    "fqdn": "text",
    "external_id": "text",
    "vm_uuid": "text",
    "ip_address": "text",
    "operating_system": "text",
    "os_version": "text",
    "os_end_of_support": "boolean",
    "location": "text",
    "description": "text",
}
# Asset columns where the newer observation wins (older data only fills blanks).
_NEWER_WINS: dict[str, str] = {
    "cpu_cores": "integer",
    "memory_gb": "double precision",
    "storage_gb": "double precision",
    "storage_used_gb": "double precision",
    "cpu_utilization_pct": "double precision",
    "memory_utilization_pct": "double precision",
    "iops": "double precision",
    "network_throughput_mbps": "double precision",
    "power_state": "text",
    "host_name": "text",
    "cluster": "text",
    "datacenter": "text",
}
# A VM reporting 0 cores or 0 GB is a broken reading, not a size: it never replaces one.
_ZERO_IS_UNKNOWN = frozenset({"cpu_cores", "memory_gb"})
_NEWER = "(t.performance_observed_at IS NULL OR s.observed_at >= t.performance_observed_at)"
_TENANT = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"


def _newer_wins(column: str, incoming: str) -> str:
    return (
        f"{column} = CASE WHEN {_NEWER} THEN coalesce({incoming}, t.{column}) "
        f"ELSE coalesce(t.{column}, {incoming}) END"
    )


def _incoming(column: str, sql_type: str) -> str:
    value = f"CAST(s.a ->> '{column}' AS {sql_type})"
    return f"nullif({value}, 0)" if column in _ZERO_IS_UNKNOWN else value


def _update_machines_sql() -> str:
    fills = [
        f"{col} = coalesce(t.{col}, {_incoming(col, typ)})" for col, typ in _FILL_BLANKS.items()
    ]
    newer = [_newer_wins(col, _incoming(col, typ)) for col, typ in _NEWER_WINS.items()]
    sets = ",\n  ".join(
        [*fills, *newer, _newer_wins("rightsizing", "nullif(s.a -> 'rightsizing', 'null')")]
    )
    return f"""
WITH s AS (
  SELECT DISTINCT ON (r.asset_id) r.asset_id, r.normalized_data -> 'asset' AS a,
    coalesce(CAST(r.normalized_data ->> 'observed_at' AS timestamptz), now()) AS observed_at
  FROM raw_import_records r
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
    AND r.is_valid AND NOT r.superseded AND r.asset_id IS NOT NULL
    AND r.normalized_data ->> 'kind' = 'machine'
  ORDER BY r.asset_id, observed_at DESC, r.row_number DESC
)
UPDATE assets t SET {sets},
  custom_attributes = CASE WHEN {_NEWER}
    THEN t.custom_attributes || coalesce(s.a -> 'custom_attributes', '{{}}')
    ELSE coalesce(s.a -> 'custom_attributes', '{{}}') || t.custom_attributes END,
  performance_observed_at = CASE WHEN {_NEWER} THEN s.observed_at
    ELSE t.performance_observed_at END,
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM s
WHERE t.id = s.asset_id AND {_TENANT}
"""


_MARK_MACHINES_PROCESSED = """
UPDATE raw_import_records r SET is_processed = true
WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.is_valid AND NOT r.superseded AND r.asset_id IS NOT NULL
  AND r.normalized_data ->> 'kind' = 'machine' AND NOT r.is_processed
"""

UPDATE_MACHINES = _update_machines_sql()

# The shared-UUID check reads the whole import: only worth it when this range has UUIDs.
_RANGE_HAS_VM_UUIDS = """
SELECT EXISTS (SELECT 1 FROM raw_import_records r
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
    AND r.is_valid AND NOT r.superseded AND r.normalized_data -> 'asset' ->> 'vm_uuid' IS NOT NULL)
"""

# Per machine over the whole import: average, 95th percentile ("peak": a single spike should
# not size a machine) and maximum, then the asset it belongs to (external id, else the
# machine id a vmInfo import kept in custom_attributes when CMDB owned the external id).
_AGGREGATE_SAMPLES = f"""
WITH samples AS (
  SELECT r.normalized_data ->> 'machine_id' AS machine_id,
    CAST(r.normalized_data ->> 'observed_at' AS timestamptz) AS observed_at,
    CAST(r.normalized_data -> 'performance' ->> 'cpu_utilization_pct' AS double precision) AS cpu,
    CAST(r.normalized_data -> 'performance' ->> 'memory_utilization_pct' AS double precision)
      AS mem,
    CAST(r.normalized_data -> 'performance' ->> 'iops' AS double precision) AS iops,
    CAST(r.normalized_data -> 'performance' ->> 'network_throughput_mbps' AS double precision)
      AS net
  FROM raw_import_records r
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.is_valid AND NOT r.superseded
    AND r.normalized_data ->> 'kind' = 'performance'
),
machines AS (
  SELECT machine_id, count(*) AS samples, max(observed_at) AS observed_at,
    avg(cpu) AS cpu_avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY cpu) AS cpu_p95,
    max(cpu) AS cpu_max,
    avg(mem) AS mem_avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY mem) AS mem_p95,
    max(mem) AS mem_max,
    avg(iops) AS iops_avg, max(iops) AS iops_max, avg(net) AS net_avg, max(net) AS net_max
  FROM samples GROUP BY machine_id
),
known AS (
  SELECT t.id, t.external_id AS machine_id, 1 AS rank FROM assets t
  WHERE {_TENANT} AND t.external_id IN (SELECT machine_id FROM machines)
  UNION ALL
  SELECT t.id, t.custom_attributes ->> 'machine_id', 2 FROM assets t
  WHERE {_TENANT} AND t.custom_attributes ? 'machine_id'
),
best AS (SELECT DISTINCT ON (machine_id) machine_id, id FROM known ORDER BY machine_id, rank)
SELECT m.*, a.id AS asset_id, a.cpu_cores, a.memory_gb, a.power_state
FROM machines m
LEFT JOIN best b ON b.machine_id = m.machine_id
LEFT JOIN assets a ON a.id = b.id
ORDER BY m.machine_id
"""

_APPLY_SAMPLES = f"""
WITH s AS (
  SELECT * FROM unnest(CAST(:asset_id AS uuid[]), CAST(:observed AS timestamptz[]),
    CAST(:cpu AS double precision[]), CAST(:mem AS double precision[]),
    CAST(:iops AS double precision[]), CAST(:net AS double precision[]),
    CAST(:rightsizing AS jsonb[]), CAST(:custom AS jsonb[]))
    AS v(asset_id, observed_at, cpu, mem, iops, net, rightsizing, custom)
)
UPDATE assets t SET
  {_newer_wins("cpu_utilization_pct", "s.cpu")},
  {_newer_wins("memory_utilization_pct", "s.mem")},
  {_newer_wins("iops", "s.iops")},
  {_newer_wins("network_throughput_mbps", "s.net")},
  {_newer_wins("rightsizing", "s.rightsizing")},
  custom_attributes = CASE WHEN {_NEWER} THEN t.custom_attributes || s.custom
    ELSE s.custom || t.custom_attributes END,
  performance_observed_at = CASE WHEN {_NEWER} THEN s.observed_at
    ELSE t.performance_observed_at END,
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM s
WHERE t.id = s.asset_id AND {_TENANT}
"""

_MARK_SAMPLES = """
UPDATE raw_import_records r SET is_processed = true, asset_id = v.asset_id
FROM unnest(CAST(:machine_ids AS text[]), CAST(:asset_ids AS uuid[])) AS v(machine_id, asset_id)
WHERE r.data_import_id = CAST(:id AS uuid) AND r.is_valid AND NOT r.superseded
  AND r.normalized_data ->> 'kind' = 'performance'
  AND r.normalized_data ->> 'machine_id' = v.machine_id
  AND r.asset_id IS DISTINCT FROM v.asset_id
"""

# Unmatched machines: one warning on each machine's last sample, added once.
_WARN_UNMATCHED = """
WITH last AS (
  SELECT DISTINCT ON (r.normalized_data ->> 'machine_id') r.id,
    r.normalized_data ->> 'machine_id' AS machine_id
  FROM raw_import_records r
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.is_valid AND NOT r.superseded
    AND r.normalized_data ->> 'kind' = 'performance'
    AND r.normalized_data ->> 'machine_id' = ANY(CAST(:machine_ids AS text[]))
  ORDER BY r.normalized_data ->> 'machine_id', r.row_number DESC
)
UPDATE raw_import_records r SET validation_errors = coalesce(r.validation_errors, '[]'::jsonb)
  || jsonb_build_array(jsonb_build_object('code', CAST(:code AS text), 'severity', 'warning',
    'field', 'machine_id', 'message', 'machine_id: no asset has machine id '
      || quote_literal(last.machine_id) || '; import its vmInfo first, then these samples'))
FROM last
WHERE r.id = last.id
  AND NOT coalesce(r.validation_errors, '[]'::jsonb) @> jsonb_build_array(
    jsonb_build_object('code', CAST(:code AS text)))
"""


def _round(value: Any, digits: int = 2) -> float | None:
    return round(float(value), digits) if value is not None else None


def _sample_update(machine: Mapping[str, Any]) -> dict[str, Any]:
    """One matched machine's aggregated samples as an asset update, with its rightsizing."""
    recommendation = recommend_from_samples(
        machine["cpu_cores"],
        machine["memory_gb"],
        cpu_average=_round(machine["cpu_avg"]),
        cpu_peak=_round(machine["cpu_p95"]),
        memory_average=_round(machine["mem_avg"]),
        memory_peak=_round(machine["mem_p95"]),
        powered_off=machine["power_state"] == "powered_off",
    )
    custom = {
        "performance_samples": machine["samples"],
        "cpu_utilization_peak_pct": _round(machine["cpu_p95"]),
        "cpu_utilization_max_pct": _round(machine["cpu_max"]),
        "memory_utilization_peak_pct": _round(machine["mem_p95"]),
        "memory_utilization_max_pct": _round(machine["mem_max"]),
        "iops_max": _round(machine["iops_max"]),
        "network_throughput_max_mbps": _round(machine["net_max"], 3),
    }
    return {
        "asset_id": str(machine["asset_id"]),
        "observed": machine["observed_at"],
        "cpu": _round(machine["cpu_avg"]),
        "mem": _round(machine["mem_avg"]),
        "iops": _round(machine["iops_avg"]),
        "net": _round(machine["net_avg"], 3),
        "rightsizing": _json(recommendation),
        "custom": _json({key: value for key, value in custom.items() if value is not None}),
    }


def _json(value: Any) -> str | None:
    return json.dumps(value) if value is not None else None


class InfrastructureCategory:
    """RVTools, Azure Migrate, AWS Migration Hub and StratoZone inventories and samples."""

    name = "infrastructure"
    aliases: Mapping[str, str] = AliasTable(_FIELD_ALIASES, _pattern_field)
    required_fields = frozenset({"name", "hostname", "dns_name", "vm_uuid", "machine_id"})
    agents: Sequence[ValidationAgent] = (InfrastructureValidator(),)
    sheet_plan: SheetPlan | None = SheetPlan(
        primary=("vInfo", "tabvInfo"), companions=RVTOOLS_COMPANIONS, join_keys=("VM UUID", "VM")
    )
    masks_values = False

    def __init__(self, as_of: date | None = None) -> None:
        self._as_of = as_of  # fixed date for tests; None means today, evaluated per row

    def validate_row(self, fields: Mapping[str, str]) -> RowOutcome:
        row = _Row(fields)
        if _is_performance_layout(row.mapped):
            return _performance_row(row)
        if row.flag("template"):
            return _template_row(row)
        return _machine_row(row, self._as_of or date.today())

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        kind = normalized.get("kind")
        if kind == "performance":
            # Samples of one machine are many rows: only a repeated sample time is a duplicate.
            return f"sample:{normalized.get('machine_id')}@{normalized.get('observed_at')}"
        if kind != "machine":
            return None
        asset = normalized.get("asset") or {}
        # An external id is unique in the inventory: two rows carrying it are one machine.
        if asset.get("external_id"):
            return f"id:{asset['external_id']}"
        return f"name:{asset['name_key']}" if asset.get("name_key") else None

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """Match or create the range's machines, then apply their fields with precedence."""
        params = scope_params(scope)
        if await conn.scalar(text(_RANGE_HAS_VM_UUIDS), params):
            await flag_shared_vm_uuids(conn, scope.data_import_id, scope.first_row, scope.last_row)
        await resolve_assets(conn, scope, "asset", default_type="virtual_machine")
        updated = await conn.execute(text(UPDATE_MACHINES), params)
        await conn.execute(text(_MARK_MACHINES_PROCESSED), params)
        return EnrichCounts(assets_touched=updated.rowcount or 0)

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """Apply performance samples, aggregated per machine over the whole import.

        A machine's samples may span row ranges, so one pass (the first range's) aggregates
        them all: linear in the import, where a per-range pass would rescan it per range.
        """
        if scope.first_row != 1:
            return EnrichCounts()
        params = scope_params(scope)
        machines = (await conn.execute(text(_AGGREGATE_SAMPLES), params)).mappings().all()
        matched = {str(m["asset_id"]): dict(m) for m in machines if m["asset_id"] is not None}
        unmatched = [m["machine_id"] for m in machines if m["asset_id"] is None]
        if matched:
            updates = [_sample_update(machine) for machine in matched.values()]
            arrays = {key: [update[key] for update in updates] for key in updates[0]}
            await conn.execute(text(_APPLY_SAMPLES), {**params, **arrays})
        if machines:
            await conn.execute(
                text(_MARK_SAMPLES),
                {
                    **params,
                    "machine_ids": [m["machine_id"] for m in machines if m["asset_id"]],
                    "asset_ids": [str(m["asset_id"]) for m in machines if m["asset_id"]],
                },
            )
        if unmatched:
            await conn.execute(
                text(_WARN_UNMATCHED),
                {**params, "machine_ids": unmatched, "code": Code.UNMATCHED_ASSET.value},
            )
        return EnrichCounts(assets_touched=len(matched))


CATEGORY = InfrastructureCategory()
