"""What a category's columnar rules give the engine for one chunk."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True, slots=True)
class FrameOutcome:
    """Per row: the normalised JSON text and the natural key (null when there is none)."""

    normalized: pl.Series
    natural_key: pl.Series
