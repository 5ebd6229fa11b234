"""`errors --failed-rows` and `groups` through the real CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.factories import (
    CMDB_HEADERS,
    Cli,
    assert_formula_safe,
    cmdb_row,
    import_json,
    unidentified,
    write_cmdb,
    write_csv,
)

# The CLI fixtures of test_cli, shared.

pytestmark = pytest.mark.usefixtures("worker")


async def test_failed_rows_come_back_in_their_own_columns_ready_to_reimport(
    cli: Cli, tmp_path: Path
) -> None:
    rows = [cmdb_row(n) for n in range(1, 6)]
    rows[1][CMDB_HEADERS.index("cpu_count")] = "lots"  # a warning: kept without it
    unidentified(rows[1])
    rows[3][CMDB_HEADERS.index("IP Address")] = "999.0.0.1"
    unidentified(rows[3])
    rows[3][CMDB_HEADERS.index("owner")] = "=cmd|' /C calc'!A0"
    code, status = await import_json(
        cli, write_csv(tmp_path / "c.csv", CMDB_HEADERS, rows), "--wait"
    )
    assert (code, status["invalid_rows"]) == (0, 2)

    failed = tmp_path / "failed.csv"
    done = await cli.ok("errors", status["data_import_id"], "--failed-rows", str(failed))
    assert "2 rejected rows" in done.stdout
    written = list(csv.reader(io.StringIO(failed.read_text(encoding="utf-8"))))
    assert written[0] == CMDB_HEADERS
    assert [row[0] for row in written[1:]] == ["A-000002", "A-000004"]
    assert written[2][CMDB_HEADERS.index("owner")] == "'=cmd|' /C calc'!A0"
    assert_formula_safe(written)

    # Fix them and import just those: every asset is there, none twice.
    fixed = [row[:] for row in written[1:]]
    for row, n in zip(fixed, (2, 4), strict=True):
        row[CMDB_HEADERS.index("asset_name")] = f"SRV-{n:06d}"
    fixed[0][CMDB_HEADERS.index("cpu_count")] = "4"
    fixed[1][CMDB_HEADERS.index("IP Address")] = "10.0.0.4"
    code, again = await import_json(
        cli, write_csv(tmp_path / "fixed.csv", CMDB_HEADERS, fixed), "--wait"
    )
    assert (code, again["status"], again["assets_created"]) == (0, "completed", 2)


async def test_groups_lists_move_group_candidates(cli: Cli, tmp_path: Path) -> None:
    code, status = await import_json(cli, write_cmdb(tmp_path / "chain.csv", 4), "--wait")
    assert (code, status["dependency_groups"]) == (0, 1)
    listed = await cli.ok("groups", "--json")
    groups = listed.json()
    assert len(groups) == 1 and groups[0]["assets"] == 4 and groups[0]["dependencies"] == 3
    table = await cli.ok("groups")
    assert groups[0]["group"] in table.stdout
