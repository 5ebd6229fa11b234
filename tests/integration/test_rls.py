"""Row-level security, the second wall: the database itself keeps tenants apart.

In plain SQL as the service role (what the worker, the API and the CLI connect as): with
another tenant set, every tenant table reads 0 rows and every UPDATE / DELETE touches nothing,
every INSERT for the victim fails; with no tenant set nothing is read; with the right tenant
everything works. Then the same through the application's engine: tenant-bound engines,
the activity/request context, raw asyncpg work outside a transaction, the retention job
across tenants, ANALYZE.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import imports, retention
from dataimport.db import create_engine, driver_connection, for_tenant
from dataimport.imports import Tenant
from dataimport.retention import ListPurgeableInput, PurgeInput
from dataimport.tenant_context import acting_for

TENANT_TABLES = (
    "data_imports",
    "raw_import_records",
    "master_flows",
    "discovery_flows",
    "import_processing_steps",
    "assets",
    "asset_dependencies",
    "dependency_observations",
    "dependency_group_members",
    "staged_row_assets",
)
SERVICE_ROLE = "dataimport_app"
RLS_ERROR = asyncpg.InsufficientPrivilegeError  # "new row violates row-level security policy"

# One row (two assets) per tenant table, each statement as the service role with the
# tenant set: inserting works for the right tenant.
SEED = [
    (
        "data_imports",
        "INSERT INTO data_imports (id, client_account_id, engagement_id, import_category, "
        "filename, file_uri, workflow_id, status, completed_at) VALUES ($3, $1, $2, "
        "'cmdb_export', 'rls.csv', 'file:///rls.csv', 'wf-rls', 'completed', "
        "now() - interval '400 days')",
    ),
    (
        "master_flows",
        "INSERT INTO master_flows (flow_id, client_account_id, engagement_id, flow_name, "
        "flow_status) VALUES ($4, $1, $2, 'rls', 'validating')",
    ),
    (
        "discovery_flows",
        "INSERT INTO discovery_flows (id, master_flow_id, data_import_id, client_account_id, "
        "engagement_id, current_phase, status) VALUES ($5, $4, $3, $1, $2, 'validation', "
        "'validating')",
    ),
    (
        "import_processing_steps",
        "INSERT INTO import_processing_steps (data_import_id, client_account_id, engagement_id, "
        "step_key, step_name, agent, status, started_at) VALUES ($3, $1, $2, 'k', 'step', "
        "'agent', 'running', now())",
    ),
    (
        "raw_import_records",
        "INSERT INTO raw_import_records (data_import_id, client_account_id, engagement_id, "
        'row_number, raw_data) VALUES ($3, $1, $2, 1, \'{"name": "SRV-1"}\')',
    ),
    (
        "assets",
        "INSERT INTO assets (id, client_account_id, engagement_id, name, name_key) "
        "VALUES ($6, $1, $2, 'SRV-1', 'srv-1'), ($7, $1, $2, 'SRV-2', 'srv-2')",
    ),
    (
        "asset_dependencies",
        "INSERT INTO asset_dependencies (id, client_account_id, engagement_id, source_asset_id, "
        "target_asset_id) VALUES ($8, $1, $2, $6, $7)",
    ),
    (
        "dependency_observations",
        "INSERT INTO dependency_observations (dependency_id, client_account_id, engagement_id, "
        "observation_key) VALUES ($8, $1, $2, 'obs')",
    ),
    (
        "dependency_group_members",
        "INSERT INTO dependency_group_members (asset_id, client_account_id, engagement_id, "
        "group_root) VALUES ($6, $1, $2, $6), ($7, $1, $2, $6)",
    ),
    (
        "staged_row_assets",
        "INSERT INTO staged_row_assets (data_import_id, row_number, asset_id, client_account_id, "
        "engagement_id) VALUES ($3, 1, $6, $1, $2)",
    ),
]
SEEDED_ROWS = {"assets": 2, "dependency_group_members": 2}


def rows_of(table: str) -> int:
    return SEEDED_ROWS.get(table, 1)


async def set_tenant(conn: asyncpg.Connection[Any], c: object, e: object) -> None:
    """What dataimport.db does at the start of every transaction."""
    await conn.fetchrow(
        "SELECT set_config('app.client_account_id', $1, true), "
        "set_config('app.engagement_id', $2, true)",
        str(c),
        str(e),
    )


def bind(sql: str, values: list[object]) -> tuple[str, ...] | Any:
    """$1..$8 name the same values in every SEED statement; asyncpg wants $1..$k, all used."""
    used = sorted({int(n) for n in re.findall(r"\$(\d+)", sql)})
    renumbered = re.sub(r"\$(\d+)", lambda m: f"${used.index(int(m.group(1))) + 1}", sql)
    return (renumbered, *[values[n - 1] for n in used])


def affected(status: str) -> int:
    return int(status.split()[-1])


class Seeded:
    def __init__(self) -> None:
        self.tenant = Tenant(uuid.uuid4(), uuid.uuid4())
        self.data_import_id = uuid.uuid4()
        self.ids = [self.data_import_id, *(uuid.uuid4() for _ in range(5))]

    def args(self) -> list[object]:
        return [self.tenant.client_account_id, self.tenant.engagement_id, *self.ids]


@pytest.fixture(scope="module")
async def seeded(service_database_url: str) -> Seeded:
    """A tenant with a row in every tenant table, written by the service role."""
    seeded = Seeded()
    conn = await asyncpg.connect(service_database_url)
    try:
        async with conn.transaction():
            await set_tenant(conn, *seeded.args()[:2])
            for _table, sql in SEED:
                await conn.execute(*bind(sql, seeded.args()))
    finally:
        await conn.close()
    return seeded


@pytest.fixture
async def as_service(service_database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(service_database_url)
    try:
        yield conn
    finally:
        await conn.close()


# ----- the catalog ------------------------------------------------------------------------


async def test_every_tenant_table_forces_a_policy_for_reads_and_writes(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tables = {
            row[0]
            for row in await conn.fetch(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = "
                "'public' AND column_name = 'client_account_id'"
            )
        }
        # A new tenant table needs its policy too. api_keys holds credentials (hashes), read
        # before any tenant is known: outside the policy, on purpose (docs/security.md).
        assert tables == {*TENANT_TABLES, "api_keys"}
        tables -= {"api_keys"}
        rows = await conn.fetch(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, p.polcmd::text AS polcmd, "
            "p.polqual IS NOT NULL AS has_using, p.polwithcheck IS NOT NULL AS has_check "
            "FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid "
            "WHERE p.polname = 'tenant_isolation'"
        )
        by_table = {row["relname"]: row for row in rows}
        assert set(by_table) == tables
        for table, row in by_table.items():
            assert row["relrowsecurity"] and row["relforcerowsecurity"], table
            assert row["polcmd"] == "*" and row["has_using"] and row["has_check"], table
    finally:
        await conn.close()


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_the_policy_reads_the_tenant_once_per_statement(
    table: str, seeded: Seeded, as_service: asyncpg.Connection[Any]
) -> None:
    """Migration 0013: the settings are InitPlans, so the per-row filter compares uuids only
    (read per row, they cost ~0.5 µs on every row a statement reads or writes)."""
    async with as_service.transaction():
        await set_tenant(as_service, *seeded.args()[:2])
        rows = await as_service.fetch(f"EXPLAIN (VERBOSE) SELECT count(*) FROM {table}")
    lines = [row[0] for row in rows]
    filters = [line for line in lines if "Filter:" in line or "Cond:" in line]
    assert filters and all("current_setting" not in line for line in filters), lines
    assert sum(line.strip().startswith("InitPlan") for line in lines) == 2, lines


async def test_the_service_role_owns_nothing_and_bypasses_nothing(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = $1",
            SERVICE_ROLE,
        )
        assert role is not None and not any(role.values())
        owned = await conn.fetchval(
            # Its sessions' temporary tables (ingest batches, range staging) are its own.
            "SELECT count(*) FROM pg_class WHERE relowner = $1::regrole AND relpersistence <> 't'",
            SERVICE_ROLE,
        )
        assert owned == 0
        for table in TENANT_TABLES:  # ANALYZE (analyze_inventory) without owning the table
            assert await conn.fetchval(
                "SELECT has_table_privilege($1, $2, 'MAINTAIN')", SERVICE_ROLE, table
            ), table
    finally:
        await conn.close()


# ----- plain SQL, one table at a time -------------------------------------------------------


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_another_tenant_reads_nothing_and_writes_nothing(
    table: str, seeded: Seeded, as_service: asyncpg.Connection[Any]
) -> None:
    victim = seeded.tenant
    async with as_service.transaction():
        await set_tenant(as_service, uuid.uuid4(), uuid.uuid4())
        assert await as_service.fetchval(f"SELECT count(*) FROM {table}") == 0
        # Naming the victim's tenant in the query changes nothing.
        assert (
            await as_service.fetchval(
                f"SELECT count(*) FROM {table} WHERE client_account_id = $1 AND engagement_id = $2",
                victim.client_account_id,
                victim.engagement_id,
            )
            == 0
        )
        assert (
            affected(await as_service.execute(f"UPDATE {table} SET engagement_id = engagement_id"))
            == 0
        )
        assert affected(await as_service.execute(f"DELETE FROM {table}")) == 0
    # Writing a row for the victim (here: the victim's own row, copied) is refused.
    async with as_service.transaction():
        await set_tenant(as_service, victim.client_account_id, victim.engagement_id)
        copy = await as_service.fetchrow(f"SELECT * FROM {table} LIMIT 1")
    assert copy is not None
    # A Record iterates values; data_imports.seq is numbered by the database (GENERATED ALWAYS).
    columns = [name for name, _ in copy.items() if name not in ("id", "seq")]
    placeholders = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    with pytest.raises(RLS_ERROR, match="row-level security"):
        async with as_service.transaction():
            await set_tenant(as_service, uuid.uuid4(), uuid.uuid4())
            await as_service.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
                *[copy[name] for name in columns],
            )


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_without_a_tenant_nothing_is_read(
    table: str, seeded: Seeded, as_service: asyncpg.Connection[Any]
) -> None:
    assert await as_service.fetchval(f"SELECT count(*) FROM {table}") == 0  # never set
    async with as_service.transaction():  # set, but empty: no cast error, still nothing
        await set_tenant(as_service, "", "")
        assert await as_service.fetchval(f"SELECT count(*) FROM {table}") == 0
        assert affected(await as_service.execute(f"DELETE FROM {table}")) == 0


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_the_right_tenant_reads_and_writes_its_rows_only(
    table: str, seeded: Seeded, as_service: asyncpg.Connection[Any]
) -> None:
    tenant = seeded.tenant
    tx = as_service.transaction()
    await tx.start()
    try:
        await set_tenant(as_service, tenant.client_account_id, tenant.engagement_id)
        assert await as_service.fetchval(f"SELECT count(*) FROM {table}") == rows_of(table)
        updated = await as_service.execute(f"UPDATE {table} SET engagement_id = engagement_id")
        assert affected(updated) == rows_of(table)
        # A row cannot be moved to another tenant (WITH CHECK).
        with pytest.raises(RLS_ERROR, match="row-level security"):
            async with as_service.transaction():  # a savepoint
                await as_service.execute(f"UPDATE {table} SET engagement_id = $1", uuid.uuid4())
        deleted = await as_service.execute(f"DELETE FROM {table}")
        assert affected(deleted) == rows_of(table)
    finally:
        await tx.rollback()  # the seeded rows stay for the other tests


# ----- through the application's engine -----------------------------------------------------


@pytest.fixture(scope="module")
async def one_connection_engine(service_database_url: str) -> AsyncIterator[AsyncEngine]:
    """The service role's engine with a single pooled connection, so reuse is observable."""
    engine = create_engine(service_database_url, pool_size=1)
    yield engine
    await engine.dispose()


