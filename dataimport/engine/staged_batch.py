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
from dataimport.readers.fast_csv import cell_column


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
    """The batch as the engine's frame: one column per key, from the reader's cell columns
    where it has them (`fast_csv.cell_column`), else decoded from raw_data."""
    # Only a row the reader flagged can hold keys beyond the headers (ragged: `_extra_N`).
    flagged = batch.filter(pl.col(READ_ISSUES).is_not_null())["raw_data"].to_list()
    extra = {key for text in flagged for key in json.loads(text)} - set(headers)
    keys = jsonb_key_order([*headers, *extra])
    position = {header: i for i, header in enumerate(headers)}
    given = bool(headers) and cell_column(0) in batch.columns
    # Rows without cell columns (all of them, or those the reference reader made).
    undecoded = batch.get_column(cell_column(0)).is_null() if given else None
    decoded: pl.DataFrame | None = None
    if undecoded is None or undecoded.any():
        # Decoded in the order the text holds the keys (the headers': readers write raw_data
        # so), which the decoder reads several times faster than fields in another order.
        in_text_order = list(dict.fromkeys([*headers, *sorted(extra)]))
        dtype = pl.Struct([pl.Field(key, pl.Utf8) for key in in_text_order])
        text = pl.col("raw_data")
        if undecoded is not None:
            text = pl.when(pl.lit(undecoded)).then(text)
        decoded = batch.select(text.str.json_decode(dtype).alias("cells")).unnest("cells")

    def cells(key: str) -> pl.Series:
        if given and key in position:
            column = batch.get_column(cell_column(position[key]))
            return column if decoded is None else column.fill_null(decoded.get_column(key))
        assert decoded is not None  # a key beyond the headers comes from a flagged row
        return decoded.get_column(key)

    columns = [cells(key).fill_null("").rename(key_column(i)) for i, key in enumerate(keys)]
    rows = pl.DataFrame(
        [batch.get_column(ROW), batch.get_column(BLANK), batch.get_column(READ_ISSUES), *columns]
    )
    return ChunkFrame(rows, keys, mapping)
