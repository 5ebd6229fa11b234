"""cmdb_export header aliases and field vocabulary, as data."""

from __future__ import annotations

CUSTOM_PREFIX = "custom."

# Plausibility limits: beyond these a value is a unit or typing mistake, not a machine.
MAX_CPU_CORES = 4096
MAX_MEMORY_GB = 64 * 1024  # 64 TB
MAX_STORAGE_GB = 64 * 1024 * 1024  # 64 PB, room for whole storage arrays

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
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
FALLBACKS: dict[str, tuple[str, ...]] = {
    "owner": ("owner", "technical_owner", "managed_by", "assigned_to"),
    "business_unit": ("business_unit", "department"),
    "operational_status": ("operational_status", "install_status"),
    "description": ("description", "comments"),
}

TRUE_WORDS = frozenset({"true", "yes", "y", "1", "t"})


def servicenow_custom(key: str) -> str | None:
    """Any other ServiceNow custom column (u_*) is a custom field."""
    return CUSTOM_PREFIX + key if key.startswith("u_") and len(key) > 2 else None
