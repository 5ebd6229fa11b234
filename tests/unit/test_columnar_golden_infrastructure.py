"""Golden files for infrastructure: the columnar rules find what tests/golden records.

Same method as `test_columnar_golden.py` (real readers, JSONB key order, every row's
validity, findings and normalised data against the golden files, recorded while the row
engine still existed and agreed), with the category's `sheet_plan` so that RVTools workbooks
join their companion sheets. Corpus: the bundled RVTools workbook, every source layout of
`test_infrastructure.py`, a generated 100,000-row CSV of everything the rules and the agent
branch on, a realistic 100,000-row RVTools vInfo CSV and a generated RVTools workbook with
companion sheets.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from dataimport.categories.infrastructure import InfrastructureCategory
from tests.factories import (
    AWS_HEADERS,
    AZURE_MIGRATE_HEADERS,
    PERFINFO_HEADERS,
    RVTOOLS_HEADERS,
    VMINFO_HEADERS,
    perf_row,
    rvtools_row,
    vminfo_row,
    write_csv,
)
from tests.golden.listing import GoldenCase, check, golden_codes, sample

INFRA = InfrastructureCategory(as_of=date(2026, 1, 1))


# --- the bundled workbook, and every layout of the category's tests -----------------------


AZURE_ROW = [
    "app-02", "10.2.0.5, 10.2.0.6", "8", "32768", "Red Hat Enterprise Linux", "8.6", "x64",
    "40", "55.5", "2", "128", "10", "5", "100", "50", "512", "20", "15", "300", "150", "1",
    "2.5", "1.5", "UEFI", "Physical", "00:11:22:33:44:55",
]  # fmt: skip
AWS_ROW = [
    "srv-aws-7", "vm-1001", "vc-01", "billing-vm", "10.3.0.7", "00:50:56:00:00:07",
    "billing01.corp.local", "Ubuntu", "20.04", "1", "4", "8", "8192", "2048", "6144", "20",
    "80", "1000", "500", "120", "30", "2000", "3000", "billing", "env:prod",
]  # fmt: skip


def _vary(rows: Sequence[Sequence[str]], rng: random.Random, count: int) -> Iterator[list[str]]:
    """The layout's rows with cells swapped for values the rules branch on."""
    odd = ["", "N/A", "-", "abc", "-1", "0", "150", "12,5", "1,024", "2 GB", "512 MiB", "1e3"]
    for n in range(count):
        row = list(rows[n % len(rows)])
        for i in range(len(row)):
            if rng.random() < 0.15:
                row[i] = rng.choice(odd)
        yield row


LAYOUTS: dict[str, tuple[list[str], list[list[str]]]] = {
    "rvtools_vinfo": (
        RVTOOLS_HEADERS,
        [
            rvtools_row("db-01"),
            rvtools_row("tpl-win2019", template="True"),
            rvtools_row("off-01", power="poweredOff", memory_mib="0", cpus="0"),
            rvtools_row("odd-01", template="maybe", power="warp", vm_uuid="nope", ip="x"),
            rvtools_row("old-01", os_tools="", dns="old-01.corp.local"),
            rvtools_row("", dns="10.1.0.9", in_use_mib="999999999"),
        ],
    ),
    "rvtools_old_mb": (
        [h.replace("MiB", "MB") if h.endswith("MiB") else h for h in RVTOOLS_HEADERS],
        [rvtools_row("db-01"), rvtools_row("b-02", provisioned_mib="1024", in_use_mib="4096")],
    ),
    "azure_migrate": (AZURE_MIGRATE_HEADERS, [AZURE_ROW]),
    "aws_migration_hub": (AWS_HEADERS, [AWS_ROW]),
    "stratozone_vminfo": (
        VMINFO_HEADERS,
        [vminfo_row("m-1", "etl-01", physical="true"), vminfo_row("m-2", "etl-02")],
    ),
    "stratozone_perfinfo": (
        PERFINFO_HEADERS,
        [
            perf_row("m-1", "2024-03-01 10:00:00", "35.5", "60"),
            perf_row("m-1", "", "35", "60"),
            perf_row("", "03/01/2024 10:05:00 AM", "101", "x"),
            perf_row("m-2", "45351.5", "10", "20"),
            perf_row("m-2", "not a time", "10", "20"),
        ],
    ),
}


