"""The upload path under abuse: capped multipart part headers, racing uploads of one request id.

Real PostgreSQL, real Temporal (the session worker), the app in-process over ASGI.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport import flows
from dataimport.api import create_app
from dataimport.api.upload import MAX_PART_HEADER_BYTES, MAX_PART_HEADER_LINE, MAX_PART_HEADERS
from dataimport.contracts import ImportRequest
from dataimport.flows import REQUEST_ID_TAKEN
from dataimport.imports import Tenant
from dataimport.issues import ImportFailure
from dataimport.migrate import downgrade, upgrade
from dataimport.settings import Settings
from devstack import embedded
from service.imports import ImportService
from tests.factories import (
    IMPORTS,
    TERMINAL_OR_WAITING,
    error_of,
    headers_of,
    small_limit_api,
    storage_files,
    wait_for,
    write_cmdb,
)

pytestmark = pytest.mark.usefixtures("worker")

BOUNDARY = "hardening-boundary"


def multipart(file_headers: list[str], data: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="import_category"\r\n\r\n'
        f"cmdb_export\r\n--{BOUNDARY}\r\n" + "".join(f"{h}\r\n" for h in file_headers) + "\r\n"
    )
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


FILE_DISPOSITION = 'Content-Disposition: form-data; name="file"; filename="servers.csv"'


async def test_part_headers_are_capped_in_count_and_size(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, tmp_path: Path
) -> None:
    storage = tmp_path / "uploads"
    data = write_cmdb(tmp_path / "cmdb.csv", 1).read_bytes()
    many = [FILE_DISPOSITION] + [f"X-Extra-{n}: {n}" for n in range(MAX_PART_HEADERS)]
    long_line = [FILE_DISPOSITION, "X-Long: " + "a" * MAX_PART_HEADER_LINE]
    # Each line within its cap, together over the part's cap.
    lines = MAX_PART_HEADER_BYTES // (MAX_PART_HEADER_LINE // 2) + 1
    long_all = [FILE_DISPOSITION] + [
        f"X-Part-{n}: " + "b" * (MAX_PART_HEADER_LINE // 2) for n in range(lines)
    ]
    just_right = [FILE_DISPOSITION] + [f"X-Extra-{n}: {n}" for n in range(MAX_PART_HEADERS - 1)]
    http = await small_limit_api(settings, engine, client, tenant, storage)
    async with http:
        answers = [
            await http.post(
                IMPORTS,
                content=multipart(headers, data),
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            )
            for headers in (many, long_line, long_all, just_right)
        ]

    *refused, accepted = answers
    for answer in refused:
        assert (answer.status_code, error_of(answer)["code"]) == (413, "part-headers-too-large")
    messages = [error_of(answer)["message"] for answer in refused]
    assert f"more than {MAX_PART_HEADERS} headers" in messages[0]
    assert f"longer than {MAX_PART_HEADER_LINE} bytes" in messages[1]
    assert f"more than {MAX_PART_HEADER_BYTES} bytes" in messages[2]
    assert accepted.status_code == 202, accepted.text
    assert len(storage_files(storage)) == 1  # the refused uploads left nothing behind


# ----- one request id, one import, even when uploads race ---------------------------------


async def _imports_of(engine: AsyncEngine, tenant: Tenant, request_id: str) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text(
                "SELECT count(*) FROM data_imports WHERE request_id = :rid "
                "AND client_account_id = :c AND engagement_id = :e"
            ),
            {**tenant.params(), "rid": request_id},
        )
    return int(found or 0)


def _racing(service: ImportService) -> ImportService:
    """Both calls read "no such request id" before either writes, as two racing uploads can."""

    async def nothing_yet(request_id: str | None) -> None:
        return None

    service._same_request = nothing_yet  # type: ignore[method-assign]
    return service


async def test_racing_start_imports_with_one_request_id_give_one_import_and_one_file(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, tmp_path: Path
) -> None:
    before = set(storage_files(settings.uploads_dir))
    first_file = write_cmdb(tmp_path / "first.csv", 3)
    second_file = write_cmdb(tmp_path / "second.csv", 5)
    services = [_racing(ImportService(settings, engine, client, tenant)) for _ in range(2)]

    answers = await asyncio.gather(
        services[0].start_import(first_file, "cmdb_export", request_id="race-1"),
        services[1].start_import(second_file, "cmdb_export", request_id="race-1"),
    )

    assert answers[0].data_import_id == answers[1].data_import_id
    assert await _imports_of(engine, tenant, "race-1") == 1
    # The loser's copy is gone, the winner's is intact (a file of its own, never overwritten).
    assert len(set(storage_files(settings.uploads_dir)) - before) == 1
    done = await wait_for(services[0], answers[0].data_import_id, TERMINAL_OR_WAITING)
    assert done.status == "completed", done
    assert done.total_rows in (3, 5)


async def test_racing_api_uploads_with_one_request_id_give_one_import_and_one_file(
    settings: Settings, engine: AsyncEngine, client: Client, tenant: Tenant, tmp_path: Path
) -> None:
    before = set(storage_files(settings.uploads_dir))
    app = create_app(settings, engine, client)
    headers = await headers_of(engine, tenant)
    data = [write_cmdb(tmp_path / f"c{n}.csv", 2 + n).read_bytes() for n in range(3)]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
    ) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    IMPORTS,
                    data={"import_category": "cmdb_export", "request_id": "race-api"},
                    files={"file": ("servers.csv", content)},
                )
                for content in data
            )
        )
        ids = {answer.json()["data_import_id"] for answer in answers}

    assert [answer.status_code for answer in answers] == [202, 202, 202], answers
    assert len(ids) == 1
    assert await _imports_of(engine, tenant, "race-api") == 1
    assert len(set(storage_files(settings.uploads_dir)) - before) == 1
    service = ImportService(settings, engine, client, tenant)
    done = await wait_for(service, uuid.UUID(ids.pop()), TERMINAL_OR_WAITING)
    assert done.status == "completed", done


async def test_a_taken_request_id_under_another_import_id_is_refused_not_shared(
    service: ImportService, engine: AsyncEngine, tenant: Tenant, tmp_path: Path
) -> None:
    """An import recorded with a random id (before ids came from request ids, or by hand)
    keeps its request id: a second record with it is refused by the unique index."""
    first = await service.start_import(
        write_cmdb(tmp_path / "a.csv", 2), "cmdb_export", request_id="taken-1"
    )
    async with engine.begin() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(
                text(
                    "INSERT INTO data_imports (id, client_account_id, engagement_id, "
                    "import_category, filename, file_uri, workflow_id, request_id) VALUES "
                    "(gen_random_uuid(), :c, :e, 'cmdb_export', 'f', 'file:///f', 'w', 'taken-1')"
                ),
                tenant.params(),
            )
    await wait_for(service, first.data_import_id, TERMINAL_OR_WAITING)


@pytest.fixture(scope="module")
def scratch_url(stack_dir: Path, database_url: str) -> str:
    """A database of its own: this test downgrades it."""
    port = int(database_url.rsplit(":", 1)[1].split("/")[0])
    return embedded.start_postgres(  # migrations run as the owner
        stack_dir, database="request_id_migration", port=port
    ).owner_database_url


def test_migration_keeps_the_request_id_on_the_oldest_import_only(scratch_url: str) -> None:
    downgrade(scratch_url, "base")
    upgrade(scratch_url, "0006_api_keys")
    c, e = uuid.uuid4(), uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(4)]

    async def seed() -> None:
        conn = await asyncpg.connect(scratch_url)
        try:
            for n, (data_import_id, request_id) in enumerate(
                zip(ids, ["dup", "dup", "dup", "single"], strict=True)
            ):
                await conn.execute(
                    "INSERT INTO data_imports (id, client_account_id, engagement_id, "
                    "import_category, filename, file_uri, workflow_id, request_id, created_at) "
                    "VALUES ($1, $2, $3, 'cmdb_export', 'f', 'file:///f', 'w', $4, "
                    "now() - make_interval(days => $5))",
                    data_import_id,
                    c,
                    e,
                    request_id,
                    10 - n,
                )
        finally:
            await conn.close()

    async def request_ids() -> dict[uuid.UUID, str | None]:
        conn = await asyncpg.connect(scratch_url)
        try:
            rows = await conn.fetch(
                "SELECT id, request_id FROM data_imports WHERE engagement_id = $1", e
            )
            return {row[0]: row[1] for row in rows}
        finally:
            await conn.close()

    asyncio.run(seed())
    upgrade(scratch_url)
    assert asyncio.run(request_ids()) == {
        ids[0]: "dup",
        ids[1]: None,
        ids[2]: None,
        ids[3]: "single",
    }
    downgrade(scratch_url, "0006_api_keys")
    upgrade(scratch_url)


async def test_a_workflow_reusing_a_taken_request_id_is_refused_classified(
    service: ImportService, engine: AsyncEngine, tenant: Tenant, tmp_path: Path
) -> None:
    first = await service.start_import(
        write_cmdb(tmp_path / "a.csv", 2), "cmdb_export", request_id="taken-2"
    )
    hand_made = ImportRequest(
        data_import_id=uuid.uuid4(),  # not the id the service derives from the request id
        client_account_id=tenant.client_account_id,
        engagement_id=tenant.engagement_id,
        category="cmdb_export",
        file_uri="file:///nowhere/x.upload",
        filename="x.csv",
        request_id="taken-2",
    )

    with pytest.raises(ImportFailure) as refused:
        await flows.register_import(engine, hand_made, "hand-made")
    assert refused.value.code == REQUEST_ID_TAKEN.code
    assert await _imports_of(engine, tenant, "taken-2") == 1
    await wait_for(service, first.data_import_id, TERMINAL_OR_WAITING)
