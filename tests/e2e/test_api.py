"""The HTTP API end to end: real PostgreSQL, real Temporal, the session worker.

Most tests talk to the app in-process (httpx over ASGI); one starts `dataimport api` and talks
to it over TCP. Subprocesses run through asyncio, because the session worker lives in this
event loop (a blocking subprocess.run would starve it).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import socket
import threading
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport import retention
from dataimport.api import create_app
from dataimport.categories import REGISTRY
from dataimport.contracts import PurgeCandidate, PurgeInput
from dataimport.field_sources import FIELD_ORDER
from dataimport.imports import Tenant
from dataimport.reports import write_error_report, write_failed_rows
from dataimport.settings import Settings
from service.imports import ImportService
from tests.factories import (
    CLI,
    CMDB_HEADERS,
    IMPORTS,
    TENANT_ENV,
    TERMINAL_OR_WAITING,
    cmdb_row,
    error_of,
    headers_of,
    other_tenant,
    small_limit_api,
    storage_files,
    unidentified,
    write_cmdb,
    write_csv,
)

pytestmark = pytest.mark.usefixtures("worker")

ROUTES = {
    ("post", "/api/v1/imports"),
    ("get", "/api/v1/imports"),
    ("get", "/api/v1/imports/{data_import_id}"),
    ("get", "/api/v1/imports/{data_import_id}/errors"),
    ("get", "/api/v1/imports/{data_import_id}/failed-rows"),
    ("get", "/api/v1/imports/{data_import_id}/steps"),
    ("get", "/api/v1/imports/{data_import_id}/report"),
    ("post", "/api/v1/imports/{data_import_id}/mapping-preview"),
    ("get", "/api/v1/whoami"),
    ("get", "/api/v1/categories"),
    ("get", "/api/v1/asset-facets"),
    ("post", "/api/v1/imports/{data_import_id}/retry"),
    ("post", "/api/v1/imports/{data_import_id}/fail"),
    ("get", "/api/v1/imports/{data_import_id}/plan"),
    ("post", "/api/v1/imports/{data_import_id}/plan"),
    ("post", "/api/v1/imports/{data_import_id}/approve"),
    ("post", "/api/v1/imports/{data_import_id}/reject"),
    ("get", "/api/v1/assets"),
    ("get", "/api/v1/assets/{asset_id}"),
    ("get", "/api/v1/dependencies"),
    ("get", "/api/v1/dependency-groups"),
    ("get", "/api/v1/keys"),
    ("post", "/api/v1/keys"),
    ("delete", "/api/v1/keys/{key_id}"),
}


@pytest.fixture
async def api(
    settings: Settings,
    engine: AsyncEngine,
    app_engine: AsyncEngine,
    client: Client,
    tenant: Tenant,
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, app_engine, client)  # as the service role
    transport = httpx.ASGITransport(app=app)
    headers = await headers_of(engine, tenant)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", headers=headers
    ) as http:
        yield http


async def upload(
    http: httpx.AsyncClient,
    data: bytes | Path,
    category: str = "cmdb_export",
    filename: str = "servers.csv",
    **fields: str,
) -> httpx.Response:
    content = data.read_bytes() if isinstance(data, Path) else data
    form = {"import_category": category, **fields} if category else dict(fields)
    return await http.post(IMPORTS, data=form, files={"file": (filename, content)})


async def started(http: httpx.AsyncClient, data: bytes | Path, **fields: str) -> str:
    response = await upload(http, data, **fields)
    assert response.status_code == 202, response.text
    return str(response.json()["data_import_id"])


async def wait_status(
    http: httpx.AsyncClient, data_import_id: str, wanted: tuple[str, ...] = TERMINAL_OR_WAITING
) -> dict[str, Any]:
    """Poll GET /imports/{id} until one of `wanted` (bounded, never a timing assert)."""
    body: dict[str, Any] = {}
    for _ in range(600):
        response = await http.get(f"{IMPORTS}/{data_import_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in wanted:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{data_import_id} never reached {wanted}; last: {body}")


def unmapped_csv(tmp_path: Path) -> Path:
    headers = ["Server Label", "Primary Address"]
    return write_csv(tmp_path / "odd.csv", headers, [["ALPHA", "10.0.0.1"], ["BETA", "10.0.0.2"]])


def mostly_invalid_csv(tmp_path: Path) -> Path:
    rows = [cmdb_row(n) for n in range(1, 5)]
    for row in rows[:3]:
        unidentified(row)
    return write_csv(tmp_path / "bad.csv", CMDB_HEADERS, rows)


def some_invalid_csv(tmp_path: Path) -> Path:
    rows = [cmdb_row(n, deps=f"SRV-{n - 1:06d}" if n > 1 else "") for n in range(1, 5)]
    rows[1][3] = "999.1.1.1"  # a malformed address only warns
    unidentified(rows[1])
    return write_csv(tmp_path / "some.csv", CMDB_HEADERS, rows)


# ----- start, status, list -------------------------------------------------------------------


async def test_upload_starts_an_import_that_completes_with_the_services_status(
    api: httpx.AsyncClient, service: ImportService, tmp_path: Path
) -> None:
    response = await upload(api, write_cmdb(tmp_path / "cmdb.csv", 5))

    assert response.status_code == 202, response.text
    accepted = response.json()
    data_import_id = accepted["data_import_id"]
    assert accepted["workflow_id"] == f"data-import-{data_import_id}"
    assert accepted["status_url"] == f"{IMPORTS}/{data_import_id}"
    assert response.headers["location"] == accepted["status_url"]
    done = await wait_status(api, data_import_id, ("completed", "completed_with_errors"))
    assert (done["status"], done["total_rows"], done["valid_rows"]) == ("completed", 5, 5)
    assert (done["assets_created"], done["dependencies_created"]) == (5, 4)
    assert done["filename"] == "servers.csv"
    expected = await service.status(uuid.UUID(data_import_id))
    assert expected is not None and done == expected.model_dump(mode="json")


async def test_same_request_id_gives_the_same_import_and_keeps_one_file(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    path = write_cmdb(tmp_path / "cmdb.csv", 3)
    before = set(storage_files(settings.uploads_dir))
    first = await started(api, path, request_id="nightly-42")
    second = await started(api, path, request_id="nightly-42")
    other = await started(api, path, request_id="nightly-43")

    assert first == second != other
    added = set(storage_files(settings.uploads_dir)) - before
    assert len(added) == 2 and all(name.endswith(".upload") for name in added)
    listed = (await api.get(IMPORTS)).json()["items"]
    assert sorted(item["data_import_id"] for item in listed) == sorted([first, other])
    for data_import_id in (first, other):
        await wait_status(api, data_import_id)


async def test_list_is_newest_first_and_honours_limit(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    ids = [await started(api, write_cmdb(tmp_path / f"c{n}.csv", 2)) for n in range(3)]

    listed = (await api.get(IMPORTS)).json()["items"]
    assert [item["data_import_id"] for item in listed] == ids[::-1]
    limited = await api.get(IMPORTS, params={"limit": 2})
    assert [item["data_import_id"] for item in limited.json()["items"]] == ids[:0:-1]
    too_many = await api.get(IMPORTS, params={"limit": 0})
    assert (too_many.status_code, error_of(too_many)["code"]) == (422, "invalid-request")
    for data_import_id in ids:
        await wait_status(api, data_import_id)


async def test_xlsx_and_json_are_recognised_from_their_bytes_not_the_name(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(CMDB_HEADERS)
    sheet.append(cmdb_row(1))
    workbook.save(tmp_path / "book.xlsx")
    rows = [dict(zip(CMDB_HEADERS, cmdb_row(n), strict=True)) for n in (1, 2)]

    xlsx = await started(api, tmp_path / "book.xlsx", filename="misnamed.csv")
    as_json = await started(api, json.dumps(rows).encode(), filename="data.txt")

    assert (await wait_status(api, xlsx))["status"] == "completed"
    assert (await wait_status(api, as_json))["total_rows"] == 2


# ----- refusals ------------------------------------------------------------------------------


async def test_tenant_headers_only_choose_what_the_key_grants(
    api: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
) -> None:
    """The key names the tenant; a header may repeat it, never change it."""
    path = write_cmdb(tmp_path / "c.csv", 1)
    some_id = uuid.uuid4()
    own = {
        "X-Client-Account-ID": str(tenant.client_account_id),
        "X-Engagement-ID": str(tenant.engagement_id),
    }
    for method, url in (
        ("GET", IMPORTS),
        ("GET", f"{IMPORTS}/{some_id}"),
        ("GET", "/api/v1/assets"),
        ("GET", "/api/v1/dependency-groups"),
    ):
        bad = await api.request(method, url, headers={"X-Engagement-ID": "not-a-uuid"})
        assert (bad.status_code, error_of(bad)["code"]) == (400, "invalid-tenant")
        for header in ("X-Client-Account-ID", "X-Engagement-ID"):
            other = await api.request(method, url, headers={header: str(uuid.uuid4())})
            assert (other.status_code, error_of(other)["code"]) == (403, "tenant-not-granted")
        blank = await api.request(method, url, headers={"X-Engagement-ID": ""})
        same = await api.request(method, url, headers=own)
        assert blank.status_code == same.status_code == (404 if str(some_id) in url else 200)
    refused = await api.post(
        IMPORTS,
        data={"import_category": "cmdb_export"},
        files={"file": ("c.csv", path.read_bytes())},
        headers={"X-Engagement-ID": str(uuid.uuid4())},
    )
    assert (refused.status_code, error_of(refused)["code"]) == (403, "tenant-not-granted")
    assert (await api.get(IMPORTS)).json()["items"] == []  # nothing was started


async def test_upload_over_the_limit_is_413_and_leaves_no_file(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, tmp_path: Path
) -> None:
    storage = tmp_path / "uploads"
    data = write_cmdb(tmp_path / "big.csv", 40).read_bytes()
    assert len(data) > 1000
    http = await small_limit_api(settings, engine, client, tenant, storage)
    async with http:
        response = await upload(http, data)
        # Without Content-Length too: the limit counts the bytes that actually arrive.
        boundary = "api-test-boundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="import_category"\r\n\r\n'
                f'cmdb_export\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n'
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 300):
                yield body[start : start + 300]

        chunked = await http.post(
            IMPORTS,
            content=chunks(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        small = await upload(http, write_cmdb(tmp_path / "small.csv", 1).read_bytes())
        listed = (await http.get(IMPORTS)).json()["items"]

    assert "content-length" not in chunked.request.headers
    for refused in (response, chunked):
        assert (refused.status_code, error_of(refused)["code"]) == (413, "upload-too-large")
        assert "1000 bytes" in error_of(refused)["message"]
    assert small.status_code == 202, small.text
    assert [item["data_import_id"] for item in listed] == [small.json()["data_import_id"]]
    assert [name.endswith(".upload") for name in storage_files(storage)] == [True]


def zip_bytes(tmp_path: Path) -> bytes:
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        archive.writestr("servers.csv", "name\nSRV-1\n" * 2000)
    return (tmp_path / "a.zip").read_bytes()


async def test_binary_files_are_415_whatever_their_name(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, tmp_path: Path
) -> None:
    storage = tmp_path / "uploads"
    limited = settings.model_copy(update={"storage_dir": storage})
    transport = httpx.ASGITransport(app=create_app(limited, engine, client))
    cases = {
        "png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 400,
        "pdf": b"%PDF-1.7\n" + b"x" * 100,
        "zip": zip_bytes(tmp_path),
        "nul": b"name,ip\x00\x00\x01\x02" * 500,
    }
    headers = await headers_of(engine, tenant)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", headers=headers
    ) as http:
        answers = {name: await upload(http, data) for name, data in cases.items()}
        listed = (await http.get(IMPORTS)).json()["items"]

    for name, response in answers.items():
        assert response.status_code == 415, (name, response.text)
        assert error_of(response)["code"] == "unsupported-file-type", name
    assert "PNG" in error_of(answers["png"])["message"]
    assert "not an XLSX workbook" in error_of(answers["zip"])["message"]
    assert listed == [] and storage_files(storage) == []


async def test_unknown_category_is_422_listing_the_known_ones(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    response = await upload(api, write_cmdb(tmp_path / "c.csv", 1), category="cmdb")

    error = error_of(response)
    assert (response.status_code, error["code"]) == (422, "unknown-category")
    assert error["details"]["known"] == sorted(REGISTRY)
    assert all(name in error["message"] for name in REGISTRY)
    missing = await upload(api, write_cmdb(tmp_path / "c.csv", 1), category="")
    assert (missing.status_code, error_of(missing)["code"]) == (422, "missing-category")


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"max_invalid_ratio": 5}', "max_invalid_ratio"),
        ('{"chunk_size": "many"}', "chunk_size"),
    ],
)
async def test_bad_processing_config_is_422(
    api: httpx.AsyncClient, tmp_path: Path, config: str, says: str
) -> None:
    response = await upload(api, write_cmdb(tmp_path / "c.csv", 1), processing_config=config)

    error = error_of(response)
    assert (response.status_code, error["code"]) == (422, "invalid-processing-config")
    assert says in error["message"]
    assert (await api.get(IMPORTS)).json()["items"] == []


async def test_missing_file_empty_file_and_non_multipart_are_refused(
    api: httpx.AsyncClient,
) -> None:
    no_file = await api.post(IMPORTS, files={"import_category": (None, "cmdb_export")})
    empty = await upload(api, b"")
    as_json = await api.post(IMPORTS, json={"import_category": "cmdb_export"})

    assert (no_file.status_code, error_of(no_file)["code"]) == (422, "missing-file")
    assert (empty.status_code, error_of(empty)["code"]) == (422, "empty-file")
    assert (as_json.status_code, error_of(as_json)["code"]) == (415, "unsupported-file-type")
    assert (await api.get(IMPORTS)).json()["items"] == []


async def test_unknown_routes_answer_in_the_same_error_shape(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/nothing-here")
    assert (response.status_code, error_of(response)["code"]) == (404, "not-found")
    bad_id = await api.get(f"{IMPORTS}/not-a-uuid")
    assert (bad_id.status_code, error_of(bad_id)["code"]) == (422, "invalid-request")
    assert "data_import_id" in error_of(bad_id)["message"]


# ----- tenant isolation ----------------------------------------------------------------------


async def test_another_tenants_import_answers_exactly_like_an_unknown_one(
    api: httpx.AsyncClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    mine = await started(api, some_invalid_csv(tmp_path))
    await wait_status(api, mine)
    unknown = str(uuid.uuid4())
    stranger = await headers_of(engine, other_tenant())
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "", {}),
        ("GET", "/errors", {}),
        ("GET", "/failed-rows", {}),
        ("GET", "/steps", {}),
        ("POST", "/retry", {"json": {}}),
        ("POST", "/fail", {"json": {"reason": "not mine"}}),
    ]
    for method, suffix, extra in requests:
        theirs = await api.request(method, f"{IMPORTS}/{mine}{suffix}", headers=stranger, **extra)
        nobody = await api.request(method, f"{IMPORTS}/{unknown}{suffix}", **extra)
        assert theirs.status_code == nobody.status_code == 404, (suffix, theirs.text)
        assert theirs.text.replace(mine, "<ID>") == nobody.text.replace(unknown, "<ID>")
        assert error_of(theirs)["code"] == "import-not-found"
    for url in (IMPORTS, "/api/v1/assets", "/api/v1/dependencies", "/api/v1/dependency-groups"):
        response = await api.get(url, headers=stranger)
        assert (response.status_code, response.json()["items"]) == (200, []), url
        assert (await api.get(url)).json()["items"], url  # while the owner sees data
    assert (await wait_status(api, mine))["status"] == "completed_with_errors"


# ----- reports -------------------------------------------------------------------------------


async def test_error_report_and_failed_rows_are_the_cli_reports(
    api: httpx.AsyncClient, engine: AsyncEngine, tenant: Tenant, tmp_path: Path
) -> None:
    data_import_id = await started(api, some_invalid_csv(tmp_path))
    done = await wait_status(api, data_import_id)
    assert (done["status"], done["invalid_rows"]) == ("completed_with_errors", 1)

    errors = await api.get(f"{IMPORTS}/{data_import_id}/errors")
    failed = await api.get(f"{IMPORTS}/{data_import_id}/failed-rows")

    for response, name in ((errors, "errors"), (failed, "failed-rows")):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert f"import-{data_import_id}-{name}.csv" in response.headers["content-disposition"]
    expected_errors, expected_failed = io.StringIO(newline=""), io.StringIO(newline="")
    await write_error_report(engine, tenant, uuid.UUID(data_import_id), expected_errors)
    await write_failed_rows(engine, tenant, uuid.UUID(data_import_id), expected_failed)
    assert errors.text == expected_errors.getvalue()
    assert failed.text == expected_failed.getvalue()
    report = list(csv.DictReader(io.StringIO(errors.text)))
    invalid_ip = [row for row in report if "999.1.1.1" in row["message"]]
    assert [(row["row"], row["severity"]) for row in invalid_ip] == [("2", "warning")]
    nameless = [row for row in report if row["code"] == "missing-required"]
    assert [(row["row"], row["severity"]) for row in nameless] == [("2", "error")]
    rejected = list(csv.reader(io.StringIO(failed.text)))
    assert rejected[0] == CMDB_HEADERS and len(rejected) == 2
    assert rejected[1][3] == "999.1.1.1"


# ----- decisions -----------------------------------------------------------------------------


async def test_retry_and_fail_of_a_completed_import_are_409_with_the_reason(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    data_import_id = await started(api, write_cmdb(tmp_path / "c.csv", 2))
    await wait_status(api, data_import_id, ("completed",))

    retry = await api.post(f"{IMPORTS}/{data_import_id}/retry")
    fail = await api.post(f"{IMPORTS}/{data_import_id}/fail", json={"reason": "changed my mind"})

    for response in (retry, fail):
        error = error_of(response)
        assert (response.status_code, error["code"]) == (409, "decision-refused")
        assert "is completed" in error["message"] and "needs attention" in error["message"]
    blank = await api.post(f"{IMPORTS}/{data_import_id}/fail", json={"reason": "  "})
    assert blank.status_code == 422
    assert (await wait_status(api, data_import_id))["status"] == "completed"


async def test_retry_with_a_mapping_finishes_an_import_that_needs_attention(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    data_import_id = await started(api, unmapped_csv(tmp_path))
    waiting = await wait_status(api, data_import_id)
    assert (waiting["status"], waiting["error_code"]) == ("needs_attention", "no-mapped-columns")

    bad = await api.post(
        f"{IMPORTS}/{data_import_id}/retry",
        json={"processing_config": {"max_invalid_ratio": 7}},
    )
    assert (bad.status_code, error_of(bad)["code"]) == (422, "invalid-processing-config")
    mapping = {"column_mapping": {"Server Label": "name", "Primary Address": "ip_address"}}
    accepted = await api.post(
        f"{IMPORTS}/{data_import_id}/retry", json={"processing_config": mapping}
    )

    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["accepted"] is True
    assert accepted.json()["status"]["data_import_id"] == data_import_id
    done = await wait_status(api, data_import_id, ("completed", "completed_with_errors"))
    assert (done["status"], done["assets_created"]) == ("completed", 2)


async def test_fail_finishes_an_import_that_needs_attention_with_the_reason(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    data_import_id = await started(api, mostly_invalid_csv(tmp_path))
    waiting = await wait_status(api, data_import_id)
    assert (waiting["status"], waiting["error_code"]) == (
        "needs_attention",
        "too-many-invalid-rows",
    )

    response = await api.post(
        f"{IMPORTS}/{data_import_id}/fail", json={"reason": "wrong extract, will resend"}
    )

    assert response.status_code == 202, response.text
    failed = await wait_status(api, data_import_id, ("failed",))
    assert failed["error_message"] == "wrong extract, will resend"
    again = await api.post(f"{IMPORTS}/{data_import_id}/retry")
    assert (again.status_code, error_of(again)["code"]) == (409, "decision-refused")
    assert "is failed" in error_of(again)["message"]


# ----- inventory -----------------------------------------------------------------------------


async def pages(api: httpx.AsyncClient, url: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following next_cursor."""
    found: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.get(url, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


async def test_inventory_lists_are_tenant_scoped_filtered_and_paginated(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    data_import_id = await started(api, write_cmdb(tmp_path / "c.csv", 5))
    await wait_status(api, data_import_id, ("completed",))

    asset_pages = await pages(api, "/api/v1/assets", limit=2)
    assert [len(page) for page in asset_pages] == [2, 2, 1]
    assets = [asset for page in asset_pages for asset in page]
    assert [a["name"] for a in assets] == [f"SRV-{n:06d}" for n in range(1, 6)]
    assert {a["source_import_id"] for a in assets} == {data_import_id}
    assert assets[0]["memory_gb"] == 16 and assets[0]["ip_address"] == "10.0.0.1"
    found = (await api.get("/api/v1/assets", params={"q": "srv-000003"})).json()["items"]
    assert [a["name"] for a in found] == ["SRV-000003"]
    typed = await api.get("/api/v1/assets", params={"asset_type": "no-such-type"})
    assert typed.json() == {"items": [], "next_cursor": None}

    dependency_pages = await pages(api, "/api/v1/dependencies", limit=3)
    dependencies = [d for page in dependency_pages for d in page]
    assert len(dependencies) == 4 and len({d["id"] for d in dependencies}) == 4
    edges = {(d["source_name"], d["target_name"]) for d in dependencies}
    assert edges == {(f"SRV-{n:06d}", f"SRV-{n - 1:06d}") for n in range(2, 6)}
    third = next(a["id"] for a in assets if a["name"] == "SRV-000003")
    around = (await api.get("/api/v1/dependencies", params={"asset_id": third})).json()["items"]
    assert len(around) == 2

    groups = (await api.get("/api/v1/dependency-groups")).json()
    assert groups["next_cursor"] is None
    assert [(g["assets"], g["dependencies"]) for g in groups["items"]] == [(5, 4)]
    assert groups["items"][0]["sample"] == [a["name"] for a in assets]
    assert groups["items"][0]["group"] == assets[0]["dependency_group"]
    bigger = await api.get("/api/v1/dependency-groups", params={"min_assets": 6})
    assert bigger.json()["items"] == []

    for url in ("/api/v1/assets", "/api/v1/dependencies", "/api/v1/dependency-groups"):
        bad = await api.get(url, params={"cursor": "garbage!"})
        assert (bad.status_code, error_of(bad)["code"]) == (422, "invalid-cursor"), url


async def test_an_asset_names_the_import_that_last_set_each_field(
    api: httpx.AsyncClient, engine: AsyncEngine, tenant: Tenant, tmp_path: Path
) -> None:
    first_file = write_csv(tmp_path / "a.csv", CMDB_HEADERS, [cmdb_row(1)])
    first = await started(api, first_file, filename="first.csv")
    await wait_status(api, first, ("completed",))
    row = cmdb_row(1)
    row[CMDB_HEADERS.index("owner")] = "Platform Team"
    row[CMDB_HEADERS.index("location")] = ""  # blank: the first import's location stays
    second_file = write_csv(tmp_path / "b.csv", CMDB_HEADERS, [row])
    second = await started(api, second_file, filename="second.csv")
    await wait_status(api, second, ("completed",))

    listed = (await api.get("/api/v1/assets")).json()["items"]
    assert len(listed) == 1 and "field_sources" not in listed[0]
    response = await api.get(f"/api/v1/assets/{listed[0]['id']}")
    assert response.status_code == 200, response.text
    detail = response.json()
    sources = detail.pop("field_sources")
    assert detail == listed[0]  # the fields the list shows, plus their sources
    assert detail["owner"] == "Platform Team" and detail["location"] == "Frankfurt"
    owner, location = sources["owner"], sources["location"]
    assert (owner["data_import_id"], owner["filename"], owner["category"]) == (
        second,
        "second.csv",
        "cmdb_export",
    )
    assert (location["data_import_id"], location["filename"]) == (first, "first.csv")
    assert owner["finished_at"] and location["finished_at"]
    assert "description" not in sources  # no import ever set it

    # A field whose import is gone (no import of the tenant has its seq) reads as null.
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE assets SET field_sources[CAST(:slot AS integer)] = 0 WHERE id = :id"),
            {"id": listed[0]["id"], "slot": FIELD_ORDER.index("location") + 1},
        )
    gone = (await api.get(f"/api/v1/assets/{listed[0]['id']}")).json()["field_sources"]
    assert gone["location"] is None and gone["owner"] == owner

    unknown = await api.get(f"/api/v1/assets/{uuid.uuid4()}")
    other_headers = await headers_of(engine, other_tenant())
    foreign = await api.get(f"/api/v1/assets/{listed[0]['id']}", headers=other_headers)
    assert unknown.status_code == foreign.status_code == 404
    assert error_of(unknown)["code"] == error_of(foreign)["code"] == "asset-not-found"


# ----- schema, the real server and the CLI ---------------------------------------------------


async def test_openapi_schema_lists_every_route_with_models(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()

    listed = {(method, path) for path, item in schema["paths"].items() for method in item}
    assert listed == ROUTES
    start = schema["paths"]["/api/v1/imports"]["post"]
    assert "multipart/form-data" in start["requestBody"]["content"]
    assert {"202", "413", "415", "422"} <= set(start["responses"])
    status = schema["paths"]["/api/v1/imports/{data_import_id}"]["get"]
    assert status["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ImportStatus"
    }
    assert {"ImportStatus", "ImportAccepted", "AssetOut", "ErrorBody"} <= set(
        schema["components"]["schemas"]
    )
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert all(
        operation["security"] == [{"bearer": []}]
        for item in schema["paths"].values()
        for operation in item.values()
    )
    docs = await api.get("/docs", headers={"Authorization": ""})  # the docs are open
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.fixture(scope="session")
def cli_env(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in TENANT_ENV}
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


async def run_cli(env: dict[str, str], tenant: Tenant, *args: str) -> str:
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
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_cli_and_api_agree_on_status_and_reports(
    api: httpx.AsyncClient, cli_env: dict[str, str], tenant: Tenant, tmp_path: Path
) -> None:
    data_import_id = await started(api, some_invalid_csv(tmp_path))
    from_api = await wait_status(api, data_import_id)

    from_cli = json.loads(await run_cli(cli_env, tenant, "status", data_import_id, "--json"))
    out, rejected = tmp_path / "errors.csv", tmp_path / "rejected.csv"
    await run_cli(
        cli_env, tenant, "errors", data_import_id, "--out", str(out), "--failed-rows", str(rejected)
    )

    assert from_api["status"] == "completed_with_errors"
    assert from_cli == from_api
    errors = await api.get(f"{IMPORTS}/{data_import_id}/errors")
    failed = await api.get(f"{IMPORTS}/{data_import_id}/failed-rows")
    assert errors.content == out.read_bytes()
    assert failed.content == rejected.read_bytes()

    from_cli_steps = json.loads(await run_cli(cli_env, tenant, "steps", data_import_id, "--json"))
    api_steps = (await api.get(f"{IMPORTS}/{data_import_id}/steps")).json()["items"]
    assert from_cli_steps == api_steps
    by_agent = {step["agent"]: step for step in api_steps}
    # the invalid IP is one finding of the format validator, which looked at every row
    assert sum(by_agent["format_validator"]["findings"].values()) >= 1
    assert by_agent["format_validator"]["records_processed"] == from_api["total_rows"]
    assert all(step["status"] == "completed" for step in api_steps)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_until_serving(http: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    for _ in range(300):
        assert process.returncode is None, "dataimport api exited"
        try:
            if (await http.get("/openapi.json")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("dataimport api never answered")


class TraceCollector(ThreadingHTTPServer):
    """A loopback OTLP/HTTP collector: keeps the span names of every export it receives."""

    def __init__(self) -> None:
        self.span_names: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                export = ExportTraceServiceRequest.FromString(body)
                collector.span_names += [
                    span.name
                    for resource in export.resource_spans
                    for scope in resource.scope_spans
                    for span in scope.spans
                ]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:  # keep test output quiet
                return

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def trace_collector() -> Iterator[TraceCollector]:
    collector = TraceCollector()
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    yield collector
    collector.shutdown()
    collector.server_close()


async def test_dataimport_api_serves_over_tcp(
    cli_env: dict[str, str],
    engine: AsyncEngine,
    tenant: Tenant,
    tmp_path: Path,
    trace_collector: TraceCollector,
) -> None:
    port = free_port()
    auth = await headers_of(engine, tenant)
    process = await asyncio.create_subprocess_exec(
        str(CLI),
        "api",
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**cli_env, "DATAIMPORT_OTEL_ENDPOINT": trace_collector.url},
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30
        ) as http:
            await wait_until_serving(http, process)
            data_import_id = await started(http, write_cmdb(tmp_path / "c.csv", 3))
            done = await wait_status(http, data_import_id)
            listed = (await http.get(IMPORTS)).json()["items"]
            wrong = {"Authorization": auth["Authorization"] + "x"}
            refused = await http.get(IMPORTS, headers=wrong)
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)

    assert (done["status"], done["assets_created"]) == ("completed", 3)
    assert [item["data_import_id"] for item in listed] == [data_import_id]
    assert refused.status_code == 401
    # the server's log (access lines included) never holds a key, right or wrong
    key = auth["Authorization"].removeprefix("Bearer ")
    assert b"GET /api/v1/imports" in err and key[12:].encode() not in err
    # uvicorn re-raises the SIGTERM it handled, after a clean shutdown
    assert process.returncode in (0, -15), err.decode()
    assert b"Application shutdown complete" in err and b"Traceback" not in err
    # tracing configured: the start of the import is exported, flushed at shutdown
    assert "StartWorkflow:DataImportWorkflow" in trace_collector.span_names


async def test_reports_of_an_import_whose_staging_was_purged_are_410(
    api: httpx.AsyncClient, engine: AsyncEngine, tenant: Tenant, tmp_path: Path
) -> None:
    data_import_id = await started(api, some_invalid_csv(tmp_path))
    done = await wait_status(api, data_import_id)
    async with engine.connect() as conn:
        completed_at = await conn.scalar(
            text("SELECT completed_at FROM data_imports WHERE id = :id"), {"id": data_import_id}
        )
    candidate = PurgeCandidate(
        data_import_id=uuid.UUID(data_import_id),
        client_account_id=tenant.client_account_id,
        engagement_id=tenant.engagement_id,
        completed_at=completed_at,
    )
    cutoff = datetime.now(UTC) + timedelta(days=1)
    purged = await retention.purge_import(engine, PurgeInput(candidate=candidate, cutoff=cutoff))
    assert purged.purged

    for name in ("errors", "failed-rows"):
        response = await api.get(f"{IMPORTS}/{data_import_id}/{name}")
        assert response.status_code == 410, name
        error = response.json()["error"]
        assert error["code"] == "staging-purged"
        assert data_import_id in error["message"]
    assert (await api.get(f"{IMPORTS}/{data_import_id}")).json()["status"] == done["status"]
