"""Plan, then apply, for real: the session worker, PostgreSQL, the CLI and the API.

The plan of a CMDB import into an inventory that already holds some of its assets counts
what the approved enrichment then does (creates, updates and dependencies all non-zero); a
rejected import leaves the inventory exactly as it was; the CLI and the API drive the same
decisions, with their exit codes, statuses and auth refusals.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport.api import create_app
from dataimport.auth import Scope, keys
from dataimport.contracts import ImportStatus
from dataimport.imports import Tenant
from dataimport.settings import Settings
from service.errors import DecisionRefused, InvalidRequest, NoPlan
from service.imports import ImportService
from tests.factories import CMDB_HEADERS, cmdb_row, wait_for, write_csv

pytestmark = pytest.mark.usefixtures("worker")

CLI = Path(sys.executable).parent / "dataimport"
IMPORTS = "/api/v1/imports"
ENV = CMDB_HEADERS.index("environment")
OWNER = CMDB_HEADERS.index("owner")
APPROVAL = {"require_approval": True}


def servers(path: Path, numbers: range, *, environment: str = "prod") -> Path:
    """CMDB servers `numbers`; each depends on the one before it."""
    rows = []
    for n in numbers:
        row = cmdb_row(n, deps=f"SRV-{n - 1:06d}" if n > 1 else "")
        row[ENV] = environment
        rows.append(row)
    return write_csv(path, CMDB_HEADERS, rows)


async def seeded(service: ImportService, tmp_path: Path) -> None:
    """The tenant's inventory before the import under test: servers 1-5, 4 dependencies."""
    first = await service.start_import(servers(tmp_path / "first.csv", range(1, 6)), "cmdb_export")
    done = await wait_for(service, first.data_import_id, ("completed",))
    assert (done.assets_created, done.dependencies_created) == (5, 4)


def second_file(tmp_path: Path) -> Path:
    """Servers 3-10, now in dev: 3-5 change, 6-10 are new, 5 new dependencies (6->5 ... 10->9)."""
    return servers(tmp_path / "second.csv", range(3, 11), environment="dev")


async def inventory(engine: AsyncEngine, tenant: Tenant) -> dict[str, Any]:
    """Every asset and dependency of the tenant, as stored (the owner's view)."""
    params = {"c": tenant.client_account_id, "e": tenant.engagement_id}
    async with engine.connect() as conn:
        assets = (
            await conn.execute(
                text(
                    "SELECT to_jsonb(a) FROM assets a WHERE client_account_id = :c "
                    "AND engagement_id = :e ORDER BY name_key"
                ),
                params,
            )
        ).scalars()
        dependencies = (
            await conn.execute(
                text(
                    "SELECT to_jsonb(d) FROM asset_dependencies d WHERE client_account_id = :c "
                    "AND engagement_id = :e ORDER BY id"
                ),
                params,
            )
        ).scalars()
        return {"assets": list(assets), "dependencies": list(dependencies)}


