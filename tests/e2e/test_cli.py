"""The `dataimport` CLI end to end: a real subprocess against the session's test stack.

The session worker runs in pytest's event loop, so the CLI runs through
asyncio.create_subprocess_exec (a blocking subprocess.run would starve the worker).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from pathlib import Path

import pytest

from dataimport.settings import Settings
from tests.factories import (
    CLI,
    CMDB_HEADERS,
    TERMINAL_OR_WAITING,
    WEB_UI,
    Cli,
    assert_formula_safe,
    cmdb_row,
    import_json,
    other_tenant,
    unidentified,
    write_cmdb,
    write_csv,
)

pytestmark = pytest.mark.usefixtures("worker")

STATUS_FIELDS = {
    "data_import_id",
    "workflow_id",
    "category",
    "status",
    "phase",
    "total_rows",
    "valid_rows",
    "invalid_rows",
    "assets_created",
    "assets_updated",
    "dependencies_created",
    "error_code",
    "error_message",
}


def unmapped_file(tmp_path: Path) -> Path:
    headers = ["Server Label", "Primary Address"]
    return write_csv(tmp_path / "odd.csv", headers, [["ALPHA", "10.0.0.1"], ["BETA", "10.0.0.2"]])


async def waiting_import(cli: Cli, tmp_path: Path) -> str:
    code, status = await import_json(cli, unmapped_file(tmp_path), "--wait")
    assert (code, status["status"]) == (3, "needs_attention"), status
    return str(status["data_import_id"])


# ----- import --wait -----------------------------------------------------------------------


async def test_import_wait_json_of_a_clean_file_exits_0_with_all_fields(
    cli: Cli, tmp_path: Path
) -> None:
    code, status = await import_json(cli, write_cmdb(tmp_path / "cmdb.csv", 5), "--wait")

    assert code == 0
    assert status.keys() >= STATUS_FIELDS
    assert (status["status"], status["phase"], status["category"]) == (
        "completed",
        "complete",
        "cmdb_export",
    )
    assert (status["total_rows"], status["valid_rows"], status["invalid_rows"]) == (5, 5, 0)
    assert (status["assets_created"], status["assets_updated"]) == (5, 0)
    assert status["dependencies_created"] == 4
    assert status["error_code"] is None and status["error_message"] is None
    assert str(uuid.UUID(status["data_import_id"])) in status["workflow_id"]


async def test_import_wait_human_output_shows_progress_full_id_and_web_ui_link(
    cli: Cli, tmp_path: Path
) -> None:
    result = await cli.ok("import", str(write_cmdb(tmp_path / "c.csv", 3)), "-c", "cmdb_export")
    listed = (await cli.ok("list", "--json")).json()
    data_import_id, workflow_id = listed[0]["data_import_id"], listed[0]["workflow_id"]
    assert data_import_id in result.stdout
    assert f"{WEB_UI}/namespaces/default/workflows/{workflow_id}" in result.stdout
    await cli.wait_for(data_import_id, TERMINAL_OR_WAITING)
    # the table is not squeezed into 80 columns when stdout is a pipe: ids and names stay whole
    table = (await cli.ok("list")).stdout
    assert data_import_id in table and "c.csv" in table


async def test_import_wait_reports_progress_on_stderr(cli: Cli, tmp_path: Path) -> None:
    path = write_cmdb(tmp_path / "c.csv", 3)
    result = await cli.ok("import", str(path), "--category", "cmdb_export", "--wait")
    assert "completed" in result.stdout
    assert "complete" in result.stderr  # the last progress line


# ----- invalid rows and the error report ---------------------------------------------------


def write_partly_invalid(path: Path) -> Path:
    rows = [cmdb_row(n) for n in range(1, 5)]
    rows[2][CMDB_HEADERS.index("cpu_count")] = "lots"  # row 3: type-error (a warning)
    unidentified(rows[2])  # row 3: no name (rejected)
    rows[1][CMDB_HEADERS.index("owner")] = '=HYPERLINK("http://evil.example","x")'  # row 2
    rows[3][CMDB_HEADERS.index("department")] = "-2+3+cmd|' /C calc'!A0"  # row 4
    headers = [*CMDB_HEADERS, "=cmd()"]  # a formula in a header lands in the column cell
    rows = [[*row, "@SUM(1,2)" if n == 0 else ""] for n, row in enumerate(rows)]
    return write_csv(path, headers, rows)


def read_report(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_some_invalid_rows_complete_with_errors_and_a_formula_safe_report(
    cli: Cli, tmp_path: Path
) -> None:
    code, status = await import_json(cli, write_partly_invalid(tmp_path / "c.csv"), "--wait")
    assert (code, status["status"]) == (0, "completed_with_errors")
    assert (status["valid_rows"], status["invalid_rows"], status["assets_created"]) == (3, 1, 3)

    out = tmp_path / "report.csv"
    written = await cli.ok("errors", status["data_import_id"], "--out", str(out))
    rows = read_report(out.read_text(encoding="utf-8"))
    assert f"{len(rows) - 1} findings" in written.stdout
    assert rows[0] == ["row", "column", "code", "severity", "message"]
    found = {(row[0], row[1], row[2], row[3]) for row in rows[1:]}
    assert ("3", "cpu_count", "type-error", "warning") in found  # the file's own column name
    assert ("3", "asset_name", "missing-required", "error") in found
    assert any(row[0] == "3" and "'lots'" in row[4] for row in rows)
    assert ("2", "owner", "formula-injection", "warning") in found
    assert ("4", "department", "formula-injection", "warning") in found
    assert ("1", "'=cmd()", "formula-injection", "warning") in found  # escaped header
    assert_formula_safe(rows)

    printed = await cli.ok("errors", status["data_import_id"])
    assert read_report(printed.stdout) == rows

    shown = await cli.ok("steps", status["data_import_id"])
    for agent in ("format_validator", "security_scanner", "data_quality_assessor"):
        assert agent in shown.stdout
    assert "formula-injection=" in shown.stdout.replace("\n", "")


async def test_error_report_of_a_clean_import_is_just_the_header(cli: Cli, tmp_path: Path) -> None:
    _, status = await import_json(cli, write_cmdb(tmp_path / "c.csv", 2), "--wait")
    printed = await cli.ok("errors", status["data_import_id"])
    assert read_report(printed.stdout) == [["row", "column", "code", "severity", "message"]]


async def test_error_report_to_an_unwritable_place_is_a_usage_error(
    cli: Cli, tmp_path: Path
) -> None:
    _, status = await import_json(cli, write_cmdb(tmp_path / "c.csv", 2))
    result = await cli("errors", status["data_import_id"], "--out", str(tmp_path / "no/such.csv"))
    assert result.code == 2
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr


# ----- needs_attention: retry and fail -----------------------------------------------------


async def test_unmapped_headers_exit_3_then_retry_with_a_mapping_completes(
    cli: Cli, tmp_path: Path
) -> None:
    code, waiting = await import_json(cli, unmapped_file(tmp_path), "--wait")
    assert (code, waiting["status"], waiting["error_code"]) == (
        3,
        "needs_attention",
        "no-mapped-columns",
    )
    assert waiting["error_message"]

    mapping = {"column_mapping": {"Server Label": "name", "Primary Address": "ip_address"}}
    sent = await cli.ok("retry", waiting["data_import_id"], "--config", json.dumps(mapping))
    assert waiting["data_import_id"] in sent.stdout
    done = await cli.wait_for(waiting["data_import_id"], ("completed", "completed_with_errors"))
    assert (done["status"], done["assets_created"], done["error_code"]) == ("completed", 2, None)


async def test_fail_with_a_reason_ends_failed_and_then_cannot_be_retried(
    cli: Cli, tmp_path: Path
) -> None:
    data_import_id = await waiting_import(cli, tmp_path)

    await cli.ok("fail", data_import_id, "--reason", "wrong extract, will resend")
    failed = await cli.wait_for(data_import_id, ("failed",))
    assert failed["error_message"] == "wrong extract, will resend"

    again = await cli("retry", data_import_id)
    assert again.code == 2
    assert "is failed" in again.stderr and "Traceback" not in again.stderr


async def test_retry_with_an_invalid_config_is_refused_and_the_import_keeps_waiting(
    cli: Cli, tmp_path: Path
) -> None:
    data_import_id = await waiting_import(cli, tmp_path)
    for config in ('{"column_mapping": ', '["a"]', '{"chunk_size": 1}'):
        result = await cli("retry", data_import_id, "--config", config)
        assert result.code == 2, result
        assert "config" in result.stderr and "Traceback" not in result.stderr
    assert (await cli.status(data_import_id))["status"] == "needs_attention"


# ----- bad usage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--category", "no_such_category"], "unknown category 'no_such_category'"),
        (["--category", "cmdb_export", "--config", "{not json"], "--config is not valid JSON"),
        (["--category", "cmdb_export", "--config", "[1, 2]"], "--config must be a JSON object"),
        (["--category", "cmdb_export", "--config", '{"chunk_size": 1}'], "chunk_size"),
    ],
)
async def test_bad_usage_exits_2_with_a_clear_message_and_starts_nothing(
    cli: Cli, tmp_path: Path, args: list[str], message: str
) -> None:
    path = write_cmdb(tmp_path / "c.csv", 2)
    result = await cli("import", str(path), *args, "--wait")

    assert result.code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert (await cli.ok("list", "--json")).json() == []


async def test_missing_file_exits_2_and_names_it(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "[draft] nowhere.csv"  # brackets: not swallowed as rich markup
    result = await cli("import", str(missing), "--category", "cmdb_export")
    assert result.code == 2
    assert f"no such file: {missing}" in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["status", "not-a-uuid"],
        ["import", "x.csv"],  # --category missing
        ["fail", str(uuid.uuid4())],  # --reason missing
        ["fail", str(uuid.uuid4()), "--reason", " "],
        ["list", "--limit", "0"],
    ],
)
async def test_malformed_commands_exit_2_without_a_traceback(cli: Cli, args: list[str]) -> None:
    result = await cli(*args)
    assert result.code == 2, result
    assert "Traceback" not in result.stderr


async def test_no_reachable_database_is_a_clear_error(cli: Cli) -> None:
    env = {**cli.env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none"}
    result = await Cli(env, cli.tenant)("status", str(uuid.uuid4()))
    assert result.code == 2
    assert "cannot reach the database" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# ----- idempotency and tenancy -------------------------------------------------------------


async def test_same_request_id_gives_the_same_import(cli: Cli, tmp_path: Path) -> None:
    path = write_cmdb(tmp_path / "c.csv", 3)
    _, first = await import_json(cli, path, "--request-id", "upload-42")
    _, again = await import_json(cli, path, "--request-id", "upload-42", "--wait")
    assert first["data_import_id"] == again["data_import_id"]
    assert again["status"] == "completed"
    listed = (await cli.ok("list", "--json")).json()
    assert [item["data_import_id"] for item in listed] == [first["data_import_id"]]

    stranger = other_tenant()
    result = await cli(
        "import", str(path), "-c", "cmdb_export", "--request-id", "upload-42", "--json",
        tenant=stranger,
    )  # fmt: skip
    assert result.code == 0
    assert result.json()["data_import_id"] != first["data_import_id"]


TENANT_COMMANDS: list[list[str]] = [
    ["status", "{id}"],
    ["status", "{id}", "--json"],
    ["retry", "{id}"],
    ["retry", "{id}", "--config", '{"column_mapping": {"Server Label": "name"}}'],
    ["fail", "{id}", "--reason", "not mine"],
    ["errors", "{id}"],
    ["steps", "{id}"],
]


async def test_another_tenants_import_answers_like_an_unknown_id(cli: Cli, tmp_path: Path) -> None:
    data_import_id = await waiting_import(cli, tmp_path)
    stranger, unknown = other_tenant(), str(uuid.uuid4())

    for template in TENANT_COMMANDS:
        theirs = await cli(*[a.replace("{id}", data_import_id) for a in template], tenant=stranger)
        random = await cli(*[a.replace("{id}", unknown) for a in template], tenant=stranger)
        assert theirs.masked(data_import_id) == random.masked(unknown), template
        assert theirs.code == 2 and "no import" in theirs.stderr, theirs

    out = tmp_path / "theirs.csv"
    theirs = await cli("errors", data_import_id, "--out", str(out), tenant=stranger)
    assert theirs.code == 2 and not out.exists()
    assert (await cli.ok("list", "--json", tenant=stranger)).json() == []
    # nothing the stranger sent reached the import
    assert (await cli.status(data_import_id))["status"] == "needs_attention"
    await cli.ok("fail", data_import_id, "--reason", "cleanup")


async def test_list_json_shows_only_the_tenants_imports(cli: Cli, tmp_path: Path) -> None:
    path = write_cmdb(tmp_path / "c.csv", 2)
    _, first = await import_json(cli, path, "--wait")
    _, second = await import_json(cli, path, "--wait")
    await cli("import", str(path), "-c", "cmdb_export", "--wait", tenant=other_tenant())

    listed = (await cli.ok("list", "--json")).json()
    assert [item["data_import_id"] for item in listed] == [
        second["data_import_id"],
        first["data_import_id"],
    ]
    assert all(item.keys() >= STATUS_FIELDS for item in listed)
    assert (await cli.ok("list", "--json", "--limit", "1")).json()[0] == listed[0]


async def test_default_tenant_comes_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    env = {
        **cli.env,
        "DATAIMPORT_CLIENT_ACCOUNT_ID": str(cli.tenant.client_account_id),
        "DATAIMPORT_ENGAGEMENT_ID": str(cli.tenant.engagement_id),
    }
    _, status = await import_json(cli, write_cmdb(tmp_path / "c.csv", 1))
    process = await asyncio.create_subprocess_exec(
        str(CLI), "list", "--json", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert [item["data_import_id"] for item in json.loads(out)] == [status["data_import_id"]]


# ----- info --------------------------------------------------------------------------------


async def test_info_json_shows_the_configured_endpoints(cli: Cli, settings: Settings) -> None:
    data = (await cli.ok("info", "--json")).json()
    assert data["database_url"] == settings.database_url
    assert data["temporal_address"] == settings.temporal_address
    assert data["web_ui_url"] == WEB_UI
    assert data["task_queue"] == settings.task_queue
    assert data["client_account_id"] == str(cli.tenant.client_account_id)
    assert data["engagement_id"] == str(cli.tenant.engagement_id)

    human = (await cli.ok("info")).stdout
    assert str(settings.database_url) in human and WEB_UI in human


# ----- inventory ---------------------------------------------------------------------------


async def test_assets_and_dependencies_list_and_export_only_the_tenants_inventory(
    cli: Cli, tmp_path: Path
) -> None:
    path = write_cmdb(tmp_path / "c.csv", 5)  # 5 servers, each depending on the one before
    await import_json(cli, path, "--wait")
    await cli("import", str(path), "-c", "cmdb_export", "--wait", tenant=other_tenant())

    listed = (await cli.ok("assets", "--format", "json")).json()
    assert [a["name"] for a in listed] == [f"SRV-{n:06d}" for n in range(1, 6)]
    assert len({a["dependency_group"] for a in listed}) == 1  # one chain: one move group
    # JSON says which import set each field (here: the one import of the tenant).
    sources = listed[0]["field_sources"]
    assert {sources[f]["filename"] for f in ("name", "owner", "cpu_cores")} == {"c.csv"}
    assert sources["owner"]["category"] == "cmdb_export"
    paged = (await cli.ok("assets", "--format", "json", "--limit", "2", "--all")).json()
    assert paged == listed
    assert len((await cli.ok("assets", "--format", "json", "--limit", "2")).json()) == 2
    found = (await cli.ok("assets", "--format", "json", "--search", "000003")).json()
    assert [a["name"] for a in found] == ["SRV-000003"]

    out = tmp_path / "assets.csv"
    await cli.ok("assets", "--format", "csv", "--all", "--out", str(out))
    with out.open(newline="", encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert [row["name"] for row in exported] == [a["name"] for a in listed]
    assert exported[0]["id"] == listed[0]["id"]

    edges = (await cli.ok("dependencies", "--format", "json", "--all")).json()
    assert sorted((e["source_name"], e["target_name"]) for e in edges) == [
        (f"SRV-{n:06d}", f"SRV-{n - 1:06d}") for n in range(2, 6)
    ]
    table = (await cli.ok("dependencies")).stdout
    assert "SRV-000002" in table and "declared" in table
    one = listed[2]["id"]
    around = (await cli.ok("dependencies", "--format", "json", "--asset", one)).json()
    assert len(around) == 2  # SRV-000003 depends on 2 and 4 depends on it

    bad = await cli("assets", "--format", "xml")
    assert bad.code == 2 and "--format" in bad.stderr