async def test_the_application_without_a_tenant_reads_nothing(
    seeded: Seeded, one_connection_engine: AsyncEngine
) -> None:
    engine = one_connection_engine
    assert await imports.get_import(engine, seeded.tenant, seeded.data_import_id) is None
    found = await imports.get_import(
        for_tenant(engine, seeded.tenant), seeded.tenant, seeded.data_import_id
    )
    assert found is not None and found.filename == "rls.csv"
    with acting_for(seeded.tenant):
        assert await imports.get_import(engine, seeded.tenant, seeded.data_import_id)
    assert await imports.get_import(engine, seeded.tenant, seeded.data_import_id) is None


async def test_each_transaction_takes_the_tenant_it_runs_for(
    seeded: Seeded, one_connection_engine: AsyncEngine
) -> None:
    """One pooled connection serving two tenants in turn: settings never carry over."""
    engine = one_connection_engine
    count = text("SELECT count(*) FROM assets")
    with acting_for(seeded.tenant):
        async with engine.connect() as conn:  # autobegin: scoped as well
            assert await conn.scalar(count) == 2
    with acting_for(Tenant(uuid.uuid4(), uuid.uuid4())):
        async with engine.begin() as conn:
            assert await conn.scalar(count) == 0
    async with engine.connect() as conn:
        assert await conn.scalar(count) == 0


