"""Deterministic input files for the benchmarks, one generator per category.

Every generator is seeded (same arguments, same bytes) and streams its rows, so memory stays
flat whatever the size. Headers are those of the bundled samples (dataimport/samples/) and
tests/factories.py, so every column maps without aliases or a mapping:

    cmdb_export      CSV, the tests/factories.py CMDB headers; ~0.1% rows with a type error
    app_discovery    CSV, Azure Migrate dependency export layout (azure_migrate_dependencies.csv):
                     a fixed set of connections between SERVERS (5,000) servers, repeated in
                     every 6-hour timeslot
    infrastructure   XLSX, RVTools layout (rvtools_export.xlsx): vInfo with one row per VM plus
                     the companion sheets the category joins (vCPU, vMemory, vDisk, vPartition,
                     vNetwork) and small vHost / vCluster sheets; written with openpyxl in
                     write_only mode (rows streamed to the zip, inline strings: flat memory)
    sensitive_data   CSV, data-store inventory layout (data_store_inventory.csv)
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

CATEGORIES = ("cmdb_export", "app_discovery", "infrastructure", "sensitive_data")
EXTENSIONS = {
    "cmdb_export": "csv",
    "app_discovery": "csv",
    "infrastructure": "xlsx",
    "sensitive_data": "csv",
}

# --------------------------------------------------------------------------- cmdb_export

CMDB_HEADERS = [  # as tests/factories.py
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

_SYSTEMS = ("CRM", "ERP", "HR", "WEB", "PAY", "BI", "MAIL", "DWH", "LOG", "SSO", "IAM", "EDI")
_TYPES = (
    ("APP", "Application"),
    ("APP", "Server"),
    ("DB", "Database"),
    ("WEB", "VM"),
    ("WEB", "Virtual Server"),
    ("LB", "Load Balancer"),
    ("SRV", "Physical"),
)
_OPERATING_SYSTEMS = (
    "Ubuntu 22.04 LTS",
    "Ubuntu 20.04 LTS",
    "Red Hat Enterprise Linux 8.6",
    "Red Hat Enterprise Linux 9",
    "Windows Server 2019 Datacenter",
    "Windows Server 2022 Standard",
    "Windows Server 2016",
    "Oracle Linux 8",
    "Debian 11",
    "SUSE Linux Enterprise Server 15",
    "Windows Server 2012 R2 Standard",  # past end of support: a warning
    "CentOS 7",  # past end of support: a warning
)
_CPUS = ("2", "4", "4", "8", "8", "16", "32")
_MEMORY = ("8 GB", "16 GB", "16 GB", "32 GB", "64 GB", "8192 MB", "128")
_STORAGE = ("100", "250", "500", "1 TB", "2,048", "80")
_ENVIRONMENTS = ("prod", "Production", "prod", "uat", "dev", "test", "staging", "DR")
_CRITICALITIES = ("High", "Critical", "Medium", "Low", "1 - Critical", "Tier 2")
_OWNERS = ("Jane Roe", "DBA Team", "Platform Team", "Ops Team", "Network Team", "HR IT", "")
_DEPARTMENTS = ("IT", "Finance", "Sales", "HR", "Operations", "Marketing")
_LOCATIONS = ("Frankfurt", "Amsterdam", "London DC1", "Paris DC2", "Dublin", "Madrid")
_BAD_CPU = "four"  # ~0.1% of rows carry a type error, so the issue report has something


def _asset_name(n: int) -> str:
    system = _SYSTEMS[n % len(_SYSTEMS)]
    role = _TYPES[(n // len(_SYSTEMS)) % len(_TYPES)][0]
    return f"{system}-{role}-{n:07d}"


def cmdb_rows(count: int, seed: int, *, first: int = 1, errors: bool = True) -> Iterator[list[str]]:
    """`count` CMDB rows numbered from `first` (distinct names per offset); dependencies stay
    inside the file. errors=False: no deliberately bad cell (every row valid)."""
    rng = random.Random(seed)
    last = first + count - 1
    for n in range(first, last + 1):
        name = _asset_name(n)
        targets: list[str] = []
        for _ in range(rng.choice((1, 1, 2))):  # each server depends on 1-2 others
            other = rng.randrange(first, last + 1)
            if other != n:
                targets.append(_asset_name(other))
        yield [
            f"A-{n:08d}",
            name,
            _TYPES[(n // len(_SYSTEMS)) % len(_TYPES)][1],
            f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
            name.lower(),
            rng.choice(_OPERATING_SYSTEMS),
            _BAD_CPU if errors and n % 1000 == 500 else rng.choice(_CPUS),
            rng.choice(_MEMORY),
            rng.choice(_STORAGE),
            rng.choice(_ENVIRONMENTS),
            rng.choice(_CRITICALITIES),
            rng.choice(_OWNERS),
            rng.choice(_DEPARTMENTS),
            rng.choice(_LOCATIONS),
            ";".join(targets),
        ]


def generate_cmdb(
    path: Path, count: int, seed: int = 42, *, first: int = 1, errors: bool = True
) -> int:
    """Write `count` CMDB rows (plus header) to `path`; returns the file size in bytes."""
    return _write_csv(path, CMDB_HEADERS, cmdb_rows(count, seed, first=first, errors=errors))


# --------------------------------------------------------------------------- app_discovery

AZURE_HEADERS = [  # dataimport/samples/azure_migrate_dependencies.csv
    "Timeslot",
    "Source server name",
    "Source IP",
    "Source application",
    "Source process",
    "Destination server name",
    "Destination IP",
    "Destination application",
    "Destination process",
    "Destination port",
]
SERVERS = 5_000
SLOTS = 120  # 30 days of 6-hour timeslots
_SLOT_START = datetime(2026, 10, 1)  # fixed: deterministic, in the past, not ancient
# (role, application, process, listening port)
_ROLES = (
    ("web", "Portal", "w3wp.exe", 443),
    ("app", "ERP", "java.exe", 8443),
    ("app", "CRM", "java.exe", 8080),
    ("db", "SQL Server", "sqlservr.exe", 1433),
    ("db", "PostgreSQL", "postgres", 5432),
    ("lb", "F5", "tmm", 443),
    ("batch", "Batch", "python3", 0),  # clients only
    ("mq", "RabbitMQ", "beam.smp", 5672),
    ("cache", "Redis", "redis-server", 6379),
    ("dc", "Active Directory", "lsass.exe", 389),
)


def _server(i: int) -> tuple[str, str, str, str, int]:
    role, app, process, port = _ROLES[i % len(_ROLES)]
    return (
        f"{role}-{app.lower().replace(' ', '')}-{i:04d}",
        f"10.{20 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}",
        app,
        process,
        port,
    )


EDGES_PER_SERVER_MAX = 20


def app_discovery_rows(count: int, seed: int, servers: int = SERVERS) -> Iterator[list[str]]:
    """Connection rows over `servers` servers, as a dependency export has them: a fixed set of
    connections (source -> destination:port, at least one per server, at most
    EDGES_PER_SERVER_MAX) seen again in every 6-hour timeslot, up to SLOTS slots; so rows =
    connections x slots and every connection is one dependency with many observations."""
    servers = max(2, min(servers, count))
    table = [_server(i) for i in range(servers)]
    listeners = [i for i, server in enumerate(table) if server[4]]
    edges = min(max(-(-count // SLOTS), servers), servers * EDGES_PER_SERVER_MAX)
    rng = random.Random(seed)
    pairs: list[tuple[int, int]] = []
    for e in range(edges):
        src = e % servers
        dst = listeners[rng.randrange(len(listeners))]
        if dst == src:
            dst = listeners[(listeners.index(dst) + 1) % len(listeners)]
        pairs.append((src, dst))
    for n in range(count):
        slot_no, edge = divmod(n, edges)
        slot = (_SLOT_START + timedelta(hours=6 * slot_no)).strftime("%Y-%m-%d %H:%M")
        src, dst = pairs[edge]
        s, d = table[src], table[dst]
        yield [slot, s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], str(d[4])]


def generate_app_discovery(path: Path, count: int, seed: int = 42) -> int:
    return _write_csv(path, AZURE_HEADERS, app_discovery_rows(count, seed))


# --------------------------------------------------------------------------- sensitive_data

DATA_STORE_HEADERS = [  # dataimport/samples/data_store_inventory.csv
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
]
_STORES = (
    ("ERP", "erp_prod", "Financial records"),
    ("CRM", "crm", "Contact details"),
    ("HR", "hr_core", "Employee records"),
    ("Payments", "pay", "Customer contact and bank data"),
    ("Analytics", "dwh", "Aggregated metrics"),
    ("Logs", "logs", "Access logs"),
)
_TABLE_COLUMNS = (
    "email, phone, iban",
    "customer_id, amount",
    "first_name, last_name, email, date_of_birth",
    "order_id, sku, quantity",
    "employee_id, salary, bank_account",
    "session_id, ip_address, user_agent",
    "",
)
_CLASSIFICATIONS = ("Confidential", "Internal", "Restricted", "Public", "confidential", "Secret")
_COMPLIANCE = ("GDPR", "SOX", "GDPR, SOX", "PCI-DSS", "HIPAA", "", "GDPR, PCI-DSS")
_AT_REST = ("AES-256", "yes", "no", "TDE", "")
_IN_TRANSIT = ("TLS 1.2", "TLS 1.3", "yes", "no", "")
_RECORD_COUNTS = ("1,250,000", "8.4M", "320,000", "12000", "", "2.1k", "950")
_DATA_OWNERS = ("Finance Data Office", "Sales Ops", "HR IT", "Platform Team", "Security Office")
_REGIONS = ("eu-west-2", "eu-central-1", "us-east-1", "eu-north-1", "ap-southeast-1")
_TABLES_PER_HOST = 40


def sensitive_data_rows(count: int, seed: int) -> Iterator[list[str]]:
    """One row per table: hosts of _TABLES_PER_HOST tables each, one data store per host."""
    rng = random.Random(seed)
    for n in range(count):
        host_no, table_no = divmod(n, _TABLES_PER_HOST)
        store, database, categories = _STORES[host_no % len(_STORES)]
        yield [
            f"db-{store.lower()}-{host_no:06d}",
            store,
            database,
            f"t_{table_no:03d}_{rng.choice(('customers', 'orders', 'payroll', 'events'))}",
            rng.choice(_TABLE_COLUMNS),
            categories,
            rng.choice(_CLASSIFICATIONS),
            rng.choice(_COMPLIANCE),
            rng.choice(_AT_REST),
            rng.choice(_IN_TRANSIT),
            rng.choice(_RECORD_COUNTS),
            rng.choice(_DATA_OWNERS),
            rng.choice(_REGIONS),
        ]


def generate_sensitive_data(path: Path, count: int, seed: int = 42) -> int:
    return _write_csv(path, DATA_STORE_HEADERS, sensitive_data_rows(count, seed))


# --------------------------------------------------------------------------- infrastructure

RVTOOLS_SHEETS: dict[str, list[str]] = {  # dataimport/samples/rvtools_export.xlsx
    "vInfo": [
        "VM",
        "Powerstate",
        "CPUs",
        "Memory",
        "Host",
        "Cluster",
        "Datacenter",
        "Disks",
        "Provisioned MiB",
        "CPU Usage %",
        "Network #1",
        "Primary IP Address",
        "OS according to the VMware Tools",
        "Firmware",
    ],
    "vCPU": ["VM", "Overall", "CPU ready %", "CPU co-stop", "Limit"],
    "vMemory": [
        "VM",
        "Size MiB",
        "Active",
        "Consumed",
        "Ballooned",
        "Swapped",
        "Reservation",
        "Limit",
        "Hot Add",
    ],
    "vDisk": ["VM", "Disk", "Disk Key", "Capacity MiB", "Unit #"],
    "vPartition": ["VM", "Disk Key", "Disk", "Capacity MiB", "Consumed MiB", "Free MiB", "Free % "],
    "vNetwork": [
        "VM",
        "NIC label",
        "Adapter",
        "Network",
        "Connected",
        "Starts Connected",
        "Mac Address",
        "IPv4 Address",
    ],
    "vHost": ["Host", "Speed", "# Cores"],
    "vCluster": ["Cluster", "TotalCpu"],
}
VMS_PER_HOST = 25
HOSTS_PER_CLUSTER = 16
_GUESTS = (
    ("Ubuntu Linux (64-bit)", "bios"),
    ("Microsoft Windows Server 2022", "efi"),
    ("Microsoft Windows Server 2019", "efi"),
    ("Red Hat Enterprise Linux 8 (64-bit)", "bios"),
    ("Microsoft Windows Server 2012 (64-bit)", "bios"),  # past end of support
    ("CentOS 7 (64-bit)", "bios"),  # past end of support
    ("SUSE Linux Enterprise 15 (64-bit)", "efi"),
    ("", "bios"),  # tools not running
)
_VM_ROLES = ("web", "app", "db", "batch", "mq", "cache", "file", "mgmt")
_VM_NETS = ("app-net", "db-net", "dmz-net", "backup-net", "mgmt-net")


def _vm_name(i: int) -> str:
    return f"vm-{_VM_ROLES[i % len(_VM_ROLES)]}-{i:07d}"


def _infrastructure_sheets(count: int, seed: int) -> Iterator[tuple[str, Iterator[list[object]]]]:
    """(sheet, rows) in workbook order; every sheet re-derives its VMs from the same seed, so
    the sheets agree (disks per VM, sizes) without holding anything in memory."""

    def vms() -> Iterator[tuple[int, random.Random, int, int, int]]:
        rng = random.Random(seed)
        for i in range(1, count + 1):
            cpus = rng.choice((1, 2, 2, 4, 4, 8, 16))
            memory = rng.choice((2048, 4096, 8192, 8192, 16384, 32768, 65536))
            disks = rng.choice((1, 1, 2, 2, 3))
            yield i, random.Random(seed * 1_000_003 + i), cpus, memory, disks

    def host(i: int) -> str:
        return f"esx-{(i - 1) // VMS_PER_HOST:05d}"

    def vinfo() -> Iterator[list[object]]:
        for i, rng, cpus, memory, disks in vms():
            guest, firmware = _GUESTS[i % len(_GUESTS)]
            host_no = (i - 1) // VMS_PER_HOST
            yield [
                _vm_name(i),
                "poweredOff" if i % 17 == 0 else "poweredOn",
                cpus,
                memory,
                host(i),
                f"cluster-{host_no // HOSTS_PER_CLUSTER:04d}",
                f"dc-{host_no // (HOSTS_PER_CLUSTER * 8):03d}",
                disks,
                disks * rng.choice((40960, 81920, 102400, 204800)),
                rng.randrange(0, 100),
                _VM_NETS[i % len(_VM_NETS)],
                f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}",
                guest,
                firmware,
            ]

    def vcpu() -> Iterator[list[object]]:
        for i, rng, cpus, _memory, _disks in vms():
            usage = cpus * rng.randrange(100, 2400)
            yield [_vm_name(i), usage, round(rng.random() * 8, 1), round(rng.random(), 1), -1]

    def vmemory() -> Iterator[list[object]]:
        for i, rng, _cpus, memory, _disks in vms():
            active = memory * rng.randrange(10, 90) // 100
            consumed = min(memory, active + memory // 10)
            yield [_vm_name(i), memory, active, consumed, 0, 0, 0, -1, str(i % 3 == 0)]

    def vdisk() -> Iterator[list[object]]:
        for i, rng, _cpus, _memory, disks in vms():
            for d in range(disks):
                capacity = rng.choice((40960, 81920, 102400, 204800))
                yield [_vm_name(i), f"Hard disk {d + 1}", str(2000 + d), capacity, d]

    def vpartition() -> Iterator[list[object]]:
        for i, rng, _cpus, _memory, disks in vms():
            for d in range(disks):
                capacity = rng.choice((40960, 81920, 102400, 204800))
                consumed = capacity * rng.randrange(5, 95) // 100
                free = capacity - consumed
                mount = ("/", "/var", "/data")[d] if i % 2 else ("C:\\", "D:\\", "E:\\")[d]
                yield [
                    _vm_name(i),
                    str(2000 + d),
                    mount,
                    capacity,
                    consumed,
                    free,
                    free * 100 // capacity,
                ]

    def vnetwork() -> Iterator[list[object]]:
        for i, _rng, _cpus, _memory, _disks in vms():
            yield [
                _vm_name(i),
                "Network adapter 1",
                "Vmxnet3" if i % 5 else "E1000E",
                _VM_NETS[i % len(_VM_NETS)],
                i % 17 != 0,
                True,
                f"00:50:56:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}",
                f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}",
            ]

    hosts = (count + VMS_PER_HOST - 1) // VMS_PER_HOST

    def vhost() -> Iterator[list[object]]:
        for h in range(hosts):
            yield [f"esx-{h:05d}", 2400 + 200 * (h % 3), 16 + 16 * (h % 2)]

    def vcluster() -> Iterator[list[object]]:
        for c in range((hosts + HOSTS_PER_CLUSTER - 1) // HOSTS_PER_CLUSTER):
            yield [f"cluster-{c:04d}", HOSTS_PER_CLUSTER * 2400 * 16]

    producers: dict[str, Callable[[], Iterator[list[object]]]] = {
        "vInfo": vinfo,
        "vCPU": vcpu,
        "vMemory": vmemory,
        "vDisk": vdisk,
        "vPartition": vpartition,
        "vNetwork": vnetwork,
        "vHost": vhost,
        "vCluster": vcluster,
    }
    for sheet, produce in producers.items():
        yield sheet, produce()


def generate_infrastructure(path: Path, count: int, seed: int = 42) -> int:
    """An RVTools-layout workbook of `count` VMs, streamed (openpyxl write_only)."""
    from openpyxl import Workbook  # only this category needs it

    workbook = Workbook(write_only=True)
    for sheet, rows in _infrastructure_sheets(count, seed):
        worksheet = workbook.create_sheet(sheet)
        worksheet.append(RVTOOLS_SHEETS[sheet])
        for row in rows:
            worksheet.append(row)
    workbook.save(path)
    return path.stat().st_size


# --------------------------------------------------------------------------- all


def _write_csv(path: Path, headers: list[str], rows: Iterator[list[str]]) -> int:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)
    return path.stat().st_size


GENERATORS: dict[str, Callable[[Path, int, int], int]] = {
    "cmdb_export": generate_cmdb,
    "app_discovery": generate_app_discovery,
    "infrastructure": generate_infrastructure,
    "sensitive_data": generate_sensitive_data,
}


def generate(category: str, directory: Path, count: int, seed: int = 42) -> tuple[Path, int]:
    """Write the `category` file of `count` rows into `directory`: (path, size in bytes)."""
    path = directory / f"{category}_{count}.{EXTENSIONS[category]}"
    return path, GENERATORS[category](path, count, seed)


# --------------------------------------------------------------------------- XLSX limits

XLSX_BYTES_PER_VM = 2_800  # unpacked size per VM of this workbook (27.7 MB per 10,000 VMs)


def xlsx_estimate(count: int) -> int:
    """The unpacked size a `count`-VM workbook will have, before writing it."""
    return count * XLSX_BYTES_PER_VM


def xlsx_facts(path: Path) -> dict[str, int]:
    """Unpacked size of the workbook and of its largest sheet, against the reader's caps."""
    import zipfile

    from dataimport.readers import DEFAULT_MAX_UNCOMPRESSED_BYTES
    from dataimport.readers.xlsx_reader import CALAMINE_MAX_SHEET_BYTES

    with zipfile.ZipFile(path) as archive:
        sheets = [
            i.file_size for i in archive.infolist() if i.filename.startswith("xl/worksheets/")
        ]
        total = sum(i.file_size for i in archive.infolist())
    return {
        "unpacked_bytes": total,
        "unpacked_cap_bytes": DEFAULT_MAX_UNCOMPRESSED_BYTES,
        "largest_sheet_bytes": max(sheets, default=0),
        "calamine_max_sheet_bytes": CALAMINE_MAX_SHEET_BYTES,
    }
