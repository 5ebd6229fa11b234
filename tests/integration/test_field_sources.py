"""Per-field provenance per category: a second import of the same assets moves the sources of
exactly the fields it sets, a blank cell never takes one, and a retried range changes nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import enrichment
from dataimport.contracts import ImportRef, RowRange
from dataimport.db import for_tenant
from dataimport.field_sources import decode
from service.imports import ImportService
from tests.factories import (
    CMDB_HEADERS,
    CRM,
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

# What a CMDB row of tests.factories.cmdb_row sets (every mapped column has a value).
CMDB_FIELDS = {
    "name",
    "external_id",
    "asset_type",
    "hostname",
    "ip_address",
    "operating_system",
    "os_version",
    "os_end_of_support",
    "cpu_cores",
    "memory_gb",
    "storage_gb",
    "environment",
    "criticality",
    "owner",
    "business_unit",
    "location",
    "custom_attributes",
}


async def run(service: ImportService, path: Path, category: str) -> tuple[ImportRef, int]:
    """Import the file to completion; its reference and seq."""
    started = await service.start_import(path, category)
    done = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert done.status == "completed", done
    ref = ImportRef(
        data_import_id=started.data_import_id,
        client_account_id=service.tenant.client_account_id,
        engagement_id=service.tenant.engagement_id,
        category=category,
    )
    async with for_tenant(service.engine, service.tenant).connect() as conn:
        seq = await conn.scalar(
            text("SELECT seq FROM data_imports WHERE id = :i"), {"i": started.data_import_id}
        )
    assert isinstance(seq, int)
    return ref, seq


async def sources(service: ImportService) -> dict[str, dict[str, Any]]:
    """Asset name -> its field_sources, read as the service under the tenant."""
    async with for_tenant(service.engine, service.tenant).connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT name, field_sources FROM assets "
                "WHERE client_account_id = :c AND engagement_id = :e"
            ),
            service.tenant.params(),
        )
        return {row.name: decode(row.field_sources) for row in rows}


def blank(row: list[str], headers: list[str], *columns: str) -> list[str]:
    for column in columns:
        row[headers.index(column)] = ""
    return row


async def retried(service: ImportService, ref: ImportRef, last_row: int, link: bool) -> None:
    """The import's whole row range enriched (and linked) again, as a retried activity."""
    scoped = for_tenant(service.engine, service.tenant)
    await enrichment.enrich_chunk(scoped, ref, RowRange(first_row=1, last_row=last_row))
    if link:
        await enrichment.link_chunk(scoped, ref, RowRange(first_row=1, last_row=last_row))


