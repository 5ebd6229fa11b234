"""Model-backed agents: advice from a language model where the rule-based agents run out.

Two jobs, both optional (per import `model_agents`, per worker the DATAIMPORT_LLM_* settings):

- `model_column_mapper`: suggests a field for headers no alias (and no column_mapping) maps.
- `model_sensitive_classifier` (sensitive_data only): suggests a classification and PII types
  for unmapped columns that neither `pii.detect_column` nor `pii.detect_value` can decide.

The model sees headers, field names and a *shape* per column ("ipv4", "integer", "text(12)"),
computed here from a few staged values; it never sees a cell value. Its answer is advisory:
schema-validated, stored in the step's findings (`model_suggestions` reads them back), never
applied by itself. Every job is one `import_processing_steps` row with model, tokens, latency
and outcome; a model problem makes that step `failed` and nothing else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import pii, steps
from dataimport.categories import get_category
from dataimport.categories.base import map_headers
from dataimport.contracts import ImportRef, ProcessingConfig
from dataimport.imports import Tenant
from dataimport.llm import MALFORMED, ChatClient, Completion, LlmError, parse_json_object
from dataimport.validation import staged_headers

COLUMN_MAPPER = "model_column_mapper"
SENSITIVE_CLASSIFIER = "model_sensitive_classifier"
STEP_NAME = "model_agents"
SENSITIVE_CATEGORY = "sensitive_data"

OK = "ok"
SKIPPED_UNCONFIGURED = "skipped_unconfigured"

SAMPLE_ROWS = 20  # enough to tell a column's shape, few enough to stay cheap
MAX_COLUMNS = 100  # bounds the prompt (and the bill) for very wide files
MAX_REASON = 300

AnswerT = TypeVar("AnswerT", bound=BaseModel)

# --- value shapes: what the model may know about a column's values ----------------------

_SHAPES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("boolean", lambda v: v.lower() in {"true", "false", "yes", "no", "y", "n"}),
    ("integer", lambda v: re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+|[+-]?\d+", v) is not None),
    ("decimal", lambda v: re.fullmatch(r"[+-]?\d*[.,]\d+", v) is not None),
    ("ipv4", lambda v: _is_ip(v, 4)),
    ("ipv6", lambda v: _is_ip(v, 6)),
    (
        "uuid",
        lambda v: re.fullmatch(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", v, re.I) is not None,
    ),
    ("date", lambda v: re.fullmatch(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}", v) is not None),
    ("datetime", lambda v: re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*", v) is not None),
    ("email-like", lambda v: re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", v, re.I) is not None),
    ("url", lambda v: re.match(r"[a-z][a-z0-9+.-]*://", v, re.I) is not None),
    ("size-with-unit", lambda v: re.fullmatch(r"[\d.,]+\s*[kmgtp]i?b", v, re.I) is not None),
    ("dotted-name", lambda v: re.fullmatch(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+", v, re.I) is not None),
    ("list", lambda v: bool(re.search(r"[;,|]", v))),
)


def _is_ip(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


def value_shape(value: str) -> str:
    """One value's shape: a name from _SHAPES, else text(<length>)."""
    for name, matches in _SHAPES:
        if matches(value):
            return name
    return f"text({len(value)})"


def column_shape(values: Sequence[str]) -> str:
    """A column's shape from sampled values: the common shape, or the two commonest."""
    present = [value.strip() for value in values if value and value.strip()]
    if not present:
        return "empty"
    shapes = [value_shape(value) for value in present]
    if all(shape.startswith("text(") for shape in shapes):
        return f"text({max(len(value) for value in present)})"
    common = [shape for shape, _ in Counter(shapes).most_common(2)]
    shape = common[0] if len(common) == 1 else f"mixed({common[0]}|{common[1]})"
    return shape if len(present) == len(values) else f"{shape}, some empty"


# --- answer schemas ----------------------------------------------------------------------


class _Suggestion(BaseModel):
    header: str
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str = ""

    @field_validator("reason")
    @classmethod
    def _short(cls, value: str) -> str:
        return value[:MAX_REASON]


class MappingSuggestion(_Suggestion):
    field: str


class MappingAnswer(BaseModel):
    mappings: list[MappingSuggestion]


class ClassificationSuggestion(_Suggestion):
    classification: str
    pii_types: list[str] = Field(default_factory=list)


class ClassificationAnswer(BaseModel):
    columns: list[ClassificationSuggestion]


