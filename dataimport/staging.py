"""Ingest: stream a stored file into raw_import_records with COPY, resumably.

Each batch is committed in its own transaction, so the staged rows are always a prefix of
the file; a retried attempt resumes after the highest committed row number.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.categories import get_category
from dataimport.contracts import ImportRef, IngestResult
from dataimport.db import driver_connection
from dataimport.readers import SourceRow, open_table
from dataimport.storage import local_path

COPY_COLUMNS = (
    "client_account_id",
    "engagement_id",
    "data_import_id",
    "row_number",
    "raw_data",
    "read_issues",
    "is_blank",
)

Record = tuple[Any, ...]


async def staged_row_count(engine: AsyncEngine, ref: ImportRef) -> int:
    """Highest committed row number: the resume point of an interrupted ingest."""
    async with engine.connect() as conn:
        value = await conn.scalar(
            text(
                "SELECT coalesce(max(row_number), 0) FROM raw_import_records "
                "WHERE data_import_id = :id"
            ),
            {"id": ref.data_import_id},
        )
    return int(value or 0)


def _to_record(ref: ImportRef, row: SourceRow) -> Record:
    issues = [issue.to_json() for issue in row.issues] or None
    return (
        ref.client_account_id,
        ref.engagement_id,
        ref.data_import_id,
        row.row_number,
        json.dumps(row.cells, ensure_ascii=False),
        json.dumps(issues) if issues else None,
        row.is_blank,
    )


def _next_batch(rows: Iterator[SourceRow], ref: ImportRef, size: int) -> list[Record]:
    return [_to_record(ref, row) for row in islice(rows, size)]


async def _copy_batch(engine: AsyncEngine, records: list[Record]) -> None:
    async with engine.begin() as conn:
        driver = await driver_connection(conn)
        await driver.copy_records_to_table(
            "raw_import_records", records=records, columns=COPY_COLUMNS
        )


async def ingest_file(
    engine: AsyncEngine,
    ref: ImportRef,
    file_uri: str,
    *,
    max_field_size: int,
    batch_size: int = 5000,
    on_progress: Callable[[int], None] = lambda _row: None,
) -> IngestResult:
    """Stage every row of the file; safe to call again after a crash at any point."""
    resume_after = await staged_row_count(engine, ref)
    on_progress(resume_after)
    sheet_plan = get_category(ref.category).sheet_plan
    source = local_path(file_uri)
    with open_table(source, max_field_size=max_field_size, sheet_plan=sheet_plan) as table:
        rows = table.rows(start_after=resume_after)
        while batch := await asyncio.to_thread(_next_batch, rows, ref, batch_size):
            await _copy_batch(engine, batch)
            on_progress(batch[-1][3])
        detected = table.describe()
        headers = list(table.headers)
    result = await _record_ingest(engine, ref, detected, headers)
    async with engine.connect() as conn:
        # Fresh statistics: the validation and enrichment plans depend on them.
        await conn.execute(text("ANALYZE raw_import_records"))
        await conn.commit()
    return result


async def _record_ingest(
    engine: AsyncEngine, ref: ImportRef, detected: dict[str, str], headers: list[str]
) -> IngestResult:
    async with engine.begin() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT count(*), count(*) FILTER (WHERE is_blank) FROM raw_import_records "
                    "WHERE data_import_id = :id"
                ),
                {"id": ref.data_import_id},
            )
        ).one()
        await conn.execute(
            text(
                "UPDATE data_imports SET detected_format = CAST(:fmt AS jsonb), "
                "total_rows = :total, blank_rows = :blank, updated_at = now() "
                "WHERE id = :id AND client_account_id = :c AND engagement_id = :e"
            ),
            {
                "fmt": json.dumps({**detected, "headers": headers}),
                "total": counts[0],
                "blank": counts[1],
                "id": ref.data_import_id,
                "c": ref.client_account_id,
                "e": ref.engagement_id,
            },
        )
    return IngestResult(
        total_rows=counts[0],
        blank_rows=counts[1],
        detected_format=detected,
        column_count=len(headers),
    )
