"""Validation: run the category's rules over staged rows, write results back set-based.

Chunks are validated independently (parallel activities); `finalize_validation` then does the
cross-row work in SQL: duplicate keys, counters, and the per-code report.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dataimport import pii, steps
from dataimport.agents import AGENT_BY_CODE, FORMAT_VALIDATOR, agent_names
from dataimport.agents.base import CrossRowAgent
from dataimport.categories import get_category
from dataimport.categories.base import (
    HeaderMapping,
    ImportCategory,
    map_headers,
)
from dataimport.contracts import (
    ChunkReport,
    ImportRef,
    ProcessingConfig,
    RowRange,
    ValidationCounts,
)
from dataimport.db import driver_connection
from dataimport.engine import chunk, staged_io
from dataimport.issues import NO_MAPPED_COLUMNS, Code, ImportFailure
from dataimport.models import DataImport
from dataimport.tenant_scope import the_import

EXAMPLES_PER_CODE = 5


async def staged_headers(engine: AsyncEngine, ref: ImportRef) -> list[str]:
    async with engine.connect() as conn:
        detected = await conn.scalar(select(DataImport.detected_format).where(the_import(ref)))
    return list((detected or {}).get("headers", []))


def header_mapping(
    category: ImportCategory, headers: list[str], config: ProcessingConfig
) -> HeaderMapping:
    """Map headers; fail the phase clearly when no identifying column is recognised."""
    mapping = map_headers(headers, category.aliases, config.column_mapping)
    if category.required_fields and not mapping.mapped_fields & category.required_fields:
        wanted = ", ".join(sorted(category.required_fields))
        seen = ", ".join(shown_headers(category, headers[:20]))
        masked = (
            " (masked: in a file without a header row the first data row is read as headers)"
            if category.masks_values
            else ""
        )
        raise ImportFailure(
            NO_MAPPED_COLUMNS,
            f"no column maps to any of [{wanted}] for {category.name}; the {len(headers)} "
            f"headers were: {seen}{masked}. "
            'Retry with processing_config.column_mapping, e.g. {"Server": "name"}.',
        )
    return mapping


def shown_headers(category: ImportCategory, headers: list[str]) -> list[str]:
    """Headers as messages, summaries and payloads may show them: masked where the category
    masks values (invariant 7), since a headerless file's first data row becomes its headers."""
    if not category.masks_values:
        return headers
    return [pii.mask_value(header) for header in headers]


async def prepare_validation(
    engine: AsyncEngine, ref: ImportRef, config: ProcessingConfig
) -> list[str]:
    """Check the header mapping once before the chunks run; returns the unmapped headers
    (masked where the category masks values)."""
    category = get_category(ref.category)
    mapping = header_mapping(category, await staged_headers(engine, ref), config)
    return shown_headers(category, mapping.unmapped_headers)


async def unmapped_headers(engine: AsyncEngine, ref: ImportRef) -> list[str]:
    """Every header that maps to nothing, from the staged headers and the import's stored
    processing config (a retry saves its new config first). Payloads carry only the first
    ones (contracts.MAX_UNMAPPED_IN_PAYLOAD); this full list is what the database keeps
    (masked where the category masks values)."""
    async with engine.connect() as conn:
        unmapped = await _unmapped_as_read(conn, ref)
    return shown_headers(get_category(ref.category), unmapped)


async def _unmapped_as_read(conn: AsyncConnection, ref: ImportRef) -> list[str]:
    found = await conn.execute(
        select(DataImport.detected_format, DataImport.processing_config).where(the_import(ref))
    )
    row = found.first()
    if row is None:
        return []
    headers = list((row.detected_format or {}).get("headers", []))
    config = ProcessingConfig.model_validate(row.processing_config or {})
    category = get_category(ref.category)
    return map_headers(headers, category.aliases, config.column_mapping).unmapped_headers


async def headers_to_mask(conn: AsyncConnection, ref: ImportRef) -> list[str]:
    """The headers a masked category's messages must not quote: those no alias or mapping
    names, which in a file without a header row are its first data row."""
    if not get_category(ref.category).masks_values:
        return []
    return await _unmapped_as_read(conn, ref)


def mask_finding(finding: dict[str, Any], headers: list[str]) -> dict[str, Any]:
    """A finding (field, message) with every header of `headers` masked in it."""
    if not headers:
        return finding
    masked = dict(finding)
    for key in ("field", "message"):
        if isinstance(masked.get(key), str):
            masked[key] = pii.mask_text(masked[key], headers)
    return masked


