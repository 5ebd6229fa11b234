"""The infrastructure category: every layout's typing, rightsizing, the validator agent, and
imports through the real workflow (RVTools, CMDB matching, newer-wins, re-import, samples)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.agents.base import RowContext
from dataimport.agents.infrastructure_validator import InfrastructureValidator
from dataimport.categories.base import map_headers
from dataimport.categories.infrastructure import (
    InfrastructureCategory,
    normalize_power_state,
    normalize_vm_uuid,
    parse_timestamp,
)
from dataimport.contracts import ImportStatus
from dataimport.field_sources import decode
from dataimport.rightsizing import recommend, recommend_from_samples
from service.imports import ImportService
from tests.factories import (
    AWS_HEADERS,
    AZURE_MIGRATE_HEADERS,
    CMDB_HEADERS,
    PERFINFO_HEADERS,
    REALDATA,
    RVTOOLS_HEADERS,
    TERMINAL_OR_WAITING,
    VMINFO_HEADERS,
    cmdb_row,
    perf_row,
    rvtools_row,
    vminfo_row,
    wait_for,
    write_csv,
)
from tests.one_row import RowOutcome, codes, validate_cells

CATEGORY = InfrastructureCategory(as_of=date(2025, 1, 1))


def validate(headers: Sequence[str], cells: Sequence[str]) -> tuple[RowOutcome, list[str]]:
    """Map headers like the validation phase does, then validate one row."""
    mapping = map_headers(headers, CATEGORY.aliases, {})
    return validate_cells(CATEGORY, headers, cells), mapping.unmapped_headers


# --- RVTools -------------------------------------------------------------------------------


def test_rvtools_new_mib_spelling_maps_every_field() -> None:
    outcome, unmapped = validate(
        RVTOOLS_HEADERS,
        rvtools_row("web-01", dns="web-01.corp.local", vm_uuid="{42 1A" + "0" * 28 + "}"),
    )
    asset = outcome.normalized["asset"]

    assert outcome.is_valid and codes(outcome) == []
    assert outcome.normalized["kind"] == "machine" and outcome.normalized["observed_at"] is None
    assert (asset["name"], asset["hostname"], asset["fqdn"]) == (
        "web-01",
        "web-01",
        "web-01.corp.local",
    )
    assert asset["vm_uuid"] == "421a0000-0000-0000-0000-000000000000"
    assert (asset["cpu_cores"], asset["memory_gb"]) == (4, 16.0)
    assert (asset["storage_gb"], asset["storage_used_gb"]) == (100.0, 50.0)
    assert (asset["host_name"], asset["cluster"], asset["datacenter"]) == ("esx-01", "cl-a", "dc-1")
    assert asset["power_state"] == "powered_on" and asset["asset_type"] == "virtual_machine"
    # VMware Tools' observed guest wins over the configured guest type
    assert (asset["operating_system"], asset["os_version"]) == ("Windows Server", "2019")
    assert asset["description"] == "built by ops"
    # unknown vInfo columns are vCenter custom attributes; standard unused ones stay unmapped
    custom = asset["custom_attributes"]
    assert (custom["backup_policy"], custom["app_owner"]) == ("daily", "Jane")
    assert (custom["unshared_mib"], custom["nics"]) == ("40960", "1")
    assert unmapped == ["Config status"]
    assert CATEGORY.natural_key(outcome.normalized) == "name:web-01"


def test_rvtools_old_mb_spelling_gives_the_same_asset() -> None:
    old_headers = [
        header.replace("MiB", "MB") if header.endswith("MiB") else header
        for header in RVTOOLS_HEADERS
    ]
    assert "Provisioned MB" in old_headers and "In Use MB" in old_headers
    new, _ = validate(RVTOOLS_HEADERS, rvtools_row("db-01"))
    old, _ = validate(old_headers, rvtools_row("db-01"))
    assert old.normalized == new.normalized


def test_rvtools_workbook_companion_columns_size_memory_and_storage() -> None:
    """The XLSX reader joins vMemory/vPartition/vNetwork cells into the vInfo row."""
    headers = [
        "VM",
        "Powerstate",
        "CPUs",
        "Memory",
        "Provisioned MiB",
        "CPU Usage %",
        "Primary IP Address",
        "vPartition.Consumed MiB",
        "vPartition.Capacity MiB",
        "vMemory.Size MiB",
        "vMemory.Active",
        "vMemory.Consumed",
        "vNetwork.IPv4 Address",
        "vPartition.#rows",
    ]
    cells = [
        "sample-db-01",
        "poweredOn",
        "4",
        "16384",
        "327680",
        "62",
        "10.10.2.20",
        "256000",
        "327680",
        "16384",
        "14336",
        "15360",
        "10.10.2.20; 10.10.3.20",
        "2",
    ]
    outcome, unmapped = validate(headers, cells)
    asset = outcome.normalized["asset"]

    assert (asset["storage_gb"], asset["storage_used_gb"]) == (320.0, 250.0)
    assert (asset["cpu_utilization_pct"], asset["memory_utilization_pct"]) == (62.0, 87.5)
    assert asset["custom_attributes"]["ip_addresses"] == ["10.10.2.20", "10.10.3.20"]
    assert asset["custom_attributes"]["memory_consumed_mib"] == "15360"
    assert unmapped == ["vPartition.Capacity MiB", "vPartition.#rows"]
    assert asset["rightsizing"] == {
        "cores": 4,  # 4 × 62 % × 1.3 = 3.2 → 4
        "memory_gb": 19,  # 16 × 87.5 % × 1.3 = 18.2 → 19
        "basis": "average",
        "headroom": 0.3,
        "cpu_utilization_pct": 62.0,
        "memory_utilization_pct": 87.5,
    }


def test_rvtools_template_is_kept_but_skipped_with_a_warning() -> None:
    outcome, _ = validate(RVTOOLS_HEADERS, rvtools_row("tpl-win2019", template="True"))
    assert outcome.is_valid
    assert codes(outcome) == [("template-skipped", "warning", "template")]
    assert outcome.normalized["skip"] is True and "asset" not in outcome.normalized
    assert CATEGORY.natural_key(outcome.normalized) is None


# --- Azure Migrate, AWS Migration Hub, StratoZone ------------------------------------------


def test_azure_migrate_required_star_headers_and_per_disk_columns_are_summed() -> None:
    cells = [
        "app-02",
        "10.2.0.5, 10.2.0.6",
        "8",
        "32768",
        "Red Hat Enterprise Linux",
        "8.6",
        "x64",
        "40",
        "55.5",
        "2",
        "128",
        "10",
        "5",
        "100",
        "50",
        "512",
        "20",
        "15",
        "300",
        "150",
        "1",
        "2.5",
        "1.5",
        "UEFI",
        "Physical",
        "00:11:22:33:44:55",
    ]
    outcome, unmapped = validate(AZURE_MIGRATE_HEADERS, cells)
    asset = outcome.normalized["asset"]

    assert outcome.is_valid and unmapped == []
    assert (asset["name"], asset["ip_address"]) == ("app-02", "10.2.0.5")
    assert (asset["cpu_cores"], asset["memory_gb"], asset["storage_gb"]) == (8, 32.0, 640.0)
    assert (asset["operating_system"], asset["os_version"]) == ("Red Hat Enterprise Linux", "8.6")
    assert (asset["cpu_utilization_pct"], asset["memory_utilization_pct"]) == (40.0, 55.5)
    assert asset["iops"] == 600.0  # read + write ops over both disks
    assert asset["network_throughput_mbps"] == 32.0  # (2.5 + 1.5) MB/s × 8
    assert asset["asset_type"] == "server"  # Machine type "Physical"
    custom = asset["custom_attributes"]
    assert custom["disk_throughput_mb_per_s"] == 50.0
    assert (custom["boot_type"], custom["os_architecture"]) == ("UEFI", "x64")
    assert custom["ip_addresses"] == ["10.2.0.5", "10.2.0.6"]


def test_aws_migration_hub_template_uses_averages_and_peaks() -> None:
    cells = [
        "srv-aws-7",
        "vm-1001",
        "vc-01",
        "billing-vm",
        "10.3.0.7",
        "00:50:56:00:00:07",
        "billing01.corp.local",
        "Ubuntu",
        "20.04",
        "1",
        "4",
        "8",
        "8192",
        "2048",
        "6144",
        "20",
        "80",
        "1000",
        "500",
        "120",
        "30",
        "2000",
        "3000",
    ]
    outcome, _ = validate(AWS_HEADERS, [*cells, "billing", "env:prod"])
    asset = outcome.normalized["asset"]

    assert outcome.is_valid
    assert (asset["name"], asset["external_id"], asset["hostname"]) == (
        "billing-vm",
        "srv-aws-7",
        "billing01.corp.local",
    )
    assert asset["hostname_key"] == "billing01"
    assert (asset["cpu_cores"], asset["memory_gb"]) == (4, 8.0)
    assert (asset["cpu_utilization_pct"], asset["memory_utilization_pct"]) == (20.0, 25.0)
    assert asset["iops"] == 150.0
    assert asset["network_throughput_mbps"] == 40.0  # (2000 + 3000) KB/s × 8 / 1000
    custom = asset["custom_attributes"]
    assert (custom["cpu_utilization_peak_pct"], custom["memory_utilization_peak_pct"]) == (80, 75)
    assert custom["disk_throughput_mb_per_s"] == 1.5
    assert (custom["vmware_morefid"], custom["tags"]) == ("vm-1001", "env:prod")
    # peaks win the basis: 4 × 80 % × 1.3 = 4.16 → 5 cores; 8 × 75 % × 1.3 = 7.8 → 8 GB
    assert asset["rightsizing"]["basis"] == "peak"
    assert (asset["rightsizing"]["cores"], asset["rightsizing"]["memory_gb"]) == (5, 8)
    assert CATEGORY.natural_key(outcome.normalized) == "id:srv-aws-7"


def test_stratozone_vminfo_keeps_the_machine_id_for_its_samples() -> None:
    outcome, unmapped = validate(VMINFO_HEADERS, vminfo_row("m-1", "etl-01", physical="true"))
    asset = outcome.normalized["asset"]

    assert outcome.is_valid and unmapped == []
    assert (asset["external_id"], asset["custom_attributes"]["machine_id"]) == ("m-1", "m-1")
    assert (asset["storage_gb"], asset["storage_used_gb"]) == (200.0, 80.0)
    assert (asset["cpu_cores"], asset["memory_gb"]) == (2, 8.0)
    assert (asset["asset_type"], asset["power_state"], asset["location"]) == (
        "server",
        "powered_on",
        "Frankfurt",
    )
    assert (asset["operating_system"], asset["os_version"]) == ("CentOS", "7.9")
    assert asset["os_end_of_support"] is True
    assert asset["rightsizing"]["basis"] == "allocation"


def test_stratozone_perfinfo_rows_are_samples_keyed_by_machine_and_time() -> None:
    outcome, unmapped = validate(
        PERFINFO_HEADERS, perf_row("m-1", "2024-03-01 10:00:00", "35.5", "60")
    )
    assert outcome.is_valid and unmapped == []
    assert outcome.normalized["kind"] == "performance"
    assert outcome.normalized["observed_at"] == "2024-03-01T10:00:00+00:00"
    assert outcome.normalized["performance"] == {
        "cpu_utilization_pct": 35.5,
        "memory_utilization_pct": 60.0,
        "iops": 50.0,
        "network_throughput_mbps": 2.0,  # 250 000 bytes/s × 8
    }
    assert CATEGORY.natural_key(outcome.normalized) == "sample:m-1@2024-03-01T10:00:00+00:00"

    untimed, _ = validate(PERFINFO_HEADERS, perf_row("m-1", "", "35", "60"))
    assert codes(untimed) == [("missing-required", "error", "observed_at")]


# --- codes ---------------------------------------------------------------------------------


def test_utilisation_above_100_percent_is_a_constraint_warning() -> None:
    outcome, _ = validate(
        ["VM", "CPUs", "CPU Usage %"],
        ["web-09", "2", "130"],
    )
    assert outcome.is_valid
    assert codes(outcome) == [("constraint-error", "warning", "cpu_util")]
    assert "130" in outcome.issues[0].message
    assert outcome.normalized["asset"]["cpu_utilization_pct"] is None


def test_non_numeric_cores_is_a_type_warning() -> None:
    outcome, _ = validate(["VM", "CPUs", "Memory"], ["web-09", "lots", "4096"])
    assert codes(outcome) == [("type-error", "warning", "cpu_cores")]
    assert outcome.is_valid and outcome.normalized["asset"]["cpu_cores"] is None


def test_a_malformed_sample_time_still_rejects_the_sample() -> None:
    outcome, _ = validate(PERFINFO_HEADERS, perf_row("m-1", "not a time", "10", "20"))
    assert not outcome.is_valid
    assert ("type-error", "error", "observed_at") in codes(outcome)


def test_missing_name_bad_ip_and_unknown_power_state() -> None:
    nameless, _ = validate(["VM", "CPUs"], ["", "2"])
    assert codes(nameless) == [("missing-required", "error", "name")]

    odd, _ = validate(["VM", "Powerstate", "Primary IP Address"], ["x", "hibernating", "999.1.1.1"])
    assert odd.is_valid
    assert sorted(codes(odd)) == [
        ("constraint-error", "warning", "ip_address"),
        ("unknown-value", "warning", "power_state"),
    ]
    assert odd.normalized["asset"]["custom_attributes"]["power_state_raw"] == "hibernating"


def test_small_normalisers() -> None:
    assert normalize_power_state("poweredOff") == "powered_off"
    assert normalize_power_state("Running") == "powered_on"
    assert normalize_vm_uuid("564D1234-ABCD-0000-1111-222233334444") == (
        "564d1234-abcd-0000-1111-222233334444"
    )
    with pytest.raises(ValueError):
        normalize_vm_uuid("not-a-uuid")
    assert parse_timestamp("2024-03-01T10:00:00Z") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert parse_timestamp("3/1/2024 10:00:00 PM") == datetime(2024, 3, 1, 22, tzinfo=UTC)
    assert parse_timestamp("45352.5") == datetime(2024, 3, 1, 12, tzinfo=UTC)


# --- rightsizing ---------------------------------------------------------------------------


def test_rightsizing_applies_headroom_and_rounds_up() -> None:
    assert recommend(8, 32.0, 25.0, 50.0, basis="peak") == {
        "cores": 3,  # 8 × 0.25 × 1.3 = 2.6
        "memory_gb": 21,  # 32 × 0.5 × 1.3 = 20.8
        "basis": "peak",
        "headroom": 0.3,
        "cpu_utilization_pct": 25.0,
        "memory_utilization_pct": 50.0,
    }
    # 10 × 0.5 × 1.2 is 6.000000000000001 in floating point: still 6 cores
    assert recommend(10, None, 50.0, None, headroom=0.2)["cores"] == 6  # type: ignore[index]


def test_rightsizing_never_goes_below_one_and_may_grow() -> None:
    idle = recommend(16, 64.0, 0.0, 1.0, basis="average")
    assert idle is not None and (idle["cores"], idle["memory_gb"]) == (1, 1)
    hot = recommend(4, 8.0, 100.0, 100.0, basis="peak")
    assert hot is not None and (hot["cores"], hot["memory_gb"]) == (6, 11)


def test_rightsizing_basis_falls_back_to_allocation() -> None:
    unknown = recommend(4, 6.5, None, None)
    assert unknown is not None
    assert (unknown["cores"], unknown["memory_gb"], unknown["basis"]) == (4, 7, "allocation")
    assert recommend(None, None, 50.0, 50.0) is None
    off = recommend_from_samples(
        4, 16.0, cpu_average=30.0, cpu_peak=90.0, memory_average=None, memory_peak=None,
        powered_off=True,
    )  # fmt: skip
    assert off is not None and (off["cores"], off["basis"]) == (4, "allocation")
    mixed = recommend_from_samples(
        4, 16.0, cpu_average=30.0, cpu_peak=90.0, memory_average=50.0, memory_peak=None
    )
    assert mixed is not None and mixed["basis"] == "average"
    assert (mixed["cpu_utilization_pct"], mixed["memory_utilization_pct"]) == (90.0, 50.0)


# --- infrastructure_validator --------------------------------------------------------------


def examine(normalized: dict[str, Any]) -> list[tuple[str, str | None]]:
    context = RowContext(1, {}, {}, normalized, "infrastructure")
    found = InfrastructureValidator().examine(context)
    assert all(i.agent == "infrastructure_validator" and not i.is_error for i in found)
    return [(issue.code, issue.field) for issue in found]


def machine(**asset: Any) -> dict[str, Any]:
    base = {"operating_system": "Ubuntu", "cpu_cores": 2, "memory_gb": 4.0}
    return {"kind": "machine", "asset": {**base, **asset}}


def test_validator_accepts_a_consistent_vm() -> None:
    assert examine(machine(storage_gb=100.0, storage_used_gb=101.0, power_state="powered_on")) == []
    assert examine({"kind": "template", "skip": True}) == []


def test_validator_rules() -> None:
    assert examine(machine(memory_utilization_pct=112.5)) == [
        ("inconsistent-value", "memory_utilization_pct")
    ]
    assert examine(machine(storage_gb=100.0, storage_used_gb=150.0)) == [
        ("inconsistent-value", "storage_used_gb")
    ]
    assert examine(machine(power_state="powered_off", cpu_utilization_pct=3.0)) == [
        ("inconsistent-value", "power_state")
    ]
    assert examine(machine(cpu_cores=0, memory_gb=0.0)) == [
        ("zero-capacity", "cpu_cores"),
        ("zero-capacity", "memory_gb"),
    ]
    assert examine(machine(operating_system=None)) == [("unknown-os", "operating_system")]
    assert examine(machine(operating_system="Other (64-bit)")) == [
        ("unknown-os", "operating_system")
    ]
    peak = machine(custom_attributes={"cpu_utilization_peak_pct": 140})
    assert examine(peak) == [("inconsistent-value", "cpu_utilization_peak_pct")]


def test_category_registers_its_agent_and_workbook_plan() -> None:
    assert [agent.name for agent in CATEGORY.agents] == ["infrastructure_validator"]
    assert CATEGORY.sheet_plan is not None and CATEGORY.sheet_plan.primary[0] == "vInfo"
    assert "vPartition" in CATEGORY.sheet_plan.companions


# --- through the workflow ------------------------------------------------------------------

ASSET_SQL = """
SELECT a.*, (SELECT count(*) FROM assets x WHERE x.client_account_id = a.client_account_id
  AND x.engagement_id = a.engagement_id) AS tenant_assets
