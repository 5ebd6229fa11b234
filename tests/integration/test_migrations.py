"""The Alembic revision upgrades and downgrades cleanly on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from dataimport import field_sources
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
    "staged_row_assets",
    "api_keys",
}


@pytest.fixture(scope="module")
def scratch_url(stack_dir: Path, database_url: str) -> Iterator[str]:
    """A database of its own, so downgrading does not disturb the other tests."""
    port = int(database_url.rsplit(":", 1)[1].split("/")[0])
    info = embedded.start_postgres(stack_dir, database="migrations_test", port=port)
    yield info.owner_database_url  # migrations run as the owner


def fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """One statement on a connection of its own."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


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
    upgrade(scratch_url)  # from head, whichever test ran before (or none)
    downgrade(scratch_url, "0004_inventory_import_indexes")
    asset, c, e = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    fetch(
        scratch_url,
        "INSERT INTO assets (id, client_account_id, engagement_id, name, name_key, "
        "dependency_group) VALUES ($1, $2, $3, 'a', 'a', $4)",
        asset,
        c,
        e,
        f"G-{asset}",
    )
    upgrade(scratch_url)
    moved = fetch(
        scratch_url, "SELECT asset_id, group_root, client_account_id FROM dependency_group_members"
    )
    assert [tuple(row) for row in moved] == [(asset, asset, c)]
    downgrade(scratch_url, "0004_inventory_import_indexes")
    back = fetch(scratch_url, "SELECT dependency_group FROM assets WHERE id = $1", asset)
    assert [row[0] for row in back] == [f"G-{asset}"]
    fetch(scratch_url, "DELETE FROM assets WHERE id = $1", asset)
    upgrade(scratch_url)


def test_approval_statuses_and_plan_come_and_go_with_0009(scratch_url: str) -> None:
    """0009 admits awaiting_approval and rejected (rejected imports are purgeable), with the
    plan column; its downgrade maps them to needs_attention and failed and drops the plan."""
    upgrade(scratch_url)
    waiting, rejected = uuid.uuid4(), uuid.uuid4()

    insert = (
        "INSERT INTO data_imports (id, client_account_id, engagement_id, import_category, "
        "filename, file_uri, workflow_id, status, approval_plan, completed_at) VALUES ($1, "
        "gen_random_uuid(), gen_random_uuid(), 'cmdb_export', 'f', 'file:///f', 'w', $2, "
        "'{\"assets_to_create\": {\"count\": 1}}', now() - interval '40 days')"
    )
    fetch(scratch_url, insert, waiting, "awaiting_approval")
    fetch(scratch_url, insert, rejected, "rejected")
    due = fetch(scratch_url, "SELECT id FROM purgeable_imports(now(), NULL, NULL, 500)")
    assert rejected in {row[0] for row in due} and waiting not in {row[0] for row in due}

    downgrade(scratch_url, "0008_unique_request_id")
    statuses = fetch(
        scratch_url, "SELECT id, status FROM data_imports WHERE id = ANY($1)", [waiting, rejected]
    )
    assert dict((row[0], row[1]) for row in statuses) == {
        waiting: "needs_attention",
        rejected: "failed",
    }
    columns = fetch(
        scratch_url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'data_imports' AND column_name = 'approval_plan'",
    )
    assert columns == []
    with pytest.raises(asyncpg.CheckViolationError):
        fetch(
            scratch_url,
            "UPDATE data_imports SET status = 'rejected' WHERE id = $1",
            waiting,
        )
    fetch(scratch_url, "DELETE FROM data_imports WHERE id = ANY($1)", [waiting, rejected])
    upgrade(scratch_url)


