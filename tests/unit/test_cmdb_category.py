"""Pure unit tests of the cmdb_export category and the shared normalisers (no database)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from dataimport.categories.base import map_headers
from dataimport.categories.cmdb_export import CATEGORY, CmdbExportCategory
from dataimport.issues import Code, Severity
from dataimport.normalize import (
    hostname_key,
    name_key,
    normalize_asset_type,
    normalize_criticality,
    normalize_environment,
    normalize_ip,
    normalize_os,
    parse_float,
    parse_int,
    parse_memory_gb,
    parse_storage_gb,
    split_list,
)
from tests.one_row import codes, validate_fields

AS_OF = date(2026, 1, 1)
CMDB = CmdbExportCategory(as_of=AS_OF)


# --- header mapping ----------------------------------------------------------------------

SERVICENOW_HEADERS = [
    "sys_id",
    "name",
    "sys_class_name",
    "ip_address",
    "fqdn",
    "host_name",
    "dns_domain",
    "os",
    "os_version",
    "os_service_pack",
    "cpu_count",
    "cpu_core_count",
    "cpu_speed",
    "ram",
    "disk_space",
    "used_for",
    "location",
    "owned_by",
    "managed_by",
    "assigned_to",
    "support_group",
    "department",
    "company",
    "business_unit",
    "operational_status",
    "install_status",
    "serial_number",
    "asset_tag",
    "model_id",
    "manufacturer",
    "short_description",
    "comments",
    "virtual",
    "u_cost_center",
    "sys_updated_on",
]


def test_servicenow_cmdb_ci_server_headers_map() -> None:
    mapping = map_headers(SERVICENOW_HEADERS, CATEGORY.aliases, {})
    fields = mapping.field_by_header
    assert fields["sys_id"] == "external_id"
    assert fields["sys_class_name"] == "asset_type"
    assert fields["host_name"] == "hostname"
    assert fields["os"] == "operating_system"
    assert fields["cpu_count"] == "cpu_cores"
    assert fields["cpu_core_count"] == "cpu_core_count"
    assert fields["ram"] == "memory_mb"  # ServiceNow reports RAM in MB
    assert fields["disk_space"] == "storage_gb"
    assert fields["used_for"] == "environment"
    assert fields["owned_by"] == "owner"
    assert fields["short_description"] == "description"
    assert fields["u_cost_center"] == "custom.u_cost_center"
    assert mapping.unmapped_headers == ["cpu_speed", "sys_updated_on"]


def test_servicenow_label_headers_map() -> None:
    headers = ["Name", "Class", "IP Address", "Operating System", "OS Version", "CPU count"]
    headers += ["RAM (MB)", "Disk space (GB)", "Used for", "Owned by", "Serial number"]
    fields = map_headers(headers, CATEGORY.aliases, {}).field_by_header
    assert fields == {
        "Name": "name",
        "Class": "asset_type",
        "IP Address": "ip_address",
        "Operating System": "operating_system",
        "OS Version": "os_version",
        "CPU count": "cpu_cores",
        "RAM (MB)": "memory_mb",
        "Disk space (GB)": "storage_gb",
        "Used for": "environment",
        "Owned by": "owner",
        "Serial number": "serial_number",
    }


def test_home_grown_headers_map() -> None:
    headers = [
        "Asset ID*",
        "Server Name",
        "Hostname",
        "Asset Type",
        "IP",
        "Operating_System",
        "vCPU",
        "RAM (GB)",
        "Storage GB",
        "Env",
        "Business Criticality",
        "Application Owner",
        "Business Unit",
        "Datacenter",
        "Depends On",
        "Description",
        "Favourite colour",
    ]
    mapping = map_headers(headers, CATEGORY.aliases, {})
    assert mapping.field_by_header == {
        "Asset ID*": "external_id",
        "Server Name": "name",
        "Hostname": "hostname",
        "Asset Type": "asset_type",
        "IP": "ip_address",
        "Operating_System": "operating_system",
        "vCPU": "cpu_cores",
        "RAM (GB)": "memory_gb",
        "Storage GB": "storage_gb",
        "Env": "environment",
        "Business Criticality": "criticality",
        "Application Owner": "owner",
        "Business Unit": "business_unit",
        "Datacenter": "location",
        "Depends On": "dependencies",
        "Description": "description",
    }
    assert mapping.unmapped_headers == ["Favourite colour"]


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Tier", "criticality"),
        ("Memory MB", "memory_mb"),
        ("memory_gb", "memory_gb"),
        ("Cores", "cpu_cores"),
        ("Technical Owner", "technical_owner"),
        ("Site", "location"),
        ("Upstream", "dependencies"),
        ("depends_on", "dependencies"),
    ],
)
def test_single_header_aliases(header: str, field: str) -> None:
    assert map_headers([header], CATEGORY.aliases, {}).field_by_header == {header: field}


def test_column_mapping_overrides_aliases() -> None:
    headers = ["Srv", "Environment", "Tier"]
    mapping = map_headers(headers, CATEGORY.aliases, {"Srv": "name", "Tier": "environment"})
    # The explicit mapping claims `environment` for Tier; the Environment header claimed it first.
    assert mapping.field_by_header == {"Srv": "name", "Environment": "environment"}
    assert mapping.unmapped_headers == ["Tier"]


def test_required_fields_accept_any_identifying_column() -> None:
    mapping = map_headers(["Hostname", "IP"], CATEGORY.aliases, {})
    assert mapping.mapped_fields & CATEGORY.required_fields == {"hostname"}


# --- numbers and sizes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("16", 16), (" 8 ", 8), ("1,024", 1024), ("8.0", 8), ("-2", -2)]
)
def test_parse_int(text: str, expected: int) -> None:
    assert parse_int(text) == expected


@pytest.mark.parametrize("text", ["abc", "8.5", "", "1.234,5", "nan", "12,34,5"])
def test_parse_int_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_int(text)


@pytest.mark.parametrize(
    ("text", "expected"), [("1,024.5", 1024.5), ("12,5", 12.5), ("12.5", 12.5), ("-3", -3.0)]
)
def test_parse_float(text: str, expected: float) -> None:
    assert parse_float(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16 GB", 16.0),
        ("16GB", 16.0),
        ("16384 MB", 16.0),
        ("16384MB", 16.0),
        ("1 TB", 1024.0),
        ("512 MiB", 0.5),
        ("4 GiB", 4.0),
        ("1,024", 1024.0),
        ("16 g", 16.0),
    ],
)
def test_parse_memory_gb(text: str, expected: float) -> None:
    assert parse_memory_gb(text) == expected


def test_parse_sizes_default_unit() -> None:
    assert parse_memory_gb("16384", default_unit="MB") == 16.0
    assert parse_memory_gb("16 GB", default_unit="MB") == 16.0  # a unit in the cell wins
    assert parse_storage_gb("2 TiB") == 2048.0
    assert parse_storage_gb("1,024", default_unit="MB") == 1.0


@pytest.mark.parametrize("text", ["sixteen", "16 XB", "GB", ""])
def test_parse_memory_gb_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_memory_gb(text)


# --- identity and network ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        (" 10.0.0.1/24 ", "10.0.0.1"),
        ("10.0.0.1, 10.0.0.2", "10.0.0.1"),
        ("not-an-ip; 10.0.0.3", "10.0.0.3"),
        ("FE80:0000::0001", "fe80::1"),
    ],
)
def test_normalize_ip(text: str, expected: str) -> None:
    assert normalize_ip(text) == expected


@pytest.mark.parametrize("text", ["999.1.1.1", "web01", "10.0.0"])
def test_normalize_ip_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        normalize_ip(text)


def test_split_list() -> None:
    assert split_list("DB001,LB001") == ["DB001", "LB001"]
    assert split_list("a;b") == ["a", "b"]
    assert split_list("a | b") == ["a", "b"]
    assert split_list("a\nb\r\n\n b ,A") == ["a", "b"]


def test_name_and_hostname_keys() -> None:
    assert name_key("  Payroll   App ") == "payroll app"
    assert hostname_key("web01.corp.local") == "web01"
    assert hostname_key("WEB01") == "web01"
    assert hostname_key("CORP\\web02") == "web02"
    assert hostname_key("10.0.0.1") is None
    assert hostname_key("fe80::1") is None
    assert hostname_key("Payroll App") is None


# --- vocabularies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Production", "production"),
        ("prod", "production"),
        ("PRD", "production"),
        ("live", "production"),
        ("stg", "staging"),
        ("Pre-Prod", "staging"),
        ("QA", "test"),
        ("UAT", "uat"),
        ("dev", "development"),
        ("Sandbox", "development"),
        ("DR", "disaster_recovery"),
        ("Disaster Recovery", "disaster_recovery"),
        ("Training", "training"),
        ("", None),
        ("N/A", None),
    ],
)
def test_normalize_environment(text: str, expected: str | None) -> None:
    assert normalize_environment(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Critical", "critical"),
        ("1 - Critical", "critical"),
        ("1", "critical"),
        ("Tier 1", "critical"),
        ("tier1", "critical"),
        ("Mission Critical", "critical"),
        ("2 - High", "high"),
        ("Business Critical", "high"),
        ("2 - somewhat critical", "high"),
        ("Medium", "medium"),
        ("3 - Moderate", "medium"),
        ("Low", "low"),
        ("4 - not critical", "low"),
    ],
)
def test_normalize_criticality(text: str, expected: str) -> None:
    assert normalize_criticality(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cmdb_ci_server", "server"),
        ("cmdb_ci_linux_server", "server"),
        ("cmdb_ci_win_server", "server"),
        ("cmdb_ci_esx_server", "server"),
        ("cmdb_ci_vmware_instance", "virtual_machine"),
        ("cmdb_ci_vm_instance", "virtual_machine"),
        ("cmdb_ci_db_instance", "database"),
        ("cmdb_ci_db_mssql_instance", "database"),
        ("cmdb_ci_appl", "application"),
        ("cmdb_ci_app_server_tomcat", "application"),
        ("cmdb_ci_lb", "load_balancer"),
        ("cmdb_ci_lb_bigip", "load_balancer"),
        ("cmdb_ci_netgear", "network_device"),
        ("cmdb_ci_ip_firewall", "network_device"),
        ("cmdb_ci_storage_device", "storage"),
        ("cmdb_ci_docker_container", "container"),
        ("Server", "server"),
        ("Servers", "server"),
        ("VM", "virtual_machine"),
        ("Virtual Machine", "virtual_machine"),
        ("DB", "database"),
        ("Database", "database"),
        ("App", "application"),
        ("Application", "application"),
        ("Load Balancer", "load_balancer"),
        ("LB", "load_balancer"),
        ("Firewall", "network_device"),
        ("Switch", "network_device"),
        ("Router", "network_device"),
    ],
)
def test_normalize_asset_type(text: str, expected: str) -> None:
    assert normalize_asset_type(text) == expected


@pytest.mark.parametrize(
    ("normalizer", "text"),
    [
        (normalize_environment, "Perf"),
        (normalize_criticality, "9 - whatever"),
        (normalize_asset_type, "Toaster"),
        (normalize_asset_type, "cmdb_ci_printer"),
    ],
)
def test_vocabularies_reject_unknown(normalizer: Callable[[str], str | None], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        normalizer(text)


# --- operating systems -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("Windows Server 2008 R2 Enterprise", None, ("Windows Server", "2008 R2", True)),
        ("Windows 2012 R2 Standard", "6.3.9600", ("Windows Server", "2012 R2", True)),
        ("Windows Server", "6.1.7601", ("Windows Server", "2008 R2", True)),
        ("Microsoft Windows Server 2019 Datacenter", None, ("Windows Server", "2019", False)),
        ("Windows Server 2003", None, ("Windows Server", "2003", True)),
        ("Linux CentOS", "7.9.2009", ("CentOS", "7.9.2009", True)),
        ("CentOS 6", None, ("CentOS", "6", True)),
        ("CentOS Linux 8", None, ("CentOS", "8", True)),
        ("Red Hat Enterprise Linux 5 (64-bit)", None, ("Red Hat Enterprise Linux", "5", True)),
        ("Red Hat Enterprise Linux", "9.3", ("Red Hat Enterprise Linux", "9.3", False)),
        # A kernel version in the version column does not override the release in the name.
        ("Red Hat Enterprise Linux 8", "4.18.0-513", ("Red Hat Enterprise Linux", "8", False)),
        ("Ubuntu 18.04.6 LTS", None, ("Ubuntu", "18.04.6", True)),
        ("Ubuntu", "16.04", ("Ubuntu", "16.04", True)),
        ("Ubuntu 22.04 LTS", None, ("Ubuntu", "22.04", False)),
        ("SLES 11 SP4", None, ("SUSE Linux Enterprise Server", "11", True)),
        ("Debian GNU/Linux 9", None, ("Debian", "9", True)),
        ("Debian 5", None, ("Debian", "5", True)),  # older than the oldest listed release
        ("AIX", "7.2", ("AIX", "7.2", None)),
        ("Plan 9", None, ("Plan 9", "9", None)),
    ],
)
def test_normalize_os(name: str, version: str | None, expected: tuple) -> None:
    assert normalize_os(name, version, as_of=AS_OF) == expected


def test_end_of_support_depends_on_as_of() -> None:
    assert normalize_os("Windows Server 2012 R2", None, as_of=date(2023, 10, 10))[2] is False
    assert normalize_os("Windows Server 2012 R2", None, as_of=date(2023, 10, 11))[2] is True


def test_normalize_os_blank_name() -> None:
    assert normalize_os("", "7", as_of=AS_OF) == (None, "7", None)


# --- row validation ----------------------------------------------------------------------


def test_servicenow_row_normalises() -> None:
    row = {
        "external_id": "6816f79cc0a8016401c5a33be04be441",
        "name": "web01",
        "asset_type": "cmdb_ci_linux_server",
        "ip_address": "10.1.2.3",
        "hostname": "web01",
        "dns_domain": "corp.local",
        "operating_system": "Linux Red Hat",
        "os_version": "8.6",
        "cpu_cores": "8",
        "memory_mb": "16384",
        "storage_gb": "500",
        "environment": "Production",
        "owner": "Jane Doe",
        "department": "Finance",
        "location": "DC-East",
        "operational_status": "Operational",
        "asset_tag": "P1000123",
        "manufacturer": "Dell Inc.",
        "custom.u_cost_center": "CC-42",
        "dependencies": "db01, lb01",
    }
    outcome = validate_fields(CMDB, row)
    assert outcome.issues == []
    asset = outcome.normalized["asset"]
    assert asset["name"] == "web01"
    assert asset["name_key"] == "web01"
    assert asset["hostname_key"] == "web01"
    assert asset["fqdn"] == "web01.corp.local"
    assert asset["asset_type"] == "server"
    assert asset["operating_system"] == "Red Hat Enterprise Linux"
    assert asset["os_version"] == "8.6"
    assert asset["os_end_of_support"] is False
    assert asset["cpu_cores"] == 8
    assert asset["memory_gb"] == 16.0
    assert asset["storage_gb"] == 500.0
    assert asset["environment"] == "production"
    assert asset["business_unit"] == "Finance"  # department stands in for business_unit
    assert asset["custom_attributes"] == {
        "dns_domain": "corp.local",
        "department": "Finance",
        "asset_tag": "P1000123",
        "manufacturer": "Dell Inc.",
        "u_cost_center": "CC-42",
        "operating_system_raw": "Linux Red Hat",
    }
    assert outcome.normalized["dependencies"] == ["db01", "lb01"]
    assert CMDB.natural_key(outcome.normalized) == outcome.normalized["asset"]["name_key"]


def test_every_asset_column_is_present() -> None:
    asset = validate_fields(CMDB, {"name": "x"}).normalized["asset"]
    assert asset["asset_type"] == "server"
    assert asset["custom_attributes"] == {}
    for column in ("external_id", "ip_address", "memory_gb", "os_end_of_support", "owner"):
        assert asset[column] is None


def test_cells_are_stripped_and_blank_means_missing() -> None:
    outcome = validate_fields(CMDB, {"name": "  app01  ", "environment": "   ", "cpu_cores": ""})
    assert outcome.issues == []
    assert outcome.normalized["asset"]["name"] == "app01"
    assert outcome.normalized["asset"]["environment"] is None


def test_memory_gb_header_and_zero_means_unknown() -> None:
    asset = validate_fields(CMDB, {"name": "a", "memory_gb": "16 GB", "storage_gb": "0"})
    assert asset.normalized["asset"]["memory_gb"] == 16.0
    assert asset.normalized["asset"]["storage_gb"] is None


def test_virtual_flag_makes_a_server_a_vm() -> None:
    outcome = validate_fields(
        CMDB, {"name": "vm1", "asset_type": "cmdb_ci_server", "virtual": "true"}
    )
    assert outcome.normalized["asset"]["asset_type"] == "virtual_machine"


def test_owner_falls_back_to_managed_by() -> None:
    outcome = validate_fields(CMDB, {"name": "a", "managed_by": "Ops Team"})
    assert outcome.normalized["asset"]["owner"] == "Ops Team"
    assert outcome.normalized["asset"]["custom_attributes"] == {"managed_by": "Ops Team"}


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"hostname": "web02.corp.local"}, "web02.corp.local"),
        ({"fqdn": "db03.corp.local"}, "db03"),
    ],
)
def test_name_falls_back_to_hostname_then_fqdn(fields: dict[str, str], name: str) -> None:
    outcome = validate_fields(CMDB, {"name": "", **fields})
    assert outcome.is_valid
    assert outcome.normalized["asset"]["name"] == name


def test_missing_name_is_an_error() -> None:
    outcome = validate_fields(CMDB, {"name": " ", "ip_address": "10.0.0.1"})
    assert not outcome.is_valid
    assert codes(outcome) == [(Code.MISSING_REQUIRED.value, "error", "name")]
    assert CMDB.natural_key(outcome.normalized) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("cpu_cores", "eight"), ("cpu_cores", "2.5"), ("memory_gb", "lots"), ("storage_mb", "1 XB")],
)
def test_unparseable_numbers_are_type_warnings_and_leave_the_field_empty(
    field: str, value: str
) -> None:
    outcome = validate_fields(CMDB, {"name": "a", field: value})
    assert codes(outcome) == [(Code.TYPE_ERROR.value, "warning", field)]
    assert value in outcome.issues[0].message
    assert outcome.issues[0].message.endswith("; the field was left empty")
    assert outcome.is_valid
    asset = outcome.normalized["asset"]
    assert asset.get("cpu_cores") is None and asset.get("memory_gb") is None
    assert asset.get("storage_gb") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cpu_cores", "-4"),
        ("cpu_cores", "5000"),
        ("memory_gb", "65 TB"),
        ("memory_mb", "-1"),
        ("storage_gb", "-10"),
    ],
)
def test_implausible_numbers_are_constraint_warnings(field: str, value: str) -> None:
    outcome = validate_fields(CMDB, {"name": "a", field: value})
    assert codes(outcome) == [(Code.CONSTRAINT_ERROR.value, "warning", field)]
    assert value in outcome.issues[0].message
    assert outcome.is_valid


def test_bad_ip_is_a_warning_and_keeps_the_asset_without_it() -> None:
    outcome = validate_fields(CMDB, {"name": "a", "ip_address": "10.0.0.256"})
    assert codes(outcome) == [(Code.CONSTRAINT_ERROR.value, "warning", "ip_address")]
    assert "10.0.0.256" in outcome.issues[0].message
    assert outcome.issues[0].message.endswith("; the field was left empty")
    assert outcome.is_valid and outcome.normalized["asset"].get("ip_address") is None
    assert CMDB.natural_key(outcome.normalized) == "a"


@pytest.mark.parametrize("token", ["N/A", "n/a", "NA", "-", "--", "none", "null", "nil", "TBD"])
def test_a_null_token_reads_as_blank_with_a_warning(token: str) -> None:
    outcome = validate_fields(CMDB, {"name": "a", "ip_address": token, "environment": "prod"})
    assert codes(outcome) == [(Code.NULL_TOKEN.value, "warning", "ip_address")]
    assert repr(token) in outcome.issues[0].message
    assert outcome.is_valid and outcome.normalized["asset"].get("ip_address") is None


def test_a_domain_alone_names_no_asset() -> None:
    outcome = validate_fields(CMDB, {"name": "", "fqdn": ".corp", "external_id": "sys1"})
    assert codes(outcome) == [(Code.MISSING_REQUIRED.value, "error", "name")]
    assert not outcome.is_valid


def test_a_null_token_name_falls_back_or_rejects_the_row() -> None:
    fallback = validate_fields(CMDB, {"name": "unknown", "hostname": "web01"})
    assert codes(fallback) == [(Code.NULL_TOKEN.value, "warning", "name")]
    assert fallback.normalized["asset"]["name"] == "web01"
    nameless = validate_fields(CMDB, {"name": "?", "ip_address": "10.0.0.1"})
    assert codes(nameless) == [
        (Code.NULL_TOKEN.value, "warning", "name"),
        (Code.MISSING_REQUIRED.value, "error", "name"),
    ]
    assert not nameless.is_valid


@pytest.mark.parametrize(
    ("field", "value"),
    [("environment", "Perf-Lab-7"), ("criticality", "Meh"), ("asset_type", "Toaster")],
)
def test_unknown_vocabulary_is_a_warning_and_kept_raw(field: str, value: str) -> None:
    outcome = validate_fields(CMDB, {"name": "a", field: value})
    assert outcome.is_valid
    assert codes(outcome) == [(Code.UNKNOWN_VALUE.value, "warning", field)]
    asset = outcome.normalized["asset"]
    assert asset["custom_attributes"][f"{field}_raw"] == value
    assert asset[field] == ("server" if field == "asset_type" else None)


def test_os_past_end_of_support_is_a_warning() -> None:
    outcome = validate_fields(
        CMDB, {"name": "old01", "operating_system": "Windows Server 2008 R2 Enterprise"}
    )
    assert outcome.is_valid
    assert codes(outcome) == [(Code.END_OF_SUPPORT.value, "warning", "operating_system")]
    assert "2008 R2" in outcome.issues[0].message
    assert "2020-01-14" in outcome.issues[0].message
    asset = outcome.normalized["asset"]
    assert asset["os_end_of_support"] is True
    assert asset["operating_system"] == "Windows Server"
    assert asset["os_version"] == "2008 R2"


def test_self_dependency_is_dropped_with_a_warning() -> None:
    outcome = validate_fields(CMDB, {"name": "App01", "dependencies": "db01; app01 | lb01"})
    assert outcome.is_valid
    assert codes(outcome) == [(Code.SELF_DEPENDENCY.value, "warning", "dependencies")]
    assert outcome.normalized["dependencies"] == ["db01", "lb01"]


def test_messages_truncate_long_values() -> None:
    outcome = validate_fields(CMDB, {"name": "a", "environment": "x" * 500})
    issue = outcome.issues[0]
    assert issue.severity is Severity.WARNING
    assert len(issue.message) < 200
    assert "x" * 79 in issue.message


def test_natural_key_is_the_name_key_the_inventory_is_unique_on() -> None:
    with_id = validate_fields(CMDB, {"name": "Web 01", "external_id": "SN-1"}).normalized
    without_id = validate_fields(CMDB, {"name": "  Web   01 "}).normalized
    assert CMDB.natural_key(with_id) == "web 01"
    assert CMDB.natural_key(without_id) == "web 01"


def test_normalized_output_is_json_ready() -> None:
    import json

    outcome = validate_fields(CMDB, {"name": "a", "operating_system": "CentOS 6", "cpu_cores": "4"})
    assert json.loads(json.dumps(outcome.normalized)) == outcome.normalized