class MalformedAnswer(ValueError):
    """The model answered, but not what was asked: the step fails with outcome malformed."""


def _unique_headers(items: Sequence[_Suggestion], allowed: Sequence[str]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.header not in allowed:
            raise MalformedAnswer(f"header {item.header!r} was not asked about")
        if item.header in seen:
            raise MalformedAnswer(f"header {item.header!r} answered twice")
        seen.add(item.header)


def validate_mappings(
    content: str, headers: Sequence[str], fields: Sequence[str]
) -> list[MappingSuggestion]:
    """The answer's mappings, or MalformedAnswer: known headers, real free fields, each once."""
    answer = _parse(content, MappingAnswer)
    _unique_headers(answer.mappings, headers)
    targets = [item.field for item in answer.mappings]
    for target in targets:
        if target not in fields:
            raise MalformedAnswer(f"field {target!r} is not a free field of the category")
    if len(set(targets)) != len(targets):
        raise MalformedAnswer("a field is suggested for two headers")
    return answer.mappings


def validate_classifications(
    content: str, headers: Sequence[str]
) -> list[ClassificationSuggestion]:
    """The answer's classifications, or MalformedAnswer: project levels and PII types only."""
    answer = _parse(content, ClassificationAnswer)
    _unique_headers(answer.columns, headers)
    for item in answer.columns:
        if item.classification not in pii.CLASSIFICATIONS:
            raise MalformedAnswer(f"classification {item.classification!r} is not a level")
        unknown = set(item.pii_types) - set(pii.CATEGORIES)
        if unknown:
            raise MalformedAnswer(f"unknown PII types {sorted(unknown)}")
    return answer.columns


def _parse(content: str, schema: type[AnswerT]) -> AnswerT:
    try:
        return schema.model_validate(parse_json_object(content))
    except ValidationError as error:
        count = error.error_count()
        raise MalformedAnswer(f"answer does not match the schema ({count} errors)") from None
    except ValueError as error:
        raise MalformedAnswer(str(error)) from None


# --- the jobs ----------------------------------------------------------------------------

_MAPPER_SYSTEM = (
    "You map the columns of an IT-inventory file onto the target fields of an import "
    "category. For each column you get its header and the shape of its values, never the "
    'values. Answer with one JSON object {"mappings": [{"header": string, "field": string, '
    '"confidence": number from 0 to 1, "reason": short string}]}. Use each header exactly as '
    "given and each field exactly as listed in target_fields, each at most once; leave out "
    "columns that match no field."
)

_CLASSIFIER_SYSTEM = (
    "You classify columns of a sensitive-data inventory that rule-based detection could not "
    "decide. For each column you get its header and the shape of its values, never the "
    'values. Answer with one JSON object {"columns": [{"header": string, "classification": '
    'one of levels, "pii_types": list drawn from pii_types (empty if none), "confidence": '
    'number from 0 to 1, "reason": short string}]}. Use each header exactly as given, at most '
    "once."
)


class Job(BaseModel):
    """One question to the model: who asks, what is sent, how the answer is checked."""

    agent: str
    system: str
    request: dict[str, Any]
    headers: list[str]

    def check(self, content: str) -> Sequence[_Suggestion]:
        if self.agent == COLUMN_MAPPER:
            return validate_mappings(content, self.headers, self.request["target_fields"])
        return validate_classifications(content, self.headers)


class JobResult(BaseModel):
    agent: str
    outcome: str
    suggestions: list[dict[str, Any]] = Field(default_factory=list)
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: int | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        if self.outcome == SKIPPED_UNCONFIGURED:
            return "skipped"
        return "completed" if self.outcome == OK else "failed"


def mapping_job(
    category: str, headers: Sequence[str], shapes: dict[str, str], free_fields: Sequence[str]
) -> Job:
    columns = [{"header": header, "shape": shapes[header]} for header in headers]
    return Job(
        agent=COLUMN_MAPPER,
        system=_MAPPER_SYSTEM,
        request={"category": category, "target_fields": list(free_fields), "columns": columns},
        headers=list(headers),
    )


def classifier_job(headers: Sequence[str], shapes: dict[str, str]) -> Job:
    columns = [{"header": header, "shape": shapes[header]} for header in headers]
    return Job(
        agent=SENSITIVE_CLASSIFIER,
        system=_CLASSIFIER_SYSTEM,
        request={
            "levels": list(pii.CLASSIFICATIONS),
            "pii_types": list(pii.CATEGORIES),
            "columns": columns,
        },
        headers=list(headers),
    )


def undecided(header: str, values: Sequence[str]) -> bool:
    """Neither the column name nor any sampled value tells the rules what the column holds."""
    if pii.detect_column(header):
        return False
    return not any(pii.detect_value(value) for value in values if value)


async def ask(job: Job, client: ChatClient | None) -> JobResult:
    """One model call for one job, every problem classified into the result (never raised)."""
    if client is None:
        return JobResult(agent=job.agent, outcome=SKIPPED_UNCONFIGURED)
    try:
        completion = await client.complete_json(job.system, json.dumps(job.request))
    except LlmError as error:
        return JobResult(
            agent=job.agent,
            outcome=error.outcome,
            model=client.model,
            latency_ms=error.latency_ms,
            error=str(error),
        )
    try:
        suggestions = [item.model_dump() for item in job.check(completion.content)]
    except MalformedAnswer as error:
        return _result(job, MALFORMED, completion, error=str(error))
    return _result(job, OK, completion, suggestions=suggestions)


def _result(
    job: Job,
    outcome: str,
    completion: Completion,
    suggestions: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> JobResult:
    return JobResult(
        agent=job.agent,
        outcome=outcome,
        suggestions=suggestions or [],
        error=error,
        model=completion.model,
        input_tokens=completion.input_tokens,
        output_tokens=completion.output_tokens,
        latency_ms=completion.latency_ms,
    )


# --- running and recording ---------------------------------------------------------------


async def plan(engine: AsyncEngine, ref: ImportRef, config: ProcessingConfig) -> list[Job]:
    """The jobs for this import's unmapped headers (none when every header maps)."""
    category = get_category(ref.category)
    mapping = map_headers(
        await staged_headers(engine, ref), category.aliases, config.column_mapping
    )
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


_RECORD_USAGE = """
UPDATE import_processing_steps SET model = :model, input_tokens = :input_tokens,
  output_tokens = :output_tokens, latency_ms = :latency_ms
WHERE data_import_id = :id AND step_key = :key AND client_account_id = :c AND engagement_id = :e
"""


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
        await conn.execute(
            text(_RECORD_USAGE),
            {
                **usage,
                "id": ref.data_import_id,
                "key": key,
                "c": ref.client_account_id,
                "e": ref.engagement_id,
            },
        )


_SAMPLE = """
SELECT r.raw_data FROM raw_import_records r
JOIN data_imports d ON d.id = r.data_import_id
WHERE d.id = :id AND d.client_account_id = :c AND d.engagement_id = :e AND NOT r.is_blank
ORDER BY r.row_number LIMIT :limit
"""


async def sampled_values(
    engine: AsyncEngine, ref: ImportRef, headers: Sequence[str]
) -> dict[str, list[str]]:
    """A few staged values per header: for shapes and rule checks here, never for the model."""
    params = {
        "id": ref.data_import_id,
        "c": ref.client_account_id,
        "e": ref.engagement_id,
        "limit": SAMPLE_ROWS,
    }
    async with engine.connect() as conn:
        rows = (await conn.execute(text(_SAMPLE), params)).scalars().all()
    return {
        header: [str(row.get(header)) for row in rows if row.get(header) is not None]
        for header in headers
    }


# --- reading the advice back -------------------------------------------------------------

_SUGGESTIONS = """
SELECT agent, status, findings FROM import_processing_steps
WHERE data_import_id = :id AND client_account_id = :c AND engagement_id = :e
  AND step_name = :step ORDER BY agent
"""


async def model_suggestions(
    engine: AsyncEngine, tenant: Tenant, data_import_id: uuid.UUID
) -> dict[str, dict[str, Any]]:
    """agent -> {status, outcome, suggestions, model, tokens, ...} for the tenant's import."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(_SUGGESTIONS), {**tenant.params(), "id": data_import_id, "step": STEP_NAME}
        )
        return {row.agent: {"status": row.status, **row.findings} for row in rows}


def suggested_column_mapping(
    suggestions: dict[str, dict[str, Any]], min_confidence: float = 0.0
) -> dict[str, str]:
    """The column mapper's advice as a processing_config.column_mapping (header -> field)."""
    found = suggestions.get(COLUMN_MAPPER, {}).get("suggestions", [])
    return {item["header"]: item["field"] for item in found if item["confidence"] >= min_confidence}
