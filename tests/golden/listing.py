"""The canonical listing of a validated corpus file, its compact form, and the golden check.

A listing has one JSON line per row: its number, validity, findings (code, severity, field,
message, agent, in order) and normalised data. A small file's golden file is that listing
(`<name>.jsonl`); a large one's is a summary (`<name>.summary.json`: row counts, counts per
code/severity/field and a sha256 over the full listing) plus the full lines of a few thousand
representative rows (`<name>.sample.jsonl`), so the repository stays small.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataimport.contracts import ProcessingConfig
from dataimport.engine import chunk
from dataimport.engine.frame import frame_from_rows, jsonb_key_order
from dataimport.readers import open_table
from dataimport.validation import header_mapping

GOLDEN = Path(__file__).resolve().parent
# Files of more rows are kept as a summary plus representative rows: the first few rows of
# every (code, field) and every n-th row (a few MB for the whole corpus).
FULL_LISTING_MAX_ROWS = 1_000
EXAMPLES_PER_FINDING = 3
EVERY_NTH_ROW = 500

SAMPLES = GOLDEN.parents[1] / "dataimport" / "samples"
StagedRow = tuple[int, dict[str, Any], list[dict[str, Any]] | None, bool]


@dataclass(frozen=True, slots=True)
class GoldenCase:
    """One corpus file: how to build it, and the category and config that validate it."""

    name: str
    category: Any
    build: Callable[[Path], Path]  # writes (or finds) the file, given a scratch folder
    config: ProcessingConfig | None = None


def sample(name: str) -> Callable[[Path], Path]:
    """A case builder for a bundled sample file."""
    return lambda _folder: SAMPLES / name


def staged_rows(path: Path, category: Any) -> tuple[list[str], list[StagedRow]]:
    """The rows as ingest stages them, keys in the order JSONB gives them back."""
    with open_table(path, sheet_plan=category.sheet_plan) as table:
        rows = []
        for row in table.rows(start_after=0):
            raw = {key: row.cells[key] for key in jsonb_key_order(row.cells)}
            issues = [issue.to_json() for issue in row.issues] or None
            rows.append((row.row_number, raw, issues, row.is_blank))
        return list(table.headers), rows


def listing(case: GoldenCase, folder: Path) -> list[str]:
    """The columnar engine's canonical listing of the case's file."""
    path = case.build(folder)
    headers, rows = staged_rows(path, case.category)
    mapping = header_mapping(case.category, headers, case.config or ProcessingConfig())
    frame = frame_from_rows(
        [(n, raw, json.dumps(issues) if issues else None, blank) for n, raw, issues, blank in rows],
        mapping,
        keys=headers,
    )
    validated = chunk.validate(case.category, frame).rows.to_dicts()
    return [
        line(row["row_number"], row["is_valid"], row["errors"], row["normalized"])
        for row in validated
    ]


def line(row_number: int, is_valid: bool, errors: str, normalized: str | None) -> str:
    """One row, canonical: keys sorted, findings in their order, non-ASCII kept readable."""
    entry = {
        "row": row_number,
        "valid": is_valid,
        "findings": json.loads(errors),
        "normalized": json.loads(normalized) if normalized is not None else None,
    }
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def summary(lines: Iterable[str]) -> dict[str, Any]:
    """Row counts, counts per code/severity/field, and a digest over every line."""
    digest = hashlib.sha256()
    rows = valid = 0
    counts: Counter[str] = Counter()
    for text in lines:
        digest.update(text.encode() + b"\n")
        entry = json.loads(text)
        rows += 1
        valid += entry["valid"]
        counts.update(
            f"{f['code']}/{f['severity']}/{f.get('field') or '-'}" for f in entry["findings"]
        )
    return {
        "rows": rows,
        "valid_rows": valid,
        "findings": dict(sorted(counts.items())),
        "sha256": digest.hexdigest(),
    }


def representative(lines: list[str]) -> list[str]:
    """The first rows of every (code, field) and every n-th row, in row order."""
    chosen: list[str] = []
    seen: Counter[str] = Counter()
    for text in lines:
        entry = json.loads(text)
        keep = (entry["row"] - 1) % EVERY_NTH_ROW == 0
        for finding in entry["findings"]:
            key = f"{finding['code']}/{finding.get('field')}"
            if seen[key] < EXAMPLES_PER_FINDING:
                seen[key] += 1
                keep = True
        if keep:
            chosen.append(text)
    return chosen


def paths(case: GoldenCase) -> tuple[Path, Path, Path]:
    """(full listing, summary, sample) file of a case."""
    stem = GOLDEN / case.name
    return (
        stem.with_suffix(".jsonl"),
        stem.with_suffix(".summary.json"),
        stem.with_suffix(".sample.jsonl"),
    )


def record(case: GoldenCase, folder: Path) -> list[Path]:
    """Write the case's golden files; returns them."""
    lines = listing(case, folder)
    full, compact, sample = paths(case)
    for old in (full, compact, sample):
        old.unlink(missing_ok=True)
    full.parent.mkdir(parents=True, exist_ok=True)
    if len(lines) <= FULL_LISTING_MAX_ROWS:
        full.write_text("".join(f"{text}\n" for text in lines), encoding="utf-8")
        return [full]
    write_compact(case, lines)
    return [compact, sample]


