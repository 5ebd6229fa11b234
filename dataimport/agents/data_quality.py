"""data_quality_assessor: completeness of each row and a quality score (0–1).

The score is kept in `normalized_data._quality`; the import's score (average) and duplicate
counts (found set-based at finalize) are reported on the agent's processing step.
"""

from __future__ import annotations

from dataimport.agents.base import RowContext
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
