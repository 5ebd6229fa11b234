"""import_processing_steps: one row per agent or step run, written idempotently."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.contracts import ImportRef
from dataimport.models import ImportProcessingStep

# What a re-run of the same step key overwrites (the rest identifies the step).
_RERUN_COLUMNS = (
    "status",
    "started_at",
    "finished_at",
    "duration_ms",
    "records_processed",
    "findings",
)


async def record_step(
    conn: AsyncConnection,
    ref: ImportRef,
    *,
    step: str,
    agent: str,
    started_at: datetime,
    records: int,
    findings: dict[str, Any],
    status: str = "completed",
    duration_ms: int | None = None,
) -> None:
    """Record one step; the same step key overwrites, so a retried activity leaves one row."""
    finished = datetime.now(UTC)
    stmt = insert(ImportProcessingStep).values(
        client_account_id=ref.client_account_id,
        engagement_id=ref.engagement_id,
        data_import_id=ref.data_import_id,
        step_key=step,
        step_name=step.split(":")[0],
        agent=agent,
        status=status,
        started_at=started_at,
        finished_at=finished,
        duration_ms=(
            duration_ms
            if duration_ms is not None
            else int((finished - started_at).total_seconds() * 1000)
        ),
        records_processed=records,
        # Through JSON text and back: datetimes and other values become strings, not errors.
        findings=json.loads(json.dumps(findings, default=str)),
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[ImportProcessingStep.data_import_id, ImportProcessingStep.step_key],
            set_={name: stmt.excluded[name] for name in _RERUN_COLUMNS},
        )
    )
