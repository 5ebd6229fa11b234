"""Stale approval plans: another import changes the tenant's inventory after a plan was made.

The plan says it is stale (service, API), approving it makes a fresh plan and refuses, an
approval that names an older plan is refused, and approving the fresh plan applies what the
fresh plan showed. Nothing that leaves the tenant's inventory as it was makes a plan stale.
The session worker, PostgreSQL and the Temporal dev server, for real.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport.api import create_app
from dataimport.approval_plan import ApprovalPlan
from dataimport.auth import Scope, keys
from dataimport.imports import Tenant
from dataimport.inventory_watermark import read_watermark
from dataimport.settings import Settings
from service.errors import PlanChanged, PlanStale
from service.imports import ImportService
from tests.factories import CMDB_HEADERS, cmdb_row, wait_for, write_csv

pytestmark = pytest.mark.usefixtures("worker")

ENV = CMDB_HEADERS.index("environment")
APPROVAL = {"require_approval": True}


def servers(path: Path, numbers: range, *, environment: str = "prod") -> Path:
    """CMDB servers `numbers`; each depends on the one before it."""
    rows = []
    for n in numbers:
        row = cmdb_row(n, deps=f"SRV-{n - 1:06d}" if n > 1 else "")
        row[ENV] = environment
        rows.append(row)
    return write_csv(path, CMDB_HEADERS, rows)


async def imported(service: ImportService, path: Path) -> None:
    started = await service.start_import(path, "cmdb_export")
    await wait_for(service, started.data_import_id, ("completed",))


async def awaiting(service: ImportService, path: Path) -> uuid.UUID:
    started = await service.start_import(path, "cmdb_export", APPROVAL)
    await wait_for(service, started.data_import_id, ("awaiting_approval",))
    return started.data_import_id


def counts(plan: ApprovalPlan) -> tuple[int, int, int]:
    return (
        plan.assets_to_create.count,
        plan.assets_to_update.count,
        plan.dependencies_to_add.count,
    )


async def test_approving_a_stale_plan_plans_again_and_only_the_fresh_plan_runs(
    service: ImportService, tmp_path: Path
) -> None:
    await imported(service, servers(tmp_path / "seed.csv", range(1, 6)))
    data_import_id = await awaiting(
        service, servers(tmp_path / "a.csv", range(3, 11), environment="dev")
    )
    first = await service.plan(data_import_id)
    assert first.plan_id is not None and not first.stale and first.stale_reason is None
    assert counts(first) == (5, 3, 5)  # 6-10 new, 3-5 change, 6->5 ... 10->9

    # Another import of the tenant writes servers 6-8 (and 6->5, 7->6, 8->7) meanwhile.
    await imported(service, servers(tmp_path / "b.csv", range(6, 9)))
    stale = await service.plan(data_import_id)
    assert stale.stale and stale.plan_id == first.plan_id
    assert stale.stale_reason is not None
    assert "inventory changed since the plan was made" in stale.stale_reason
    assert "assets 5 -> 8" in stale.stale_reason and "dependencies 4 -> 7" in stale.stale_reason
    assert counts(stale) == (5, 3, 5)  # what was shown, unchanged until planned again

    with pytest.raises(PlanStale) as refused:
        await service.approve(data_import_id, first.plan_id)
    fresh = await service.plan(data_import_id)
    assert refused.value.fresh_plan_id == fresh.plan_id != first.plan_id
    assert f"plan {fresh.plan_id}" in str(refused.value)
    assert not fresh.stale and fresh.status == "awaiting_approval"
    assert counts(fresh) == (2, 6, 2)  # 9-10 new, 3-8 change, 9->8 and 10->9
    still = await service.status(data_import_id)
    assert still is not None and still.status == "awaiting_approval"

    with pytest.raises(PlanChanged) as outdated:
        await service.approve(data_import_id, first.plan_id)  # what the approver saw first
    assert f"plan {first.plan_id} is not the current plan" in str(outdated.value)

    await service.approve(data_import_id, fresh.plan_id)
    done = await wait_for(service, data_import_id, ("completed",))
    assert (done.assets_created, done.assets_updated, done.dependencies_created) == (2, 6, 2)
    kept = await service.plan(data_import_id)
    assert kept.status == "completed" and not kept.stale  # its own writes do not count


async def test_only_a_change_of_the_tenants_own_inventory_makes_a_plan_stale(
    service: ImportService,
    settings: Settings,
    app_engine: AsyncEngine,
    client: Client,
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    await imported(service, servers(tmp_path / "seed.csv", range(1, 4)))
    data_import_id = await awaiting(service, servers(tmp_path / "a.csv", range(2, 6)))
    planned = await service.plan(data_import_id)

    # Another import that only awaits approval, and an import of another engagement of the
    # same client: neither writes to this tenant's inventory.
    await awaiting(service, servers(tmp_path / "c.csv", range(1, 9), environment="dev"))
    neighbour = ImportService(
        settings, app_engine, client, Tenant(tenant.client_account_id, uuid.uuid4())
    )
    await imported(neighbour, servers(tmp_path / "d.csv", range(1, 9)))
    # Planning again replaces the plan (a new id) without writing to the inventory either.
    again = await service.replan(data_import_id)
    assert again.plan_id != planned.plan_id and counts(again) == counts(planned)

    assert not (await service.plan(data_import_id)).stale
    await service.approve(data_import_id)  # no plan named: the current one, which is fresh
    done = await wait_for(service, data_import_id, ("completed",))
    assert (done.assets_created, done.assets_updated) == counts(planned)[:2]


async def test_a_plan_made_before_watermarks_is_stale_and_made_again_on_approve(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    """An import that was awaiting approval when this check was deployed: its plan has no
    watermark (nor id), so it cannot be shown fresh; approving plans it again first."""
    data_import_id = await awaiting(service, servers(tmp_path / "a.csv", range(1, 4)))
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE data_imports SET approval_plan = approval_plan - 'inventory_watermark' "
                "- 'plan_id' WHERE id = :id"
            ),
            {"id": data_import_id},
        )
    legacy = await service.plan(data_import_id)
    assert legacy.plan_id is None and legacy.stale
    assert legacy.stale_reason == (
        "the plan was made before plans recorded the inventory they were made from"
    )
    with pytest.raises(PlanStale) as refused:
        await service.approve(data_import_id)
    fresh = await service.plan(data_import_id)
    assert fresh.plan_id == refused.value.fresh_plan_id and not fresh.stale
    assert counts(fresh) == counts(legacy)
    await service.approve(data_import_id)
    assert (await wait_for(service, data_import_id, ("completed",))).assets_created == 3


async def test_the_watermark_sees_a_write_older_than_the_newest_row(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    """A transaction that began before the latest write and commits after it leaves count
    and max(updated_at) as they were: the digest still moves."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    params = {"c": tenant.client_account_id, "e": tenant.engagement_id}
    insert = text(
        "INSERT INTO assets (client_account_id, engagement_id, name, name_key, updated_at) "
        "VALUES (:c, :e, :n, lower(:n), :t)"
    )
    async with engine.begin() as conn:
        await conn.execute(insert, {**params, "n": "OLD-1", "t": start})
        await conn.execute(insert, {**params, "n": "NEW-1", "t": start + timedelta(hours=2)})
    async with engine.connect() as conn:
        before = await read_watermark(conn, tenant)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE assets SET updated_at = :t WHERE name = 'OLD-1' AND client_account_id = :c"
            ),
            {**params, "t": start + timedelta(hours=1)},
        )
    async with engine.connect() as conn:
        after = await read_watermark(conn, tenant)
        other = await read_watermark(conn, Tenant(tenant.client_account_id, uuid.uuid4()))
    assert (
        (before.assets, before.newest)
        == (after.assets, after.newest)
        == (2, start + timedelta(hours=2))
    )
    assert not after.same_inventory(before)
    assert (other.assets, other.dependencies, other.newest) == (0, 0, None)


