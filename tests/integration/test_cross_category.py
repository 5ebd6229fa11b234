"""One estate from four files: CMDB, then infrastructure, then app discovery, then sensitive
data. Every real server ends as one asset, each field owned by the category that should win."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.imports import ImportService
from tests.factories import (
    ASSET_GROUP,
    AZURE_CONNECTION_HEADERS,
    CMDB_HEADERS,
    PAYMENTS,
    RVTOOLS_HEADERS,
    STORE_HEADERS,
    TERMINAL_OR_WAITING,
    cmdb_row,
    rvtools_row,
    wait_for,
    write_csv,
)

pytestmark = pytest.mark.usefixtures("worker")


def cmdb_server(n: int, name: str, ip: str, owner: str) -> list[str]:
    row = cmdb_row(n)
    row[CMDB_HEADERS.index("asset_name")] = name.upper()
    row[CMDB_HEADERS.index("hostname")] = name
    row[CMDB_HEADERS.index("IP Address")] = ip
    row[CMDB_HEADERS.index("owner")] = owner
    return row


async def run(service: ImportService, path: Path, category: str) -> None:
    started = await service.start_import(path, category)
    done = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert done.status == "completed", done


async def assets_by_host(engine: AsyncEngine, service: ImportService) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT *, {ASSET_GROUP} FROM assets "
                "WHERE client_account_id = :c AND engagement_id = :e "
                "ORDER BY name"
            ),
            service.tenant.params(),
        )
        return {row.hostname_key: row for row in rows}


async def test_four_categories_build_one_asset_per_real_server(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    cmdb = [
        cmdb_server(1, "web-01", "10.1.0.10", "Alice"),
        cmdb_server(2, "db-01", "10.1.0.20", "DBA"),
    ]
    await run(service, write_csv(tmp_path / "cmdb.csv", CMDB_HEADERS, cmdb), "cmdb_export")
    infra = [
        rvtools_row("web-01", ip="10.1.0.10", cpus="2", memory_mib="8192"),
        rvtools_row("db-01", ip="10.1.0.20", cpus="8", memory_mib="65536"),
    ]
    await run(service, write_csv(tmp_path / "vinfo.csv", RVTOOLS_HEADERS, infra), "infrastructure")
    flows = [
        [
            "2025-06-14 00:00",
            "web-01",
            "Shop",
            "java",
            "db-01",
            "10.1.0.20",
            "SQL",
            "sqlservr",
            "1433",
        ]
    ]
    await run(
        service, write_csv(tmp_path / "deps.csv", AZURE_CONNECTION_HEADERS, flows), "app_discovery"
    )
    store = [*PAYMENTS]
    store[STORE_HEADERS.index("Host")] = "db-01"
    await run(service, write_csv(tmp_path / "stores.csv", STORE_HEADERS, [store]), "sensitive_data")

    assets = await assets_by_host(engine, service)
    assert set(assets) == {"web-01", "db-01"}
    web, db = assets["web-01"], assets["db-01"]
    # CMDB wins identity and business fields.
    assert (web.name, web.owner, web.environment) == ("WEB-01", "Alice", "production")
    assert (db.name, db.owner) == ("DB-01", "DBA")
    # Infrastructure data (newer) wins performance fields.
    assert (web.cpu_cores, web.memory_gb, db.cpu_cores) == (2, 8.0, 8)
    assert web.vm_uuid == str(uuid.uuid5(uuid.NAMESPACE_DNS, "web-01"))
    # Sensitivity lands on the database server.
    assert db.data_classification == "restricted" and "PCI-DSS" in db.compliance_scopes
    assert web.data_classification is None
    # Dependency data merges onto the same assets, and both form one move group.
    async with engine.connect() as conn:
        edges = (
            await conn.execute(
                text(
                    "SELECT source_asset_id, target_asset_id, port FROM asset_dependencies "
                    "WHERE client_account_id = :c AND engagement_id = :e"
                ),
                service.tenant.params(),
            )
        ).all()
    assert [(e.source_asset_id, e.target_asset_id, e.port) for e in edges] == [
        (web.id, db.id, 1433)
    ]
    assert web.dependency_group is not None and web.dependency_group == db.dependency_group
