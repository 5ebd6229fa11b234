"""The Alembic revision upgrades and downgrades cleanly on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from dataimport.migrate import downgrade, upgrade
from dataimport.models import Base
from devstack import embedded

TABLES = {
    "dependency_observations",
    "data_imports",
    "raw_import_records",
    "master_flows",
    "discovery_flows",
    "import_processing_steps",
    "assets",
    "asset_dependencies",
    "dependency_group_members",
    "api_keys",
}


@pytest.fixture(scope="module")
def scratch_url(stack_dir: Path, database_url: str) -> Iterator[str]:
    """A database of its own, so downgrading does not disturb the other tests."""
    port = int(database_url.rsplit(":", 1)[1].split("/")[0])
    info = embedded.start_postgres(stack_dir, database="migrations_test", port=port)
    yield info.owner_database_url  # migrations run as the owner


def _tables(url: str) -> set[str]:
    async def fetch() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
            return {row[0] for row in rows}
        finally:
            await conn.close()

    return asyncio.run(fetch())


def _not_null_tenant_columns(url: str) -> set[str]:
    async def fetch() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND column_name IN ('client_account_id', 'engagement_id') AND is_nullable = 'NO'"
            )
            return {row[0] for row in rows}
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_upgrade_creates_every_table_and_downgrade_removes_them(scratch_url: str) -> None:
    upgrade(scratch_url)
    assert _tables(scratch_url) == TABLES == set(Base.metadata.tables)
    assert _not_null_tenant_columns(scratch_url) == TABLES
    downgrade(scratch_url, "base")
    assert _tables(scratch_url) == set()
    upgrade(scratch_url)
    assert _tables(scratch_url) == TABLES


def test_category_check_constraint_rejects_unknown_categories(scratch_url: str) -> None:
    upgrade(scratch_url)

    async def insert_bad() -> None:
        conn = await asyncpg.connect(scratch_url)
        try:
            await conn.execute(
                "INSERT INTO data_imports (id, client_account_id, engagement_id, import_category, "
                "filename, file_uri, workflow_id) VALUES (gen_random_uuid(), gen_random_uuid(), "
                "gen_random_uuid(), 'spreadsheet_of_doom', 'f', 'file:///f', 'w')"
            )
        finally:
            await conn.close()

    with pytest.raises(asyncpg.CheckViolationError):
        asyncio.run(insert_bad())


def test_models_and_revisions_describe_the_same_schema(scratch_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from dataimport.db import create_engine

    upgrade(scratch_url)

    async def diff() -> list[object]:
        engine = create_engine(scratch_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []


def test_dependency_groups_move_to_their_table_and_back(scratch_url: str) -> None:
    """0005 carries every asset's group into dependency_group_members; its downgrade puts them
    back on the assets."""
    downgrade(scratch_url, "0004_inventory_import_indexes")
    asset, c, e = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def run(sql: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(scratch_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    asyncio.run(
        run(
            "INSERT INTO assets (id, client_account_id, engagement_id, name, name_key, "
            "dependency_group) VALUES ($1, $2, $3, 'a', 'a', $4)",
            asset,
            c,
            e,
            f"G-{asset}",
        )
    )
    upgrade(scratch_url)
    moved = asyncio.run(
        run("SELECT asset_id, group_root, client_account_id FROM dependency_group_members")
    )
    assert [tuple(row) for row in moved] == [(asset, asset, c)]
    downgrade(scratch_url, "0004_inventory_import_indexes")
    back = asyncio.run(run("SELECT dependency_group FROM assets WHERE id = $1", asset))
    assert [row[0] for row in back] == [f"G-{asset}"]
    asyncio.run(run("DELETE FROM assets WHERE id = $1", asset))
    upgrade(scratch_url)
