"""Bad files end with a clear, classified error through the real workflow; no worker crashes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from service.imports import ImportService
from tests.factories import CMDB_HEADERS, TERMINAL_OR_WAITING, cmdb_row, wait_for, write_csv


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


HEADER = ",".join(CMDB_HEADERS).encode()
GOOD_ROW = ",".join(cmdb_row(1)).encode()

WHOLE_FILE_FAILURES = {
    "empty": (b"", "empty-file"),
    "header_only": (HEADER + b"\r\n", "no-data-rows"),
    "binary_png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "unsupported-format"),
    "binary_nul": (b"name,ip\x00\x00\x01\x02" * 500, "unsupported-format"),
    "unclosed_quote": (
        HEADER + b"\n" + GOOD_ROW + b'\nA-2,"SRV-2,Server\n' + GOOD_ROW * 3,
        "unclosed-quote",
    ),
    "oversized_field": (b"name,notes\nSRV-1," + b"x" * 2_000_000 + b"\n", "field-too-large"),
    "wrong_encoding_utf16_no_bom": (
        "name,ip\nSRV-1,10.0.0.1\n".encode("utf-16-le"),
        "unsupported-format",
    ),
}


@pytest.mark.parametrize("case", sorted(WHOLE_FILE_FAILURES))
async def test_unreadable_file_needs_attention_with_its_code(
    case: str, service: ImportService, engine: AsyncEngine, worker: Worker, tmp_path: Path
) -> None:
    data, code = WHOLE_FILE_FAILURES[case]
    started = await service.start_import(_write(tmp_path / "upload.csv", data), "cmdb_export")
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)

    assert (status.status, status.error_code) == ("needs_attention", code)
    assert status.error_message and "Traceback" not in status.error_message
    assert len(status.error_message) < 500
    async with engine.connect() as conn:
        assets = await conn.scalar(
            text("SELECT count(*) FROM assets WHERE source_import_id = :id"),
            {"id": started.data_import_id},
        )
    assert assets == 0
    assert worker.is_running
    await service.fail(started.data_import_id, "bad file")


async def test_ragged_rows_are_kept_and_reported_not_dropped(
    service: ImportService, engine: AsyncEngine, worker: Worker, tmp_path: Path
) -> None:
    path = tmp_path / "ragged.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CMDB_HEADERS)
        writer.writerow(cmdb_row(1))
        writer.writerow([*cmdb_row(2), "surplus"])
        writer.writerow(cmdb_row(3)[:5])
        writer.writerow([""] * len(CMDB_HEADERS))
        writer.writerow(cmdb_row(4))
    started = await service.start_import(path, "cmdb_export")
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)

    assert status.status == "completed"
    assert (status.total_rows, status.valid_rows, status.blank_rows) == (5, 4, 1)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT row_number, raw_data, validation_errors FROM raw_import_records "
                    "WHERE data_import_id = :id ORDER BY row_number"
                ),
                {"id": started.data_import_id},
            )
        ).all()
    codes = {row[0]: {issue["code"] for issue in row[2]} for row in rows}
    assert "extra-cell" in codes[2] and rows[1][1]["_extra_1"] == "surplus"
    assert "missing-cell" in codes[3]
    assert "blank-row" in codes[4]


async def test_windows_1252_semicolon_file_imports_with_accents(
    service: ImportService, engine: AsyncEngine, worker: Worker, tmp_path: Path
) -> None:
    content = "name;owner;location\r\nSRV-É1;José Müller;Zürich\r\nSRV-2;Renée;Besançon\r\n"
    path = _write(tmp_path / "legacy.csv", content.encode("cp1252"))
    started = await service.start_import(path, "cmdb_export")
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)

    assert (status.status, status.assets_created) == ("completed", 2)
    async with engine.connect() as conn:
        owners = list(
            await conn.scalars(
                text("SELECT owner FROM assets WHERE source_import_id = :id ORDER BY name"),
                {"id": started.data_import_id},
            )
        )
    assert owners == ["Renée", "José Müller"]


async def test_formula_cells_are_flagged_but_kept(
    service: ImportService, worker: Worker, tmp_path: Path
) -> None:
    rows = [cmdb_row(1), cmdb_row(2)]
    rows[1][11] = '=HYPERLINK("http://evil","click")'
    path = write_csv(tmp_path / "f.csv", CMDB_HEADERS, rows)
    started = await service.start_import(path, "cmdb_export")
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert (status.status, status.valid_rows, status.warning_rows) == ("completed", 2, 1)
