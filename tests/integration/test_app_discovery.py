"""The app_discovery category: row validation, the dependency_validator agent, dependency
groups, and end-to-end imports through the real workflow (PostgreSQL + Temporal)."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.agents.base import RowContext
from dataimport.agents.dependency_validator import DependencyValidator
from dataimport.categories import REGISTRY
from dataimport.categories.app_discovery import (
    CATEGORY,
    parse_bytes,
    parse_timestamp,
)
from dataimport.categories.base import map_headers
from dataimport.dependency_groups import (
    list_dependency_groups,
    refresh_dependency_groups,
)
from dataimport.issues import Code
from service.imports import ImportService
from tests.factories import ASSET_GROUP, AZURE_CONNECTION_HEADERS, REALDATA, run_import, write_csv
from tests.one_row import RowOutcome, codes, validate_cells

AZURE_SAMPLE = REALDATA / "azure-migrate-dependency-export-sample.csv"
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
NOW = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = ["2025-06-01T00:00:00Z", "2025-06-07T23:59:59Z"]


def validate(headers: list[str], cells: list[str]) -> RowOutcome:
    """The rules on one row given as the source file has it (headers mapped by aliases)."""
    return validate_cells(CATEGORY, headers, cells)


def azure_row(**overrides: str) -> RowOutcome:
    row = dict(
        zip(
            AZURE_CONNECTION_HEADERS,
            [
                "2025-06-14 00:00",
                "app1-server",
                "App1",
                "svchost.exe",
                "app2-server",
                "10.0.0.2",
                "App2",
                "httpd.exe",
                "443",
            ],
            strict=True,
        )
    )
    row.update(overrides)
    return validate(list(row), list(row.values()))


def examine(outcome: RowOutcome) -> list[tuple[str, str | None]]:
    agent = DependencyValidator(now=lambda: NOW)
    context = RowContext(1, {}, {}, outcome.normalized, "app_discovery")
    found = agent.examine(context)
    assert all(i.agent == "dependency_validator" and not i.is_error for i in found)
    return [(issue.code, issue.field) for issue in found]


# --- header mapping and normalisation ----------------------------------------------------


def test_registered_with_its_agent() -> None:
    assert REGISTRY["app_discovery"] is CATEGORY
    assert [agent.name for agent in CATEGORY.agents] == ["dependency_validator"]


def test_azure_migrate_headers_all_map() -> None:
    with AZURE_SAMPLE.open(newline="", encoding="utf-8-sig") as handle:
        headers = next(csv.reader(handle))
    mapping = map_headers(headers, CATEGORY.aliases, {})
    assert mapping.unmapped_headers == []
    assert mapping.field_by_header["Destination port"] == "port"
    assert mapping.mapped_fields & CATEGORY.required_fields


def test_azure_row_normalises_to_two_endpoints_and_a_tcp_edge() -> None:
    outcome = azure_row()
    assert outcome.issues == []
    source, target, dep = (outcome.normalized[k] for k in ("source", "target", "dependency"))
    assert (source["name"], source["hostname_key"], source["ip_address"]) == (
        "app1-server",
        "app1-server",
        None,
    )
    assert (target["name_key"], target["ip_address"]) == ("app2-server", "10.0.0.2")
    assert (dep["port"], dep["protocol"], dep["protocol_inferred"]) == (443, "TCP", True)
    assert dep["first_seen"] == dep["last_seen"] == "2025-06-14T00:00:00+00:00"
    assert (dep["conn_count"], dep["service"], dep["source_process"]) == (1, "https", "svchost.exe")
    key = CATEGORY.natural_key(outcome.normalized)
    assert key == f"app1-server|app2-server|443|TCP|{dep['observation_key']}"


def test_observation_key_is_stable_per_window_and_process() -> None:
    key = azure_row().normalized["dependency"]["observation_key"]
    assert azure_row().normalized["dependency"]["observation_key"] == key
    assert azure_row(Timeslot="2025-06-15 00:00").normalized["dependency"]["observation_key"] != key
    other_process = azure_row(**{"Source process": "w3wp.exe"})
    assert other_process.normalized["dependency"]["observation_key"] != key


@pytest.mark.parametrize(
    ("port", "code"),
    [("0", "constraint-error"), ("70000", "constraint-error"), ("http", "type-error")],
)
def test_bad_ports_are_rejected(port: str, code: str) -> None:
    outcome = azure_row(**{"Destination port": port})
    assert not outcome.is_valid
    assert (code, "error", "port") in codes(outcome)


def test_port_with_protocol_suffix() -> None:
    dep = azure_row(**{"Destination port": "53/udp"}).normalized["dependency"]
    assert (dep["port"], dep["protocol"]) == (53, "UDP")


def test_bad_timestamp_is_a_type_error() -> None:
    outcome = azure_row(Timeslot="yesterday-ish")
    assert ("type-error", "error", "timeslot") in codes(outcome)


def test_last_seen_before_first_seen_is_rejected() -> None:
    outcome = validate(
        ["Source", "Destination", "Port", "First Seen", "Last Seen"],
        ["a", "b", "22", "2025-06-02T00:00:00Z", "2025-06-01T00:00:00Z"],
    )
    assert ("constraint-error", "error", "last_seen") in codes(outcome)


@pytest.mark.parametrize(
    "raw",
    [
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
    ],
)
def test_timestamps_in_many_layouts_become_utc(raw: str) -> None:
    assert parse_timestamp(raw) == datetime(2025, 6, 14, 8, 30, tzinfo=UTC)


def test_self_dependency_keeps_the_row_but_drops_the_edge() -> None:
    outcome = azure_row(**{"Destination server name": "APP1-SERVER", "Destination IP": ""})
    assert outcome.is_valid
    assert ("self-dependency", "warning", "target_name") in codes(outcome)
    assert outcome.normalized["target"] is None
    assert CATEGORY.natural_key(outcome.normalized) is None


def test_loopback_destination_is_a_self_dependency() -> None:
    outcome = azure_row(**{"Destination server name": "", "Destination IP": "127.0.0.1"})
    assert ("self-dependency", "warning", "target_ip") in codes(outcome)
    assert outcome.normalized["target"] is None


def test_loopback_ip_next_to_a_name_is_not_stored() -> None:
    outcome = azure_row(**{"Destination IP": "127.0.0.1"})
    assert outcome.normalized["target"]["ip_address"] is None


def test_unknown_protocol_is_kept_with_a_warning_and_garbage_is_rejected() -> None:
    headers = ["Source", "Destination", "Port", "Protocol"]
    unknown = validate(headers, ["a", "b", "7000", "Fancynet"])
    assert unknown.is_valid
    assert ("unknown-value", "warning", "protocol") in codes(unknown)
    assert unknown.normalized["dependency"]["protocol"] == "FANCYNET"
    garbage = validate(headers, ["a", "b", "7000", "??!"])
    assert ("constraint-error", "error", "protocol") in codes(garbage)
    assert validate(headers, ["a", "b", "443", "https"]).normalized["dependency"]["protocol"] == (
        "HTTPS"
    )


def test_missing_endpoint_and_bad_ip_are_rejected() -> None:
    missing = azure_row(**{"Destination server name": "", "Destination IP": ""})
    assert ("missing-required", "error", "target_name") in codes(missing)
    bad_ip = azure_row(**{"Destination IP": "10.0.0.300"})
    assert ("constraint-error", "error", "target_ip") in codes(bad_ip)
    multicast = azure_row(**{"Destination server name": "", "Destination IP": "224.0.0.251"})
    assert ("constraint-error", "error", "target_ip") in codes(multicast)


def test_ip_only_endpoint_is_named_after_its_ip() -> None:
    target = azure_row(**{"Destination server name": ""}).normalized["target"]
    assert target == {
        "name": "10.0.0.2",
        "name_key": "10.0.0.2",
        "hostname": None,
        "hostname_key": None,
        "ip_address": "10.0.0.2",
        "asset_type": "server",
    }


def test_bytes_beyond_32_bits_and_with_units() -> None:
    assert parse_bytes("5,000,000,000") == 5_000_000_000
    assert parse_bytes("2 GiB") == 2 * 1024**3
    outcome = validate(
        ["Source", "Destination", "Port", "Bytes Sent", "Bytes Received"],
        ["a", "b", "443", "3000000000", "2000000000"],
    )
    assert outcome.normalized["dependency"]["bytes_total"] == 5_000_000_000
    negative = validate(["Source", "Destination", "Bytes"], ["a", "b", "-1"])
    assert ("constraint-error", "warning", "bytes_total") in codes(negative)
    assert negative.is_valid and negative.normalized["dependency"]["bytes_total"] is None


def test_topology_row_source_is_the_node_and_target_the_called_tier() -> None:
    outcome = validate(
        TOPOLOGY_HEADERS,
        ["Shop", "Web", "web-node-1", "Orders", "1,200", "35.5", "0.5", "8080", "HTTP", *WINDOW],
    )
    assert outcome.issues == []
    source, target, dep = (outcome.normalized[k] for k in ("source", "target", "dependency"))
    assert (source["name"], source["asset_type"]) == ("web-node-1", "server")
    assert (target["name"], target["asset_type"], target["hostname_key"]) == (
        "Orders",
        "application",
        None,
    )
    assert (dep["conn_count"], dep["latency_ms"], dep["error_rate_pct"]) == (1200, 35.5, 0.5)
    assert (dep["kind"], dep["dependency_type"], dep["application"]) == (
        "topology",
        "application_call",
        "Shop",
    )
    assert [(c["side"], c["name"]) for c in outcome.normalized["runs_on"]] == [("source", "Web")]


def test_error_rate_must_be_a_percentage() -> None:
    row = ["Shop", "Web", "n1", "Orders", "10", "5", "250", "8080", "HTTP", "", ""]
    outcome = validate(TOPOLOGY_HEADERS, row)
    assert ("constraint-error", "warning", "error_rate") in codes(outcome)
    assert outcome.is_valid and outcome.normalized["dependency"].get("error_rate_pct") is None


def test_a_malformed_port_or_endpoint_address_still_rejects_the_row() -> None:
    port = validate(["Source", "Destination", "Port"], ["a", "b", "http"])
    assert ("type-error", "error", "port") in codes(port) and not port.is_valid
    address = validate(["Source IP", "Destination IP"], ["10.0.0.1", "10.0.0.300"])
    assert ("constraint-error", "error", "target_ip") in codes(address)
    assert not address.is_valid


# --- dependency_validator agent ----------------------------------------------------------


def test_agent_is_quiet_on_a_clean_row() -> None:
    assert examine(azure_row()) == []


def test_agent_same_machine_by_ip() -> None:
    outcome = validate(
        ["Source server name", "Source IP", "Destination server name", "Destination IP", "Port"],
        ["web1", "10.0.0.9", "web1-alias", "10.0.0.9", "443"],
    )
    assert outcome.is_valid
    assert examine(outcome) == [(Code.SELF_DEPENDENCY.value, "target_name")]


@pytest.mark.parametrize(
    ("port", "protocol"),
    [("1433", "UDP"), ("123", "TCP"), ("1433", "HTTP"), ("80", "HTTPS"), ("8", "ICMP")],
)
def test_agent_port_protocol_mismatch(port: str, protocol: str) -> None:
    outcome = validate(["Source", "Destination", "Port", "Protocol"], ["a", "b", port, protocol])
    assert outcome.is_valid
    assert (Code.PORT_PROTOCOL_MISMATCH.value, "protocol" if protocol != "ICMP" else "port") in (
        examine(outcome)
    )


@pytest.mark.parametrize(
    ("port", "protocol"), [("443", "HTTP"), ("5432", "JDBC"), ("9000", "HTTP")]
)
def test_agent_accepts_usual_and_custom_ports(port: str, protocol: str) -> None:
    outcome = validate(["Source", "Destination", "Port", "Protocol"], ["a", "b", port, protocol])
    assert examine(outcome) == []


def test_agent_ephemeral_destination_port() -> None:
    swapped = validate(
        ["Source", "Source Port", "Destination", "Destination Port"], ["a", "443", "b", "51234"]
    )
    found = examine(swapped)
    assert found == [(Code.EPHEMERAL_PORT.value, "port")]
    rpc = validate(["Source", "Destination", "Port", "Protocol"], ["a", "b", "51234", "MSRPC"])
    assert examine(rpc) == []


def test_agent_weak_endpoint_identity() -> None:
    public = azure_row(**{"Destination server name": "", "Destination IP": "52.1.2.3"})
    assert examine(public) == [(Code.WEAK_ENDPOINT_IDENTITY.value, "target_name")]
    display_name = azure_row(**{"Source server name": "Payroll App"})
    assert examine(display_name) == [(Code.WEAK_ENDPOINT_IDENTITY.value, "source_name")]


def test_agent_future_and_ancient_timestamps() -> None:
    assert examine(azure_row(Timeslot="2027-01-01 00:00")) == [
        (Code.IMPLAUSIBLE_TIMESTAMP.value, "first_seen")
    ]
    assert examine(azure_row(Timeslot="1970-01-02 00:00")) == [
        (Code.IMPLAUSIBLE_TIMESTAMP.value, "first_seen")
    ]


def test_agent_skips_rows_the_category_rejected() -> None:
    assert examine(RowOutcome(normalized={"source": None, "dependency": {}})) == []


# --- through the real workflow -----------------------------------------------------------


EDGES_SQL = """
SELECT s.name AS source, t.name AS target, d.port, d.protocol, d.dependency_type,
  d.conn_count, d.bytes_total, d.first_seen, d.last_seen, d.confidence, d.details
