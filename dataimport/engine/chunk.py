"""Validate one chunk column-wise: the category's rules, then every agent, then the results.

The result per row: `is_valid`, `validation_errors` (JSON array
text) and `normalized_data` (JSON object text with `_quality` and `_key`; null on blank rows).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

from dataimport.agents import FORMAT_VALIDATOR, data_quality, privacy_analyzer, security_scanner
from dataimport.agents.base import ValidationAgent
from dataimport.engine import masking, policy
from dataimport.engine.findings import Findings
from dataimport.engine.frame import BLANK, READ_ISSUES, ROW, ChunkFrame


class FrameRules(policy.PolicyRules, Protocol):
    """What a columnar category offers the engine (see categories/base.ImportCategory)."""

    name: str
    masks_values: bool
    agents: Any

    def validate_frame(self, frame: ChunkFrame, findings: Findings) -> Any: ...


# The common agents' columnar forms, in the order their findings are reported.
_COMMON: dict[str, Callable[[ChunkFrame, Findings], None]] = {
    "security_scanner": security_scanner.examine_frame,
    "privacy_analyzer": privacy_analyzer.examine_frame,
}


@dataclass(slots=True)
class ValidatedChunk:
    """One column per result, aligned with the chunk's rows."""

    rows: pl.DataFrame  # row_number, is_valid, errors, normalized
    agent_ms: dict[str, float] = field(default_factory=dict)


def validate(category: FrameRules, frame: ChunkFrame) -> ValidatedChunk:
    findings = Findings(frame.height)
    elapsed: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    outcome = policy.apply_rules(category, frame, findings)
    elapsed[FORMAT_VALIDATOR] += time.perf_counter() - started
    for name, examine in _agents(category):
        started = time.perf_counter()
        examine(frame, findings)
        elapsed[name] += time.perf_counter() - started
    started = time.perf_counter()
    quality = data_quality.examine_frame(frame, findings)
    elapsed[data_quality.DataQualityAssessor.name] += time.perf_counter() - started

    blank = frame.rows.get_column(BLANK)
    is_valid = ~findings.has_error & ~blank
    columns = pl.DataFrame(
        [
            frame.rows.get_column(ROW),
            blank,
            is_valid.rename("is_valid"),
            outcome.normalized.rename("n"),
            quality.rename("q"),
            outcome.natural_key.rename("k"),
        ]
    )
    key = pl.when(pl.col("is_valid")).then(pl.col("k"))
    # Both members in one encode (each encoded as json_value would), spliced onto the object.
    tail = pl.struct(pl.col("q").alias("_quality"), key.alias("_key")).struct.json_encode()
    # Slices, not strips: a JSON object ends with "}" and the tail starts with "{", and a
    # slice is a view of the text where a strip copies it.
    normalized = pl.concat_str([pl.col("n").str.head(-1), pl.lit(","), tail.str.slice(1)])
    errors = findings.json_lists(frame.rows.get_column(READ_ISSUES), blank)
    if category.masks_values:  # invariant 7: no message quotes a cell of its row
        errors = masking.mask_errors(frame, errors, blank)
    result = columns.select(
        ROW,
        "is_valid",
        pl.lit(errors).alias("errors"),
        pl.when(~pl.col(BLANK)).then(normalized).alias("normalized"),
    )
    timings = {name: round(seconds * 1000, 3) for name, seconds in elapsed.items()}
    return ValidatedChunk(result, timings)


def _agents(category: FrameRules) -> list[tuple[str, Callable[[ChunkFrame, Findings], None]]]:
    """Common agents (no privacy analyzer where values are sensitive anyway), then the
    category's own; data quality runs last, outside this list (it scores all findings)."""
    names = ["security_scanner"] + ([] if category.masks_values else ["privacy_analyzer"])
    own: list[ValidationAgent] = list(category.agents)
    agents = [(name, _COMMON[name]) for name in names]
    for agent in own:
        examine = getattr(agent, "examine_frame", None)
        if examine is None:
            raise TypeError(f"agent {agent.name} has no columnar form")
        agents.append((agent.name, examine))
    return agents
