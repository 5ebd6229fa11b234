"""privacy_analyzer: personal data where the category does not expect any.

A CMDB or infrastructure export should not carry e-mail addresses, card numbers or national
ids in free-text columns; when it does, the row is kept and the finding names the column and
the kind of data, never the value.
"""

from __future__ import annotations

import polars as pl

from dataimport import pii
from dataimport.agents.base import RowContext
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
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

# Single ASCII tokens (no '@', no space, no birth word) that `detect_value` can only flag by
# a fullmatch of its shape alternations: letter-led ones by `LETTER_LED_SHAPE` (here with
# NINO's lookahead dropped: a superset, Rust's engine has no lookaround), digit-led ones by
# `DIGIT_LED_SHAPE`, bare digit runs only at a card's lengths (12-19 digits).
_LETTER_LED = pii.LETTER_LED_SHAPE.pattern.replace(pii.NINO_EXCLUDED, "")
_DIGIT_LED = pii.DIGIT_LED_SHAPE.pattern


# A candidate of a column without hints that matches none of these is surely clean: it is
# ASCII with no whitespace (so `strip()` leaves it as it is), holds no '@' and no birth word,
# starts with a letter or a digit, and fits none of the shapes its first character leads to.
# One search per candidate instead of a pass per condition. With `lines`, the same over a
# column's cells joined by newlines (`ChunkFrame.column_texts`), cell by cell with `(?m)`:
# the separator is left out of the classes (a cell's own newline is counted apart).
def _unsettled(lines: bool = False) -> str:
    newline = "" if lines else r"\n"
    alternatives = [
        r"[^\x00-\x7f]",
        r"[\t" + newline + r"\x0b-\r\x1c-\x1f @]",  # Python's ASCII whitespace, and '@'
        "(?i:" + pii.BIRTH_WORD.pattern + ")",
        r"^[^A-Za-z0-9\n]",
        "^(?i:" + _LETTER_LED + ")$",
        r"^[0-9]{12,19}$",
        "^(?i:" + _DIGIT_LED + ")$",
    ]
    return ("(?m)" if lines else "") + "|".join(alternatives)


_UNSETTLED = _unsettled()
_UNSETTLED_LINES = _unsettled(lines=True)


def _candidates(cell: pl.Expr) -> pl.Expr:
    """Cells `detect_value` may flag: its length bounds and pre-filter."""
    length = cell.str.len_chars()
    return (
        (length >= pii.MIN_LEN)
        & (length <= pii.MAX_LEN)
        & (cell.str.contains(_CANDIDATE) | (length >= 16))
    )


def _clean_columns(frame: ChunkFrame) -> set[str]:
    """Columns none of whose cells can be flagged, settled on their joined texts: no cell
    long enough, no `_CANDIDATE` match and no cell of 16 bytes, or (without hints) no
    `_UNSETTLED` line. Neither pattern can match across the newline separator."""
    raw = frame.raw_columns()
    texts = frame.column_texts()
    facts = texts.select(
        *(pl.col(c).str.contains(_CANDIDATE).alias(f"{c}.candidate") for _k, c in raw),
        *(pl.col(c).str.contains(_UNSETTLED_LINES).alias(f"{c}.unsettled") for _k, c in raw),
    ).row(0, named=True)
    lengths = texts.row(0, named=True)
    clean: set[str] = set()
    for key, column in raw:
        longest = lengths[f"{column}.bytes"] or 0
        no_candidate = longest < pii.MIN_LEN or (not facts[f"{column}.candidate"] and longest < 16)
        settled = not pii.detect_column(key) and not (
            facts[f"{column}.unsettled"] or lengths[f"{column}.newlines"]
        )
        if no_candidate or settled:
            clean.add(column)
    return clean


def examine_frame(frame: ChunkFrame, findings: Findings) -> None:
    """The columnar form: columns settled clean on their joined texts are skipped; in the
    others, the candidates (narrowed by `_UNSETTLED` where the name gives no hints) go to
    `detect_value` once per distinct value. A column with no finding adds nothing, which is
    what an all-null issue column would add."""
    if frame.height == 0:
        return
    clean = _clean_columns(frame)
    raw = [(key, column) for key, column in frame.raw_columns() if column not in clean]
    if not raw:
        return
    masks = frame.rows.select(_candidates(pl.col(column)).alias(column) for _key, column in raw)
    for key, column in raw:
        mask = masks.get_column(column)
        if not mask.any():
            continue
        hints = pii.detect_column(key)
        candidates = frame.rows.get_column(column).filter(mask)
        if not hints:
            candidates = candidates.filter(candidates.str.contains(_UNSETTLED))
        field = frame.display_field(key)
        found = {
            value: issue
            for value in candidates.unique().to_list()
            if (issue := _cell_issue(key, field, hints, value)[0]) is not None
        }
        if not found:
            continue
        issues = frame.rows.get_column(column).replace_strict(
            list(found), list(found.values()), default=None, return_dtype=pl.Utf8
        )
        findings.add(issues, Severity.WARNING)


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
