"""Staged rows in and results out, in bulk: COPY out to a frame, COPY in and one UPDATE.

A chunk is read with one `COPY (SELECT ...) TO STDOUT` (PostgreSQL extracts the cells from
JSONB in C, polars parses the CSV natively) and written back through a temporary table with
one COPY and one set-based UPDATE: no Python object per row on either side.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import polars as pl

from dataimport.categories.base import HeaderMapping
from dataimport.contracts import ImportRef, RowRange
from dataimport.engine.frame import BLANK, READ_ISSUES, ROW, ChunkFrame, jsonb_key_order, key_column

_EXTRA_KEYS = """
SELECT DISTINCT k FROM raw_import_records r, jsonb_object_keys(r.raw_data - $4::text[]) k
WHERE r.data_import_id = $1 AND r.row_number BETWEEN $2 AND $3
"""


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings: only quotes need doubling; staged
    text never holds NUL)."""
    return "'" + text.replace("'", "''") + "'"


def _scope(ref: ImportRef, rows: RowRange) -> str:
    # UUIDs and ints re-rendered from their parsed values: nothing of the caller's text.
    return (
        f"data_import_id = '{uuid.UUID(str(ref.data_import_id))}' "
        f"AND client_account_id = '{uuid.UUID(str(ref.client_account_id))}' "
        f"AND engagement_id = '{uuid.UUID(str(ref.engagement_id))}' "
        f"AND row_number BETWEEN {int(rows.first_row)} AND {int(rows.last_row)}"
    )


async def load_chunk(
    driver: asyncpg.Connection[Any],
    ref: ImportRef,
    rows: RowRange,
    headers: Sequence[str],
    mapping: HeaderMapping,
) -> ChunkFrame:
    """The chunk's staged rows as a frame: the file's headers plus any extra keys its rows
    carry (ragged rows stage extra cells as `_extra_N`)."""
    extra = await driver.fetch(
        _EXTRA_KEYS, ref.data_import_id, rows.first_row, rows.last_row, list(headers)
    )
    keys = jsonb_key_order([*headers, *(record[0] for record in extra)])
    cells = "".join(f", raw_data ->> {_literal(key)}" for key in keys)
    query = (
        f"SELECT row_number, is_blank, read_issues::text{cells} FROM raw_import_records "
        f"WHERE {_scope(ref, rows)} ORDER BY row_number"
    )
    sink = io.BytesIO()
    await driver.copy_from_query(query, output=_writer(sink), format="csv")
    names = [ROW, BLANK, READ_ISSUES, *(key_column(i) for i in range(len(keys)))]
    if sink.tell() == 0:
        frame = pl.DataFrame(schema=dict.fromkeys(names, pl.Utf8))
    else:
        frame = pl.read_csv(
            sink.getvalue(), has_header=False, new_columns=names, infer_schema=False
        )
    frame = frame.with_columns(
        pl.col(ROW).cast(pl.Int64),
        (pl.col(BLANK) == "t"),
        *(pl.col(key_column(i)).fill_null("") for i in range(len(keys))),
    )
    return ChunkFrame(frame, keys, mapping)


def _writer(sink: io.BytesIO) -> Any:
    async def write(data: bytes) -> None:
        sink.write(data)

    return write


_RESULTS_TABLE = """
CREATE TEMPORARY TABLE validated_rows (
  row_number int PRIMARY KEY, is_valid bool NOT NULL, errors jsonb NOT NULL, normalized jsonb
) ON COMMIT DROP
"""

_APPLY_RESULTS = """
UPDATE raw_import_records r SET is_valid = v.is_valid, validation_errors = v.errors,
  normalized_data = v.normalized, superseded = false
FROM validated_rows v
WHERE r.data_import_id = $1 AND r.client_account_id = $2 AND r.engagement_id = $3
  AND r.row_number BETWEEN $4 AND $5 AND r.row_number = v.row_number
"""

# Re-validated rows are not processed any more: enrichment links them anew.
_FORGET_LINKS = """
DELETE FROM staged_row_assets WHERE data_import_id = $1 AND row_number BETWEEN $2 AND $3
"""


async def write_results(
    driver: asyncpg.Connection[Any], ref: ImportRef, rows: RowRange, results: pl.DataFrame
) -> None:
    """One COPY of the chunk's results, one UPDATE from them, in one transaction of their own
    (a retried chunk overwrites, never appends)."""
    data = results.select(ROW, "is_valid", "errors", "normalized").write_csv(include_header=False)
    async with driver.transaction():
        # Inside a caller's transaction this is a savepoint, and ON COMMIT DROP waits for the
        # outer commit: a range validated in parts makes the table once per part.
        await driver.execute("DROP TABLE IF EXISTS pg_temp.validated_rows")
        await driver.execute(_RESULTS_TABLE)
        await driver.copy_to_table(
            "validated_rows",
            source=io.BytesIO(data.encode()),
            columns=[ROW, "is_valid", "errors", "normalized"],
            format="csv",
        )
        # The row range bounds the scan to the chunk (an import's other rows are never read).
        await driver.execute(
            _APPLY_RESULTS,
            ref.data_import_id,
            ref.client_account_id,
            ref.engagement_id,
            rows.first_row,
            rows.last_row,
        )
        await driver.execute(_FORGET_LINKS, ref.data_import_id, rows.first_row, rows.last_row)
