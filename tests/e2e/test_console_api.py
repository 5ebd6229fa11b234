"""The API routes the console reads (whoami, categories, report, mapping preview, asset facets,
the group and source-category filters) and the console's own page, in-process over ASGI."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport import pii
from dataimport.agents import agent_names
from dataimport.api import create_app
from dataimport.auth import Scope, keys
from dataimport.categories import REGISTRY
from dataimport.import_report import suggested_mapping
from dataimport.imports import Tenant
from dataimport.settings import Settings
from tests.factories import TERMINAL_OR_WAITING, write_csv

pytestmark = pytest.mark.usefixtures("worker")

SAMPLES = Path(__file__).resolve().parents[2] / "dataimport" / "samples"
IMPORTS = "/api/v1/imports"


async def client_for(
    settings: Settings, engine: AsyncEngine, app_engine: AsyncEngine, client: Client, tenant: Tenant
) -> httpx.AsyncClient:
    issued = await keys.create_key(
        engine, tenant.client_account_id, [tenant.engagement_id], Scope.WRITE, name="console"
    )
    app = create_app(
        settings.model_copy(update={"web_ui_url": "http://ui:8233"}), app_engine, client
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://api",
        headers={"Authorization": f"Bearer {issued.key}"},
    )


@pytest.fixture
async def api(
    settings: Settings, engine: AsyncEngine, app_engine: AsyncEngine, client: Client, tenant: Tenant
) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(settings, engine, app_engine, client, tenant) as http:
        yield http


@pytest.fixture
async def stranger(
    settings: Settings, engine: AsyncEngine, app_engine: AsyncEngine, client: Client
) -> AsyncIterator[httpx.AsyncClient]:
    other = Tenant(uuid.uuid4(), uuid.uuid4())
    async with await client_for(settings, engine, app_engine, client, other) as http:
        yield http


async def started(http: httpx.AsyncClient, path: Path, category: str) -> str:
    response = await http.post(
        IMPORTS,
        data={"import_category": category},
        files={"file": (path.name, path.read_bytes())},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["data_import_id"])


async def settled(http: httpx.AsyncClient, data_import_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(600):
        body = (await http.get(f"{IMPORTS}/{data_import_id}")).json()
        if body["status"] in TERMINAL_OR_WAITING:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{data_import_id} never settled: {body}")


def unmapped_csv(tmp_path: Path) -> Path:
    rows = [["ALPHA", "10.0.0.1"], ["BETA", "10.0.0.2"]]
    return write_csv(tmp_path / "odd.csv", ["Server Label", "Primary Address"], rows)


async def test_whoami_names_the_credentials_tenant(api: httpx.AsyncClient, tenant: Tenant) -> None:
    body = (await api.get("/api/v1/whoami")).json()
    assert body["client_account_id"] == str(tenant.client_account_id)
    assert body["engagement_id"] == str(tenant.engagement_id)
    assert body["engagement_ids"] == [str(tenant.engagement_id)]
    assert body["scope"] == "write"
    assert body["temporal_web_ui_url"] == "http://ui:8233"
    secret = api.headers["Authorization"].removeprefix("Bearer ")
    assert body["subject"].startswith("key ") and secret not in body["subject"]
    unauthenticated = await api.get("/api/v1/whoami", headers={"Authorization": ""})
    assert unauthenticated.status_code == 401


async def test_categories_come_from_the_registry(api: httpx.AsyncClient) -> None:
    items = (await api.get("/api/v1/categories")).json()["items"]
    assert [item["name"] for item in items] == list(REGISTRY)
    for item in items:
        category = REGISTRY[item["name"]]
        assert item["agents"] == agent_names(category.masks_values, category.agents)
        assert item["required_fields"] == sorted(category.required_fields)
        assert set(item["required_fields"]) <= set(item["fields"])
        assert item["formats"] == ["CSV", "XLSX", "JSON"] and item["description"]
    assert [item["masks_values"] for item in items] == [
        REGISTRY[name].masks_values for name in REGISTRY
    ]


async def test_report_of_a_finished_import_and_404_for_another_tenant(
    api: httpx.AsyncClient, stranger: httpx.AsyncClient
) -> None:
    data_import_id = await started(api, SAMPLES / "homegrown_cmdb.csv", "cmdb_export")
    status = await settled(api, data_import_id)
    assert status["status"] == "completed_with_errors"
    report = (await api.get(f"{IMPORTS}/{data_import_id}/report")).json()
    assert [t["phase"] for t in report["transitions"]][-1] == "complete"
    assert report["transitions"][-1]["status"] == status["status"]
    assert all(t["at"] for t in report["transitions"])
    assert report["issues"] and all(
        {"severity", "count", "examples"} <= set(entry) for entry in report["issues"].values()
    )
    assert sum(e["count"] for e in report["issues"].values() if e["severity"] == "error") >= 1
    assert len(report["sample"]) == 2
    assert report["headers"][0] in report["sample"][0]
    assert report["completed_at"] and report["detected_format"]["delimiter"] == ";"
    assert "name" in report["category_fields"]

    theirs = await stranger.get(f"{IMPORTS}/{data_import_id}/report")
    unknown = await stranger.get(f"{IMPORTS}/{uuid.uuid4()}/report")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "import-not-found"


async def test_mapping_preview_maps_the_first_rows_without_saving(
    api: httpx.AsyncClient, stranger: httpx.AsyncClient, tmp_path: Path
) -> None:
    data_import_id = await started(api, unmapped_csv(tmp_path), "cmdb_export")
    assert (await settled(api, data_import_id))["status"] == "needs_attention"
    report = (await api.get(f"{IMPORTS}/{data_import_id}/report")).json()
    assert report["unmapped_headers"] == ["Server Label", "Primary Address"]

    mapping = {"Server Label": "name", "Primary Address": "ip_address"}
    preview = await api.post(
        f"{IMPORTS}/{data_import_id}/mapping-preview", json={"column_mapping": mapping}
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["field_by_header"] == mapping and body["unmapped_headers"] == []
    assert body["rows"] == [
        {"row": 1, "values": {"name": "ALPHA", "ip_address": "10.0.0.1"}},
        {"row": 2, "values": {"name": "BETA", "ip_address": "10.0.0.2"}},
    ]
    again = (await api.get(f"{IMPORTS}/{data_import_id}/report")).json()
    assert again["processing_config"].get("column_mapping", {}) == {}  # nothing saved

    theirs = await stranger.post(
        f"{IMPORTS}/{data_import_id}/mapping-preview", json={"column_mapping": mapping}
    )
    assert theirs.status_code == 404
    await api.post(f"{IMPORTS}/{data_import_id}/fail", json={"reason": "test over"})


async def test_mapping_preview_masks_sensitive_values(api: httpx.AsyncClient) -> None:
    sample = SAMPLES / "data_store_inventory.csv"
    data_import_id = await started(api, sample, "sensitive_data")
    await settled(api, data_import_id)
    body = (
        await api.post(f"{IMPORTS}/{data_import_id}/mapping-preview", json={"column_mapping": {}})
    ).json()
    assert body["rows"]
    raw_cells = {cell for line in sample.read_text().splitlines()[1:] for cell in line.split(",")}
    for row in body["rows"]:
        for value in row["values"].values():
            assert value == pii.mask_value(value) or value not in raw_cells or not value


async def test_asset_filters_by_source_category_and_group_edges(
    api: httpx.AsyncClient, stranger: httpx.AsyncClient
) -> None:
    cmdb = await started(api, SAMPLES / "servicenow_cmdb_ci_server.csv", "cmdb_export")
    await settled(api, cmdb)
    apps = await started(api, SAMPLES / "azure_migrate_dependencies.csv", "app_discovery")
    await settled(api, apps)
    every = (await api.get("/api/v1/assets", params={"limit": 1000})).json()["items"]
    by_cmdb = (
        await api.get("/api/v1/assets", params={"source_category": "cmdb_export", "limit": 1000})
    ).json()["items"]
    assert by_cmdb and [a["id"] for a in by_cmdb] == [
        a["id"] for a in every if a["source_import_id"] == cmdb
    ]
    facets = (await api.get("/api/v1/asset-facets")).json()
    assert facets["asset_types"] == sorted({a["asset_type"] for a in every})
    assert facets["environments"] == sorted({a["environment"] for a in every if a["environment"]})
    assert (await stranger.get("/api/v1/asset-facets")).json() == {
        "asset_types": [],
        "environments": [],
    }

    group = (await api.get("/api/v1/dependency-groups")).json()["items"][0]
    members = {
        a["id"]
        for a in (
            await api.get("/api/v1/assets", params={"dependency_group": group["group"]})
        ).json()["items"]
    }
    edges = (
        await api.get("/api/v1/dependencies", params={"dependency_group": group["group"]})
    ).json()["items"]
    assert len(edges) == group["dependencies"]
    assert all({e["source_asset_id"], e["target_asset_id"]} <= members for e in edges)
    bogus = await api.get("/api/v1/dependencies", params={"dependency_group": "nonsense"})
    assert bogus.json()["items"] == []
    theirs = await stranger.get("/api/v1/dependencies", params={"dependency_group": group["group"]})
    assert theirs.json()["items"] == []


async def test_the_console_page_is_served_with_a_strict_policy(api: httpx.AsyncClient) -> None:
    root = await api.get("/", headers={"Authorization": ""})
    assert root.status_code == 307 and root.headers["location"] == "/console/"
    page = await api.get("/console/", headers={"Authorization": ""})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/console/static/vendor/cytoscape-3.35.0.min.js"' in page.text
    for name in ("console.js", "console.css", "vendor/cytoscape-3.35.0.min.js"):
        assert (await api.get(f"/console/static/{name}")).status_code == 200, name
    licence = await api.get("/console/static/vendor/cytoscape-3.35.0.LICENSE.txt")
    assert "Permission is hereby granted" in licence.text
    for bad in ("routes.py", "../routes.py", "..%2Froutes.py", "nothing.js"):
        assert (await api.get(f"/console/static/{bad}")).status_code == 404, bad


def test_suggested_mapping_is_read_from_the_waiting_message() -> None:
    message = (
        "no column maps to any of [name]. A model suggests (advisory, check it first): "
        '{"Server Label": "name"}'
    )
    assert suggested_mapping(message) == {"Server Label": "name"}
    assert suggested_mapping("no column maps") == {}
    assert suggested_mapping("A model suggests (advisory, check it first): {broken") == {}
