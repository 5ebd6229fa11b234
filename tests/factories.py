"""Test data: CMDB CSV files and small waiting helpers (bounded loops, never timing asserts)."""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.contracts import ImportRef, ImportStatus
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

REALDATA = Path(__file__).resolve().parent / "data" / "realdata"
