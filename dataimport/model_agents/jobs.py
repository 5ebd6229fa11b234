"""The jobs: prompts, what is sent, and one model call per job."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from dataimport import pii
from dataimport.llm import MALFORMED, ChatClient, Completion, LlmError
from dataimport.model_agents.answers import (
    MalformedAnswer,
    _Suggestion,
    validate_classifications,
    validate_mappings,
)

COLUMN_MAPPER = "model_column_mapper"
SENSITIVE_CLASSIFIER = "model_sensitive_classifier"

OK = "ok"
SKIPPED_UNCONFIGURED = "skipped_unconfigured"

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