async def test_the_plan_counts_what_the_approved_enrichment_then_does(
    service: ImportService, engine: AsyncEngine, tenant: Tenant, tmp_path: Path
) -> None:
    await seeded(service, tmp_path)
    before = await inventory(engine, tenant)
    started = await service.start_import(second_file(tmp_path), "cmdb_export", APPROVAL)
    waiting = await wait_for(service, started.data_import_id, ("awaiting_approval",))
    assert waiting.phase == "validation" and waiting.valid_rows == 8

    plan = await service.plan(started.data_import_id)

    assert plan.status == "awaiting_approval"
    assert plan.assets_to_create.count == 5
    assert plan.assets_to_update.count == 3
    assert plan.dependencies_to_add.count == 5
    assert [a.name for a in plan.assets_to_create.sample] == [f"SRV-{n:06d}" for n in range(6, 11)]
    assert {a.asset_type for a in plan.assets_to_create.sample} == {"server"}
    changes = {(c.name, c.field): (c.old, c.new) for c in plan.assets_to_update.sample}
    old_env = next(a["environment"] for a in before["assets"] if a["name"] == "SRV-000003")
    assert changes[("SRV-000003", "environment")][0] == old_env
    assert changes[("SRV-000003", "environment")][1] not in (None, old_env)
    assert {(d.source, d.target) for d in plan.dependencies_to_add.sample} == {
        (f"SRV-{n:06d}", f"SRV-{n - 1:06d}") for n in range(6, 11)
    }
    assert await inventory(engine, tenant) == before  # planning wrote nothing

    await service.approve(started.data_import_id)
    done = await wait_for(service, started.data_import_id, ("completed",))

    assert (done.assets_created, done.assets_updated, done.dependencies_created) == (5, 3, 5)
    after = await inventory(engine, tenant)
    assert len(after["assets"]) == 10 and len(after["dependencies"]) == 9
    envs = {a["name"]: a["environment"] for a in after["assets"]}
    assert envs["SRV-000003"] == changes[("SRV-000003", "environment")][1]
    assert (await service.plan(started.data_import_id)).status == "completed"  # kept


async def test_a_rejected_import_leaves_the_inventory_and_says_so_everywhere(
    service: ImportService, engine: AsyncEngine, tenant: Tenant, tmp_path: Path
) -> None:
    await seeded(service, tmp_path)
    before = await inventory(engine, tenant)
    started = await service.start_import(second_file(tmp_path), "cmdb_export", APPROVAL)
    await wait_for(service, started.data_import_id, ("awaiting_approval",))
    with pytest.raises(InvalidRequest, match="a reason is required"):
        await service.reject(started.data_import_id, " ")

    await service.reject(started.data_import_id, "wrong estate")
    rejected = await wait_for(service, started.data_import_id, ("rejected",))

    assert rejected.is_terminal and rejected.error_message == "wrong estate"
    assert await inventory(engine, tenant) == before
    async with engine.connect() as conn:
        records = (
            await conn.execute(
                text(
                    "SELECT d.status, d.completed_at IS NOT NULL AS done, m.flow_status, "
                    "f.status AS child, f.data_validation_completed, f.enrichment_completed, "
                    "(SELECT count(*) FROM staged_row_assets r WHERE r.data_import_id = d.id) "
                    "AS processed "
                    "FROM data_imports d JOIN master_flows m ON m.flow_id = d.master_flow_id "
                    "JOIN discovery_flows f ON f.data_import_id = d.id WHERE d.id = :id"
                ),
                {"id": started.data_import_id},
            )
        ).one()
    assert tuple(records) == ("rejected", True, "rejected", "rejected", True, False, 0)
    with pytest.raises(DecisionRefused, match="only an import awaiting approval"):
        await service.approve(started.data_import_id)


SAMPLES = Path(__file__).resolve().parents[2] / "dataimport" / "samples"


@pytest.mark.parametrize(
    ("sample", "category"),
    [
        ("azure_migrate_dependencies.csv", "app_discovery"),
        ("rvtools_export.xlsx", "infrastructure"),
        ("data_store_inventory.csv", "sensitive_data"),
        ("servicenow_cmdb_ci_server.csv", "cmdb_export"),
    ],
)
async def test_every_category_plans_what_it_then_enriches(
    service: ImportService, tmp_path: Path, sample: str, category: str
) -> None:
    """Each category's own enrichment (prepare, enrich, link, finish) is what the plan runs."""
    path = tmp_path / sample
    path.write_bytes((SAMPLES / sample).read_bytes())
    started = await service.start_import(path, category, APPROVAL)
    await wait_for(service, started.data_import_id, ("awaiting_approval",))
    plan = await service.plan(started.data_import_id)
    assert plan.assets_to_create.count > 0
    await service.approve(started.data_import_id)
    done = await wait_for(service, started.data_import_id, ("completed", "completed_with_errors"))
    assert (done.assets_created, done.assets_updated, done.dependencies_created) == (
        plan.assets_to_create.count,
        plan.assets_to_update.count,
        plan.dependencies_to_add.count,
    )