FROM assets a
WHERE a.client_account_id = :c AND a.engagement_id = :e AND a.name_key = :key
"""


async def run(service: ImportService, path: Path, category: str = "infrastructure") -> ImportStatus:
    started = await service.start_import(path, category)
    return await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)


async def asset(engine: AsyncEngine, service: ImportService, name: str) -> Mapping[str, Any]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(ASSET_SQL),
            {
                "c": service.tenant.client_account_id,
                "e": service.tenant.engagement_id,
                "key": name.lower(),
            },
        )
        return dict(result.mappings().one())


async def staged_rows(engine: AsyncEngine, data_import_id: uuid.UUID) -> list[Mapping[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT r.row_number, r.is_valid, l.row_number IS NOT NULL AS is_processed, "
                "l.asset_id, r.validation_errors FROM raw_import_records r "
                "LEFT JOIN staged_row_assets l USING (data_import_id, row_number) "
                "WHERE r.data_import_id = :id ORDER BY r.row_number"
            ),
            {"id": data_import_id},
        )
        return [dict(row) for row in result.mappings()]


def row_codes(row: Mapping[str, Any]) -> set[str]:
    return {issue["code"] for issue in row["validation_errors"] or []}


def write_rvtools(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    return write_csv(path, RVTOOLS_HEADERS, rows)


@pytest.mark.usefixtures("worker")
async def test_rvtools_vinfo_csv_import_creates_sized_vms_and_skips_templates(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    shared = "564d0000-1111-2222-3333-444455556666"
    rows = [
        rvtools_row("web-01", cpus="2", memory_mib="8192", dns="web-01.corp.local"),
        rvtools_row("db-01", cpus="8", memory_mib="65536", provisioned_mib="1048576"),
        rvtools_row("old-01", power="poweredOff", template="False", vm_uuid=shared),
        rvtools_row("tpl-linux", template="True"),
        rvtools_row("clone-01", vm_uuid=shared, ip="10.1.0.99", os_tools="Other Linux (64-bit)"),
    ]
    status = await run(service, write_rvtools(tmp_path / "RVTools_tabvInfo.csv", rows))

    assert status.status == "completed", status
    assert (status.total_rows, status.valid_rows, status.assets_created) == (5, 5, 4)
    assert status.processed_rows == 4  # the template is staged but never an asset
    web = await asset(engine, service, "web-01")
    assert web["tenant_assets"] == 4
    assert (web["asset_type"], web["cpu_cores"], web["memory_gb"]) == ("virtual_machine", 2, 8.0)
    assert (web["storage_gb"], web["storage_used_gb"]) == (100.0, 50.0)
    assert (web["host_name"], web["cluster"], web["datacenter"]) == ("esx-01", "cl-a", "dc-1")
    assert (web["power_state"], web["ip_address"], web["fqdn"]) == (
        "powered_on",
        "10.1.0.10",
        "web-01.corp.local",
    )
    assert web["vm_uuid"] == str(uuid.uuid5(uuid.NAMESPACE_DNS, "web-01"))
    assert web["custom_attributes"]["backup_policy"] == "daily"
    assert web["rightsizing"]["basis"] == "allocation" and web["rightsizing"]["cores"] == 2
    assert web["performance_observed_at"] is not None
    assert web["source_import_id"] == web["created_by_import_id"] == status.data_import_id

    staged = await staged_rows(engine, status.data_import_id)
    assert "template-skipped" in row_codes(staged[3]) and not staged[3]["is_processed"]
    # Clones sharing a VM UUID stay two machines; the UUID is not used to match either.
    assert "duplicate-vm-uuid" in row_codes(staged[2]) and "duplicate-vm-uuid" in row_codes(
        staged[4]
    )
    old, clone = await asset(engine, service, "old-01"), await asset(engine, service, "clone-01")
    assert old["id"] != clone["id"] and old["vm_uuid"] is None is clone["vm_uuid"]
    assert clone["custom_attributes"]["vm_uuid_shared"] == shared
    assert old["power_state"] == "powered_off"
    assert "unknown-os" in row_codes(staged[4])
    async with engine.connect() as conn:
        findings = await conn.scalar(
            text(
                "SELECT findings FROM import_processing_steps WHERE data_import_id = :id "
                "AND agent = 'infrastructure_validator'"
            ),
            {"id": status.data_import_id},
        )
    assert findings == {"unknown-os": 1, "duplicate-vm-uuid": 2}  # the cross-row rule reports too


@pytest.mark.usefixtures("worker")
async def test_reimporting_the_same_file_changes_nothing_but_the_source(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_rvtools(tmp_path / "vinfo.csv", [rvtools_row("a-01"), rvtools_row("b-01")])
    first = await run(service, path)
    before = dict(await asset(engine, service, "a-01"))
    second = await run(service, path)
    after = dict(await asset(engine, service, "a-01"))

    assert (first.assets_created, second.assets_created, second.assets_updated) == (2, 0, 2)
    assert after["tenant_assets"] == 2 and after["id"] == before["id"]
    # The sources say the second import set again what the row sets (test_field_sources.py).
    volatile = {"updated_at", "source_import_id", "performance_observed_at", "field_sources"}
    assert {k: v for k, v in after.items() if k not in volatile} == {
        k: v for k, v in before.items() if k not in volatile
    }
    assert after["source_import_id"] == second.data_import_id
    assert decode(after["field_sources"]).keys() == decode(before["field_sources"]).keys()


@pytest.mark.usefixtures("worker")
async def test_infrastructure_matches_a_cmdb_asset_by_host_name_and_keeps_cmdb_identity(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    cmdb = write_csv(tmp_path / "cmdb.csv", CMDB_HEADERS, [cmdb_row(1)])
    assert (await run(service, cmdb, "cmdb_export")).status == "completed"
    # Display name differs; the guest DNS name is the CMDB host: matched on host name key.
    vm = rvtools_row(
        "SRV-000001 (prod)", cpus="8", memory_mib="32768", dns="srv-000001.corp.local",
        ip="10.99.0.1",
    )  # fmt: skip
    status = await run(service, write_rvtools(tmp_path / "vinfo.csv", [vm]))

    assert (status.status, status.assets_created, status.assets_updated) == ("completed", 0, 1)
    merged = await asset(engine, service, "SRV-000001")
    assert merged["tenant_assets"] == 1
    # CMDB wins identity and business fields ...
    assert (merged["name"], merged["owner"], merged["asset_type"]) == (
        "SRV-000001",
        "Ops Team",
        "server",
    )
    assert (merged["ip_address"], merged["hostname"]) == ("10.0.0.1", "srv-000001")
    # ... infrastructure fills what it knows better
    assert (merged["cpu_cores"], merged["memory_gb"], merged["host_name"]) == (8, 32.0, "esx-01")
    assert merged["fqdn"] == "srv-000001.corp.local" and merged["vm_uuid"] is not None
    assert merged["rightsizing"] is not None


def samples_file(
    path: Path, machine_id: str, when: str, cpu: Sequence[str], mem: Sequence[str]
) -> Path:
    """Samples of one machine, hourly from `when`."""
    start = datetime.fromisoformat(when)
    rows = [
        perf_row(machine_id, start.replace(hour=start.hour + n).isoformat(), c, m)
        for n, (c, m) in enumerate(zip(cpu, mem, strict=True))
    ]
    return write_csv(path, PERFINFO_HEADERS, rows)


@pytest.mark.usefixtures("worker")
async def test_newer_samples_win_whatever_the_import_order(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    """CMDB assets carry no observation time; samples match them by external id."""
    cmdb = write_csv(tmp_path / "cmdb.csv", CMDB_HEADERS, [cmdb_row(1), cmdb_row(2)])
    assert (await run(service, cmdb, "cmdb_export")).status == "completed"

    def files(machine_id: str) -> tuple[Path, Path]:
        old = samples_file(
            tmp_path / f"old-{machine_id}.csv", machine_id, "2024-01-01T00:00:00",
            ["10", "20"], ["30", "30"],
        )  # fmt: skip
        new = samples_file(
            tmp_path / f"new-{machine_id}.csv", machine_id, "2024-06-01T00:00:00",
            ["50", "70", "90"], ["60"] * 3,
        )  # fmt: skip
        return old, new

    # new, then old: the old samples change nothing
    old, new = files("A-000001")
    newer = await run(service, new)
    assert (newer.status, newer.processed_rows, newer.assets_updated) == ("completed", 3, 1)
    fresh = await asset(engine, service, "SRV-000001")
    assert fresh["cpu_utilization_pct"] == 70.0 and fresh["memory_utilization_pct"] == 60.0
    assert fresh["performance_observed_at"] == datetime(2024, 6, 1, 2, tzinfo=UTC)
    custom = fresh["custom_attributes"]
    assert (custom["performance_samples"], custom["cpu_utilization_max_pct"]) == (3, 90.0)
    assert custom["cpu_utilization_peak_pct"] == 88.0  # 95th percentile of 50, 70, 90
    # CMDB's 4 cores × 88 % × 1.3 = 4.6 → 5; 16 GB × 60 % × 1.3 = 12.5 → 13
    assert fresh["rightsizing"]["basis"] == "peak"
    assert (fresh["rightsizing"]["cores"], fresh["rightsizing"]["memory_gb"]) == (5, 13)
    assert (fresh["owner"], fresh["cpu_cores"]) == ("Ops Team", 4)
    await run(service, old)
    kept = await asset(engine, service, "SRV-000001")
    assert kept["cpu_utilization_pct"] == 70.0 and kept["rightsizing"] == fresh["rightsizing"]
    assert kept["performance_observed_at"] == fresh["performance_observed_at"]

    # old, then new: the new samples replace the old figures
    old, new = files("A-000002")
    await run(service, old)
    assert (await asset(engine, service, "SRV-000002"))["cpu_utilization_pct"] == 15.0
    await run(service, new)
    replaced = await asset(engine, service, "SRV-000002")
    assert replaced["cpu_utilization_pct"] == 70.0
    assert replaced["performance_observed_at"] == datetime(2024, 6, 1, 2, tzinfo=UTC)


@pytest.mark.usefixtures("worker")
async def test_older_samples_only_fill_blanks_of_a_newer_inventory(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    """vmInfo without a time counts as observed at import; its machine id finds the asset
    even when the CMDB already owns the asset's external id."""
    cmdb = write_csv(tmp_path / "cmdb.csv", CMDB_HEADERS, [cmdb_row(1)])
    assert (await run(service, cmdb, "cmdb_export")).status == "completed"
    vminfo = write_csv(tmp_path / "vmInfo.csv", VMINFO_HEADERS, [vminfo_row("m-9", "SRV-000001")])
    assert (await run(service, vminfo)).assets_updated == 1
    inventory = await asset(engine, service, "SRV-000001")
    assert (inventory["external_id"], inventory["cpu_cores"]) == ("A-000001", 2)

    samples = samples_file(
        tmp_path / "p.csv", "m-9", "2024-01-01T00:00:00", ["10", "20"], ["30"] * 2
    )
    status = await run(service, samples)
    assert (status.processed_rows, status.assets_created) == (2, 0)
    filled = await asset(engine, service, "SRV-000001")
    assert filled["tenant_assets"] == 1
    assert (filled["cpu_utilization_pct"], filled["memory_utilization_pct"]) == (15.0, 30.0)
    assert filled["performance_observed_at"] == inventory["performance_observed_at"]
    assert filled["cpu_cores"] == 2 and filled["rightsizing"] == inventory["rightsizing"]


