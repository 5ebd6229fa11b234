"""Answer schemas: the model's answer, parsed and checked against what was asked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, Field, ValidationError, field_validator

from dataimport import pii
from dataimport.llm import parse_json_object

MAX_REASON = 300

AnswerT = TypeVar("AnswerT", bound=BaseModel)


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
