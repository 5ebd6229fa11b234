"""Test data of every category, and the small helpers the tests share (bounded waits)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport.api import create_app
from dataimport.auth import Scope, keys
from dataimport.contracts import ImportRef, ImportStatus
from dataimport.imports import Tenant
from dataimport.issues import ImportFailure
from dataimport.readers import SourceRow, TableSource, looks_like_formula, open_table
from dataimport.settings import Settings
from devstack import embedded
from service.imports import ImportService

CMDB_HEADERS = [
    "asset_id",
    "asset_name",
    "Type",
    "IP Address",
    "hostname",
    "operating_system",
    "cpu_count",
    "memory_gb",
    "storage_gb",
    "environment",
    "criticality",
    "owner",
    "department",
    "location",
    "dependencies",
]


def cmdb_row(n: int, *, deps: str = "", name: str | None = None) -> list[str]:
    return [
        f"A-{n:06d}",
        name or f"SRV-{n:06d}",
        "Server",
        f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
        f"srv-{n:06d}",
        "Ubuntu 22.04",
        "4",
        "16 GB",
        "100",
        "prod",
        "High",
        "Ops Team",
        "IT",
        "Frankfurt",
        deps,
    ]


def unidentified(row: list[str]) -> list[str]:
    """A CMDB row that names no asset (no name, no host name): rejected as missing-required.
    A malformed IP or size only warns (the data-quality policy); this is what rejects a row."""
    row[CMDB_HEADERS.index("asset_name")] = row[CMDB_HEADERS.index("hostname")] = ""
    return row


def write_csv(
    path: Path, headers: Sequence[str], rows: Iterable[Sequence[str]], delimiter: str = ","
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


def write_cmdb(path: Path, count: int, *, with_deps: bool = True) -> Path:
    """count servers; every server n>1 depends on server n-1 (count-1 dependencies)."""
    rows = (
        cmdb_row(n, deps=f"SRV-{n - 1:06d}" if with_deps and n > 1 else "")
        for n in range(1, count + 1)
    )
    return write_csv(path, CMDB_HEADERS, rows)


async def new_import_record(engine: AsyncEngine, category: str = "cmdb_export") -> ImportRef:
    """A data_imports row of a fresh tenant, for tests that stage rows without a workflow."""
    ref = ImportRef(
        data_import_id=uuid.uuid4(),
        client_account_id=uuid.uuid4(),
        engagement_id=uuid.uuid4(),
        category=category,
    )
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO data_imports (id, client_account_id, engagement_id, import_category, "
                "filename, file_uri, workflow_id) VALUES (:i, :c, :e, :category, 'f', "
                "'file:///f', :w)"
            ),
            {
                "i": ref.data_import_id,
                "c": ref.client_account_id,
                "e": ref.engagement_id,
                "category": category,
                "w": f"test-{ref.data_import_id}",
            },
        )
    return ref


async def wait_for(
    service: ImportService,
    data_import_id: uuid.UUID,
    statuses: Iterable[str],
    attempts: int = 600,
) -> ImportStatus:
    """Poll the status until it is one of `statuses` (bounded: fails loudly instead of hanging)."""
    wanted = set(statuses)
    status = None
    for _ in range(attempts):
        status = await service.status(data_import_id)
        if status is not None and status.status in wanted:
            return status
        await asyncio.sleep(0.2)
    raise AssertionError(f"import {data_import_id} never reached {wanted}; last: {status}")


TERMINAL_OR_WAITING = (
    "completed",
    "completed_with_errors",
    "failed",
    "cancelled",
    "rejected",
    "needs_attention",
    "awaiting_approval",
)


# Real exports written by others, kept in the repository with their licence (tests/data).
# An asset's dependency group as a column of `SELECT ... FROM assets` (groups have a table).
ASSET_GROUP = (
    "(SELECT 'G-' || g.group_root FROM dependency_group_members g WHERE g.asset_id = assets.id) "
    "AS dependency_group"
)

TASK_QUEUE = "test-data-import"
REALDATA = Path(__file__).resolve().parent / "data" / "realdata"


# --- infrastructure layouts ----------------------------------------------------------------
# RVTools vInfo, the Azure Migrate import, AWS Migration Hub, StratoZone vmInfo / perfInfo.

RVTOOLS_HEADERS = [
    "VM",
    "Powerstate",
    "Template",
    "CPUs",
    "Memory",
    "NICs",
    "Disks",
    "Provisioned MiB",
    "In Use MiB",
    "Unshared MiB",
    "Host",
    "Cluster",
    "Datacenter",
    "OS according to the configuration file",
    "OS according to the VMware Tools",
    "VM UUID",
    "Primary IP Address",
    "DNS Name",
    "Annotation",
    "Config status",
    "backup_policy",
    "App Owner",
]


def rvtools_row(
    name: str,
    *,
    power: str = "poweredOn",
    template: str = "False",
    cpus: str = "4",
    memory_mib: str = "16384",
    provisioned_mib: str = "102400",
    in_use_mib: str = "51200",
    host: str = "esx-01",
    vm_uuid: str = "",
    ip: str = "10.1.0.10",
    dns: str = "",
    os_tools: str = "Microsoft Windows Server 2019 (64-bit)",
) -> list[str]:
    return [
        name,
        power,
        template,
        cpus,
        memory_mib,
        "1",
        "2",
        provisioned_mib,
        in_use_mib,
        "40960",
        host,
        "cl-a",
        "dc-1",
        "Microsoft Windows Server 2016 or later (64-bit)",
        os_tools,
        vm_uuid or str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
        ip,
        dns,
        "built by ops",
        "green",
        "daily",
        "Jane",
    ]


AZURE_MIGRATE_HEADERS = [
    "Server name*",
    "IP addresses",
    "Cores*",
    "Memory (In MB)*",
    "OS name*",
    "OS version",
    "OS architecture",
    "CPU utilization percentage",
    "Memory utilization percentage",
    "Number of disks",
    "Disk 1 size (In GB)",
    "Disk 1 read throughput (MB per second)",
    "Disk 1 write throughput (MB per second)",
    "Disk 1 read ops (operations per second)",
    "Disk 1 write ops (operations per second)",
    "Disk 2 size (In GB)",
    "Disk 2 read throughput (MB per second)",
    "Disk 2 write throughput (MB per second)",
    "Disk 2 read ops (operations per second)",
    "Disk 2 write ops (operations per second)",
    "Network adapters",
    "Network In throughput",
    "Network Out throughput",
    "Boot type",
    "Machine type",
    "MAC address",
]


AWS_HEADERS = [
    "ExternalId",
    "VMware.MoRefId",
    "VMware.VCenterId",
    "VMware.VMName",
    "IPAddress",
    "MACAddress",
    "HostName",
    "OS.Name",
    "OS.Version",
    "CPU.NumberOfProcessors",
    "CPU.NumberOfCores",
    "CPU.NumberOfLogicalCores",
    "RAM.TotalSizeInMB",
    "RAM.UsedSizeInMB.Avg",
    "RAM.UsedSizeInMB.Max",
    "CPU.UsagePct.Avg",
    "CPU.UsagePct.Max",
    "DiskReadsPerSecondInKB.Avg",
    "DiskWritesPerSecondInKB.Avg",
    "DiskReadOpsPerSecond.Avg",
    "DiskWriteOpsPerSecond.Avg",
    "NetworkReadsPerSecondInKB.Avg",
    "NetworkWritesPerSecondInKB.Avg",
    "Applications",
    "Tags",
]


VMINFO_HEADERS = [
    "MachineId",
    "MachineName",
    "PrimaryIPAddress",
    "PrimaryMACAddress",
    "IpAddressListSemiColonDelimited",
    "TotalDiskAllocatedGiB",
    "TotalDiskUsedGiB",
    "MachineTypeLabel",
    "AllocatedProcessorCoreCount",
    "MemoryGiB",
    "HostingLocation",
    "OsType",
    "OsName",
    "OsVersion",
    "MachineStatus",
    "ProvisioningState",
    "CreateDate",
    "IsPhysical",
    "Source",
]


PERFINFO_HEADERS = [
    "MachineId",
    "TimeStamp",
    "CpuUtilizationPercentage",
    "MemoryUtilizationPercentage",
    "AvailableMemoryBytes",
    "DiskReadOperationsPerSec",
    "DiskWriteOperationsPerSec",
    "NetworkBytesPerSecSent",
    "NetworkBytesPerSecReceived",
]


def vminfo_row(machine_id: str, name: str, *, physical: str = "false") -> list[str]:
    return [
        machine_id,
        name,
        "10.4.0.9",
        "00:50:56:00:00:09",
        "10.4.0.9;10.4.1.9",
        "200",
        "80",
        "custom",
        "2",
        "8",
        "Frankfurt",
        "Linux",
        "CentOS",
        "7.9",
        "Running",
        "Provisioned",
        "2020-05-01",
        physical,
        "vmware",
    ]


def perf_row(machine_id: str, when: str, cpu: str, mem: str) -> list[str]:
    return [machine_id, when, cpu, mem, "1073741824", "40", "10", "125000", "125000"]


# --- app_discovery -------------------------------------------------------------------------
# The Azure Migrate dependency export.

AZURE_CONNECTION_HEADERS = [
    "Timeslot",
    "Source server name",
    "Source application",
    "Source process",
    "Destination server name",
    "Destination IP",
    "Destination application",
    "Destination process",
    "Destination port",
]


# --- app_discovery connections -------------------------------------------------------------
# Connections over few shared servers, and the edges (with their counts) they add up to.

CONNECTION_HEADERS = ["Source", "Source IP", "Destination", "Destination IP", "Port", "Connections"]
CONNECTION_HEADERS += ["First Seen", "Last Seen"]


def connection_rows(count: int, servers: int) -> list[list[str]]:
    """Each row its own observation (its own day) over few shared servers and edges."""
    rows = []
    for n in range(1, count + 1):
        s, t = n % servers, (n * 7 + 3) % servers
        if s == t:
            t = (t + 1) % servers
        day = f"2025-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}"
        rows.append(
            [
                f"srv-{s:03d}",
                f"10.5.0.{s + 1}",
                f"srv-{t:03d}",
                f"10.5.0.{t + 1}",
                str(443 + n % 3),
                str(n),
                f"{day}T00:00:00Z",
                f"{day}T01:00:00Z",
            ]
        )
    return rows


def expected_edges(rows: list[list[str]]) -> dict[tuple[str, str, int], int]:
    expected: dict[tuple[str, str, int], int] = {}
    for row in rows:
        key = (row[0], row[2], int(row[4]))
        expected[key] = expected.get(key, 0) + int(row[5])
    return expected


# --- sensitive_data ------------------------------------------------------------------------
# A data-store inventory of two stores, the vocabularies its rules normalise (value, what it
# normalises to), and values that must never leave staging unmasked.

STORE_HEADERS = [
    "Host",
    "Data Store",
    "Database",
    "Table",
    "Columns",
    "Data Categories",
    "Classification",
    "Compliance",
    "Encrypted at rest",
    "Encrypted in transit",
    "Record Count",
    "Owner",
    "Region",
    "Sample Values",
]


PAYMENTS = [
    "db-01",
    "Payments",
    "payments",
    "cards",
    "email, card_number",
    "Cardholder data",
    "Restricted",
    "PCI-DSS",
    "AES-256",
    "TLS 1.2",
    "1.2M",
    "jane.doe@corp.example.com",
    "eu-central-1",
    "4111 1111 1111 1111",
]


CRM = [
    "db-01",
    "CRM",
    "crm",
    "contacts",
    "first_name, phone",
    "Contact details",
    "Internal",
    "GDPR",
    "no",
    "yes",
    "12,000",
    "CRM Team",
    "Frankfurt",
    "+49 89 1234 5678",
]


CLASSIFICATION_LABELS = [
    ("Public", "public"),
    ("unclassified", "public"),
    ("Internal Use Only", "internal"),
    ("General", "internal"),
    ("Sensitive", "confidential"),
    ("private", "confidential"),
    ("Confidential - Finance", "confidential"),
    ("Highly Confidential\\All Employees", "restricted"),
    ("Strictly Confidential", "restricted"),
    ("SECRET", "restricted"),
    ("Restricted", "restricted"),
    ("n/a", None),
]

COMPLIANCE_SCOPES = [
    ("GDPR", "GDPR"),
    ("EU GDPR", "GDPR"),
    ("UK GDPR", "UK GDPR"),
    ("HIPAA/HITECH", "HIPAA"),
    ("PCI", "PCI-DSS"),
    ("PCI DSS v4.0", "PCI-DSS"),
    ("pci-dss", "PCI-DSS"),
    ("SOX 404", "SOX"),
    ("Sarbanes-Oxley", "SOX"),
    ("CCPA", "CCPA"),
    ("ISO/IEC 27001:2022", "ISO 27001"),
    ("SOC 2 Type II", "SOC 2"),
    ("FedRAMP Moderate", "FedRAMP"),
    ("NIS 2", "NIS2"),
    ("DORA", "DORA"),
    ("Company Policy 7", None),
]

ENCRYPTION_FLAGS = [
    ("yes", True),
    ("Y", True),
    ("TRUE", True),
    ("AES-256", True),
    ("TDE", True),
    ("TLS 1.2", True),
    ("BitLocker", True),
    ("SSE-KMS", True),
    ("no", False),
    ("N", False),
    ("false", False),
    ("None", False),
    ("Not encrypted", False),
    ("unencrypted", False),
    ("plaintext", False),
    ("unknown", None),
]

RECORD_COUNTS = [
    ("1200000", 1_200_000),
    ("1,200,000", 1_200_000),
    ("1.200.000", 1_200_000),
    ("1 200 000", 1_200_000),
    ("1.2M", 1_200_000),
    ("12k", 12_000),
    ("~3.5 billion", 3_500_000_000),
    ("1M+", 1_000_000),
    ("0", 0),
]

SECRETS = ["4111 1111 1111 1111", "jane.doe@corp.example.com", "+49 89 1234 5678"]


# --- personal data -------------------------------------------------------------------------
# Values and column names with what `pii` finds in them; the golden corpus of sensitive_data
# is built from them too.

PII_VALUES = [
    ("john.doe@example.com", "email"),
    ("  Jane.O'Neil+crm@mail.example.co.uk ", "email"),
    ("contact jane@corp.example.org for access", "email"),
    ("4111 1111 1111 1111", "payment_card"),  # Visa test number
    ("4111-1111-1111-1111", "payment_card"),
    ("5555555555554444", "payment_card"),  # Mastercard
    ("3782 822463 10005", "payment_card"),  # Amex, 15 digits
    ("DE89 3704 0044 0532 0130 00", "iban"),
    ("GB82WEST12345698765432", "iban"),
    ("fr1420041010050500013m02606", "iban"),
    ("536-90-4399", "national_id"),  # US SSN
    ("AB 12 34 56 C", "national_id"),  # UK NINO
    ("AB123456C", "national_id"),
    ("2 95 10 99 126 111 93", "national_id"),  # French NIR
    ("85.07.30-033.28", "national_id"),  # Belgian national number
    ("880320-0016", "national_id"),  # Swedish personnummer
    ("131052-308T", "national_id"),  # Finnish HETU
    ("54362315K", "national_id"),  # Spanish DNI
    ("X2482300W", "national_id"),  # Spanish NIE
    ("36 574 261 809", "national_id"),  # German Steuer-IdNr
    ("RCCMNL83S18D969H", "national_id"),  # Italian codice fiscale
    ("+49 89 1234 5678", "phone"),
    ("+1 (555) 234-5678", "phone"),
    ("(555) 123-4567", "phone"),
    ("555.234.5678", "phone"),
    ("1-800-555-0199", "phone"),
    ("020 7946 0958", "phone"),
    ("06 12 34 56 78", "phone"),
    ("0049 89 1234567", "phone"),
    ("DOB: 1985-07-30", "date_of_birth"),
    ("born 30.07.1985", "date_of_birth"),
]

NOT_PII_VALUES = [
    "",
    "prod",
    "16 GB",
    "srv-000123",
    "SRV-000123",
    "10.0.4.210",
    "192.168.100.200",
    "Ubuntu 22.04",
    "Windows Server 2019 Datacenter",
    "oracle@db01",  # a service account, not an address with a domain
    "4111 1111 1111 1112",  # Luhn check fails
    "1234567890123456",  # no card network starts with 1
    "356938035643809",  # an IMEI: Luhn-valid, 15 digits, but no card network's length
    "DE88 3704 0044 0532 0130 00",  # IBAN checksum fails
    "XX89 3704 0044 0532 0130 00",  # no such country
    "000-12-3456",  # SSN area 000 is never issued
    "666-12-3456",
    "078-05-1120",  # the Woolworth wallet SSN, blacklisted
    "QQ123456C",  # HMRC's example prefix, never issued
    "123456789",  # a bare 9-digit number needs a column hint
    "1200000",
    "2024-01-15",  # a bare date is not personal data
    "30.07.1985",
    "01-02-2024",
    "2024-01-15 10:22:33",
    "10.0.14393",  # a Windows build
    "00:1A:2B:3C:4D:5E",  # a MAC address
    "555-123",
]

FREE_TEXT_PII = [
    ("e.g. 4111 1111 1111 1111; jane@example.com", {"payment_card", "email"}),
    ("call +49 89 1234 5678 today", {"phone"}),
    ("ssn 536-90-4399 on file", {"national_id"}),
    ("IBAN DE89 3704 0044 0532 0130 00 for refunds", {"iban"}),
    ("Server rebuilt 2024-01-15 10:22 by ops", set()),
    ("Patched to build 10.0.14393 on 2023-05-01", set()),
    ("Ticket 4111 1111 1111 1112 closed", set()),  # Luhn fails inside text too
]

MASKED_VALUES = [
    ("john.doe@example.com", "j***@e***.com"),
    ("4111 1111 1111 1234", "**** **** **** 1234"),
    ("4111111111111234", "************1234"),
    ("123-45-6789", "***-**-6789"),
    ("+49 89 1234 5678", "+** ** **** 5678"),
    ("DE89 3704 0044 0532 0130 00", "DE** **** **** **** **30 00"),
    ("1985-07-30", "****-**-**"),  # short digit runs are hidden whole
    ("John Smith", "J***h"),
    ("Payroll", "P***l"),
    ("Bob", "***"),
    ("abcd", "***"),
    ("", ""),
]

PII_COLUMN_NAMES = [
    ("email", {"email"}),
    ("E-Mail", {"email"}),
    ("customer_email_address", {"email"}),
    ("phone", {"phone"}),
    ("MobileNumber", {"phone"}),
    ("ssn", {"national_id"}),
    ("national_id", {"national_id"}),
    ("Passport Number", {"national_id"}),
    ("dob", {"date_of_birth"}),
    ("DateOfBirth", {"date_of_birth"}),
    ("birth_date", {"date_of_birth"}),
    ("card_number", {"payment_card"}),
    ("PAN", {"payment_card"}),
    ("iban", {"iban"}),
    ("account_number", {"financial"}),
    ("salary", {"financial"}),
    ("first_name", {"name"}),
    ("LastName", {"name"}),
    ("full_name", {"name"}),
    ("home_address", {"address"}),
    ("Postcode", {"address"}),
    ("diagnosis", {"health"}),
    ("medical_history", {"health"}),
    ("gender", {"demographic"}),
    # data categories as inventories declare them
    ("Email addresses", {"email"}),
    ("Credit card numbers", {"payment_card"}),
    ("Dates of birth", {"date_of_birth"}),
    ("Customer names", {"name"}),
    ("PHI", {"health"}),
    ("PII", {"personal_data"}),
]

INVENTORY_COLUMN_NAMES = [
    "name",
    "hostname",
    "server_name",
    "ip_address",
    "MAC Address",
    "panel",
    "company",
    "status",
]


# --- readers -------------------------------------------------------------------------------
# A file read to the end, or the failure reading it raises.


def read_all(path: Path, **kwargs: Any) -> tuple[TableSource, list[SourceRow]]:
    with open_table(path, **kwargs) as source:
        return source, list(source.rows())


def failure(path: Path, **kwargs: Any) -> ImportFailure:
    """The ImportFailure raised by opening and fully reading the file."""
    with pytest.raises(ImportFailure) as caught:
        read_all(path, **kwargs)
    return caught.value


def issue_codes(row: SourceRow) -> list[str]:
    return [issue.code for issue in row.issues]


# --- imports through the real workflow -----------------------------------------------------


async def run_import(
    service: ImportService,
    path: Path,
    config: dict[str, Any] | None = None,
    category: str = "cmdb_export",
) -> ImportStatus:
    started = await service.start_import(path, category, config)
    return await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)


# --- the CLI, as a tenant runs it ----------------------------------------------------------
# `dataimport ...` as a subprocess against the test stack, and what its reports must be.

CLI = Path(sys.executable).parent / "dataimport"

WEB_UI = "http://127.0.0.1:65000"

TENANT_ENV = ("DATAIMPORT_CLIENT_ACCOUNT_ID", "DATAIMPORT_ENGAGEMENT_ID")


def other_tenant() -> Tenant:
    return Tenant(uuid.uuid4(), uuid.uuid4())


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def masked(self, text: str) -> tuple[int, str, str]:
        """The outcome with `text` (an import id) replaced, to compare two runs."""
        return self.code, self.stdout.replace(text, "<ID>"), self.stderr.replace(text, "<ID>")


class Cli:
    """Runs `dataimport ...` as a tenant against the test stack."""

    def __init__(self, env: dict[str, str], tenant: Tenant) -> None:
        self.env = env
        self.tenant = tenant

    def tenant_args(self, tenant: Tenant | None = None) -> list[str]:
        who = tenant or self.tenant
        return [
            "--client-account",
            str(who.client_account_id),
            "--engagement",
            str(who.engagement_id),
        ]

    async def __call__(self, *args: str, tenant: Tenant | None = None) -> Result:
        process = await asyncio.create_subprocess_exec(
            str(CLI),
            *args,
            *self.tenant_args(tenant),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=300)
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str, tenant: Tenant | None = None) -> Result:
        result = await self(*args, tenant=tenant)
        assert result.code == 0, result
        assert "Traceback" not in result.stderr
        return result

    async def status(self, data_import_id: str) -> dict[str, Any]:
        data: dict[str, Any] = (await self.ok("status", data_import_id, "--json")).json()
        return data

    async def wait_for(self, data_import_id: str, wanted: tuple[str, ...]) -> dict[str, Any]:
        """Poll `status --json` until one of `wanted` (bounded, never a timing assert)."""
        status: dict[str, Any] = {}
        for _ in range(300):
            status = await self.status(data_import_id)
            if status["status"] in wanted:
                return status
            await asyncio.sleep(0.2)
        raise AssertionError(f"{data_import_id} never reached {wanted}; last: {status}")


async def import_json(cli: Cli, path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = await cli("import", str(path), "--category", "cmdb_export", "--json", *extra)
    assert "Traceback" not in result.stderr, result.stderr
    return result.code, result.json()


def assert_formula_safe(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not looks_like_formula(cell), (cell, row)
            assert cell[:1] not in ("=", "@"), (cell, row)


# --- the API, as a tenant calls it ---------------------------------------------------------
# API keys that decide the tenant, an app with a small upload limit, the error body.

IMPORTS = "/api/v1/imports"


async def headers_of(
    engine: AsyncEngine, tenant: Tenant, scope: Scope = Scope.WRITE
) -> dict[str, str]:
    """An Authorization header with a new API key of the tenant: the key decides the tenant."""
    issued = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], scope, name="test"
    )
    return {"Authorization": f"Bearer {issued.key}"}


async def small_limit_api(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, storage: Path
) -> httpx.AsyncClient:
    limited = settings.model_copy(update={"max_upload_bytes": 1000, "storage_dir": storage})
    transport = httpx.ASGITransport(app=create_app(limited, engine, client))
    headers = await headers_of(engine, tenant)
    return httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] and error["message"], body
    return error


def storage_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


# --- hand-made requests and workbooks ------------------------------------------------------
# What an attacker hands the workflow or the readers: a request started with the stock
# `temporal` CLI, a minimal XLSX written by hand; and the import that shows the worker lives.


def temporal_cli_start(address: str, workflow_id: str, request: dict[str, Any]) -> None:
    """Start a DataImportWorkflow with the stock `temporal` CLI, as anyone reaching the
    frontend can (Temporal in compose has no authorisation)."""
    subprocess.run(
        [
            str(embedded.temporal_binary()),
            "workflow",
            "start",
            "--address",
            address,
            "--task-queue",
            TASK_QUEUE,
            "--type",
            "DataImportWorkflow",
            "--workflow-id",
            workflow_id,
            "--input",
            json.dumps(request),
        ],
        check=True,
        capture_output=True,
        timeout=60,
        env={**os.environ, "TEMPORAL_CLI_SHOW_STACKS": "0"},
    )


def hand_made_request(file_uri: str, **overrides: Any) -> dict[str, Any]:
    return {
        "data_import_id": str(uuid.uuid4()),
        "client_account_id": str(uuid.uuid4()),
        "engagement_id": str(uuid.uuid4()),
        "category": "cmdb_export",
        "file_uri": file_uri,
        "filename": "servers.csv",
        **overrides,
    }


async def a_good_import_completes(service: ImportService, tmp_path: Path) -> None:
    """The worker is alive and well: an honest import still completes after the attack."""
    started = await service.start_import(write_cmdb(tmp_path / "good.csv", 3), "cmdb_export")
    done = await wait_for(service, started.data_import_id, ["completed"])
    assert (done.total_rows, done.valid_rows) == (3, 3)


WORKSHEET = (
    '<?xml version="1.0"?><worksheet xmlns="{ns}/spreadsheetml/2006/main">{body}</worksheet>'
)

_NS = "http://schemas.openxmlformats.org"

_PARTS = {
    "[Content_Types].xml": (
        f'<?xml version="1.0"?><Types xmlns="{_NS}/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
        'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
        'worksheet+xml"/></Types>'
    ),
    "_rels/.rels": (
        f'<?xml version="1.0"?><Relationships xmlns="{_NS}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{_NS}/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<?xml version="1.0"?><workbook xmlns="{_NS}/spreadsheetml/2006/main" '
        f'xmlns:r="{_NS}/officeDocument/2006/relationships"><sheets>'
        '<sheet name="Servers" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<?xml version="1.0"?><Relationships xmlns="{_NS}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{_NS}/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>'
    ),
}


def cell(ref: str, value: str) -> str:
    at = f' r="{ref}"' if ref else ""
    return f'<c{at} t="inlineStr"><is><t>{value}</t></is></c>'


def workbook(path: Path, body: str, extra_entries: int = 0) -> Path:
    """A minimal XLSX written by hand: one sheet named Servers with `body` as its XML."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in _PARTS.items():
            archive.writestr(name, data)
        archive.writestr("xl/worksheets/sheet1.xml", WORKSHEET.format(ns=_NS, body=body))
        for n in range(extra_entries):
            archive.writestr(f"xl/media/pad{n}.bin", b"")
    return path