def _layout(layout: str) -> Callable[[Path], Path]:
    headers, rows = LAYOUTS[layout]
    varied = [*rows, *_vary(rows, random.Random(layout), 3_000)]
    return lambda folder: write_csv(folder / f"{layout}.csv", headers, varied)


# --- a generated file of everything the rules and the agent branch on ---------------------

HEADERS = [
    "VM", "Powerstate", "Template", "CPUs", "Memory", "Provisioned MiB", "In Use MiB",
    "Host", "Cluster", "Datacenter", "OS according to the configuration file",
    "OS according to the VMware Tools", "VM UUID", "Primary IP Address", "DNS Name",
    "Annotation", "CPU Usage %", "vMemory.Size MiB", "vMemory.Active", "vMemory.Consumed",
    "vPartition.Consumed MiB", "vNetwork.IPv4 Address", "vNetwork.IPv6 Address",
    "MemoryGiB", "TotalDiskAllocatedGiB", "CPU.UsagePct.Max", "Memory utilization percentage",
    "RAM.UsedSizeInMB.Avg", "RAM.UsedSizeInMB.Max", "IOPS", "DiskReadOpsPerSecond.Avg",
    "DiskWriteOpsPerSecond.Avg", "DiskReadsPerSecondInKB.Avg", "DiskWritesPerSecondInKB.Avg",
    "Network In throughput", "Network Out throughput", "NetworkReadsPerSecondInKB.Avg",
    "NetworkBytesPerSecSent", "Disk 1 size (In GB)", "Disk 1 read ops (operations per second)",
    "Disk 2 size (In GB)", "Disk 10 read throughput (MB per second)", "IsPhysical",
    "Machine type", "TimeStamp", "ExternalId", "MachineId", "Host name", "Location",
    "Folder", "backup_policy", "App Owner",
]  # fmt: skip

NAMES = [
    "vm-{n}", "VM-{n}", "  Vm  {n} ", "Sérvér {n}", "\u212a{n}", "db {n}\u00a0prod", "",
    "N/A", "none", '=HYPERLINK("x")', "<script>alert({n})</script>", "web{n}\x07",
    "vm-{n}.corp.local",
]  # fmt: skip
POWER = ["poweredOn", "poweredOff", "PoweredOn", "Running", "deallocated", "suspended", "warp", ""]
TEMPLATE = ["False", "False", "False", "True", "true", "", "maybe", "0", "yes"]
CORES = ["4", "2", "8.0", "0", "8.5", "abc", "-2", "5000", "1,024", "", "16"]
MEMORY_MIB = [
    "16384",
    "8192",
    "4096",
    "0",
    "12,5",
    "16 GB",
    "512 MiB",
    "",
    "abc",
    "-1",
    "99999999999",
]
SIZE_MIB = ["102400", "51200", "1", "8", "24", "0", "1 TB", "500 GB", "", "-5", "7.5", "1e3", "x"]
PCT = ["", "", "12", "55.5", "0", "100", "100.5", "-3", "abc", "33.333", "12,5", "99.995"]
GB = ["", "", "16", "32.5", "0", "1,024", "2 TB", "x", "-1", "0.000001"]
SMALL = ["", "", "10", "2.5", "0", "abc", "-1", "1,024.5", "12,5", "0.1", "3.14159"]
OSES = [
    "Microsoft Windows Server 2019 (64-bit)", "Microsoft Windows Server 2008 R2 (64-bit)",
    "Red Hat Enterprise Linux 7 (64-bit)", "CentOS 4/5 or later (64-bit)", "Other (32-bit)",
    "Other Linux (64-bit)", "Ubuntu Linux (64-bit)", "unknown", "", "SunOS 5.10", "Plan 9",
]  # fmt: skip
UUIDS = [
    "{u}", "{U}", "{{{u}}}", "{h}", "not-a-uuid", "", "4211 5a3e {h24}",
    "42115a3e-0000-0000-0000-000000000001",
]  # fmt: skip
IPS = [
    "10.{m}.{k}.1",
    "10.0.0.{k}/24",
    "010.1.1.1",
    "256.1.1.1",
    "::1",
    "not an ip",
    "",
    "fe80::{k}",
]
IP_LISTS = [
    "", "10.{m}.{k}.1", "10.{m}.{k}.1; 10.{m}.{k}.2", "10.0.0.1, x, 10.0.0.1", "fe80::1", "a|b",
]  # fmt: skip
TIMES = ["", "", "2024-03-01T10:00:00Z", "2024-03-01 10:00:00", "03/01/2024", "45351.25", "bad"]
EXTRAS = ["", "", "gold", "=1+1", "a:b=c;", "4111 1111 1111 1111", "john@example.com"]