async def test_an_import_without_approval_has_no_plan(
    service: ImportService, tmp_path: Path
) -> None:
    started = await service.start_import(servers(tmp_path / "s.csv", range(1, 3)), "cmdb_export")
    await wait_for(service, started.data_import_id, ("completed",))
    with pytest.raises(NoPlan, match="require_approval"):
        await service.plan(started.data_import_id)
    with pytest.raises(LookupError):
        await service.plan(uuid.uuid4())


async def test_sensitive_values_are_masked_in_the_plan(
    service: ImportService, tmp_path: Path
) -> None:
    headers = ["data_store", "host", "data_categories", "classification", "owner"]
    rows = [["crm-db-primary", "crmhost-alpha", "email", "confidential", "alice.owner"]]
    path = write_csv(tmp_path / "stores.csv", headers, rows)
    started = await service.start_import(path, "sensitive_data", APPROVAL)
    await wait_for(service, started.data_import_id, ("awaiting_approval",))

    plan = await service.plan(started.data_import_id)

    assert plan.assets_to_create.count >= 1
    shown = plan.model_dump_json()
    for value in ("crmhost-alpha", "crm-db-primary", "alice.owner"):
        assert value not in shown
    await service.reject(started.data_import_id, "masked check done")
    await wait_for(service, started.data_import_id, ("rejected",))


# ----- the CLI -------------------------------------------------------------------------------