@pytest.mark.usefixtures("worker")
async def test_samples_for_unknown_machines_warn_and_create_nothing(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [perf_row("ghost", f"2024-01-01T0{n}:00:00", "10", "10") for n in range(3)]
    status = await run(service, write_csv(tmp_path / "perfInfo.csv", PERFINFO_HEADERS, rows))

    assert (status.status, status.valid_rows, status.processed_rows) == ("completed", 3, 0)
    assert status.assets_created == 0
    staged = await staged_rows(engine, status.data_import_id)
    assert [row_codes(row) for row in staged] == [set(), set(), {"unmatched-asset"}]


@pytest.mark.usefixtures("worker")
async def test_rvtools_workbook_import_joins_companion_sheets(
    service: ImportService, engine: AsyncEngine
) -> None:
    """The real RVTools sample: vInfo rows joined with vMemory, vPartition and vNetwork.

    Memory utilisation is vMemory Active / Size (the guest's working set), used storage the
    sum of the guest partitions' Consumed MiB.
    """
    status = await run(service, REALDATA / "rvtools-small-complete.xlsx")
    assert status.status == "completed", status
    assert (status.total_rows, status.valid_rows, status.assets_created) == (3, 3, 3)

    expected = {
        # name: cores, GB, provisioned GB, used GB, CPU %, memory %, host, power, IP
        "sample-web-01": (2, 8.0, 120.0, 60.0, 35.0, 50.0, "sample-host-01", "powered_on",
                          "10.10.1.10"),
        "sample-db-01": (4, 16.0, 320.0, 250.0, 62.0, 87.5, "sample-host-02", "powered_on",
                         "10.10.2.20"),
        "sample-archive-01": (2, 4.0, 80.0, 10.0, 2.0, 25.0, "sample-host-01", "powered_off",
                              "10.10.1.30"),
    }  # fmt: skip
    columns = (
        "cpu_cores", "memory_gb", "storage_gb", "storage_used_gb", "cpu_utilization_pct",
        "memory_utilization_pct", "host_name", "power_state", "ip_address",
    )  # fmt: skip
    found = {name: await asset(engine, service, name) for name in expected}
    for name, values in expected.items():
        assert tuple(found[name][column] for column in columns) == values, name
        assert (found[name]["cluster"], found[name]["datacenter"]) == (
            "sample-cluster-a",
            "sample-dc",
        )
        assert found[name]["asset_type"] == "virtual_machine"
    assert found["sample-db-01"]["operating_system"] == "Windows Server"
    assert found["sample-db-01"]["custom_attributes"]["ip_addresses"] == [
        "10.10.2.20",
        "10.10.3.20",
    ]
    rightsizing = {
        name: (
            row["rightsizing"]["cores"],
            row["rightsizing"]["memory_gb"],
            row["rightsizing"]["basis"],
        )
        for name, row in found.items()
    }
    assert rightsizing == {
        "sample-web-01": (1, 6, "average"),  # 2 × 35 % × 1.3 = 0.9 → 1; 8 × 50 % × 1.3 = 5.2 → 6
        "sample-db-01": (4, 19, "average"),  # 4 × 62 % × 1.3 = 3.2 → 4; 16 × 87.5 % × 1.3 → 19
        "sample-archive-01": (2, 4, "allocation"),  # powered off: its readings are stale
    }
    staged = await staged_rows(engine, status.data_import_id)
    assert [row_codes(row) for row in staged] == [set(), set(), {"inconsistent-value"}]