FROM asset_dependencies d
JOIN assets s ON s.id = d.source_asset_id JOIN assets t ON t.id = d.target_asset_id
WHERE d.client_account_id = :c AND d.engagement_id = :e
ORDER BY s.name, t.name, d.port
"""


async def edges(engine: AsyncEngine, service: ImportService) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(EDGES_SQL), service.tenant.params())
        return [dict(row) for row in rows.mappings()]


async def assets(engine: AsyncEngine, service: ImportService) -> dict[str, Mapping[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT name, ip_address, asset_type, {ASSET_GROUP} FROM assets "
                "WHERE client_account_id = :c AND engagement_id = :e"
            ),
            service.tenant.params(),
        )
        return {row.name: dict(row._mapping) for row in rows}


async def refresh_groups(engine: AsyncEngine, service: ImportService) -> dict[str, Any]:
    tenant = service.tenant
    async with engine.begin() as conn:
        return await refresh_dependency_groups(
            conn, str(tenant.client_account_id), str(tenant.engagement_id)
        )


def groups_of(found: Mapping[str, Mapping[str, Any]]) -> set[frozenset[str]]:
    by_group: dict[str, set[str]] = {}
    for name, row in found.items():
        if row["dependency_group"]:
            by_group.setdefault(row["dependency_group"], set()).add(name)
    return {frozenset(members) for members in by_group.values()}


def write_azure(path: Path, timeslot: str) -> Path:
    with AZURE_SAMPLE.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))[1:]
    return write_csv(path, AZURE_CONNECTION_HEADERS, [[timeslot, *row[1:]] for row in rows])


@pytest.mark.usefixtures("worker")
async def test_azure_migrate_sample_end_to_end(service: ImportService, engine: AsyncEngine) -> None:
    status = await run_import(service, AZURE_SAMPLE, category="app_discovery")
    assert (status.status, status.valid_rows, status.invalid_rows) == ("completed", 5, 0)
    assert (status.assets_created, status.dependencies_created, status.processed_rows) == (8, 5, 5)

    found = await assets(engine, service)
    assert {name: row["ip_address"] for name, row in found.items()} == {
        "app1-server": "10.0.0.1",
        "app2-server": "10.0.0.2",
        "db1-server": "10.0.0.5",
        "api1-server": "10.0.0.10",
        "api2-server": "10.0.0.11",
        "web1-server": None,
        "web2-server": None,
        "admin-server": None,
    }
    seen = datetime(2025, 6, 14, tzinfo=UTC)
    assert [
        (e["source"], e["target"], e["port"], e["protocol"], e["conn_count"], e["first_seen"])
        for e in await edges(engine, service)
    ] == [
        ("admin-server", "app1-server", 3389, "TCP", 1, seen),
        ("app1-server", "app2-server", 443, "TCP", 1, seen),
        ("app1-server", "db1-server", 1433, "TCP", 1, seen),
        ("web1-server", "api1-server", 8080, "TCP", 1, seen),
        ("web2-server", "api2-server", 8080, "TCP", 1, seen),
    ]
    first = (await edges(engine, service))[1]
    assert first["details"]["target_process"] == "httpd.exe"
    assert first["dependency_type"] == "network_connection"
    assert 0.85 <= first["confidence"] < 0.9

    summary = await refresh_groups(engine, service)
    assert (summary["groups"], summary["assets_in_groups"], summary["largest"]) == (3, 8, 4)
    assert summary["top"][0]["sample"] == [
        "admin-server",
        "app1-server",
        "app2-server",
        "db1-server",
    ]
    found = await assets(engine, service)
    assert groups_of(found) == {
        frozenset({"admin-server", "app1-server", "app2-server", "db1-server"}),
        frozenset({"web1-server", "api1-server"}),
        frozenset({"web2-server", "api2-server"}),
    }
    tenant = service.tenant
    async with engine.connect() as conn:
        listed = await list_dependency_groups(
            conn, str(tenant.client_account_id), str(tenant.engagement_id)
        )
    assert [(g["assets"], g["dependencies"]) for g in listed] == [(4, 3), (2, 1), (2, 1)]
    assert listed[0]["group"] == found["app1-server"]["dependency_group"]


@pytest.mark.usefixtures("worker")
async def test_reimporting_the_same_file_changes_no_figures(
    service: ImportService, engine: AsyncEngine
) -> None:
    await run_import(service, AZURE_SAMPLE, category="app_discovery")
    before = await edges(engine, service)
    again = await run_import(service, AZURE_SAMPLE, category="app_discovery")
    assert (again.status, again.assets_created, again.dependencies_created) == ("completed", 0, 0)
    assert again.assets_updated == 8
    assert await edges(engine, service) == before
    async with engine.connect() as conn:
        observations = await conn.scalar(
            text(
                "SELECT count(*) FROM dependency_observations "
                "WHERE client_account_id = :c AND engagement_id = :e"
            ),
            service.tenant.params(),
        )
    assert observations == 5


@pytest.mark.usefixtures("worker")
async def test_two_time_windows_combine(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    await run_import(
        service,
        write_azure(tmp_path / "day2.csv", "6/15/2025 6:00:00 PM"),
        category="app_discovery",
    )
    await run_import(
        service, write_azure(tmp_path / "day1.csv", "2025-06-14 00:00"), category="app_discovery"
    )
    found = await edges(engine, service)
    assert len(found) == 5
    for edge in found:
        assert edge["conn_count"] == 2
        assert edge["first_seen"] == datetime(2025, 6, 14, tzinfo=UTC)
        assert edge["last_seen"] == datetime(2025, 6, 15, 18, tzinfo=UTC)


@pytest.mark.usefixtures("worker")
async def test_counts_and_bigint_bytes_add_across_windows(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    headers = ["Source IP", "Destination", "Destination IP", "Port", "Protocol", "Connections"]
    headers += ["Bytes", "First Seen", "Last Seen"]
    week1 = ["10.1.0.1", "files01", "10.1.0.9", "445", "tcp", "10", "3000000000"]
    week2 = ["10.1.0.1", "files01", "10.1.0.9", "445", "tcp", "5", "4,000,000,000"]
    path1 = write_csv(tmp_path / "w1.csv", headers, [[*week1, "2025-06-01", "2025-06-07"]])
    path2 = write_csv(tmp_path / "w2.csv", headers, [[*week2, "2025-06-08", "2025-06-14"]])
    assert (await run_import(service, path1, category="app_discovery")).status == "completed"
    assert (await run_import(service, path2, category="app_discovery")).status == "completed"
    (edge,) = await edges(engine, service)
    assert (edge["source"], edge["target"], edge["port"], edge["protocol"]) == (
        "10.1.0.1",
        "files01",
        445,
        "TCP",
    )
    assert (edge["conn_count"], edge["bytes_total"]) == (15, 7_000_000_000)
    assert (edge["first_seen"], edge["last_seen"]) == (
        datetime(2025, 6, 1, tzinfo=UTC),
        datetime(2025, 6, 14, tzinfo=UTC),
    )


@pytest.mark.usefixtures("worker")
async def test_topology_layout_end_to_end(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    window = ["2025-06-01T00:00:00Z", "2025-06-07T23:59:59Z"]
    rows = [
        ["Shop", "Web", "web-node-1", "Orders", "1200", "35.5", "0.5", "8080", "HTTP", *window],
        ["Shop", "Web", "web-node-2", "Orders", "800", "40", "1", "8080", "HTTP", *window],
        [
            "Shop",
            "Orders",
            "orders-node-1",
            "OrdersDB",
            "5000",
            "4.2",
            "0",
            "1433",
            "JDBC",
            *window,
        ],
        ["Shop", "Web", "web-node-2", "Orders", "800", "40", "1", "8080", "HTTP", *window],
    ]
    status = await run_import(
        service, write_csv(tmp_path / "appd.csv", TOPOLOGY_HEADERS, rows), category="app_discovery"
    )
    assert (status.status, status.valid_rows) == ("completed", 4)
    assert status.warning_rows == 1  # the repeated line: duplicate-key, the last one wins

    found = await assets(engine, service)
    assert {name: row["asset_type"] for name, row in found.items()} == {
        "web-node-1": "server",
        "web-node-2": "server",
        "orders-node-1": "server",
        "Web": "application",
        "Orders": "application",
        "OrdersDB": "application",
    }
    calls = [
        (e["source"], e["target"], e["port"], e["protocol"], e["conn_count"])
        for e in await edges(engine, service)
        if e["dependency_type"] == "application_call"
    ]
    assert calls == [
        ("orders-node-1", "OrdersDB", 1433, "JDBC", 5000),
        ("web-node-1", "Orders", 8080, "HTTP", 1200),
        ("web-node-2", "Orders", 8080, "HTTP", 800),
    ]
    runs_on = {
        (e["source"], e["target"])
        for e in await edges(engine, service)
        if e["dependency_type"] == "runs_on"
    }
    assert runs_on == {("Web", "web-node-1"), ("Web", "web-node-2"), ("Orders", "orders-node-1")}
    detail = next(e for e in await edges(engine, service) if e["source"] == "web-node-1")
    assert (detail["details"]["latency_ms"], detail["details"]["error_rate_pct"]) == (35.5, 0.5)
    await refresh_groups(engine, service)
    assert groups_of(await assets(engine, service)) == {frozenset(found)}


@pytest.mark.usefixtures("worker")
async def test_parallel_ranges_sharing_endpoints_give_exact_counts(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    # 400 rows over 4 ranges of 100, run in parallel: every range creates and updates the
    # same hubs, clients and edges (each line is its own observation: its count differs), so
    # creation, locking and edge upserts must neither collide nor lose a count.
    rows = [
        [f"client-{n % 40:02d}", f"hub-{n % 3}", f"10.9.0.{n % 3 + 1}", str(8000 + n % 5), str(n)]
        for n in range(1, 401)
    ]
    headers = ["Source", "Destination", "Destination IP", "Port", "Connections"]
    path = write_csv(tmp_path / "many.csv", headers, rows)
    status = await run_import(
        service, path, {"chunk_size": 100, "max_parallel_chunks": 4}, category="app_discovery"
    )
    assert (status.status, status.valid_rows, status.assets_created) == ("completed", 400, 43)
    expected: dict[tuple[str, str, int], int] = {}
    for n in range(1, 401):
        key = (f"client-{n % 40:02d}", f"hub-{n % 3}", 8000 + n % 5)
        expected[key] = expected.get(key, 0) + n
    found = {
        (e["source"], e["target"], e["port"]): e["conn_count"] for e in await edges(engine, service)
    }
    assert found == expected
    assert status.dependencies_created == len(expected) == 120


async def test_groups_refresh_is_idempotent_and_clears_isolated_assets(
    engine: AsyncEngine,
) -> None:
    c, e = str(uuid.uuid4()), str(uuid.uuid4())
    async with engine.begin() as conn:
        ids = {}
        for name in ("a", "b", "c", "d", "lonely"):
            ids[name] = await conn.scalar(
                text(
                    "INSERT INTO assets (client_account_id, engagement_id, name, name_key) "
                    "VALUES (:c, :e, :n, :n) RETURNING id"
                ),
                {"c": c, "e": e, "n": name},
            )
        for source, target in (("a", "b"), ("b", "c"), ("c", "a")):
            await conn.execute(
                text(
                    "INSERT INTO asset_dependencies (client_account_id, engagement_id, "
                    "source_asset_id, target_asset_id) VALUES (:c, :e, :s, :t)"
                ),
                {"c": c, "e": e, "s": ids[source], "t": ids[target]},
            )
        await conn.execute(
            text(
                "INSERT INTO dependency_group_members "
                "(asset_id, group_root, client_account_id, engagement_id) "
                "VALUES (:id, :id, :c, :e)"
            ),
            {"id": ids["lonely"], "c": c, "e": e},
        )
        summary = await refresh_dependency_groups(conn, c, e)
        assert summary == {
            "groups": 1,
            "assets_in_groups": 3,
            "largest": 3,
            "top": [
                {"group": f"G-{min(ids[n] for n in 'abc')}", "assets": 3, "sample": ["a", "b", "c"]}
            ],
        }
        assert await refresh_dependency_groups(conn, c, e) == summary  # same transaction: rerun
    async with engine.begin() as conn:
        assert await refresh_dependency_groups(conn, c, e) == summary
        found: dict[str, str | None] = dict(
            (
                await conn.execute(
                    text(
                        f"SELECT name, {ASSET_GROUP} FROM assets "
                        "WHERE client_account_id = :c AND engagement_id = :e"
                    ),
                    {"c": c, "e": e},
                )
            ).all()
        )
    assert found["lonely"] is None and found["d"] is None
    assert found["a"] == found["b"] == found["c"] == summary["top"][0]["group"]