async def cli(env: dict[str, str], tenant: Tenant, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout, stderr (asyncio: the session worker lives in this event loop)."""
    tenant_env = {
        "DATAIMPORT_CLIENT_ACCOUNT_ID": str(tenant.client_account_id),
        "DATAIMPORT_ENGAGEMENT_ID": str(tenant.engagement_id),
    }
    process = await asyncio.create_subprocess_exec(
        str(CLI),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, **tenant_env},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture(scope="session")
def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAIMPORT_")}
    assert settings.database_url and settings.temporal_address
    env.update(
        DATABASE_URL=settings.database_url,
        TEMPORAL_ADDRESS=settings.temporal_address,
        DATAIMPORT_TASK_QUEUE=settings.task_queue,
        DATAIMPORT_STORAGE_DIR=str(settings.uploads_dir),
        DATAIMPORT_HOME=str(settings.home_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


async def test_cli_import_wait_exits_4_then_plan_reject_and_approve(
    cli_env: dict[str, str], service: ImportService, tenant: Tenant, tmp_path: Path
) -> None:
    await seeded(service, tmp_path)
    code, out, err = await cli(
        cli_env,
        tenant,
        "import",
        str(second_file(tmp_path)),
        "--category",
        "cmdb_export",
        "--config",
        json.dumps(APPROVAL),
        "--wait",
        "--json",
    )
    assert code == 4, err
    waiting = ImportStatus.model_validate_json(out)
    assert waiting.status == "awaiting_approval"
    data_import_id = str(waiting.data_import_id)

    code, out, err = await cli(cli_env, tenant, "plan", data_import_id, "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["assets_to_create"]["count"] == 5 and plan["dependencies_to_add"]["count"] == 5
    code, out, _ = await cli(cli_env, tenant, "plan", data_import_id)
    assert code == 0 and "5 assets to create, 3 to update, 5 dependencies to add" in out

    code, _, err = await cli(cli_env, tenant, "reject", data_import_id, "--reason", "")
    assert code == 2 and "--reason" in err
    other = Tenant(uuid.uuid4(), uuid.uuid4())
    code, _, err = await cli(cli_env, other, "approve", data_import_id)
    assert code == 2 and f"no import {data_import_id}" in err
    code, out, err = await cli(cli_env, tenant, "reject", data_import_id, "--reason", "later")
    assert code == 0 and "reject sent" in out, err
    await wait_for(service, waiting.data_import_id, ("rejected",))
    code, _, err = await cli(cli_env, tenant, "approve", data_import_id)
    assert code == 2 and "only an import awaiting approval" in err
    code, out, _ = await cli(cli_env, tenant, "status", data_import_id, "--json")
    assert json.loads(out)["status"] == "rejected"


async def test_cli_approve_completes_and_plan_of_an_unplanned_import_exits_2(
    cli_env: dict[str, str], service: ImportService, tenant: Tenant, tmp_path: Path
) -> None:
    started = await service.start_import(
        servers(tmp_path / "a.csv", range(1, 4)), "cmdb_export", APPROVAL
    )
    await wait_for(service, started.data_import_id, ("awaiting_approval",))
    code, out, err = await cli(cli_env, tenant, "approve", str(started.data_import_id))
    assert code == 0 and "approve sent" in out, err
    done = await wait_for(service, started.data_import_id, ("completed",))
    assert done.assets_created == 3
    plain = await service.start_import(servers(tmp_path / "b.csv", range(7, 8)), "cmdb_export")
    await wait_for(service, plain.data_import_id, ("completed",))
    code, _, err = await cli(cli_env, tenant, "plan", str(plain.data_import_id))
    assert code == 2 and "has no plan" in err


async def test_cli_says_a_plan_is_stale_and_approves_only_the_plan_made_again(
    cli_env: dict[str, str], service: ImportService, tenant: Tenant, tmp_path: Path
) -> None:
    started = await service.start_import(
        servers(tmp_path / "a.csv", range(1, 4)), "cmdb_export", APPROVAL
    )
    await wait_for(service, started.data_import_id, ("awaiting_approval",))
    data_import_id = str(started.data_import_id)
    first = (await service.plan(started.data_import_id)).plan_id
    code, out, err = await cli(cli_env, tenant, "plan", data_import_id)
    assert code == 0 and f"plan {first}" in out and "stale" not in err
    other = await service.start_import(servers(tmp_path / "b.csv", range(2, 3)), "cmdb_export")
    await wait_for(service, other.data_import_id, ("completed",))

    code, out, err = await cli(cli_env, tenant, "plan", data_import_id)
    assert code == 0 and "stale: the inventory changed since the plan was made" in err
    code, _, err = await cli(cli_env, tenant, "approve", data_import_id, "--plan", str(first))
    assert code == 2 and "not approved: the inventory changed" in err
    fresh = await service.plan(started.data_import_id)
    assert fresh.plan_id != first and f"plan {fresh.plan_id}" in " ".join(err.split())
    code, _, err = await cli(cli_env, tenant, "approve", data_import_id, "--plan", str(first))
    assert code == 2 and "is not the current plan" in err
    code, out, err = await cli(cli_env, tenant, "plan", data_import_id, "--recompute", "--json")
    assert code == 0, err
    remade = json.loads(out)
    assert remade["plan_id"] not in (str(first), str(fresh.plan_id)) and not remade["stale"]
    approve = ("approve", data_import_id, "--plan", remade["plan_id"])
    code, out, err = await cli(cli_env, tenant, *approve)
    assert code == 0 and "approve sent" in out, err
    done = await wait_for(service, started.data_import_id, ("completed",))
    assert (done.assets_created, done.assets_updated) == (2, 1)


# ----- the API -------------------------------------------------------------------------------


async def bearer(engine: AsyncEngine, tenant: Tenant, scope: Scope) -> dict[str, str]:
    issued = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], scope, name="approval test"
    )
    return {"Authorization": f"Bearer {issued.key}"}


@pytest.fixture
async def http(
    settings: Settings, app_engine: AsyncEngine, client: Client
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, app_engine, client)  # as the service role
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as session:
        yield session


async def test_api_plan_approve_and_reject_with_their_refusals(
    http: httpx.AsyncClient,
    service: ImportService,
    engine: AsyncEngine,
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    write = await bearer(engine, tenant, Scope.WRITE)
    read = await bearer(engine, tenant, Scope.READ)
    stranger = await bearer(engine, Tenant(uuid.uuid4(), uuid.uuid4()), Scope.WRITE)
    await seeded(service, tmp_path)
    started = await service.start_import(second_file(tmp_path), "cmdb_export", APPROVAL)
    await wait_for(service, started.data_import_id, ("awaiting_approval",))
    url = f"{IMPORTS}/{started.data_import_id}"

    plan = await http.get(f"{url}/plan", headers=read)
    assert plan.status_code == 200, plan.text
    body = plan.json()
    assert body["data_import_id"] == str(started.data_import_id)
    assert body["status"] == "awaiting_approval"
    assert (
        body["assets_to_create"]["count"],
        body["assets_to_update"]["count"],
        body["dependencies_to_add"]["count"],
    ) == (5, 3, 5)
    assert set(body["assets_to_create"]["sample"][0]) == {"name", "asset_type"}
    assert set(body["assets_to_update"]["sample"][0]) == {"name", "field", "old", "new"}
    assert set(body["dependencies_to_add"]["sample"][0]) == {"source", "target", "dependency_type"}

    assert (await http.get(f"{url}/plan")).status_code == 401
    assert (await http.post(f"{url}/approve")).status_code == 401
    assert (await http.post(f"{url}/approve", headers=read)).status_code == 403
    reject_read = await http.post(f"{url}/reject", headers=read, json={"reason": "x"})
    assert reject_read.status_code == 403
    unknown = await http.get(f"{IMPORTS}/{uuid.uuid4()}/plan", headers=read)
    assert unknown.status_code == 404
    for response in (
        await http.get(f"{url}/plan", headers=stranger),
        await http.post(f"{url}/approve", headers=stranger),
        await http.post(f"{url}/reject", headers=stranger, json={"reason": "x"}),
    ):
        # another tenant's import answers as an unknown one
        assert response.status_code == 404
        assert response.json()["error"] == {
            "code": "import-not-found",
            "message": f"no import {started.data_import_id}",
        }
    blank = await http.post(f"{url}/reject", headers=write, json={"reason": "  "})
    assert blank.status_code == 422

    approved = await http.post(f"{url}/approve", headers=write)
    assert approved.status_code == 200, approved.text
    assert approved.json()["data_import_id"] == str(started.data_import_id)
    done = await wait_for(service, started.data_import_id, ("completed",))
    assert done.assets_created == 5
    again = await http.post(f"{url}/reject", headers=write, json={"reason": "too late"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "decision-refused"
    assert "is completed" in again.json()["error"]["message"]

    other = await service.start_import(
        servers(tmp_path / "o.csv", range(20, 22)), "cmdb_export", APPROVAL
    )
    await wait_for(service, other.data_import_id, ("awaiting_approval",))
    rejected = await http.post(
        f"{IMPORTS}/{other.data_import_id}/reject", headers=write, json={"reason": "no thanks"}
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "awaiting_approval"
    final = await wait_for(service, other.data_import_id, ("rejected",))
    assert final.error_message == "no thanks"

    plain = await service.start_import(servers(tmp_path / "p.csv", range(30, 31)), "cmdb_export")
    await wait_for(service, plain.data_import_id, ("completed",))
    no_plan = await http.get(f"{IMPORTS}/{plain.data_import_id}/plan", headers=read)
    assert no_plan.status_code == 409 and no_plan.json()["error"]["code"] == "no-plan"
    not_waiting = await http.post(f"{IMPORTS}/{plain.data_import_id}/approve", headers=write)
    assert not_waiting.status_code == 409
    assert "only an import awaiting approval" in not_waiting.json()["error"]["message"]