def _generated(count: int, rng: random.Random) -> Iterator[list[str]]:
    pick = rng.choice
    shared_uuid = "42115a3e-1111-2222-3333-444444444444"
    for n in range(1, count + 1):
        m, k = n // 256 % 256, n % 256
        u = f"{rng.getrandbits(128):032x}"
        uuid_text = pick(UUIDS).format(
            u=f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}",
            U=f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}".upper(),
            h=u,
            h24=u[8:],
        )
        if rng.random() < 0.02:
            uuid_text = shared_uuid  # duplicate VM UUIDs (the cross-row rule's input)
        mib = pick(MEMORY_MIB)
        row = [
            pick(NAMES).format(n=n),
            pick(POWER),
            pick(TEMPLATE),
            pick(CORES),
            mib,
            pick(SIZE_MIB) if rng.random() < 0.3 else str(rng.randint(1, 4_000_000)),
            pick(SIZE_MIB) if rng.random() < 0.3 else str(rng.randint(1, 8_000_000)),
            pick(["esx-01", "esx-02", ""]),
            pick(["cl-a", "", "cl-b"]),
            pick(["dc-1", ""]),
            pick(OSES),
            pick(OSES),
            uuid_text,
            pick(IPS).format(m=m, k=k),
            pick(["", "", f"vm-{n}.corp.local", "10.1.0.9", f"VM-{n}", "weird..", "::1"]),
            pick(["", "built by ops", "<iframe>"]),
            pick(PCT),
            pick(["", "", mib, "8192", "0", "x"]),
            pick(["", "", str(rng.randint(0, 20000)), "0", "-4", "1,5"]),
            pick(["", str(rng.randint(0, 20000))]),
            pick(["", "", str(rng.randint(0, 9_000_000)), "12.5", "x"]),
            pick(IP_LISTS).format(m=m, k=k),
            pick(["", "", f"fe80::1; 2001:db8::{k}", "x"]),
            pick(GB),
            pick(GB),
            pick(PCT),
            pick(PCT),
            pick(["", "", str(rng.randint(0, 40000)), "x"]),
            pick(["", "", str(rng.randint(0, 40000))]),
            pick(SMALL),
            pick(SMALL),
            pick(SMALL),
            pick(SMALL),
            pick(SMALL),
            pick(SMALL),
            pick(SMALL),
            pick(SMALL),
            pick(SMALL),
            pick(GB),
            pick(SMALL),
            pick(GB),
            pick(SMALL),
            pick(["", "", "true", "false", "maybe", "1"]),
            pick(["", "", "Physical", "virtual", "PHYSICAL box", "Physİcal"]),
            pick(TIMES),
            pick(["", "", f"ext-{n}", "dup-1"]),
            pick(["", "", f"m-{n}"]),
            pick(["", "", f"host-{n}", f"HOST-{n}.corp.local", "10.0.0.1"]),
            pick(["", "Frankfurt"]),
            pick(["", "/dc/vm"]),
            pick(EXTRAS),
            pick(EXTRAS),
        ]
        shape = rng.random()
        if shape < 0.01:
            yield []  # blank row
        elif shape < 0.02:
            yield [*row, "extra", "cells"]
        elif shape < 0.03:
            yield row[: rng.randint(1, len(row) - 1)]
        elif shape < 0.035:
            yield ["", "", ""]
        else:
            yield row


# --- realistic RVTools exports ------------------------------------------------------------

REALISTIC_HEADERS = [*RVTOOLS_HEADERS, "CPU Usage %", "vMemory.Active", "vPartition.Consumed MiB"]