async def test_raw_driver_work_outside_a_transaction_is_scoped_and_then_forgotten(
    seeded: Seeded, one_connection_engine: AsyncEngine
) -> None:
    engine = one_connection_engine
    with acting_for(seeded.tenant):
        async with engine.connect() as conn:
            driver = await driver_connection(conn)
            assert not conn.in_transaction()
            assert await driver.fetchval("SELECT count(*) FROM assets") == 2
            async with driver.transaction():
                assert await driver.fetchval("SELECT count(*) FROM assets") == 2
    async with engine.connect() as conn:  # the same connection again, for nobody
        driver = await driver_connection(conn)
        assert await driver.fetchval("SELECT count(*) FROM assets") == 0
        assert await conn.scalar(text("SELECT current_setting('app.client_account_id', true)")) in (
            None,
            "",
        )


async def test_retention_lists_every_tenant_and_purges_each_as_its_own(
    seeded: Seeded, app_engine: AsyncEngine
) -> None:
    """The service role sees no tenant but its own, yet the retention job spans all: the
    owner's purgeable_imports() lists ids, then each purge runs with its import's tenant."""
    cutoff = datetime.now(UTC) - timedelta(days=30)
    due: list[retention.PurgeCandidate] = []
    page = ListPurgeableInput(cutoff=cutoff, limit=500)
    while True:
        found = await retention.list_purgeable(app_engine, page)
        due += found.items
        if len(found.items) < page.limit:
            break
        last = found.items[-1]
        page = page.model_copy(
            update={"after_completed_at": last.completed_at, "after_id": last.data_import_id}
        )
    [candidate] = [c for c in due if c.data_import_id == seeded.data_import_id]
    assert candidate.client_account_id == seeded.tenant.client_account_id
    result = await retention.purge_import(
        app_engine, PurgeInput(candidate=candidate, cutoff=cutoff)
    )
    assert result.purged and result.rows_deleted == 1
    with acting_for(seeded.tenant):
        async with app_engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM raw_import_records")) == 0
            # The rest of the tenant's data stays.
            assert await conn.scalar(text("SELECT count(*) FROM assets")) == 2


