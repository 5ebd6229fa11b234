"""Golden files for app_discovery: the columnar rules and dependency_validator's columnar form
find what tests/golden records.

Every row's validity, findings (code, severity, field, message, agent, in order) and
normalised data are compared with the golden files (recorded while the row engine still
existed and agreed; re-record with `python -m tests.golden.record`). `Columnar` is the
category with its agent on a fixed clock. Corpus: the bundled sample, the layouts of
tests/test_app_discovery.py, a generated 100,000-row file full of branchy values and a
realistic 100,000-row connection export over 5,000 servers.

Run as a module for the columnar engine's throughput on that realistic file:
`.venv/bin/python -m tests.test_columnar_golden_app_discovery`.
"""

from __future__ import annotations

import csv
import functools
import json
import random
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dataimport.agents.dependency_validator import DependencyValidator
from dataimport.categories.app_discovery import AppDiscoveryCategory
from dataimport.contracts import ProcessingConfig
from dataimport.engine import chunk
from dataimport.engine.frame import frame_from_rows
from dataimport.validation import header_mapping
from tests.golden.listing import GoldenCase, check, golden_codes, sample, staged_rows

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Columnar(AppDiscoveryCategory):
    """app_discovery with its agent on a fixed clock."""

    def __init__(self, now: datetime = NOW) -> None:
        self.agents = (DependencyValidator(now=lambda: now),)


APP = Columnar()


