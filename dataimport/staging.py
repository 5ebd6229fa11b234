"""Ingest: stream a stored file into raw_import_records with COPY, resumably.

Each batch is committed in its own transaction, so the staged rows are always a prefix of
the file; a retried attempt resumes after the highest committed row number.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.categories import get_category
from dataimport.categories.base import ImportCategory
from dataimport.contracts import ChunkReport, ImportRef, IngestResult, ProcessingConfig
from dataimport.db import driver_connection
from dataimport.engine.staged_batch import BatchValidation
from dataimport.issues import ImportFailure
from dataimport.readers import SourceRow, open_table
from dataimport.readers.csv_reader import CsvRowReader
from dataimport.readers.fast_csv import FastCsvStream, row_json
from dataimport.storage import local_path
from dataimport.validation import header_mapping

COPY_COLUMNS = (
    "client_account_id",
    "engagement_id",
    "data_import_id",
    "row_number",
    "raw_data",
    "read_issues",
    "is_blank",
)

# With validation at ingest, every batch also carries its results.
RESULT_COLUMNS = ("is_valid", "validation_errors", "normalized_data")
_JSON_COLUMNS = ("raw_data", "read_issues", "validation_errors", "normalized_data")

Record = tuple[Any, ...]
log = logging.getLogger("dataimport.staging")


# The end of the staged prefix: the last row before the first missing one. Batches commit in
# their own transactions, several at a time, so a crash can leave a later batch committed and
# an earlier one not; rows past the prefix are staged again and skipped where they exist.
# Row numbers are unique and start at 1, so rows 1..n are all there exactly when the k-th
# smallest is k for every k <= n: one ordered pass over the import's rows (its unique index),
# linear whatever the planner estimates (as an anti-join "no row n + 1" it could be a nested
# loop of scans, quadratic: minutes for a resume after 20,000 rows).
_PREFIX_END = """
WITH numbered AS MATERIALIZED (
  SELECT row_number, row_number() OVER (ORDER BY row_number) AS k
  FROM raw_import_records WHERE data_import_id = :id
)
SELECT coalesce((SELECT min(k) - 1 FROM numbered WHERE row_number <> k),
                (SELECT count(*) FROM numbered)) AS prefix_end,
  EXISTS (SELECT 1 FROM numbered) AS any_staged
"""


async def staged_prefix(engine: AsyncEngine, ref: ImportRef) -> tuple[int, bool]:
    """(n, any): rows 1..n are all staged (the resume point of an interrupted ingest), and
    whether any row is staged at all (past n some may be)."""
    async with engine.connect() as conn:
        row = (await conn.execute(text(_PREFIX_END), {"id": ref.data_import_id})).one()
    return int(row.prefix_end or 0), bool(row.any_staged)


async def staged_row_count(engine: AsyncEngine, ref: ImportRef) -> int:
    """Rows 1..n all staged: the resume point of an interrupted ingest."""
    return (await staged_prefix(engine, ref))[0]


def _to_record(ref: ImportRef, row: SourceRow) -> Record:
    raw_data, read_issues = row_json(row)
    return (
        ref.client_account_id,
        ref.engagement_id,
        ref.data_import_id,
        row.row_number,
        raw_data,
        read_issues,
        row.is_blank,
    )


@dataclass(frozen=True, slots=True)
class _Batch:
    """One transaction's rows: prepared records (reference path) or COPY text (fast)."""

    last_row: int
    records: list[Record] | None = None
    text: bytes | None = None
    columns: tuple[str, ...] = COPY_COLUMNS


def _record_batches(
    rows: Iterator[SourceRow],
    ref: ImportRef,
    size: int,
    validation: BatchValidation | None = None,
) -> Iterator[_Batch]:
    while records := [_to_record(ref, row) for row in islice(rows, size)]:
        if validation is None:
            yield _Batch(last_row=records[-1][3], records=records)
        else:
            frame = pl.DataFrame(
                [record[3:] for record in records], schema=_FRAME_SCHEMA, orient="row"
            )
            yield _text_batch(frame, ref, validation)


_FRAME_SCHEMA = {
    "row_number": pl.Int64,
    "raw_data": pl.String,
    "read_issues": pl.String,
    "is_blank": pl.Boolean,
}


def _fast_batches(
    stream: FastCsvStream,
    ref: ImportRef,
    start_after: int,
    size: int,
    validation: BatchValidation | None = None,
) -> Generator[_Batch, None, None]:
    for frame in stream.batches(start_after, size):
        yield _text_batch(frame, ref, validation)


def _text_batch(frame: pl.DataFrame, ref: ImportRef, validation: BatchValidation | None) -> _Batch:
    """A frame of (row_number, raw_data, read_issues, is_blank) as COPY text, validated first
    when a validation is given."""
    columns: tuple[str, ...] = COPY_COLUMNS
    if validation is not None:
        frame = validation.validate_batch(frame)
        columns = (*COPY_COLUMNS, *RESULT_COLUMNS)
    last_row = int(frame["row_number"].max())  # type: ignore[arg-type]
    return _Batch(last_row=last_row, text=_copy_text(frame, ref, columns), columns=columns)


