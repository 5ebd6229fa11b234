"""masking.mask_errors: every message masked as `pii.mask_text` masks it with its row's cells."""

from __future__ import annotations

import json
import random

import polars as pl
import pytest

from dataimport import pii
from dataimport.categories import get_category
from dataimport.contracts import ProcessingConfig
from dataimport.engine.frame import frame_from_rows
from dataimport.engine.masking import mask_errors
from dataimport.normalize import quote_value
from dataimport.validation import header_mapping

# Quotes, backslashes, whitespace Python and polars strip differently, non-printable and
# non-ASCII characters, a card number: what makes the needles and the exact pass differ.
_PIECES = ["a", "B", "7", "'", '"', "\\", " ", "\t", "é", "中", "\x01", "\u200b", "\x1c", "@", "."]
_HEADERS = ["store", "host", "columns", "owner", "table"]


def _cell(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return "4111111111111111"
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))


@pytest.mark.parametrize("seed", range(8))
def test_mask_errors_is_mask_text_per_row(seed: int) -> None:
    rng = random.Random(seed)
    category = get_category("sensitive_data")
    mapping = header_mapping(category, _HEADERS, ProcessingConfig())
    pool = [_cell(rng) for _ in range(30)]  # cells repeat, as in exports
    rows, texts = [], []
    for number in range(1, 301):
        raw = {h: rng.choice(pool) if rng.random() < 0.7 else _cell(rng) for h in _HEADERS}
        issues = []
        for _ in range(rng.randint(0, 3)):
            value = rng.choice([*raw.values(), *pool])
            quoted = rng.choice([quote_value(value), repr(value), value, value[:3], "plain"])
            severity = rng.choice(["error", "warning"])
            issues.append(
                {"code": "c", "severity": severity, "message": f"f: {quoted}", "field": "store"}
            )
        rows.append((number, raw, None, rng.random() < 0.05))
        texts.append(json.dumps(issues))
    frame = frame_from_rows(rows, mapping, keys=_HEADERS)
    errors = pl.Series("errors", texts, dtype=pl.Utf8)
    got = mask_errors(frame, errors.clone(), frame.rows.get_column("is_blank")).to_list()

    expected = []
    for (_number, raw, _issues, blank), text in zip(rows, texts, strict=True):
        issues = json.loads(text)
        cells = [raw[key] for key in frame.keys]  # the frame's key order, as the engine passes
        masked = [{**i, "message": pii.mask_text(i["message"], cells)} for i in issues]
        expected.append(text if blank or masked == issues else json.dumps(masked))
    assert got == expected
    assert got != texts  # some rows were masked
