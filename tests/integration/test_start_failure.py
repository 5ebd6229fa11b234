"""An import whose workflow cannot be started leaves nothing behind (record, stored file)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from dataimport.imports import Tenant
from dataimport.settings import Settings
from service.imports import ImportService
from tests.factories import wait_for, write_cmdb


def unused_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # closed again: nobody listens there


async def tenant_imports(engine: AsyncEngine, tenant: Tenant) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM data_imports WHERE client_account_id = :c"),
            {"c": tenant.client_account_id},
        )
        return int(found.scalar_one())


@pytest.mark.usefixtures("worker")
async def test_unreachable_temporal_leaves_no_pending_import_and_the_request_can_start_again(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, tmp_path: Path
) -> None:
    # A folder of its own inside the worker's storage root (workers read nothing outside it).
    storage = settings.uploads_dir / f"start-failure-{tmp_path.name}"
    local = settings.model_copy(update={"storage_dir": storage})
    nowhere = await Client.connect(
        unused_address(), data_converter=pydantic_data_converter, lazy=True
    )
    path = write_cmdb(tmp_path / "c.csv", 3)

    with pytest.raises(RuntimeError, match="connect"):  # the SDK: Temporal cannot be reached
        await ImportService(local, engine, nowhere, tenant).start_import(
            path, "cmdb_export", request_id="nightly"
        )
    assert await tenant_imports(engine, tenant) == 0
    assert list(storage.iterdir()) == []

    # the same request id, Temporal back: a fresh start, not the dead pending record
    service = ImportService(local, engine, client, tenant)
    started = await service.start_import(path, "cmdb_export", request_id="nightly")
    done = await wait_for(service, started.data_import_id, ["completed"])
    assert (done.status, done.assets_created) == ("completed", 3)
    assert await tenant_imports(engine, tenant) == 1
