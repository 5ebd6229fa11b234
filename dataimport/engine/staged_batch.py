"""Validation of a batch as it is staged: the rows go into staging with their results.

Ingest hands each batch (row_number, raw_data JSON text, read_issues, is_blank) to
`validate_batch` before its COPY, so the first validation pass costs no second read of the
rows and no UPDATE of each one. Only a file whose headers are fixed by its first row (CSV)
takes this path; a retry with a new mapping re-validates from staging, chunk by chunk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from dataimport.categories.base import HeaderMapping
from dataimport.engine import chunk
from dataimport.engine.frame import BLANK, READ_ISSUES, ROW, ChunkFrame, jsonb_key_order, key_column


@dataclass(slots=True)
class BatchValidation:
    """What validates the batches of one ingest, and what it has spent per agent."""

    category: chunk.FrameRules
    mapping: HeaderMapping
    headers: Sequence[str]
    rows: int = 0
    agent_ms: dict[str, float] = field(default_factory=dict)

    def validate_batch(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The batch with is_valid, validation_errors and normalized_data added."""
        frame = _frame(batch, self.headers, self.mapping)
        validated = chunk.validate(self.category, frame)
        self.rows += batch.height
        for name, ms in validated.agent_ms.items():
            self.agent_ms[name] = round(self.agent_ms.get(name, 0.0) + ms, 3)
        results = validated.rows.select(
            ROW,
            "is_valid",
            pl.col("errors").alias("validation_errors"),
            pl.col("normalized").alias("normalized_data"),
        )
        return batch.join(results, on=ROW, how="left", maintain_order="left")


def _frame(batch: pl.DataFrame, headers: Sequence[str], mapping: HeaderMapping) -> ChunkFrame:
    """The batch as the engine's frame: raw_data decoded into one column per key."""
    # Only a row the reader flagged can hold keys beyond the headers (ragged: `_extra_N`).
    flagged = batch.filter(pl.col(READ_ISSUES).is_not_null())["raw_data"].to_list()
    extra = {key for text in flagged for key in json.loads(text)} - set(headers)
    keys = jsonb_key_order([*headers, *extra])
    # Decoded in the order the text holds the keys (the headers': readers write raw_data so),
    # which the decoder reads several times faster than fields in another order.
    in_text_order = list(dict.fromkeys([*headers, *sorted(extra)]))
    dtype = pl.Struct([pl.Field(key, pl.Utf8) for key in in_text_order])
    cells = batch.select(pl.col("raw_data").str.json_decode(dtype).alias("cells")).unnest("cells")
    columns = [
        cells.get_column(key).fill_null("").rename(key_column(i)) for i, key in enumerate(keys)
    ]
    rows = pl.DataFrame(
        [batch.get_column(ROW), batch.get_column(BLANK), batch.get_column(READ_ISSUES), *columns]
    )
    return ChunkFrame(rows, keys, mapping)
