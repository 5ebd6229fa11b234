"""Running and recording: plan the jobs, ask, and record one step row per job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import pii, steps
from dataimport.categories import get_category
from dataimport.categories.base import ImportCategory, map_headers
from dataimport.contracts import ImportRef, ProcessingConfig
from dataimport.llm import ChatClient
from dataimport.model_agents.jobs import (
    Job,
    JobResult,
    ask,
    classifier_job,
    mapping_job,
    undecided,
)
from dataimport.model_agents.shapes import column_shape
from dataimport.models import ImportProcessingStep, RawImportRecord
from dataimport.tenant_scope import where_tenant
from dataimport.validation import staged_headers

STEP_NAME = "model_agents"
SENSITIVE_CATEGORY = "sensitive_data"

SAMPLE_ROWS = 20  # enough to tell a column's shape, few enough to stay cheap
MAX_COLUMNS = 100  # bounds the prompt (and the bill) for very wide files


async def plan(engine: AsyncEngine, ref: ImportRef, config: ProcessingConfig) -> list[Job]:
    """The jobs for this import's unmapped headers (none when every header maps)."""
    category = get_category(ref.category)
    staged = await staged_headers(engine, ref)
    if not shareable_headers(category, staged):
        return []
    mapping = map_headers(staged, category.aliases, config.column_mapping)
    headers = mapping.unmapped_headers[:MAX_COLUMNS]
    if not headers:
        return []
    samples = await sampled_values(engine, ref, headers)
    shapes = {header: column_shape(samples[header]) for header in headers}
    jobs: list[Job] = []
    free_fields = sorted(set(category.aliases.values()) - mapping.mapped_fields)
    if free_fields:
        jobs.append(mapping_job(category.name, headers, shapes, free_fields))
    if category.name == SENSITIVE_CATEGORY:
        open_columns = [header for header in headers if undecided(header, samples[header])]
        if open_columns:
            jobs.append(classifier_job(open_columns, shapes))
    return jobs


def shareable_headers(category: ImportCategory, headers: Sequence[str]) -> bool:
    """Whether the headers may go to a model. Not when the category masks values and a header
    reads as personal data: then the file has no header row (its first data row was read as
    one), and every "header" is a value that must not leave staging (invariant 7)."""
    return not (category.masks_values and any(pii.detect_value(h) for h in headers))


async def run(
    engine: AsyncEngine, ref: ImportRef, config: ProcessingConfig, client: ChatClient | None
) -> list[JobResult]:
    """Plan, ask (the jobs concurrently) and record one step per job."""
    todo = await plan(engine, ref, config)
    return list(await asyncio.gather(*(_ask_and_record(engine, ref, job, client) for job in todo)))


async def _ask_and_record(
    engine: AsyncEngine, ref: ImportRef, job: Job, client: ChatClient | None
) -> JobResult:
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    result = await ask(job, client)
    await record(engine, ref, job, result, started_at, int((time.perf_counter() - clock) * 1000))
    return result


async def record(
    engine: AsyncEngine,
    ref: ImportRef,
    job: Job,
    result: JobResult,
    started_at: datetime,
    duration_ms: int,
) -> None:
    """The job's step row: usage in its own columns and, with what was sent, in findings."""
    key = f"{STEP_NAME}:{job.agent}"
    findings = {**result.model_dump(exclude={"agent"}), "columns": job.request["columns"]}
    usage = result.model_dump(include={"model", "input_tokens", "output_tokens", "latency_ms"})
    async with engine.begin() as conn:
        await steps.record_step(
            conn,
            ref,
            step=key,
            agent=job.agent,
            started_at=started_at,
            records=len(job.headers),
            findings=findings,
            status=result.status,
            duration_ms=duration_ms,
        )
        step = ImportProcessingStep
        await conn.execute(
            update(step)
            .where(
                step.data_import_id == ref.data_import_id,
                step.step_key == key,
                where_tenant(step, ref),
            )
            .values(**usage)
        )


async def sampled_values(
    engine: AsyncEngine, ref: ImportRef, headers: Sequence[str]
) -> dict[str, list[str]]:
    """A few staged values per header: for shapes and rule checks here, never for the model."""
    first_rows = (
        select(RawImportRecord.raw_data)
        .where(
            RawImportRecord.data_import_id == ref.data_import_id,
            where_tenant(RawImportRecord, ref),
            ~RawImportRecord.is_blank,
        )
        .order_by(RawImportRecord.row_number)
        .limit(SAMPLE_ROWS)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(first_rows)).scalars().all()
    return {
        header: [str(row.get(header)) for row in rows if row.get(header) is not None]
        for header in headers
    }
