"""Golden files for cmdb_export: the columnar engine finds what tests/golden records.

Every row's validity, findings (code, severity, field, message, agent, in order) and normalised
data are compared with the golden files (recorded from the row engine and the columnar engine
while both existed and agreed; re-record with `python -m tests.golden.record`). The corpus is
the bundled samples, a generated 100,000-row file full of the values that make rules branch,
and a file read through an explicit column mapping.
"""

from __future__ import annotations

import csv
import random
from datetime import date
from pathlib import Path

import pytest

from dataimport.categories.cmdb_export import CmdbExportCategory
from dataimport.contracts import ProcessingConfig
from tests.golden.cmdb_corpus import HEADERS, IPS, SIZES, generated_rows
from tests.golden.listing import GoldenCase, check, sample

CMDB = CmdbExportCategory(as_of=date(2026, 1, 1))


# --- a generated file of everything the rules branch on ---------------------------------


def _generated(folder: Path) -> Path:
    path = folder / "generated_cmdb.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        writer.writerows(generated_rows(100_000, random.Random(8)))
    return path


def _mapped(folder: Path) -> Path:
    """An explicit mapping (and an unmapped identifying column) takes the same paths."""
    path = folder / "mapped.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Server", "Addr", "Mem", "name"])
        rng = random.Random(3)
        for n in range(2_000):
            writer.writerow([f"S{n}", rng.choice(IPS).format(m=1, k=2), rng.choice(SIZES), "x"])
    return path


CASES = [
    GoldenCase("cmdb_export/homegrown_cmdb", CMDB, sample("homegrown_cmdb.csv")),
    GoldenCase(
        "cmdb_export/servicenow_cmdb_ci_server", CMDB, sample("servicenow_cmdb_ci_server.csv")
    ),
    GoldenCase("cmdb_export/generated_100k", CMDB, _generated),
    GoldenCase(
        "cmdb_export/column_mapping",
        CMDB,
        _mapped,
        ProcessingConfig(column_mapping={"Server": "name", "Addr": "ip_address", "Mem": "ram"}),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_matches_golden(case: GoldenCase, tmp_path: Path) -> None:
    assert check(case, tmp_path)
