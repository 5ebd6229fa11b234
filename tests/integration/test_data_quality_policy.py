"""The data-quality policy end to end (real worker, PostgreSQL, Temporal): null tokens read as
blank with a warning, a malformed non-identifying value is a warning that leaves its field
empty, a malformed identifying value still rejects its row."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.contracts import ImportStatus
from dataimport.reports import write_error_report
from service.imports import ImportService
from tests.factories import TERMINAL_OR_WAITING, wait_for, write_csv

pytestmark = pytest.mark.usefixtures("worker")

ENTERPRISE_CMDB = Path(__file__).resolve().parents[1] / "data" / "enterprise-cmdb-data.csv"


async def run(service: ImportService, path: Path, category: str) -> ImportStatus:
    started = await service.start_import(path, category)
    return await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)


async def report(engine: AsyncEngine, service: ImportService, done: ImportStatus) -> list[dict]:
    """The import's error report (the CSV users download), as dicts."""
    handle = io.StringIO()
    await write_error_report(engine, service.tenant, done.data_import_id, handle)
    return list(csv.DictReader(io.StringIO(handle.getvalue())))


async def assets(engine: AsyncEngine, service: ImportService) -> dict[str, dict]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT name, external_id, ip_address FROM assets "
                "WHERE client_account_id = :c AND engagement_id = :e"
            ),
            service.tenant.params(),
        )
        return {row.name: dict(row._mapping) for row in rows}


async def test_the_old_systems_cmdb_file_gives_20_assets_and_6_address_warnings(
    service: ImportService, engine: AsyncEngine
) -> None:
    done = await run(service, ENTERPRISE_CMDB, "cmdb_export")
    assert done.status == "completed", done
    assert (done.total_rows, done.valid_rows, done.invalid_rows) == (20, 20, 0)
    assert done.warning_rows == 6
    assert done.assets_created == 20

    inventory = await assets(engine, service)
    assert len(inventory) == 20
    unknown_address = {name for name, asset in inventory.items() if asset["ip_address"] is None}
    assert unknown_address == {
        "Customer Portal",
        "Payment Gateway",
        "Auth Service",
        "Order Management",
        "Reporting Engine",
        "Message Queue",
    }
    assert inventory["Monitoring Service"]["ip_address"] == "10.10.6.11"
    assert inventory["web-srv-01"]["ip_address"] == "10.10.1.11"

    findings = await report(engine, service, done)
    addresses = [f for f in findings if f["column"] == "ip_address"]
    assert len(addresses) == 6
    assert {(f["code"], f["severity"]) for f in addresses} == {("null-token", "warning")}
    assert all("'N/A' is a null token; read as blank" in f["message"] for f in addresses)
    # Every finding of the file is a null token; dependencies "N/A" is read as blank too.
    assert {(f["code"], f["column"]) for f in findings} == {
        ("null-token", "ip_address"),
        ("null-token", "dependencies"),
    }

    async with engine.connect() as conn:
        declared = await conn.scalar(
            text(
                "SELECT count(*) FROM asset_dependencies "
                "WHERE client_account_id = :c AND engagement_id = :e"
            ),
            service.tenant.params(),
        )
    # 25 references between the file's own asset ids; "ALL" names no asset.
    assert declared == 25


async def test_a_malformed_address_warns_and_a_malformed_identity_rejects(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    cmdb = write_csv(
        tmp_path / "cmdb.csv",
        ["asset_name", "ip_address", "cpu_count"],
        [["srv-a", "10.1.1.300", "4"], ["srv-b", "10.1.1.3", "many"]],
    )
    done = await run(service, cmdb, "cmdb_export")
    assert done.status == "completed", done
    assert (done.valid_rows, done.invalid_rows, done.warning_rows) == (2, 0, 2)
    inventory = await assets(engine, service)
    assert inventory["srv-a"]["ip_address"] is None
    assert inventory["srv-b"]["ip_address"] == "10.1.1.3"
    findings = await report(engine, service, done)
    assert [(f["row"], f["column"], f["code"], f["severity"]) for f in findings] == [
        ("1", "ip_address", "constraint-error", "warning"),
        ("2", "cpu_count", "type-error", "warning"),
    ]
    assert "'10.1.1.300'" in findings[0]["message"]
    assert findings[0]["message"].endswith("the field was left empty")

    # A connection whose only identity of its destination is a malformed address.
    flows = write_csv(
        tmp_path / "flows.csv",
        ["Source server name", "Destination server name", "Destination IP", "Destination port"],
        [["web-01", "", "10.1.1.300", "443"], ["web-01", "db-01", "10.1.1.9", "1433"]],
    )
    done = await run(service, flows, "app_discovery")
    assert done.status == "completed_with_errors", done
    assert (done.valid_rows, done.invalid_rows) == (1, 1)
    rejected = [f for f in await report(engine, service, done) if f["severity"] == "error"]
    assert [(f["row"], f["column"], f["code"]) for f in rejected][:1] == [
        ("1", "Destination IP", "constraint-error")
    ]
    assert "left empty" not in rejected[0]["message"]