def realistic_rows(count: int, rng: random.Random) -> Iterator[list[str]]:
    """A vInfo export as vCenter gives it: mostly clean, every VM its own sizes and usage."""
    oses = [
        "Microsoft Windows Server 2019 (64-bit)",
        "Microsoft Windows Server 2016 or later (64-bit)",
        "Red Hat Enterprise Linux 8 (64-bit)",
        "Ubuntu Linux (64-bit)",
        "Microsoft Windows Server 2012 (64-bit)",
        "Other 3.x or later Linux (64-bit)",
    ]
    for n in range(1, count + 1):
        memory = rng.choice([2048, 4096, 8192, 16384, 32768, 65536])
        provisioned = rng.randint(20_000, 2_000_000)
        row = rvtools_row(
            f"vm-{n:06d}",
            power=rng.choice(["poweredOn"] * 9 + ["poweredOff"]),
            template="True" if rng.random() < 0.01 else "False",
            cpus=rng.choice(["1", "2", "4", "8", "16"]),
            memory_mib=str(memory),
            provisioned_mib=str(provisioned),
            in_use_mib=str(rng.randint(1_000, provisioned)),
            host=f"esx-{n % 64:02d}",
            ip=f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
            dns=f"vm-{n:06d}.corp.example.com",
            os_tools=rng.choice(oses),
        )
        usage = f"{rng.uniform(0, 100):.1f}"
        active = str(rng.randint(0, memory))
        consumed = str(rng.randint(1_000, provisioned))
        yield [*row, usage, active, consumed]


def _workbook(tmp_path: Path) -> Path:
    """An RVTools XLSX: vInfo plus vMemory/vPartition/vNetwork rows joined by the reader."""
    rng = random.Random(11)
    workbook = openpyxl.Workbook()
    info = workbook.active
    assert info is not None
    info.title = "vInfo"
    info.append(HEADERS[:16])
    memory = workbook.create_sheet("vMemory")
    memory.append(["VM", "VM UUID", "Size MiB", "Active", "Consumed"])
    partition = workbook.create_sheet("vPartition")
    partition.append(["VM", "VM UUID", "Consumed MiB", "Capacity MiB"])
    network = workbook.create_sheet("vNetwork")
    network.append(["VM", "VM UUID", "IPv4 Address", "IPv6 Address"])
    for row in _generated(5_000, rng):
        # worksheets cannot hold control characters (the CSV corpus has them)
        cells = [re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", c) for c in (row + [""] * 16)[:16]]
        info.append([int(c) if c.isdigit() and len(c) < 10 else c for c in cells])
        vm, vm_uuid = cells[0], cells[12]
        if rng.random() < 0.8:
            memory.append([vm, vm_uuid, rng.choice([4096, 8192, 0, "x"]), rng.randint(0, 9000), 1])
        for _ in range(rng.choice([0, 1, 2])):
            partition.append([vm, vm_uuid, rng.randint(0, 90000), 100000])
        if rng.random() < 0.7:
            network.append([vm, vm_uuid, rng.choice(["10.0.0.1", "10.0.0.2, 10.0.0.3", ""]), ""])
    path = tmp_path / "generated_rvtools.xlsx"
    workbook.save(path)
    return path


CASES = [
    GoldenCase("infrastructure/rvtools_export", INFRA, sample("rvtools_export.xlsx")),
    *(GoldenCase(f"infrastructure/{layout}", INFRA, _layout(layout)) for layout in LAYOUTS),
    GoldenCase(
        "infrastructure/generated_100k",
        INFRA,
        lambda folder: write_csv(
            folder / "generated_infra.csv", HEADERS, _generated(100_000, random.Random(8))
        ),
    ),
    GoldenCase(
        "infrastructure/realistic_rvtools_100k",
        INFRA,
        lambda folder: write_csv(
            folder / "RVTools_tabvInfo.csv",
            REALISTIC_HEADERS,
            realistic_rows(100_000, random.Random(5)),
        ),
    ),
    GoldenCase("infrastructure/generated_rvtools_workbook", INFRA, _workbook),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_matches_golden(case: GoldenCase, tmp_path: Path) -> None:
    assert check(case, tmp_path)


def test_generated_file_covers_the_rules() -> None:
    codes = golden_codes(CASES[-3])
    for code in ("type-error", "constraint-error", "template-skipped", "zero-capacity"):
        assert codes[code] > 0, code
