"""data_quality_assessor: completeness of each row and a quality score (0–1).

The score is kept in `normalized_data._quality`; the import's score (average) and duplicate
counts (found set-based at finalize) are reported on the agent's processing step.
"""

from __future__ import annotations

import polars as pl

from dataimport.agents.base import RowContext
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.text import per_distinct
from dataimport.issues import Code, Issue, Severity

MIN_COMPLETENESS = 0.3
WARNING_PENALTY = 0.05


class DataQualityAssessor:
    name = "data_quality_assessor"

    def examine(self, row: RowContext) -> list[Issue]:
        mapped = len(row.fields)
        filled = sum(1 for value in row.fields.values() if value)
        completeness = filled / mapped if mapped else 0.0
        if any(issue.is_error for issue in row.issues):
            score = 0.0
        else:
            warnings = sum(1 for issue in row.issues if not issue.is_error)
            score = max(0.0, completeness - WARNING_PENALTY * warnings)
        row.normalized["_quality"] = round(score, 3)
        if mapped and completeness < MIN_COMPLETENESS:
            message = f"only {filled} of {mapped} mapped columns have a value"
            return [Issue(Code.INCOMPLETE_ROW.value, Severity.WARNING, message, None, self.name)]
        return []


def examine_frame(frame: ChunkFrame, findings: Findings) -> pl.Series:
    """The columnar form: completeness counted over the mapped columns at once, the score and
    finding computed once per distinct (filled, error, warnings); returns `_quality`."""
    mapped = len(frame.mapped_fields())
    # Filled: the stripped cell is not empty (the FieldCells the rules used, cached).
    columns = [
        frame.stripped(column).is_not_null()
        for _header, field in frame.mapped_fields()
        if (column := frame.column_of_field(field)) is not None
    ]
    filled = pl.DataFrame(
        {
            "filled": pl.DataFrame([c.rename(f"f{i}") for i, c in enumerate(columns)])
            .select(pl.sum_horizontal(pl.all()))
            .to_series()
            if columns
            else pl.repeat(0, frame.height, eager=True)
        }
    )
    facts = pl.DataFrame(
        [
            filled["filled"].cast(pl.Int64),
            findings.has_error.rename("e"),
            findings.warnings.rename("w"),
        ]
    )

    def exact(filled: int, has_error: bool, warnings: int) -> tuple[float, str | None]:
        completeness = filled / mapped if mapped else 0.0
        score = 0.0 if has_error else max(0.0, completeness - WARNING_PENALTY * warnings)
        issue = None
        if mapped and completeness < MIN_COMPLETENESS:
            message = f"only {filled} of {mapped} mapped columns have a value"
            issue = issue_json(
                Code.INCOMPLETE_ROW, Severity.WARNING, message, None, DataQualityAssessor.name
            )
        return round(score, 3), issue

    result = per_distinct(
        facts, ["filled", "e", "w"], exact, {"quality": pl.Float64, "issue": pl.Utf8}
    )
    findings.add(result["issue"], Severity.WARNING)
    return result["quality"]