def write(path: Path, headers: Sequence[str], rows: Iterator[Sequence[str]] | list[Any]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


# --- the layouts and values of tests/test_app_discovery.py -------------------------------

AZURE_HEADERS = [
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
AZURE_ROW = [
    "2025-06-14 00:00",
    "app1-server",
    "App1",
    "svchost.exe",
    "app2-server",
    "10.0.0.2",
    "App2",
    "httpd.exe",
    "443",
]
AZURE_OVERRIDES: list[dict[str, str]] = [
    {},
    {"Timeslot": "2025-06-15 00:00"},
    {"Source process": "w3wp.exe"},
    *({"Destination port": p} for p in ("0", "70000", "http", "53/udp")),
    {"Timeslot": "yesterday-ish"},
    {"Destination server name": "APP1-SERVER", "Destination IP": ""},
    {"Destination server name": "", "Destination IP": "127.0.0.1"},
    {"Destination IP": "127.0.0.1"},
    {"Destination server name": "", "Destination IP": ""},
    {"Destination IP": "10.0.0.300"},
    {"Destination server name": "", "Destination IP": "224.0.0.251"},
    {"Destination server name": ""},
    {"Destination server name": "", "Destination IP": "52.1.2.3"},
    {"Source server name": "Payroll App"},
    {"Timeslot": "2027-01-01 00:00"},
    {"Timeslot": "1970-01-02 00:00"},
    *(
        {"Timeslot": t}
        for t in (
            "2025-06-14 08:30",
            "2025-06-14T08:30:00Z",
            "2025-06-14T10:30:00+02:00",
            "06/14/2025 08:30",
            "6/14/2025 8:30:00 AM",
            "14/06/2025 08:30",
            "14.06.2025 08:30",
            "Jun 14, 2025 8:30:00 AM",
            "1749889800",
            "1749889800000",
            "6/15/2025 6:00:00 PM",
        )
    ),
]
TOPOLOGY_HEADERS = [
    "Application",
    "Tier",
    "Node",
    "Called Tier",
    "Calls",
    "Avg Response Time (ms)",
    "Errors %",
    "Port",
    "Protocol",
    "First Seen",
    "Last Seen",
]
WINDOW = ["2025-06-01T00:00:00Z", "2025-06-07T23:59:59Z"]
TOPOLOGY_ROWS = [
    ["Shop", "Web", "web-node-1", "Orders", "1,200", "35.5", "0.5", "8080", "HTTP", *WINDOW],
    ["Shop", "Web", "web-node-2", "Orders", "800", "40", "1", "8080", "HTTP", *WINDOW],
    ["Shop", "Orders", "orders-node-1", "OrdersDB", "5000", "4.2", "0", "1433", "JDBC", *WINDOW],
    ["Shop", "Web", "web-node-2", "Orders", "800", "40", "1", "8080", "HTTP", *WINDOW],
    ["Shop", "Web", "n1", "Orders", "10", "5", "250", "8080", "HTTP", "", ""],
    ["Shop", "Web", "", "Orders", "10", "5", "", "", "", "", ""],
    ["Shop", "Web", "web", "Orders", "", "", "", "", "", "", ""],
]
SMALL_FILES: list[tuple[list[str], list[list[str]]]] = [
    (
        AZURE_HEADERS,
        [
            [o.get(h, v) for h, v in zip(AZURE_HEADERS, AZURE_ROW, strict=True)]
            for o in AZURE_OVERRIDES
        ],
    ),
    (TOPOLOGY_HEADERS, TOPOLOGY_ROWS),
    (
        ["Source", "Destination", "Port", "Protocol"],
        [
            ["a", "b", "7000", "Fancynet"],
            ["a", "b", "7000", "??!"],
            ["a", "b", "443", "https"],
            *(
                ["a", "b", port, protocol]
                for port, protocol in (
                    ("1433", "UDP"),
                    ("123", "TCP"),
                    ("1433", "HTTP"),
                    ("80", "HTTPS"),
                    ("8", "ICMP"),
                    ("443", "HTTP"),
                    ("5432", "JDBC"),
                    ("9000", "HTTP"),
                    ("51234", "MSRPC"),
                )
            ),
        ],
    ),
    (
        ["Source", "Destination", "Port", "First Seen", "Last Seen"],
        [["a", "b", "22", "2025-06-02T00:00:00Z", "2025-06-01T00:00:00Z"]],
    ),
    (
        ["Source server name", "Source IP", "Destination server name", "Destination IP", "Port"],
        [["web1", "10.0.0.9", "web1-alias", "10.0.0.9", "443"]],
    ),
    (
        ["Source", "Source Port", "Destination", "Destination Port"],
        [["a", "443", "b", "51234"], ["a", "51234", "b", "443"]],
    ),
    (
        ["Source", "Destination", "Port", "Bytes Sent", "Bytes Received"],
        [["a", "b", "443", "3000000000", "2000000000"]],
    ),
    (["Source", "Destination", "Bytes"], [["a", "b", "-1"], ["a", "b", "2 GiB"]]),
    (
        [
            "Source IP",
            "Destination",
            "Destination IP",
            "Port",
            "Protocol",
            "Connections",
            "Bytes",
            "First Seen",
            "Last Seen",
        ],
        [
            [
                "10.1.0.1",
                "files01",
                "10.1.0.9",
                "445",
                "tcp",
                "10",
                "3000000000",
                "2025-06-01",
                "2025-06-07",
            ],
            [
                "10.1.0.1",
                "files01",
                "10.1.0.9",
                "445",
                "tcp",
                "5",
                "4,000,000,000",
                "2025-06-08",
                "2025-06-14",
            ],
        ],
    ),
    (
        ["Source", "Destination", "Destination IP", "Port", "Connections"],
        [
            [
                f"client-{n % 40:02d}",
                f"hub-{n % 3}",
                f"10.9.0.{n % 3 + 1}",
                str(8000 + n % 5),
                str(n),
            ]
            for n in range(1, 401)
        ],
    ),
]


def _layout(index: int) -> Any:
    headers, rows = SMALL_FILES[index]
    return lambda folder: write(folder / f"layout{index}.csv", headers, rows)


# --- a generated file of everything the rules and the agent branch on -------------------

HEADERS = [
    "Timeslot",
    "Source server name",
    "Source IP",
    "Source port",
    "Source application",
    "Source process",
    "Tier",
    "Destination server name",
    "Destination IP",
    "Destination application",
    "Destination process",
    "Called Tier",
    "Destination port",
    "Protocol",
    "Dependency Type",
    "Connections",
    "Bytes",
    "Bytes Sent",
    "Bytes Received",
    "Avg Response Time (ms)",
    "Errors %",
    "Error Count",
    "First Seen",
    "Last Seen",
    "Application",
    "Comments",
]
NAMES = [
    "srv-{n}",
    "srv-{n}",
    "srv-{n}",
    "SRV-{n}.corp.local",
    "CORP\\web{n}",
    "10.0.{m}.{k}",
    "127.0.0.1",
    "::1",
    "fe80::{k}",
    "[10.0.0.{k}]",
    "224.0.0.251",
    "0.0.0.0",
    "Payroll App",
    "Sérvér {n}",
    "\u212a{n}",
    "",
    "",
    "N/A",
    "unknown",
    "UN\u212aNOWN",
    '=HYPERLINK("x")',
    "<script>alert({n})</script>",
    "host_{n}.",
    ".corp",
    "web{n}\x07",
    "db1-server",
    "o'reilly-{k}",
    'say "hi" {k}',
    "back\\slash",
    "  spaced   name ",
    "-",
    "x" * 70 + "{n}",
]
IPS = [
    "10.{m}.{k}.1",
    "10.{m}.{k}.2",
    "",
    "",
    "",
    "10.0.0.{k}/24",
    "10.0.0.1, 10.0.0.2",
    "010.1.1.1",
    "256.1.1.1",
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "[2001:db8::{k}]",
    "not an ip",
    "N/A",
    "224.0.0.251",
    "0.0.0.0",
    "240.0.0.1",
    "255.255.255.255",
    "52.1.2.{k}",
    "8.8.8.8",
    "192.168.{m}.{k}",
    "fe80::1%eth0",
    "10.0.0.{k};10.0.0.9",
    "1.2.3.4 5.6.7.8",
    "0.1.2.3",
    "100.64.0.{k}",
    "169.254.1.{k}",
]
PORTS = [
    "443",
    "1433",
    "80",
    "8080",
    "3389",
    "22",
    "53",
    "53/udp",
    "tcp/443",
    "UDP / 123",
    "123",
    "0",
    "70000",
    "http",
    "51234",
    "49152",
    "50000",
    "50051",
    "65535",
    "",
    "N/A",
    "1,433",
    "08080",
    "443.0",
    "-1",
    "8",
    "{p}",
    "{p}",
    "445",
    "5432",
]
PROTOCOLS = [
    "",
    "",
    "",
    "TCP",
    "tcp",
    "UDP",
    "udp",
    "HTTP",
    "https",
    "JDBC",
    "ICMP",
    "MSRPC",
    "RPC",
    "Fancynet",
    "??!",
    "SQL Server",
    "sqlserver",
    "h2",
    "N/A",
    "Ünï",
    "grpc",
    "ldap",
    "SCTP",
    "tcp/ip",
    "x" * 30,
]
DEP_TYPES = ["", "", "", "network connection", "Calls", "!!!", "HTTP-Call", "Ünïcode type"]
COUNTS = [
    "",
    "",
    "1",
    "1200",
    "1,200",
    "abc",
    "-1",
    "0",
    "8.0",
    "8.5",
    "99999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "1e3",
    "{c}",
    "{c}",
    "007",
]
BYTES = [
    "",
    "",
    "",
    "1024",
    "5,000,000,000",
    "1.5 GB",
    "2 GiB",
    "-1",
    "abc",
    "3000000000",
    "9223372036854775807",
    "12 XB",
    "100 KB",
    "0",
    "{c}",
    "{c}",
    "8 EB",
    "1 PB",
]
LATENCY = [
    "",
    "",
    "35.5",
    "12 ms",
    "1.2 s",
    "850 us",
    "850 µs",
    "abc",
    "-3",
    "99999999",
    "86400000",
    "40",
    "0.5",
    "{c}",
]
ERROR_PCT = ["", "", "", "0.5", "1", "250", "5%", "abc", "-1", "100", "33.3333", "100.0001"]
ERROR_COUNT = ["", "", "", "3", "0", "abc", "12", "7"]
TIMESTAMPS = [
    "2025-06-14 00:00",
    "2025-06-14 01:00",
    "2025-06-14 02:00",
    "2025-06-14T08:30:00Z",
    "2025-06-14T10:30:00+02:00",
    "06/14/2025 08:30",
    "6/14/2025 8:30:00 AM",
    "14/06/2025 08:30",
    "14.06.2025 08:30",
    "Jun 14, 2025 8:30:00 AM",
    "1749889800",
    "1749889800000",
    "1749889800.5",
    "yesterday-ish",
    "2027-01-01 00:00",
    "2026-01-01 12:00",
    "2026-01-02 00:00:01",
    "1970-01-02 00:00",
    "1990-05-05",
    "1995-01-01T00:00:00Z",
    "2025-06-14 00:00 UTC",
    "2025-06-14 00:00:00.123456",
    "Sat Jun 14 08:30:00 2025",
    "14-Jun-2025",
    "2025/06/14",
    "0001-01-01T00:00:00",
    "",
    "N/A",
]
PROCESSES = [
    "java.exe",
    "sqlservr.exe",
    "",
    "",
    "w3wp.exe",
    "nginx",
    "prözess",
    'a "quoted" one',
    "N/A",
]
APPS = ["ERP", "CRM", "", "", "Payroll", "Ünïcode App", "SQL Server"]
TIERS = ["", "", "", "", "", "", "Web", "Orders", "srv-{n}", "Ünï Tier", "  two  words "]
COMMENTS = [
    "",
    "",
    "",
    "john@example.com",
    "+49 30 1234567",
    "4111 1111 1111 1111",
    "=1+1",
    "@SUM(A1)",
    "<script>x</script>",
    "DE89 3704 0044 0532 0130 00",
    "a:b=c;",
    "1985-07-30",
]


def _pick(rng: random.Random, options: list[str], values: dict[str, int]) -> str:
    return rng.choice(options).format(**values)


def _rows(count: int, rng: random.Random) -> Iterator[list[str]]:
    for n in range(1, count + 1):
        m, k = n // 256 % 256, n % 256
        pick = rng.choice
        values = {
            "n": n,
            "m": m,
            "k": k,
            "p": rng.randint(1, 65535),
            "c": rng.randint(0, 10**12),
        }

        fill = functools.partial(_pick, rng, values=values)

        windowed = rng.random() < 0.3
        row = [
            "" if windowed and rng.random() < 0.5 else fill(TIMESTAMPS),
            fill(NAMES),
            fill(IPS),
            pick(["", "", "", "443", "51234", "1433", "abc", "0", "{p}"]).format(**values),
            fill(APPS),
            fill(PROCESSES),
            fill(TIERS),
            fill(NAMES),
            fill(IPS),
            fill(APPS),
            fill(PROCESSES),
            fill(TIERS),
            fill(PORTS),
            fill(PROTOCOLS),
            fill(DEP_TYPES),
            fill(COUNTS),
            fill(BYTES),
            fill(BYTES),
            fill(BYTES),
            fill(LATENCY),
            fill(ERROR_PCT),
            fill(ERROR_COUNT),
            fill(TIMESTAMPS) if windowed else "",
            fill(TIMESTAMPS) if windowed else "",
            fill(APPS),
            fill(COMMENTS),
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


# --- a realistic connection export: Azure Migrate layout over 5,000 servers --------------

AZURE_FULL = [
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
_SERVICES = [
    ("443", "w3wp.exe", "IIS"),
    ("1433", "sqlservr.exe", "SQL Server"),
    ("8080", "java.exe", "Tomcat"),
    ("5432", "postgres", "PostgreSQL"),
    ("445", "System", "Windows"),
    ("389", "lsass.exe", "Active Directory"),
    ("6379", "redis-server", "Redis"),
    ("1521", "oracle", "Oracle"),
    ("53", "dns.exe", "DNS"),
    ("3389", "svchost.exe", "RDP"),
]


def azure_connections(count: int, servers: int = 5_000, seed: int = 11) -> Iterator[list[str]]:
    """Connection rows as Azure Migrate exports them: hourly timeslots, each server talking to
    a few peers over its services (a process per service)."""
    rng = random.Random(seed)
    hosts = [
        (f"srv{n:05d}", f"10.{n // 65536}.{n // 256 % 256}.{n % 256 + 1}") for n in range(servers)
    ]
    peers = {n: rng.sample(range(servers), 4) for n in range(servers)}
    for i in range(count):
        source = rng.randrange(servers)
        target = rng.choice(peers[source])
        port, process, application = _SERVICES[(source + target) % len(_SERVICES)]
        slot = datetime(2025, 6, 1 + i * 30 // count, (i * 7) % 24, tzinfo=UTC)
        yield [
            slot.strftime("%Y-%m-%d %H:%M"),
            hosts[source][0],
            hosts[source][1],
            "App" + str(source % 50),
            rng.choice(["java.exe", "w3wp.exe", "python.exe"]),
            hosts[target][0],
            hosts[target][1],
            application,
            process,
            port,
        ]


CASES = [
    GoldenCase(
        "app_discovery/azure_migrate_dependencies", APP, sample("azure_migrate_dependencies.csv")
    ),
    *(
        GoldenCase(f"app_discovery/layout{index}", APP, _layout(index))
        for index in range(len(SMALL_FILES))
    ),
    GoldenCase(
        "app_discovery/generated_100k",
        APP,
        lambda folder: write(
            folder / "generated_app_discovery.csv", HEADERS, _rows(100_000, random.Random(8))
        ),
    ),
    # An explicit mapping, and the agent's clock elsewhere (other timestamps implausible).
    GoldenCase(
        "app_discovery/column_mapping_and_clock",
        Columnar(datetime(2000, 1, 1, tzinfo=UTC)),
        lambda folder: write(
            folder / "mapped.csv", ["From", "To", *HEADERS[2:]], _rows(3_000, random.Random(5))
        ),
        ProcessingConfig(column_mapping={"From": "timeslot", "To": "source_name"}),
    ),
    GoldenCase(
        "app_discovery/azure_connections_100k",
        APP,
        lambda folder: write(folder / "azure_100k.csv", AZURE_FULL, azure_connections(100_000)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_matches_golden(case: GoldenCase, tmp_path: Path) -> None:
    assert check(case, tmp_path)


def test_generated_file_covers_the_rules() -> None:
    codes = golden_codes(CASES[-3])
    for code in ("type-error", "self-dependency", "implausible-timestamp", "blank-row"):
        assert codes[code] > 0, code


def benchmark(path: Path, chunk_rows: int = 5_000) -> dict[str, float]:
    """rows/s of the columnar engine on one file, in-process (rows already staged in memory)."""
    headers, rows = staged_rows(path, APP)
    mapping = header_mapping(APP, headers, ProcessingConfig())
    staged = [(n, raw, json.dumps(i) if i else None, b) for n, raw, i, b in rows]
    results: dict[str, float] = {"rows": len(rows)}
    for size in (len(rows), chunk_rows):
        frames = [
            frame_from_rows(staged[at : at + size], mapping, keys=headers)
            for at in range(0, len(staged), size)
        ]
        started = time.perf_counter()
        for frame in frames:
            chunk.validate(APP, frame)
        results[f"columnar_chunks_of_{size}"] = len(rows) / (time.perf_counter() - started)
    return results


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        target = write(Path(folder) / "azure_100k.csv", AZURE_FULL, azure_connections(100_000))
        for name, value in benchmark(target).items():
            print(f"{name}: {value:,.0f}")
