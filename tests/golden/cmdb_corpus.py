"""The generated CMDB corpus: a ServiceNow-style header and rows full of the values that make
the cmdb_export rules branch (the golden 100k file, and the rows validated at ingest)."""

from __future__ import annotations

import random
from collections.abc import Iterator

HEADERS = [
    "sys_id",
    "name",
    "sys_class_name",
    "host_name",
    "fqdn",
    "dns_domain",
    "ip_address",
    "os",
    "os_version",
    "cpu_count",
    "ram",
    "memory_gb",
    "disk_space",
    "storage_mb",
    "environment",
    "criticality",
    "owned_by",
    "managed_by",
    "department",
    "location",
    "serial_number",
    "install_status",
    "virtual",
    "comments",
    "u_app_code",
    "u_contact_email",
    "dependencies",
]

NAMES = [
    "SRV-{n}",
    "srv-{n}",
    "  Srv  {n} ",
    "Sérvér {n}",
    "\u212a{n}",  # Kelvin sign: lower-cases to ASCII k
    "app{n}\x1cx",
    "db {n}\u00a0prod",
    "",
    "N/A",
    '=HYPERLINK("x")',
    "<script>alert({n})</script>",
    "web{n}\x07",
]

HOSTS = [
    "srv-{n}",
    "SRV-{n}.corp.local",
    "CORP\\web{n}",
    "10.0.{m}.{k}",
    "fe80::{k}",
    "Payroll App",
    "host_{n}.",
    "",
    "Ünïcode{n}",
    "123.45",
    "a/b",
]

IPS = [
    "10.{m}.{k}.1",
    "10.0.0.{k}/24",
    "10.0.0.1, 10.0.0.2",
    "010.1.1.1",
    "256.1.1.1",
    "::1",
    "[2001:db8::{k}]",
    "not an ip",
    "",
    "N/A",
    "10.0.0.{k};10.0.0.9",
]

OSES = [
    ("Windows Server 2008 R2 Enterprise", ""),
    ("Windows Server 2019 Datacenter", ""),
    ("Red Hat Enterprise Linux", "7.9"),
    ("RHEL 8", "8.4"),
    ("Ubuntu 18.04 LTS", ""),
    ("Ubuntu", "22.04"),
    ("CentOS 6", ""),
    ("Windows Server", "6.1.7601"),
    ("SunOS 5.10", ""),
    ("Plan 9", "4"),
    ("", "7"),
    ("", ""),
    ("windows  10", ""),
    ("Debian GNU/Linux 9", ""),
]

SIZES = [
    "16",
    "16384",
    "16 GB",
    "512 MiB",
    "1 TB",
    "1,024",
    "12,5",
    "abc",
    "-4",
    "0",
    "99999999 TB",
    "2 XB",
    "",
    "N/A",
    "8.0",
    "1,2,3",
]

CORES = ["4", "8.0", "8.5", "abc", "-2", "0", "5000", "1,024", "", " 16 "]

ENVS = ["prod", "Production", "dev", "QA", "uat", "DR", "weird-env", "", "N/A", "Pre-Prod"]

CRITS = ["High", "1 - most critical", "Tier 2", "P3", "mission critical", "banana", "", "4"]

TYPES = [
    "cmdb_ci_linux_server",
    "cmdb_ci_vmware_instance",
    "cmdb_ci_db_mssql_instance",
    "Server",
    "Servers",
    "VM",
    "Firewall",
    "gizmo",
    "",
    "cmdb_ci_unknown_thing",
    "u_cmdb_ci_app",
]

VIRTUAL = ["true", "false", "Yes", "", "1", "no"]

EXTRAS = [
    "",
    "",
    "",
    "john@example.com",
    "+49 30 1234567",
    "4111 1111 1111 1111",
    "call 555-123-4567 now",
    "1985-07-30",
    "DE89 3704 0044 0532 0130 00",
    "=1+1",
    "a:b=c;",
]


def generated_rows(count: int, rng: random.Random) -> Iterator[list[str]]:
    for n in range(1, count + 1):
        m, k = n // 256 % 256, n % 256
        pick = rng.choice
        name = pick(NAMES).format(n=n)
        other = rng.randint(1, count)
        deps = pick(
            [
                "",
                f"SRV-{other}",
                f"SRV-{other}; srv-{other} | SRV-{other + 1}",
                name,
                f"{name}, SRV-{other}",
                f"Sérvér {other},\n SRV-{other}",
                "  ,;, ",
                f"srv-{n}.corp.local",
            ]
        )
        os_name, os_version = pick(OSES)
        row = [
            pick([f"sys{n}", f"sys{n}", ""]),
            name,
            pick(TYPES),
            pick(HOSTS).format(n=n, m=m, k=k),
            pick(["", "", f"srv-{n}.example.com", "weird..fqdn", ".corp"]),
            pick(["", "corp.local", ".corp.local."]),
            pick(IPS).format(m=m, k=k),
            os_name,
            os_version,
            pick(CORES),
            pick(SIZES),
            pick(["", "", "32 GB", "bad"]),
            pick(SIZES),
            pick(["", "2048", "x"]),
            pick(ENVS),
            pick(CRITS),
            pick(["Ops Team", "", "jane.doe@example.com"]),
            pick(["", "Infra"]),
            pick(["IT", "", "Finance"]),
            pick(["Frankfurt", "", "DC-1"]),
            pick(["SN123456789", "", "4111111111111111"]),
            pick(["Installed", "", "Retired"]),
            pick(VIRTUAL),
            pick(EXTRAS),
            pick(["APP-1", "", "=cmd|' /C calc'!A0"]),
            pick(EXTRAS),
            deps,
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
