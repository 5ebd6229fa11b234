"""The data-quality policy: null tokens read as blank, a malformed value rejects only the field.

A row is rejected only when it cannot be identified or its identifying value is malformed
(the category's `identifying_fields`). A malformed value anywhere else (an IP address, a
size, a date, a count) is a warning: the rules already leave that field empty, the row and
its asset are kept. A cell holding a null token (`normalize.NULL_TOKENS`: "N/A", "-",
"unknown", ...) reads as blank, reported once as a warning naming the field and the token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import polars as pl

from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.outcome import FrameOutcome
from dataimport.engine.text import lower_in, per_distinct
from dataimport.issues import Code, Severity
from dataimport.normalize import NULL_TOKENS, quote_value


class PolicyRules(Protocol):
    """What the policy needs of a category (see categories/base.ImportCategory)."""

    # The fields that identify a row: a malformed value there rejects the row.
    identifying_fields: frozenset[str]
    # Null tokens that are values of a field (e.g. "none" for an encryption flag).
    literal_tokens: Mapping[str, frozenset[str]]

    def validate_frame(self, frame: ChunkFrame, findings: Findings) -> Any: ...


def apply_rules(category: PolicyRules, frame: ChunkFrame, findings: Findings) -> FrameOutcome:
    """The category's rules under the policy: null tokens blanked first, the rules' errors
    about non-identifying fields demoted after."""
    read_null_tokens(frame, findings, category.literal_tokens)
    outcome: FrameOutcome = category.validate_frame(frame, findings)
    demote_malformed(frame, findings, category.identifying_fields)
    return outcome


# Findings about a value's form; a missing value (missing-required) is never demoted.
MALFORMED_CODES = frozenset({Code.TYPE_ERROR.value, Code.CONSTRAINT_ERROR.value})
LEFT_EMPTY = "; the field was left empty"


def read_null_tokens(
    frame: ChunkFrame, findings: Findings, literal_tokens: Mapping[str, frozenset[str]]
) -> None:
    """Blank every mapped cell that holds a null token (except tokens that are values of that
    field, e.g. "none" for an encryption flag), with a null-token warning per cell."""
    fields = [
        (header, field, column)
        for header, field in frame.mapped_fields()
        if (column := frame.column_of_field(field)) is not None
    ]
    if not fields:
        return
    frame.strip_columns(column for _h, _f, column in fields)
    values = pl.DataFrame(
        [frame.stripped(column).rename(f"v{i}") for i, (*_, column) in enumerate(fields)]
    )
    hits = values.select(
        lower_in(pl.col(f"v{i}"), NULL_TOKENS - literal_tokens.get(field, frozenset())).alias(
            f"v{i}"
        )
        for i, (_header, field, _column) in enumerate(fields)
    )
    for _header, field, column in fields:
        frame.tokens_blanked(column, NULL_TOKENS - literal_tokens.get(field, frozenset()))
    found = [i for i, any_hit in enumerate(hits.select(pl.all().any()).row(0)) if any_hit]
    for i in found:
        header, field, column = fields[i]
        hit = hits.get_column(f"v{i}")

        def warning(value: str, field: str = field, header: str = header) -> tuple[str]:
            message = f"{field}: {quote_value(value)} is a null token; read as blank"
            return (issue_json(Code.NULL_TOKEN, Severity.WARNING, message, header),)

        issues = per_distinct(
            pl.DataFrame({"v": values.get_column(f"v{i}")}), ["v"], warning, {"i": pl.Utf8}, hit
        )
        findings.add(issues["i"], Severity.WARNING)
        frame.read_as_blank(column, hit)


def demote_malformed(
    frame: ChunkFrame, findings: Findings, identifying_fields: frozenset[str]
) -> None:
    """Turn the rules' errors about a malformed non-identifying value into warnings."""
    field_by_header = frame.mapping.field_by_header

    def demoted(text: str) -> str:
        issue = json.loads(text)
        named = issue.get("field")
        if issue.get("code") not in MALFORMED_CODES or named is None:
            return text
        if field_by_header.get(named, named) in identifying_fields:
            return text
        message = str(issue["message"]) + LEFT_EMPTY
        return json.dumps({**issue, "severity": Severity.WARNING.value, "message": message})

    findings.rewrite_errors(demoted)