def test_row_asset_links_move_to_their_own_table_with_0010_and_back(scratch_url: str) -> None:
    """0010 moves each processed staged row's asset link from raw_import_records' columns into
    staged_row_assets (an unprocessed row gets none); its downgrade moves them back."""
    upgrade(scratch_url)
    downgrade(scratch_url, "0009_approval_gate")
    imported, asset = uuid.uuid4(), uuid.uuid4()

    fetch(
        scratch_url,
        "INSERT INTO data_imports (id, client_account_id, engagement_id, import_category, "
        "filename, file_uri, workflow_id, status) VALUES ($1, gen_random_uuid(), "
        "gen_random_uuid(), 'cmdb_export', 'f', 'file:///f', 'w', 'completed')",
        imported,
    )
    fetch(
        scratch_url,
        "INSERT INTO raw_import_records (data_import_id, client_account_id, engagement_id, "
        "row_number, raw_data, is_processed, asset_id) SELECT d.id, d.client_account_id, "
        "d.engagement_id, g, '{}', g < 3, CASE WHEN g = 1 THEN $2::uuid END "
        "FROM data_imports d, generate_series(1, 3) g WHERE d.id = $1",
        imported,
        asset,
    )
    upgrade(scratch_url)
    links = fetch(
        scratch_url,
        "SELECT row_number, asset_id FROM staged_row_assets WHERE data_import_id = $1 "
        "ORDER BY row_number",
        imported,
    )
    assert [tuple(row) for row in links] == [(1, asset), (2, None)]
    columns = fetch(
        scratch_url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'raw_import_records' "
        "AND column_name IN ('asset_id', 'is_processed')",
    )
    assert columns == []

    downgrade(scratch_url, "0009_approval_gate")
    back = fetch(
        scratch_url,
        "SELECT row_number, is_processed, asset_id FROM raw_import_records "
        "WHERE data_import_id = $1 ORDER BY row_number",
        imported,
    )
    assert [tuple(row) for row in back] == [(1, True, asset), (2, True, None), (3, False, None)]
    fetch(scratch_url, "DELETE FROM data_imports WHERE id = $1", imported)
    upgrade(scratch_url)


def test_imports_are_numbered_and_assets_get_field_sources_with_0011(scratch_url: str) -> None:
    """0011 numbers existing imports in creation order (new ones number on) and gives each
    existing asset's non-null fields the seq of the import that last touched it; its
    downgrade drops both columns."""
    upgrade(scratch_url)
    downgrade(scratch_url, "0010_staged_row_assets")
    older, newer, asset, orphan = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    c, e = uuid.uuid4(), uuid.uuid4()
    insert_import = (
        "INSERT INTO data_imports (id, client_account_id, engagement_id, import_category, "
        "filename, file_uri, workflow_id, created_at) VALUES ($1, $2, $3, 'cmdb_export', 'f', "
        "'file:///f', 'w', now() - $4 * interval '1 hour')"
    )
    fetch(scratch_url, insert_import, newer, c, e, 1)
    fetch(scratch_url, insert_import, older, c, e, 2)
    insert_asset = (
        "INSERT INTO assets (id, client_account_id, engagement_id, name, name_key, hostname, "
        "cpu_cores, custom_attributes, source_import_id) VALUES ($1, $2, $3, $4, $4, $5, $6, "
        "$7, $8)"
    )
    fetch(scratch_url, insert_asset, asset, c, e, "a", "a.example", 4, '{"u_rack": "R1"}', newer)
    fetch(scratch_url, insert_asset, orphan, c, e, "b", None, None, "{}", uuid.uuid4())
    upgrade(scratch_url, "0011_field_sources")  # 0012 changes the layout (tested below)

    seqs = dict(
        (row[0], row[1])
        for row in fetch(
            scratch_url, "SELECT id, seq FROM data_imports WHERE id = ANY($1)", [older, newer]
        )
    )
    assert seqs[older] < seqs[newer]
    sources = dict(
        (row[0], json.loads(row[1]))
        for row in fetch(
            scratch_url, "SELECT id, field_sources FROM assets WHERE id = ANY($1)", [asset, orphan]
        )
    )
    last = seqs[newer]
    assert sources[asset] == {
        "name": last,
        "asset_type": last,  # NOT NULL with a default: set
        "hostname": last,
        "cpu_cores": last,
        "custom_attributes": last,
    }
    assert sources[orphan] == {}  # its import is gone: nothing known
    third = uuid.uuid4()
    fetch(scratch_url, insert_import, third, c, e, 0)
    numbered = fetch(scratch_url, "SELECT seq FROM data_imports WHERE id = $1", third)
    assert numbered[0][0] > last  # new imports number on from the backfill
    with pytest.raises(asyncpg.GeneratedAlwaysError):
        fetch(scratch_url, "UPDATE data_imports SET seq = 1 WHERE id = $1", third)

    downgrade(scratch_url, "0010_staged_row_assets")
    columns = fetch(
        scratch_url,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE (table_name, column_name) IN (('data_imports', 'seq'), ('assets', 'field_sources'))",
    )
    assert columns == []
    fetch(scratch_url, "DELETE FROM assets WHERE id = ANY($1)", [asset, orphan])
    fetch(scratch_url, "DELETE FROM data_imports WHERE id = ANY($1)", [older, newer, third])
    upgrade(scratch_url)


