"""Error artifacts users download: the findings report and the rejected rows, as CSV.

Both are streamed from the database and every cell is formula-escaped, so opening them in a
spreadsheet can never run anything (CSV injection). Once staging retention has removed an
import's staged rows, both answer `StagingPurged` (saying so) instead of an empty report.
"""

from __future__ import annotations

import csv
import uuid
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.categories import get_category
from dataimport.imports import Tenant, error_rows, failed_rows, get_import, source_headers
from dataimport.readers import escape_formula
from dataimport.retention import StagingPurged, staging_removed_at

REPORT_COLUMNS = ["row", "column", "code", "severity", "message"]


def _safe(value: object) -> str:
    return escape_formula("" if value is None else str(value))


async def _staged_rows_kept(engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID) -> None:
    """Raise StagingPurged once retention has started removing the import's staged rows.

    Checked before and after writing: a report whose rows retention began removing meanwhile
    may be partial, so it is refused too.
    """
    removed_at = await staging_removed_at(engine, tenant, data_import_id)
    if removed_at is not None:
        raise StagingPurged(data_import_id, removed_at)


async def write_error_report(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID, handle: TextIO
) -> int:
    """Every finding as one CSV row (row, column, code, severity, message)."""
    await _staged_rows_kept(engine, tenant, data_import_id)
    writer = csv.writer(handle)
    writer.writerow(REPORT_COLUMNS)
    count = 0
    async for item in error_rows(engine, tenant, data_import_id):
        fields = ("row_number", "field", "code", "severity", "message")
        writer.writerow([_safe(item[key]) for key in fields])
        count += 1
    await _staged_rows_kept(engine, tenant, data_import_id)
    return count


async def write_failed_rows(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID, handle: TextIO
) -> int:
    """The rejected rows in the file's own columns, ready to fix and import again.

    Values of categories that mask them (sensitive data) are masked here too.
    """
    status = await get_import(engine, tenant, data_import_id)
    headers = await source_headers(engine, tenant, data_import_id)
    if status is None or headers is None:
        raise LookupError(f"no import {data_import_id}")
    await _staged_rows_kept(engine, tenant, data_import_id)
    masked = get_category(status.category).masks_values
    writer = csv.writer(handle)
    writer.writerow([_safe(header) for header in headers])
    count = 0
    async for _, cells in failed_rows(engine, tenant, data_import_id, masked=masked):
        writer.writerow([_safe(cells.get(header)) for header in headers])
        count += 1
    await _staged_rows_kept(engine, tenant, data_import_id)
    return count