def _copy_text(frame: pl.DataFrame, ref: ImportRef, columns: tuple[str, ...]) -> bytes:
    """COPY ... (FORMAT text) input. JSON text holds no raw tab, CR or LF (json.dumps and
    polars escape control characters), so a backslash is the one character the text format
    needs escaped; NULL is \\N."""
    constants = {
        "client_account_id": str(ref.client_account_id),
        "engagement_id": str(ref.engagement_id),
        "data_import_id": str(ref.data_import_id),
    }
    out = frame.select(
        *(
            pl.lit(constants[name]).alias(name)
            if name in constants
            else pl.col(name).str.replace_all("\\", "\\\\", literal=True)
            if name in _JSON_COLUMNS
            else pl.col(name)
            for name in columns
        )
    )
    buffer = io.BytesIO()
    out.write_csv(
        buffer, include_header=False, separator="\t", quote_style="never", null_value="\\N"
    )
    return buffer.getvalue()


# PostgreSQL refuses COPY FROM into a table under row-level security (raw_import_records is,
# migration 0006): a batch is copied into a temporary table of the session, then inserted
# with one statement, which checks every row's tenant against the transaction's.
_BATCH_TABLE = "staged_batch"
_CREATE_BATCH_TABLE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_BATCH_TABLE} ON COMMIT DELETE ROWS AS
SELECT {", ".join((*COPY_COLUMNS, *RESULT_COLUMNS))} FROM raw_import_records WITH NO DATA
"""


def _insert_batch(columns: tuple[str, ...], *, resumed: bool) -> str:
    names = ", ".join(columns)
    insert = f"INSERT INTO raw_import_records ({names}) SELECT {names} FROM {_BATCH_TABLE}"
    # Past a resume point some batches may already be there (committed after a missing one).
    return f"{insert} ON CONFLICT (data_import_id, row_number) DO NOTHING" if resumed else insert


async def _copy_batch(engine: AsyncEngine, batch: _Batch, *, resumed: bool) -> None:
    async with engine.begin() as conn:
        driver = await driver_connection(conn)
        # A batch commit need not wait for its WAL flush: the resume point is read back from
        # the table (never from the heartbeat), and WAL is replayed in order, so a database
        # crash can only lose the newest batches, leaving a prefix. _record_ingest commits
        # synchronously, which flushes every batch before it: nothing is reported staged
        # that is not durable.
        await driver.execute("SET LOCAL synchronous_commit = off")
        await driver.execute(_CREATE_BATCH_TABLE)
        if batch.text is not None:
            # memoryview: asyncpg would take plain bytes for a file path.
            await driver.copy_to_table(
                _BATCH_TABLE,
                source=memoryview(batch.text),
                columns=batch.columns,
                format="text",
            )
            await driver.execute(_insert_batch(batch.columns, resumed=resumed))
        else:
            await driver.copy_records_to_table(
                _BATCH_TABLE, records=batch.records, columns=COPY_COLUMNS
            )
            await driver.execute(_insert_batch(COPY_COLUMNS, resumed=resumed))


# Batches in flight at once, each COPYing on a connection of its own: one connection's COPY
# and INSERT (the server parsing JSONB, checking the tenant policy, updating two indexes) is
# the slowest part of ingest, so two overlap it with each other and with the parsing thread.
STAGING_WRITERS = 2


async def _stage(
    engine: AsyncEngine,
    batches: Iterator[_Batch],
    on_progress: Callable[[int], None],
    *,
    resumed: bool,
    writers: int | None = None,
) -> None:
    """COPY every batch in its own transaction, `writers` at a time, preparing the next one
    meanwhile (in a thread: parsing overlaps the server's work). Batches may commit out of
    order; progress reports the end of the committed prefix. At most writers + 1 batches are
    in memory."""
    _end = _Batch(last_row=-1)
    writers = writers or STAGING_WRITERS

    def produce() -> _Batch:
        return next(batches, _end)

    pending: asyncio.Future[_Batch] = asyncio.ensure_future(asyncio.to_thread(produce))
    in_flight: set[asyncio.Task[None]] = set()
    order: list[tuple[asyncio.Task[None], int]] = []  # in file order: (its COPY, its last row)
    try:
        # Shielded: a cancelled activity must not mark the thread's future done while the
        # thread still runs the generator (the wait below would then not wait for it).
        while (batch := await asyncio.shield(pending)) is not _end:
            pending = asyncio.ensure_future(asyncio.to_thread(produce))
            task = asyncio.ensure_future(_copy_batch(engine, batch, resumed=resumed))
            in_flight.add(task)
            order.append((task, batch.last_row))
            if len(in_flight) >= writers:
                done, in_flight = await asyncio.wait(in_flight, return_when=FIRST_COMPLETED)
                for finished in done:
                    finished.result()  # a failed COPY fails the stage
                order = _report_prefix(order, on_progress)
        for task in in_flight:
            await task
        _report_prefix(order, on_progress)
    finally:
        # Nothing of this attempt may still write afterwards, nor read the file under a close.
        # The COPYs in flight are waited for, never cancelled: a statement cancelled under
        # SQLAlchemy's pool can leave its connection inside the open transaction, and the
        # next batch on it would then insert the cancelled batch's rows too (and hold its
        # locks until then). Each is one batch, so the wait is short; rows it commits are
        # found by the next attempt's resume pass.
        await asyncio.gather(*in_flight, return_exceptions=True)
        await asyncio.wait([pending])
        if not pending.cancelled():
            pending.exception()  # retrieved: a failure after ours is not reported twice


def _report_prefix(
    order: list[tuple[asyncio.Task[None], int]], on_progress: Callable[[int], None]
) -> list[tuple[asyncio.Task[None], int]]:
    """Report the last row of the committed prefix; returns the batches not yet in it."""
    committed = 0
    while committed < len(order) and order[committed][0].done():
        committed += 1
    if committed:
        on_progress(order[committed - 1][1])
    return order[committed:]


async def ingest_file(
    engine: AsyncEngine,
    ref: ImportRef,
    file_uri: str,
    *,
    storage_root: Path,
    max_field_size: int,
    batch_size: int = 5000,
    on_progress: Callable[[int], None] = lambda _row: None,
    fast_path: bool = True,
    validate_with: ProcessingConfig | None = None,
) -> IngestResult:
    """Stage every row of the file; safe to call again after a crash at any point.

    CSV goes through the native fast path (readers.fast_csv) as far as the file is regular,
    then on through the reference reader; fast_path=False uses the reference reader only.
    With `validate_with`, a CSV of a columnar category is validated batch by batch as it is
    staged (`IngestResult.validation` then says so); anything else is validated later.
    The file must lie inside `storage_root` (storage.local_path): the URI is workflow input.
    """
    source = local_path(file_uri, storage_root)
    resume_after, resumed = await staged_prefix(engine, ref)
    on_progress(resume_after)
    category = get_category(ref.category)
    # Off the event loop: opening a workbook parses its sheets (tens of seconds for 100k VMs
    # on a busy machine), and the activity must keep heartbeating meanwhile.
    opened = await asyncio.to_thread(
        open_table, source, max_field_size=max_field_size, sheet_plan=category.sheet_plan
    )
    with opened as table:
        reader = table.row_reader
        validation = (
            _batch_validation(category, list(table.headers), validate_with)
            if validate_with is not None and isinstance(reader, CsvRowReader)
            else None
        )
        if validation is not None:
            batch_size = VALIDATED_BATCH_ROWS
        if fast_path and isinstance(reader, CsvRowReader):
            # A validated batch takes the parsed cells along: validation reads them as they are.
            stream = FastCsvStream(reader, with_cells=validation is not None)
            fast = _fast_batches(stream, ref, resume_after, batch_size, validation)
            try:
                await _stage(engine, fast, on_progress, resumed=resumed)
            finally:
                fast.close()
            if stream.fallback_after is not None:
                log.info(
                    "irregular CSV after row %d: the reference reader goes on",
                    stream.fallback_after,
                )
                resume_after = stream.fallback_after
            else:
                resume_after = -1  # done
        if resume_after >= 0:
            rows = table.rows(start_after=resume_after)
            batches = _record_batches(rows, ref, batch_size, validation)
            await _stage(engine, batches, on_progress, resumed=resumed)
        detected = table.describe()
        headers = list(table.headers)
    # No ANALYZE here: the downstream statements select an import's rows through the
    # (data_import_id, row_number) unique index whatever the statistics say, and a whole-table
    # ANALYZE cost small imports more than everything else they do.
    result = await _record_ingest(engine, ref, detected, headers)
    if validation is not None and result.unvalidated_rows == 0:
        # Every staged row has its results (an attempt resumed from one that did not
        # validate leaves some without, and then validation runs from staging as before).
        report = ChunkReport(rows=result.total_rows, agent_ms=validation.agent_ms)
        return result.model_copy(update={"validation": report})
    return result


# Validated batches are larger (the engine's cost is partly per batch), yet small enough that
# three in flight stay within the memory budget (peak RSS ~330 MiB whatever the file size).
VALIDATED_BATCH_ROWS = 10_000


def _batch_validation(
    category: ImportCategory, headers: list[str], config: ProcessingConfig
) -> BatchValidation | None:
    """How to validate this file's batches, or None when it cannot be done while staging
    (no column mapped: that needs a decision)."""
    try:
        mapping = header_mapping(category, headers, config)
    except ImportFailure:
        return None
    return BatchValidation(category, mapping, headers)


async def _record_ingest(
    engine: AsyncEngine, ref: ImportRef, detected: dict[str, str], headers: list[str]
) -> IngestResult:
    async with engine.begin() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT count(*), count(*) FILTER (WHERE is_blank), "
                    "count(*) FILTER (WHERE is_valid IS NULL) FROM raw_import_records "
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
        unvalidated_rows=counts[2],
    )