async def validate_chunk(
    engine: AsyncEngine, ref: ImportRef, rows: RowRange, config: ProcessingConfig
) -> ChunkReport:
    """Validate one row range; idempotent (results are overwritten, never appended). The chunk
    is read with one COPY, validated as a frame, written back with one COPY and one UPDATE."""
    category = get_category(ref.category)
    headers = await staged_headers(engine, ref)
    mapping = header_mapping(category, headers, config)
    report = ChunkReport(rows=0)
    async with engine.connect() as conn:
        driver = await driver_connection(conn)
        for part in _parts(rows, len(headers)):
            frame = await staged_io.load_chunk(driver, ref, part, headers, mapping)
            validated = await asyncio.to_thread(chunk.validate, category, frame)
            await staged_io.write_results(driver, ref, part, validated.rows)
            report = report.plus(ChunkReport(rows=frame.height, agent_ms=validated.agent_ms))
            if frame.height == 0:
                break  # past the staged rows, which are contiguous (a range may end beyond)
    return report


# Cells of one frame in memory at a time: a wide file's range (RVTools' vInfo has ~50
# columns) is validated in parts, so four parallel ranges of 25k rows stay within the worker's
# memory budget (they took it from ~200 to ~935 MiB at once; 100k RVTools VMs peaked at
# 605 MiB in parts of 400k cells, 444 at 200k, 379 at 100k, validation no slower within
# noise). Rows validate independently (the cross-row checks run in finalize_validation), so
# the parts' results are the range's.
CHUNK_CELLS = 100_000


