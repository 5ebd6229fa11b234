"""Fixtures the end-to-end tests share: the environment and the tenant the CLI runs with."""

from __future__ import annotations

import os

import pytest

from dataimport.imports import Tenant
from dataimport.settings import Settings
from tests.factories import TENANT_ENV, WEB_UI, Cli


@pytest.fixture(scope="session")
def cli_env(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in TENANT_ENV}
    assert settings.database_url and settings.temporal_address
    env.update(
        DATABASE_URL=settings.database_url,
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_WEB_UI_URL=WEB_UI,
        DATAIMPORT_TASK_QUEUE=settings.task_queue,
        DATAIMPORT_STORAGE_DIR=str(settings.uploads_dir),
        DATAIMPORT_HOME=str(settings.home_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def cli(cli_env: dict[str, str], tenant: Tenant) -> Cli:
    return Cli(cli_env, tenant)