async def test_cmdb_moves_only_the_fields_a_later_import_sets(
    service: ImportService, app_engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [cmdb_row(n) for n in (1, 2, 3)]
    _, first = await run(service, write_csv(tmp_path / "a.csv", CMDB_HEADERS, rows), "cmdb_export")
    before = await sources(service)
    assert before == {f"SRV-00000{n}": dict.fromkeys(CMDB_FIELDS, first) for n in (1, 2, 3)}

    # Second file: asset 1 by name (a new owner, blank location and sizes), asset 3 renamed
    # by its external id (a new owner, blank location); asset 2 is not in it.
    one = blank(cmdb_row(1), CMDB_HEADERS, "location", "cpu_count", "memory_gb", "storage_gb")
    one[CMDB_HEADERS.index("owner")] = "Platform Team"
    three = blank(cmdb_row(3, name="SRV-000003-NEW"), CMDB_HEADERS, "location")
    three[CMDB_HEADERS.index("owner")] = "Platform Team"
    path = write_csv(tmp_path / "b.csv", CMDB_HEADERS, [one, three])
    ref, second = await run(service, path, "cmdb_export")
    after = await sources(service)

    assert after["SRV-000002"] == before["SRV-000002"]
    untouched = {"location", "cpu_cores", "memory_gb", "storage_gb"}
    assert after["SRV-000001"] == {
        field: first if field in untouched else second for field in CMDB_FIELDS
    }
    assert after["SRV-000003-NEW"] == {
        field: first if field == "location" else second for field in CMDB_FIELDS
    }
    assert first < second

    await retried(service, ref, 2, link=True)
    assert await sources(service) == after


async def test_infrastructure_moves_only_the_fields_a_later_import_sets(
    service: ImportService, app_engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "a.csv", RVTOOLS_HEADERS, [rvtools_row("web-01")])
    _, first = await run(service, path, "infrastructure")
    before = (await sources(service))["web-01"]
    # Created by the import: its identity and every field the row brings.
    assert {"name", "vm_uuid", "ip_address", "asset_type"} <= set(before)
    assert {"cpu_cores", "memory_gb", "storage_gb", "operating_system", "cluster"} <= set(before)
    assert {"custom_attributes", "rightsizing", "performance_observed_at"} <= set(before)
    assert set(before.values()) == {first}
    assert "fqdn" not in before and "hostname" not in before  # the row has no DNS name

    # Newer figures: more cores, the memory cell blank; identity fields only fill blanks,
    # so a new DNS name fills the empty fqdn and host name while the OS (already known)
    # keeps its source.
    row = rvtools_row("web-01", cpus="8", memory_mib="", dns="web-01.corp.local")
    ref, second = await run(
        service, write_csv(tmp_path / "b.csv", RVTOOLS_HEADERS, [row]), "infrastructure"
    )
    after = (await sources(service))["web-01"]
    moved = {field for field, seq in after.items() if seq == second}
    assert {"cpu_cores", "fqdn", "hostname", "performance_observed_at", "rightsizing"} <= moved
    assert after["memory_gb"] == first  # blank cell: the first import's value and source stay
    for field in ("name", "vm_uuid", "ip_address", "operating_system", "os_version"):
        assert after[field] == first, field

    await retried(service, ref, 1, link=True)
    assert (await sources(service))["web-01"] == after


async def test_sensitive_data_moves_only_the_fields_a_later_import_sets(
    service: ImportService, app_engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "a.csv", STORE_HEADERS, [PAYMENTS])
    _, first = await run(service, path, "sensitive_data")
    before = (await sources(service))["db-01"]
    assert before == dict.fromkeys(
        [
            "name",
            "hostname",
            "asset_type",
            "data_classification",
            "compliance_scopes",
            "pii_categories",
            "encryption_at_rest",
            "encryption_in_transit",
            "data_stores",
        ],
        first,
    )

    # A less restrictive store with new scopes, its encryption cells blank: the restricted
    # classification (and its source) stays, encryption keeps its source, the lists and the
    # stores move.
    crm = blank([*CRM], STORE_HEADERS, "Encrypted at rest", "Encrypted in transit")
    ref, second = await run(
        service, write_csv(tmp_path / "b.csv", STORE_HEADERS, [crm]), "sensitive_data"
    )
    after = (await sources(service))["db-01"]
    assert after == {
        **before,
        "compliance_scopes": second,
        "pii_categories": second,
        "data_stores": second,
    }

    scoped = for_tenant(service.engine, service.tenant)
    await enrichment.prepare(scoped, ref)  # the merge of a prepared import, retried
    await retried(service, ref, 1, link=False)
    assert (await sources(service))["db-01"] == after


async def test_a_tenant_sees_only_its_own_sources(service: ImportService, tmp_path: Path) -> None:
    """The seq of another tenant's import is not readable through the service role."""
    path = write_csv(tmp_path / "a.csv", CMDB_HEADERS, [cmdb_row(1)])
    _, seq = await run(service, path, "cmdb_export")
    other = for_tenant(service.engine, type(service.tenant)(uuid.uuid4(), uuid.uuid4()))
    async with other.connect() as conn:
        seen = await conn.scalar(
            text("SELECT count(*) FROM data_imports WHERE seq = :s"), {"s": seq}
        )
    assert seen == 0


async def test_app_discovery_endpoints_name_the_import_that_set_each_field(
    service: ImportService, tmp_path: Path
) -> None:
    """A dependency export creates the endpoints it does not know (their identity from it) and
    fills only the host name / IP a known asset lacks: those fields, and no others, move."""
    known = blank(cmdb_row(1), CMDB_HEADERS, "IP Address")
    _, first = await run(
        service, write_csv(tmp_path / "a.csv", CMDB_HEADERS, [known]), "cmdb_export"
    )
    before = (await sources(service))["SRV-000001"]
    assert "ip_address" not in before and before["hostname"] == first

    headers = [
        "Source server name",
        "Source IP",
        "Destination server name",
        "Destination IP",
        "Port",
    ]
    rows = [["SRV-000001", "10.9.0.1", "new-db-01", "10.9.0.2", "5432"]]
    _, second = await run(service, write_csv(tmp_path / "deps.csv", headers, rows), "app_discovery")
    after = await sources(service)

    assert after["SRV-000001"] == {**before, "ip_address": second}  # filled where it was blank
    created = after["new-db-01"]
    assert created["name"] == created["ip_address"] == created["asset_type"] == second
    assert set(created.values()) == {second} and "location" not in created
