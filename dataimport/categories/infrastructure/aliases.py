"""infrastructure header aliases and field vocabulary, as data (one table for every layout)."""

from __future__ import annotations

import re

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


# The words of a true/false column.
_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})
