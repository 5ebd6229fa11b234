"""A fifth category is one package plus one registry line: nothing else changes.

`tests/fifth_category` is a complete category (aliases, columnar rules, enrichment). Here its
registry line is added, the migrations re-run (the database's category CHECK follows the
registry), and a file is imported through the real workflow and worker.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import categories
from dataimport.category_check import CONSTRAINT
from dataimport.migrate import upgrade
from service.imports import ImportService
from tests.factories import TERMINAL_OR_WAITING, wait_for
from tests.fifth_category import CATEGORY

pytestmark = pytest.mark.usefixtures("worker")

INSERT = (
    "INSERT INTO data_imports (id, client_account_id, engagement_id, import_category, "
    "filename, file_uri, workflow_id) VALUES (gen_random_uuid(), gen_random_uuid(), "
    "gen_random_uuid(), $1, 'f', 'file:///f', 'w')"
)


def _insert_import(database_url: str, category: str) -> None:
    async def insert() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute(INSERT, category)
                raise _Rollback
        except _Rollback:
            pass
        finally:
            await conn.close()

    asyncio.run(insert())


class _Rollback(Exception):
    pass


@pytest.fixture
def registered(database_url: str) -> Iterator[None]:
    """The one registry line, then the migrations as any deployment runs them."""
    categories.REGISTRY[CATEGORY.name] = CATEGORY
    upgrade(database_url)
    yield
    del categories.REGISTRY[CATEGORY.name]
    upgrade(database_url)


def test_the_category_check_follows_the_registry(database_url: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        _insert_import(database_url, CATEGORY.name)  # not registered: refused by the database
    categories.REGISTRY[CATEGORY.name] = CATEGORY
    try:
        upgrade(database_url)
        _insert_import(database_url, CATEGORY.name)  # registered: admitted
    finally:
        del categories.REGISTRY[CATEGORY.name]
        upgrade(database_url)
    with pytest.raises(asyncpg.CheckViolationError):
        _insert_import(database_url, CATEGORY.name)


async def test_constraint_names_exactly_the_registered_categories(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        definition = await conn.scalar(
            text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :n"),
            {"n": CONSTRAINT},
        )
    for name in categories.REGISTRY:
        assert f"'{name}'" in definition
    assert definition.count("'") == 2 * len(categories.REGISTRY)


HEADERS = [
    "Name",
    "Instance ID",
    "Instance type",
    "Instance state",
    "Private IP address",
    "Platform",
    "Availability Zone",
    "tag:Environment",
]


@pytest.mark.usefixtures("registered")
async def test_a_fifth_category_imports_through_the_real_worker(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "instances.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        writer.writerow(
            [
                "web-1",
                "i-0abc12345678def01",
                "m5.large",
                "running",
                "10.0.0.5",
                "Linux/UNIX",
                "eu-central-1a",
                "prod",
            ]
        )
        writer.writerow(
            [
                "",
                "i-0abc12345678def02",
                "r5.4xlarge",
                "stopped",
                "10.0.0.999",
                "Windows",
                "eu-central-1b",
                "dev",
            ]
        )
        writer.writerow(
            [
                "db-1",
                "not-an-id",
                "m5.xlarge",
                "running",
                "10.0.0.7",
                "Linux/UNIX",
                "eu-central-1a",
                "prod",
            ]
        )
        writer.writerow(
            [
                "batch-1",
                "i-0abc12345678def04",
                "x9.huge",
                "running",
                "",
                "Linux/UNIX",
                "eu-central-1c",
                "somewhere",
            ]
        )

    started = await service.start_import(path, CATEGORY.name)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)

    assert status.status == "completed_with_errors"
    assert (status.valid_rows, status.invalid_rows, status.assets_created) == (3, 1, 3)
    async with engine.connect() as conn:
        assets = (
            await conn.execute(
                text(
                    "SELECT name, external_id, asset_type, ip_address, cpu_cores, memory_gb, "
                    "environment, custom_attributes FROM assets WHERE source_import_id = :id "
                    "ORDER BY name"
                ),
                {"id": started.data_import_id},
            )
        ).all()
        codes = (
            await conn.execute(
                text(
                    "SELECT row_number, e ->> 'code', e ->> 'severity' FROM raw_import_records, "
                    "jsonb_array_elements(validation_errors) e WHERE data_import_id = :id "
                    "ORDER BY row_number, 2"
                ),
                {"id": started.data_import_id},
            )
        ).all()
    by_name = {row.name: row for row in assets}
    assert set(by_name) == {"web-1", "i-0abc12345678def02", "batch-1"}
    web = by_name["web-1"]
    assert (web.asset_type, web.ip_address, web.cpu_cores, web.memory_gb) == (
        "virtual_machine",
        "10.0.0.5",
        2,
        8.0,
    )
    assert (web.environment, web.custom_attributes) == ("production", {"instance_type": "m5.large"})
    # A bad address is a warning: the asset is kept, its address left empty.
    assert by_name["i-0abc12345678def02"].ip_address is None
    assert by_name["batch-1"].cpu_cores is None
    assert [tuple(row) for row in codes] == [
        (2, "constraint-error", "warning"),
        (3, "constraint-error", "error"),
        (4, "unknown-value", "warning"),
        (4, "unknown-value", "warning"),
    ]