def test_field_sources_become_a_positional_array_with_0012_and_back(scratch_url: str) -> None:
    """0012 turns each asset's `{column: seq}` object into the slots of FIELD_ORDER (read back
    as the same object), and its downgrade restores the object."""
    upgrade(scratch_url)
    downgrade(scratch_url, "0011_field_sources")
    c, e, full, empty = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    recorded = {"name": 7, "cpu_cores": 3, "custom_attributes": 12, "data_stores": 2**31 - 1}
    insert_asset = (
        "INSERT INTO assets (id, client_account_id, engagement_id, name, name_key, "
        "field_sources) VALUES ($1, $2, $3, $4, $4, $5)"
    )
    fetch(scratch_url, insert_asset, full, c, e, "a", json.dumps(recorded))
    fetch(scratch_url, insert_asset, empty, c, e, "b", "{}")
    upgrade(scratch_url)

    rows = fetch(
        scratch_url,
        "SELECT id, field_sources FROM assets WHERE id = ANY($1)",
        [full, empty],
    )
    stored = {row["id"]: row["field_sources"] for row in rows}
    assert stored[full][field_sources.FIELD_ORDER.index("cpu_cores")] == 3
    assert len(stored[full]) == len(field_sources.FIELD_ORDER)
    assert {key: field_sources.decode(value) for key, value in stored.items()} == {
        full: recorded,
        empty: {},
    }
    default = fetch(
        scratch_url,
        "SELECT column_default FROM information_schema.columns "
        "WHERE table_name = 'assets' AND column_name = 'field_sources'",
    )
    assert default[0][0] == "'{}'::integer[]"

    downgrade(scratch_url, "0011_field_sources")
    back = fetch(
        scratch_url, "SELECT id, field_sources FROM assets WHERE id = ANY($1)", [full, empty]
    )
    assert {row[0]: json.loads(row[1]) for row in back} == {full: recorded, empty: {}}
    fetch(scratch_url, "DELETE FROM assets WHERE id = ANY($1)", [full, empty])
    upgrade(scratch_url)


def test_the_tenant_policy_reads_its_settings_once_per_statement_from_0013(
    scratch_url: str,
) -> None:
    """0013 rewrites every tenant policy with the settings in scalar subqueries, for reads
    and writes alike; its downgrade restores the per-row form of 0007 / 0010."""
    policies = (
        "SELECT c.relname, pg_get_expr(p.polqual, p.polrelid) AS qual, "
        "pg_get_expr(p.polwithcheck, p.polrelid) AS checks FROM pg_policy p "
        "JOIN pg_class c ON c.oid = p.polrelid WHERE p.polname = 'tenant_isolation'"
    )
    once = "( SELECT (NULLIF(current_setting('app.client_account_id'::text, true)"
    upgrade(scratch_url)
    rows = fetch(scratch_url, policies)
    assert {row["relname"] for row in rows} == TABLES - {"api_keys"}
    assert all(once in row["qual"] and once in row["checks"] for row in rows), rows

    downgrade(scratch_url, "0012_compact_field_sources")
    rows = fetch(scratch_url, policies)
    assert len(rows) == len(TABLES) - 1
    assert all("SELECT" not in row["qual"] + row["checks"] for row in rows), rows
    assert all("current_setting('app.engagement_id'" in row["qual"] for row in rows), rows
    upgrade(scratch_url)
    assert all(once in row["qual"] for row in fetch(scratch_url, policies))


async def test_a_revision_behind_a_held_lock_fails_instead_of_waiting(scratch_url: str) -> None:
    """A session holding a lock on a table a revision alters makes the upgrade fail with a
    lock timeout (migrations/env.py), never hang; once it lets go, the upgrade goes through."""
    await asyncio.to_thread(upgrade, scratch_url)
    await asyncio.to_thread(downgrade, scratch_url, "0011_field_sources")  # 0012 alters assets
    holder = await asyncpg.connect(scratch_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE assets IN ACCESS SHARE MODE")
        with pytest.raises(Exception, match="lock timeout"):
            await asyncio.to_thread(upgrade, scratch_url, "head", "500ms")
        await transaction.rollback()
    finally:
        await holder.close()
    await asyncio.to_thread(upgrade, scratch_url)
    version = await asyncio.to_thread(fetch, scratch_url, "SELECT version_num FROM alembic_version")
    assert version[0][0] != "0011_field_sources"