def _parts(rows: RowRange, columns: int) -> Iterator[RowRange]:
    size = max(1_000, CHUNK_CELLS // max(columns, 1))
    for first in range(rows.first_row, rows.last_row + 1, size):
        yield RowRange(first_row=first, last_row=min(first + size - 1, rows.last_row))


# The cross-row passes below stay hand-written SQL (window functions, UPDATE ... FROM a CTE,
# JSONB aggregation over every finding): set-based statements that read clearer as SQL.


# The last occurrence of a key wins; earlier ones are kept, flagged and skipped by enrichment.
# Then, of the rows left (valid, not superseded) that name one external id (a CMDB sys_id)
# under different keys, the last wins too. The import's valid rows are read once, their two
# keys extracted from JSONB once; the repeated keys are found by grouping (hashed, where a
# window would sort every row of the import by its key), and only their rows are joined
# back; its joins must be hashed (see finalize_validation). Each row gets at most one of the
# two warnings: a key's loser takes no part in the external-id matching.
def _mark_duplicates_sql(*, external_ids: bool) -> str:
    external = (
        """
external_candidates AS (
  SELECT k.id, k.row_number, k.external_id FROM keyed k
  WHERE NOT k.superseded AND k.external_id IS NOT NULL
    AND NOT EXISTS (
      SELECT 1 FROM key_winners w WHERE w.key = k.key AND k.row_number < w.winner
    )
),
external_winners AS (
  SELECT external_id, max(row_number) AS winner FROM external_candidates
  GROUP BY external_id HAVING count(*) > 1
),"""
        if external_ids
        else ""
    )
    external_marks = (
        """
  UNION ALL
  SELECT c.id, CAST(:external_code AS text), 'external_id',
    'same external id as row ' || w.winner || ', which wins'
  FROM external_candidates c JOIN external_winners w ON w.external_id = c.external_id
  WHERE c.row_number < w.winner"""
        if external_ids
        else ""
    )
    extracted = "normalized_data -> 'asset' ->> 'external_id'" if external_ids else "NULL"
    return f"""
WITH keyed AS MATERIALIZED (
  SELECT id, row_number, superseded, normalized_data ->> '_key' AS key,
    {extracted} AS external_id
  FROM raw_import_records
  WHERE data_import_id = :id AND is_valid
),
key_winners AS (
  SELECT key, max(row_number) AS winner FROM keyed WHERE key IS NOT NULL
  GROUP BY key HAVING count(*) > 1
),{external}
marks AS (
  SELECT k.id, CAST(:key_code AS text) AS code, CAST(NULL AS text) AS field,
    'same key as row ' || w.winner || ', which wins' AS message
  FROM keyed k JOIN key_winners w ON w.key = k.key
  WHERE k.row_number < w.winner AND NOT k.superseded{external_marks}
)
UPDATE raw_import_records r SET superseded = true,
  validation_errors = coalesce(r.validation_errors, '[]'::jsonb) || jsonb_build_array(
    jsonb_build_object('code', m.code, 'severity', 'warning', 'field', m.field,
      'message', m.message))
FROM marks m WHERE r.id = m.id AND r.data_import_id = :id
"""


MARK_DUPLICATES = {flag: _mark_duplicates_sql(external_ids=flag) for flag in (False, True)}

_COUNT_ROWS = """
SELECT count(*) FILTER (WHERE is_valid) AS valid_rows,
  count(*) FILTER (WHERE NOT is_valid AND NOT is_blank) AS invalid_rows,
  count(*) FILTER (WHERE is_blank) AS blank_rows,
  count(*) FILTER (WHERE is_valid AND jsonb_array_length(validation_errors) > 0) AS warning_rows,
  round(avg(CAST(normalized_data ->> '_quality' AS float)) FILTER (WHERE NOT is_blank)::numeric,
    3) AS quality
FROM raw_import_records WHERE data_import_id = :id
"""

# Every finding once, per (code, agent): counts for the agents' steps, and for the report the
# first examples of each code (numbered per code, so a code's examples may span agents).
_ISSUE_REPORT = """
WITH issues AS (
  SELECT r.row_number, e ->> 'code' AS code, e ->> 'severity' AS severity,
    e ->> 'field' AS field, e ->> 'message' AS message,
    coalesce(e ->> 'agent', CASE e ->> 'code' {cases} ELSE :default_agent END) AS agent,
    row_number() OVER (PARTITION BY e ->> 'code' ORDER BY r.row_number) AS nth
  FROM raw_import_records r, jsonb_array_elements(r.validation_errors) e
  WHERE r.data_import_id = :id AND r.validation_errors <> '[]'::jsonb
)
SELECT code, agent, min(severity) AS severity, count(*) AS count,
  jsonb_agg(jsonb_build_object('row', row_number, 'field', field, 'message', message)
    ORDER BY row_number) FILTER (WHERE nth <= :examples) AS examples
FROM issues GROUP BY code, agent
""".format(cases=" ".join(f"WHEN '{code}' THEN '{agent}'" for code, agent in AGENT_BY_CODE.items()))


async def finalize_validation(
    engine: AsyncEngine,
    ref: ImportRef,
    unmapped_headers: list[str],
    report: ChunkReport,
    started_at: datetime,
) -> tuple[ValidationCounts, dict[str, Any]]:
    """Cross-row checks, counters, the per-code report and one step row per agent."""
    params = {"id": ref.data_import_id}
    async with engine.begin() as conn:
        # The groupings of a 1M-row import (duplicates, the report) in memory, not in
        # temporary files; for this transaction only.
        await conn.execute(text("SET LOCAL work_mem = '64MB'"))
        external = get_category(ref.category).unique_external_ids
        codes = {"key_code": Code.DUPLICATE_KEY.value}
        if external:
            codes["external_code"] = Code.DUPLICATE_EXTERNAL_ID.value
        # Hash joins only: the import's rows were just staged, so the statistics may still say
        # it has none, and a nested loop would rescan every keyed row once per staged row
        # (measured: over 200 s at 1M rows, where this takes 4 s).
        await conn.execute(text("SET LOCAL enable_nestloop = off"))
        await conn.execute(text(MARK_DUPLICATES[external]), {**params, **codes})
        await conn.execute(text("RESET enable_nestloop"))
        await _run_cross_row_agents(conn, ref)
        counts = dict((await conn.execute(text(_COUNT_ROWS), params)).mappings().one())
        quality = counts.pop("quality")
        issues, findings = await _issue_report(conn, params)
        hidden = await headers_to_mask(conn, ref)
        if hidden:
            issues = {
                code: {**entry, "examples": [mask_finding(e, hidden) for e in entry["examples"]]}
                for code, entry in issues.items()
            }
        findings.setdefault("data_quality_assessor", {})["quality_score"] = float(quality or 0)
        await _record_agent_steps(conn, ref, report, findings, started_at)
    result = ValidationCounts(**dict(counts), unmapped_headers=unmapped_headers)
    summary = {
        "validation": {
            "issues": issues,
            "unmapped_headers": unmapped_headers,
            "quality_score": float(quality or 0),
        }
    }
    return result, summary


async def _run_cross_row_agents(conn: AsyncConnection, ref: ImportRef) -> None:
    for agent in get_category(ref.category).agents:
        if isinstance(agent, CrossRowAgent):
            await agent.finalize(conn, str(ref.data_import_id))


async def _issue_report(
    conn: AsyncConnection, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """(the report: code -> severity, count, first examples, largest first; agent -> code ->
    count)."""
    rows = await conn.execute(
        text(_ISSUE_REPORT),
        {**params, "examples": EXAMPLES_PER_CODE, "default_agent": FORMAT_VALIDATOR},
    )
    report: dict[str, dict[str, Any]] = {}
    findings: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows.mappings():
        findings[row["agent"]][row["code"]] = row["count"]
        entry = report.setdefault(
            row["code"], {"severity": row["severity"], "count": 0, "examples": []}
        )
        entry["severity"] = min(entry["severity"], row["severity"])
        entry["count"] += row["count"]
        entry["examples"].extend(row["examples"] or [])
    for entry in report.values():
        entry["examples"].sort(key=lambda example: example["row"])
    ordered = sorted(report.items(), key=lambda item: -item[1]["count"])
    return dict(ordered), findings


async def _record_agent_steps(
    conn: AsyncConnection,
    ref: ImportRef,
    report: ChunkReport,
    findings: dict[str, dict[str, float]],
    started_at: datetime,
) -> None:
    category = get_category(ref.category)
    for agent in agent_names(category.masks_values, category.agents):
        await steps.record_step(
            conn,
            ref,
            step=f"validation:{agent}",
            agent=agent,
            started_at=started_at,
            records=report.rows,
            findings=findings.get(agent, {}),
            duration_ms=int(report.agent_ms.get(agent, 0.0)),
        )
