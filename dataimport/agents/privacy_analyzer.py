"""privacy_analyzer: personal data where the category does not expect any.

A CMDB or infrastructure export should not carry e-mail addresses, card numbers or national
ids in free-text columns; when it does, the row is kept and the finding names the column and
the kind of data, never the value.
"""

from __future__ import annotations

from dataimport import pii
from dataimport.agents.base import RowContext
from dataimport.issues import Code, Issue, Severity

# Columns where an e-mail address is expected in inventory exports (owners, contacts).
_EXPECTED = {"email": ("owner", "contact", "mail", "managed_by", "assigned_to", "support")}


class PrivacyAnalyzer:
    name = "privacy_analyzer"

    def examine(self, row: RowContext) -> list[Issue]:
        issues: list[Issue] = []
        for header, value in row.raw.items():
            if not value:
                continue
            found = pii.detect_value(value, pii.detect_column(header))
            if not found:  # nearly every cell: skip building an empty set
                continue
            kinds = {kind for kind in found if not _expected(kind, header)}
            if kinds:
                message = f"column {header!r} holds {', '.join(sorted(kinds))} data"
                issues.append(
                    Issue(Code.UNEXPECTED_PII.value, Severity.WARNING, message, header, self.name)
                )
        return issues


def _expected(kind: str, header: str) -> bool:
    lowered = header.lower()
    return any(hint in lowered for hint in _EXPECTED.get(kind, ()))
