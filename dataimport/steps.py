"""import_processing_steps: one row per agent or step run, written idempotently."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.contracts import ImportRef

_UPSERT_STEP = """
INSERT INTO import_processing_steps (client_account_id, engagement_id, data_import_id, step_key,
  step_name, agent, status, started_at, finished_at, duration_ms, records_processed, findings)
VALUES (:c, :e, :id, :key, :name, :agent, :status, :started, :finished, :duration, :records,
  CAST(:findings AS jsonb))
ON CONFLICT (data_import_id, step_key) DO UPDATE SET status = EXCLUDED.status,
  started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
  duration_ms = EXCLUDED.duration_ms, records_processed = EXCLUDED.records_processed,
  findings = EXCLUDED.findings
"""


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
    await conn.execute(
        text(_UPSERT_STEP),
        {
            "c": ref.client_account_id,
            "e": ref.engagement_id,
            "id": ref.data_import_id,
            "key": step,
            "name": step.split(":")[0],
            "agent": agent,
            "status": status,
            "started": started_at,
            "finished": finished,
            "duration": (
                duration_ms
                if duration_ms is not None
                else int((finished - started_at).total_seconds() * 1000)
            ),
            "records": records,
            "findings": json.dumps(findings, default=str),
        },
    )
