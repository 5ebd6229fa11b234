"""privacy_analyzer: personal data where the category does not expect any.

A CMDB or infrastructure export should not carry e-mail addresses, card numbers or national
ids in free-text columns; when it does, the row is kept and the finding names the column and
the kind of data, never the value.
"""

from __future__ import annotations

import functools

import polars as pl

from dataimport import pii
from dataimport.agents.base import RowContext
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.text import per_distinct, py_strip
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


# Every cell `pii.detect_value` can flag passes this search (a superset of its own pre-filter:
# `_CANDIDATE`, or the length a codice fiscale needs).
_CANDIDATE = pii.CANDIDATE.pattern
# Plain IPv4 addresses and ISO dates: `detect_value` finds nothing in them (exactly these, with
# ASCII digits and no surrounding space, in a column whose name suggests nothing).
_IP_OR_ISO_DATE = r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9]{4}-[0-9]{2}-[0-9]{2})$"


# Single ASCII tokens (no '@', no space, no birth word) that `detect_value` can only flag by
# a fullmatch of its shape alternations: letter-led ones by `LETTER_LED_SHAPE` (here with
# NINO's lookahead dropped: a superset, Rust's engine has no lookaround), digit-led ones by
# `DIGIT_LED_SHAPE`, bare digit runs only at a card's lengths (12-19 digits).
_LETTER_LED = "(?i)^(?:" + pii.LETTER_LED_SHAPE.pattern.replace(pii.NINO_EXCLUDED, "") + ")$"
_DIGIT_LED = "(?i)^(?:" + pii.DIGIT_LED_SHAPE.pattern + ")$"


def _settled_empty(cell: pl.Expr) -> pl.Expr:
    """Cells `detect_value` surely finds nothing in (for a column with no hints), exactly:
    plain IPv4 addresses and ISO dates, and single ASCII tokens outside every shape."""
    token = py_strip(cell)
    digits = token.str.contains(r"^[0-9]+$")
    length = token.str.len_chars()
    single = (
        cell.str.contains(r"^[\x00-\x7f]*$")
        & ~token.str.contains(r"[@ ]")
        & ~token.str.contains("(?i)" + pii.BIRTH_WORD.pattern)
    )
    outside_shapes = (
        (token.str.contains(r"^[A-Za-z]") & ~token.str.contains(_LETTER_LED))
        | (digits & ((length < 12) | (length > 19)))
        | (token.str.contains(r"^[0-9]") & ~digits & ~token.str.contains(_DIGIT_LED))
    )
    return cell.str.contains(_IP_OR_ISO_DATE) | (single & outside_shapes)


def examine_frame(frame: ChunkFrame, findings: Findings) -> None:
    """The columnar form: candidates by one search per column, `detect_value` on each distinct
    candidate value only."""
    for key, column in frame.raw_columns():
        values = frame.rows.get_column(column)
        hints = pii.detect_column(key)
        length = values.str.len_chars()
        candidates = (length >= pii.MIN_LEN) & (length <= pii.MAX_LEN)
        candidates = candidates & (values.str.contains(_CANDIDATE) | (length >= 16))
        if not hints:
            candidates = candidates & ~frame.rows.select(_settled_empty(pl.col(column))).to_series()
        if not candidates.any():
            continue
        exact = functools.partial(_cell_issue, key, frame.display_field(key), hints)
        found = per_distinct(frame.rows, [column], exact, {"issue": pl.Utf8}, candidates)
        findings.add(found["issue"], Severity.WARNING)


def _cell_issue(
    key: str, field: str | None, hints: frozenset[str], value: str
) -> tuple[str | None]:
    found = pii.detect_value(value, hints)
    kinds = {kind for kind in found if not _expected(kind, key)}
    if not kinds:
        return (None,)
    message = f"column {key!r} holds {', '.join(sorted(kinds))} data"
    name = PrivacyAnalyzer.name
    return (issue_json(Code.UNEXPECTED_PII, Severity.WARNING, message, field, name),)