def write_compact(case: GoldenCase, lines: list[str]) -> None:
    _full, compact, sample = paths(case)
    compact.write_text(json.dumps(summary(lines), indent=1) + "\n", encoding="utf-8")
    sample.write_text("".join(f"{t}\n" for t in representative(lines)), encoding="utf-8")


def check(case: GoldenCase, folder: Path) -> list[str]:
    """Assert the engine's listing of the case equals its golden files; returns the listing."""
    lines = listing(case, folder)
    full, compact, sample = paths(case)
    if full.exists():
        expected = full.read_text(encoding="utf-8").splitlines()
        _same(lines, expected, case.name)
        return lines
    assert compact.exists(), f"no golden file for {case.name}: run tests/golden/record.py"
    golden = json.loads(compact.read_text(encoding="utf-8"))
    by_row = {json.loads(text)["row"]: text for text in lines}
    expected = sample.read_text(encoding="utf-8").splitlines()
    got = [by_row.get(json.loads(text)["row"], "<missing>") for text in expected]
    _same(got, expected, case.name)
    assert summary(lines) == golden, f"{case.name}: summary differs from {compact.name}"
    return lines


def golden_codes(case: GoldenCase) -> Counter[str]:
    """How often each code occurs in the case's golden files (what the corpus covers)."""
    full, compact, _sample = paths(case)
    if full.exists():
        lines = full.read_text(encoding="utf-8").splitlines()
        return Counter(f["code"] for text in lines for f in json.loads(text)["findings"])
    codes: Counter[str] = Counter()
    for key, count in json.loads(compact.read_text(encoding="utf-8"))["findings"].items():
        codes[key.split("/")[0]] += count
    return codes


def _same(got: list[str], expected: list[str], name: str) -> None:
    """Equal listings, or a failure naming the first row that differs."""
    for actual, wanted in zip(got, expected, strict=False):
        if actual != wanted:
            golden = json.loads(wanted)
            found = json.loads(actual) if actual != "<missing>" else None
            raise AssertionError(f"{name} row {golden['row']}: {_difference(found, golden)}")
    assert len(got) == len(expected), f"{name}: {len(got)} rows, golden {len(expected)}"


def _difference(actual: Any, expected: Any, path: str = "") -> str:
    """Where two listing entries first differ."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        for key in sorted(set(actual) | set(expected)):
            if actual.get(key, "<absent>") != expected.get(key, "<absent>"):
                return _difference(
                    actual.get(key, "<absent>"), expected.get(key, "<absent>"), f"{path}.{key}"
                )
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            if a != e:
                return _difference(a, e, f"{path}[{i}]")
    return f"{path or 'row'}: engine {actual!r} != golden {expected!r}"
