"""Rows validated as they are staged carry exactly the results of validation from staging.

The first validation pass of a CSV import happens inside ingest (one COPY per batch, results
included); `validate_chunk` re-validates from staging on a retry. Both must agree row by row,
on both ingest paths, and the workflow must then skip the chunk activities.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from activities.generation import of_generation
from dataimport import staging, validation
from dataimport.contracts import ImportRef, ProcessingConfig, RowRange
from dataimport.db import for_tenant
from service.imports import ImportService
from tests.factories import TERMINAL_OR_WAITING, new_import_record, wait_for, write_cmdb
from tests.golden.cmdb_corpus import HEADERS, generated_rows

RESULTS = """
SELECT row_number, is_valid, validation_errors::text, normalized_data::text
FROM raw_import_records WHERE data_import_id = :id ORDER BY row_number
"""


async def _results(engine: AsyncEngine, ref: ImportRef) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text(RESULTS), {"id": ref.data_import_id})).all()
    return [
        (n, valid, json.loads(errors) if errors else None, json.loads(data) if data else None)
        for n, valid, errors, data in rows
    ]


def _branchy_csv(path: Path, count: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        writer.writerows(generated_rows(count, random.Random(11)))
    return path


@pytest.mark.parametrize("fast_path", [True, False])
async def test_results_staged_with_the_rows_equal_validation_from_staging(
    engine: AsyncEngine,
    app_engine: AsyncEngine,
    tmp_path: Path,
    fast_path: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _branchy_csv(tmp_path / "cmdb.csv", 4_000)
    config = ProcessingConfig()
    ref = await new_import_record(engine)
    result = await staging.ingest_file(
        engine,
        ref,
        path.as_uri(),
        storage_root=path.parent,
        max_field_size=1_000_000,
        fast_path=fast_path,
        validate_with=config,
    )
    assert result.validation is not None and result.validation.rows == result.total_rows
    assert result.unvalidated_rows == 0
    assert set(result.validation.agent_ms) >= {"format_validator", "security_scanner"}
    at_ingest = await _results(engine, ref)

    everything = RowRange(first_row=1, last_row=result.total_rows)
    await validation.validate_chunk(engine, ref, everything, config)
    from_staging = await _results(engine, ref)

    assert len(at_ingest) == result.total_rows
    assert at_ingest == from_staging
    assert {row[1] for row in at_ingest} == {True, False}  # both outcomes occur

    # A range validated in parts (as a wide file's is), one ending far beyond the file: the
    # same results, and every row reported once.
    monkeypatch.setattr(validation, "CHUNK_CELLS", 1)  # parts of the smallest size
    beyond = RowRange(first_row=1, last_row=2**31 - 1)
    async with engine.connect() as conn:
        generation = await conn.scalar(
            text("SELECT config_generation FROM data_imports WHERE id = :id"),
            {"id": ref.data_import_id},
        )
    # As the activity runs it: the service role, in one transaction of the import's generation.
    async with of_generation(for_tenant(app_engine, ref), ref, generation) as as_the_worker:
        report = await validation.validate_chunk(as_the_worker, ref, beyond, config)
    assert report.rows == result.total_rows
    assert await _results(engine, ref) == at_ingest


async def test_a_resumed_ingest_that_did_not_validate_says_so(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_cmdb(tmp_path / "cmdb.csv", 3_000)
    ref = await new_import_record(engine)

    class Crash(Exception):
        pass

    def crash(last_row: int) -> None:
        if last_row >= 1_000:
            raise Crash

    with pytest.raises(Crash):  # an attempt that stages without validating (older worker)
        await staging.ingest_file(
            engine,
            ref,
            path.as_uri(),
            storage_root=path.parent,
            max_field_size=1_000_000,
            batch_size=500,
            on_progress=crash,
        )
    # Two batches are in flight (STAGING_WRITERS): the one after the crash may have committed.
    async with engine.connect() as conn:
        staged = await conn.scalar(
            text("SELECT count(*) FROM raw_import_records WHERE data_import_id = :id"),
            {"id": ref.data_import_id},
        )
    assert staged is not None and 1_000 <= staged < 3_000
    resumed = await staging.ingest_file(
        engine,
        ref,
        path.as_uri(),
        storage_root=path.parent,
        max_field_size=1_000_000,
        validate_with=ProcessingConfig(),
    )
    assert resumed.total_rows == 3_000
    assert resumed.unvalidated_rows == staged and resumed.validation is None


async def test_no_mapped_column_stages_without_validating(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("Label,Address\nx,10.0.0.1\n", encoding="utf-8")
    ref = await new_import_record(engine)
    result = await staging.ingest_file(
        engine,
        ref,
        path.as_uri(),
        storage_root=path.parent,
        max_field_size=1_000_000,
        validate_with=ProcessingConfig(),
    )
    assert (result.total_rows, result.validation) == (1, None)


@pytest.mark.usefixtures("worker")
async def test_the_workflow_skips_chunk_validation_after_ingest_validated(
    service: ImportService, client: Client, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = _branchy_csv(tmp_path / "import.csv", 3_000)
    config = {"chunk_size": 500, "max_invalid_ratio": 1.0}
    started = await service.start_import(path, "cmdb_export", config)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert status.status == "completed_with_errors"

    history = await client.get_workflow_handle(status.workflow_id).fetch_history()
    activities = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "ingest_file" in activities and "finalize_validation" in activities
    assert "validate_chunk" not in activities

    async with engine.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE is_valid), count(*) FILTER (WHERE NOT is_valid "
                    "AND NOT is_blank), count(*) FILTER (WHERE is_valid IS NULL) "
                    "FROM raw_import_records WHERE data_import_id = :id"
                ),
                {"id": started.data_import_id},
            )
        ).one()
    assert (status.valid_rows, status.invalid_rows) == (counts[0], counts[1])
    assert counts[2] == 0 and status.valid_rows > 0 and status.invalid_rows > 0
