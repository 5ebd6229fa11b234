"""One row through a category's columnar rules under the data-quality policy (no agents), for
the category unit tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dataimport.categories.base import HeaderMapping, map_headers
from dataimport.engine import policy
from dataimport.engine.findings import Findings
from dataimport.engine.frame import BLANK, READ_ISSUES, frame_from_rows
from dataimport.issues import Issue, Severity


@dataclass(slots=True)
class RowOutcome:
    """A row's normalised data (without `_quality` and `_key`) and the rules' issues, each
    naming the category's field (not the file's column)."""

    normalized: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return not any(issue.is_error for issue in self.issues)


def validate_fields(category: Any, fields: Mapping[str, str]) -> RowOutcome:
    """The rules over one row given as field -> cell (each field its own column)."""
    return _validate(category, dict(fields), HeaderMapping({f: f for f in fields}, []))


def validate_cells(
    category: Any,
    headers: Sequence[str],
    cells: Sequence[str],
    column_mapping: Mapping[str, str] | None = None,
) -> RowOutcome:
    """The rules over one row as the source file has it (headers mapped like validation does)."""
    mapping = map_headers(headers, category.aliases, column_mapping or {})
    return _validate(category, dict(zip(headers, cells, strict=True)), mapping)


def _validate(category: Any, raw: dict[str, str], mapping: HeaderMapping) -> RowOutcome:
    frame = frame_from_rows([(1, raw, None, False)], mapping, keys=list(raw))
    findings = Findings(1)
    outcome = policy.apply_rules(category, frame, findings)
    errors = findings.json_lists(frame.rows.get_column(READ_ISSUES), frame.rows.get_column(BLANK))
    issues = [
        Issue(
            item["code"],
            Severity(item["severity"]),
            item["message"],
            mapping.field_by_header.get(item["field"] or "", item["field"]),
            item.get("agent"),
        )
        for item in json.loads(errors[0])
    ]
    return RowOutcome(json.loads(outcome.normalized[0]), issues)


def codes(outcome: RowOutcome) -> list[tuple[str, str, str | None]]:
    """(code, severity, field) of each issue, in order: what the category tests compare."""
    return [(issue.code, issue.severity.value, issue.field) for issue in outcome.issues]
