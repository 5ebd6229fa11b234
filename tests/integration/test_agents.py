"""Validation agents: unit behaviour, and one recorded step per agent through the workflow."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from dataimport.agents.base import RowContext
from dataimport.agents.data_quality import DataQualityAssessor
from dataimport.agents.privacy_analyzer import PrivacyAnalyzer
from dataimport.agents.security_scanner import SecurityScanner
from dataimport.issues import Issue, Severity
from service.imports import ImportService
from tests.factories import CMDB_HEADERS, TERMINAL_OR_WAITING, cmdb_row, wait_for, write_csv


def context(raw: dict[str, str], fields: dict[str, str] | None = None) -> RowContext:
    return RowContext(1, raw, fields if fields is not None else raw, {}, "cmdb_export")


def test_security_scanner_flags_script_oversized_and_control_content() -> None:
    found = SecurityScanner().examine(
        context(
            {
                "notes": "<script>alert(1)</script>",
                "blob": "x" * 40_000,
                "name": "ok",
                "tab": "a\x07b",
            }
        )
    )
    assert sorted((i.code, i.field) for i in found) == [
        ("oversized-cell", "blob"),
        ("script-content", "notes"),
        ("script-content", "tab"),
    ]
    assert all(i.agent == "security_scanner" and i.severity is Severity.WARNING for i in found)
    assert "alert" not in " ".join(i.message for i in found)


def test_privacy_analyzer_reports_unexpected_pii_without_the_value() -> None:
    found = PrivacyAnalyzer().examine(
        context(
            {
                "description": "4111 1111 1111 1111",
                "owner": "jane.doe@example.com",
                "name": "SRV-1",
            }
        )
    )
    assert [(i.code, i.field) for i in found] == [("unexpected-pii", "description")]
    assert "4111" not in found[0].message and "payment_card" in found[0].message


def test_data_quality_scores_completeness_and_flags_sparse_rows() -> None:
    full = context({}, {"name": "a", "ip": "1", "os": "x"})
    sparse = context({}, {"name": "a", "ip": "", "os": "", "owner": ""})
    assert DataQualityAssessor().examine(full) == []
    assert full.normalized["_quality"] == 1.0
    assert [i.code for i in DataQualityAssessor().examine(sparse)] == ["incomplete-row"]
    assert sparse.normalized["_quality"] == 0.25
    failed = context({}, {"name": "a"})
    failed.issues.append(Issue("type-error", Severity.ERROR, "bad"))
    DataQualityAssessor().examine(failed)
    assert failed.normalized["_quality"] == 0.0


async def test_each_agent_run_is_recorded_as_a_processing_step(
    service: ImportService, engine: AsyncEngine, worker: Worker, tmp_path: Path
) -> None:
    rows = [cmdb_row(n) for n in range(1, 6)]
    rows[1][11] = "=cmd|' /C calc'!A0"
    rows[2][13] = "<script>x</script>"
    rows[3][6] = "many"  # a malformed cpu_count: a warning, the row is kept
    rows.append(cmdb_row(5))  # a duplicate of row 5
    path = write_csv(tmp_path / "agents.csv", CMDB_HEADERS, rows)
    started = await service.start_import(path, "cmdb_export")
    done = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert done.status == "completed"  # no row rejected

    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT agent, status, records_processed, findings, duration_ms "
                "FROM import_processing_steps WHERE data_import_id = :id AND step_name = "
                "'validation' ORDER BY agent"
            ),
            {"id": started.data_import_id},
        )
        steps = {row.agent: row for row in result}
    assert set(steps) == {
        "format_validator",
        "security_scanner",
        "privacy_analyzer",
        "data_quality_assessor",
    }
    assert all(
        step.status == "completed" and step.records_processed == 6 for step in steps.values()
    )
    assert steps["format_validator"].findings == {"type-error": 1}
    assert steps["security_scanner"].findings == {"formula-injection": 1, "script-content": 1}
    quality = steps["data_quality_assessor"].findings
    assert quality["duplicate-key"] == 1 and 0 < quality["quality_score"] < 1