def sheet_of(*rows: tuple[int | None, str], dimension: str | None = None) -> str:
    head = f'<dimension ref="{dimension}"/>' if dimension else ""
    cells = "".join(f'<row r="{n}">{c}</row>' if n else f"<row>{c}</row>" for n, c in rows)
    return f"{head}<sheetData>{cells}</sheetData>"


A1_AND_XFD1048576 = sheet_of((1, cell("A1", "name")), (1048576, cell("XFD1048576", "x")))


# --- a stand-in model endpoint -------------------------------------------------------------
# An OpenAI-compatible server for the model agents, its answers picked per test.

STAND_IN_KEY = "sk-test-stand-in"
STAND_IN_MODEL = "stand-in-model"
# What the stand-in "knows": header -> field for the mapper.
STAND_IN_FIELDS = {"Srv Moniker": "name", "Box IP": "ip_address", "Host Label": "hostname"}


class StandIn:
    """An OpenAI-compatible endpoint whose behaviour the test picks with `mode`."""

    def __init__(self) -> None:
        self.mode = "good"
        self.delay_seconds = 0.0
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sent_text(self) -> str:
        """Everything the model was sent, as one string."""
        return json.dumps([request["body"] for request in self.requests])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                stand_in.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, payload = stand_in.answer(self.path, body)
                time.sleep(stand_in.delay_seconds)
                with contextlib.suppress(OSError):  # the client may have given up
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(payload.encode())

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        if path != "/v1/chat/completions":
            return 404, "{}"
        if self.mode == "http_500":
            return 500, json.dumps({"error": {"message": "overloaded"}})
        if self.mode == "bad_body":
            return 200, json.dumps({"id": "x", "object": "chat.completion"})
        return 200, json.dumps(self._completion(body, self._content(body)))

    def _content(self, body: dict[str, Any]) -> str:
        if self.mode == "not_json":
            return "Sure! Srv Moniker is the server name."
        request = json.loads(body["messages"][-1]["content"])
        if "target_fields" in request:
            return json.dumps({"mappings": self._mappings(request)})
        return json.dumps({"columns": self._classifications(request)})

    def _mappings(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        for column in request["columns"]:
            field = STAND_IN_FIELDS.get(column["header"])
            if self.mode == "unknown_field":
                field = "warp_drive"
            if field and (field in request["target_fields"] or self.mode == "unknown_field"):
                reason = f"header and {column['shape']} values"
                found.append(
                    {
                        "header": column["header"],
                        "field": field,
                        "confidence": 0.9,
                        "reason": reason,
                    }
                )
        return found

    @staticmethod
    def _classifications(request: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "header": column["header"],
                "classification": "confidential",
                "pii_types": ["personal_data"],
                "confidence": 0.7,
                "reason": "a customer reference links records to a person",
            }
            for column in request["columns"]
        ]

    @staticmethod
    def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375},
        }