@pytest.fixture
async def http(
    settings: Settings, app_engine: AsyncEngine, client: Client
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, app_engine, client)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as h:
        yield h


async def test_the_api_says_stale_refuses_with_the_fresh_plan_and_plans_again(
    http: httpx.AsyncClient,
    service: ImportService,
    engine: AsyncEngine,
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    write = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], Scope.WRITE
    )
    read = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], Scope.READ
    )
    auth, read_auth = ({"Authorization": f"Bearer {issued.key}"} for issued in (write, read))
    data_import_id = await awaiting(service, servers(tmp_path / "a.csv", range(1, 4)))
    url = f"/api/v1/imports/{data_import_id}"
    shown = (await http.get(f"{url}/plan", headers=read_auth)).json()
    assert shown["stale"] is False and shown["plan_id"]
    await imported(service, servers(tmp_path / "b.csv", range(2, 3)))

    stale = (await http.get(f"{url}/plan", headers=read_auth)).json()
    assert stale["stale"] is True and "inventory changed" in stale["stale_reason"]
    refused = await http.post(f"{url}/approve", headers=auth, json={"plan_id": shown["plan_id"]})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "plan-stale"
    fresh = (await http.get(f"{url}/plan", headers=read_auth)).json()
    assert error["details"] == {"plan_id": fresh["plan_id"]} and fresh["stale"] is False
    old = await http.post(f"{url}/approve", headers=auth, json={"plan_id": shown["plan_id"]})
    assert (old.status_code, old.json()["error"]["code"]) == (409, "plan-changed")

    assert (await http.post(f"{url}/plan", headers=read_auth)).status_code == 403  # write scope
    remade = await http.post(f"{url}/plan", headers=auth)
    assert remade.status_code == 200 and remade.json()["plan_id"] != fresh["plan_id"]
    approved = await http.post(
        f"{url}/approve", headers=auth, json={"plan_id": remade.json()["plan_id"]}
    )
    assert approved.status_code == 200, approved.text
    await wait_for(service, data_import_id, ("completed",))
    too_late = await http.post(f"{url}/plan", headers=auth)
    assert (too_late.status_code, too_late.json()["error"]["code"]) == (409, "decision-refused")
