"""The upload path under abuse: capped multipart part headers, racing uploads of one request id.

Real PostgreSQL, real Temporal (the session worker), the app in-process over ASGI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport.api.upload import MAX_PART_HEADER_BYTES, MAX_PART_HEADER_LINE, MAX_PART_HEADERS
from dataimport.imports import Tenant
from dataimport.settings import Settings
from tests.factories import write_cmdb
from tests.test_api import IMPORTS, error_of, small_limit_api, storage_files

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


async def _count(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(sql), params) or 0)