async def test_analyze_as_the_service_role_updates_statistics(
    seeded: Seeded, app_engine: AsyncEngine, engine: AsyncEngine
) -> None:
    with acting_for(seeded.tenant):
        async with app_engine.begin() as conn:
            await conn.execute(text("ANALYZE dependency_group_members"))
    async with engine.connect() as conn:
        analysed = await conn.scalar(
            text(
                "SELECT last_analyze FROM pg_stat_user_tables "
                "WHERE relname = 'dependency_group_members'"
            )
        )
    assert analysed is not None and analysed > datetime.now(UTC) - timedelta(minutes=5)


def test_a_non_superuser_owner_migrates_and_creates_a_scoped_service_login(
    postgres: Any,
) -> None:
    """The compose layout: an owner with CREATEROLE but no superuser and no BYPASSRLS runs the
    migrations and `ensure_service_login`; the login it creates is scoped, the owner is held
    by FORCE too, and the owner's purgeable_imports() still lists every tenant."""
    import asyncio

    from dataimport.migrate import ensure_service_login, upgrade
    from dataimport.scram import scram_verifier

    suffix = uuid.uuid4().hex[:8]
    owner, app, database = f"owner_{suffix}", f"app_{suffix}", f"rls_owner_{suffix}"
    port = postgres.port
    owner_url = f"postgresql://{owner}:owner-pw@127.0.0.1:{port}/{database}"
    app_url = f"postgresql://{app}:app-pw@127.0.0.1:{port}/{database}"
    tenant = Tenant(uuid.uuid4(), uuid.uuid4())

    async def as_superuser(*statements: str) -> None:
        conn = await asyncpg.connect(postgres.owner_database_url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def checks() -> None:
        conn = await asyncpg.connect(app_url)
        try:
            async with conn.transaction():
                await set_tenant(conn, tenant.client_account_id, tenant.engagement_id)
                await conn.execute(*bind(SEED[0][1], [*tenant.params().values(), uuid.uuid4()]))
            async with conn.transaction():
                await set_tenant(conn, uuid.uuid4(), uuid.uuid4())
                assert await conn.fetchval("SELECT count(*) FROM data_imports") == 0
            listed = await conn.fetch(
                "SELECT client_account_id FROM purgeable_imports(now(), NULL, NULL, 10)"
            )
            assert [row[0] for row in listed] == [tenant.client_account_id]
        finally:
            await conn.close()
        conn = await asyncpg.connect(owner_url)
        try:  # FORCE: the owner reads no tenant's assets without the settings
            assert await conn.fetchval("SELECT count(*) FROM data_imports") == 1  # listing
            assert await conn.fetchval("SELECT count(*) FROM raw_import_records") == 0
        finally:
            await conn.close()

    asyncio.run(
        as_superuser(
            f"CREATE ROLE {owner} LOGIN CREATEROLE PASSWORD '{scram_verifier('owner-pw')}'",
            f"CREATE DATABASE {database} OWNER {owner}",
            # In compose the owner creates the group itself; here it already exists.
            f"GRANT dataimport_service TO {owner} WITH ADMIN OPTION",
        )
    )
    try:
        upgrade(owner_url)
        assert asyncio.run(ensure_service_login(owner_url, app_url)) == app
        asyncio.run(checks())
    finally:
        asyncio.run(
            as_superuser(
                f"DROP DATABASE IF EXISTS {database} WITH (FORCE)",
                f"DROP ROLE IF EXISTS {app}",
                f"DROP ROLE IF EXISTS {owner}",
            )
        )
