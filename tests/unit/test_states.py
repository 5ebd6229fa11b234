"""Statuses and phases are enums whose values feed the CHECK constraint and the OpenAPI schema."""

from __future__ import annotations

import re

from dataimport.api.app import create_app
from dataimport.contracts import PHASES, TERMINAL_STATUSES, ImportState, ImportStatus, Phase
from dataimport.models import IMPORT_STATUSES, Base
from dataimport.settings import Settings


def test_the_status_check_is_built_from_the_enum() -> None:
    # The CHECK lists exactly the enum's values (migrations keep their own frozen copies).
    assert tuple(state.value for state in ImportState) == IMPORT_STATUSES
    assert {"pending", "needs_attention", "completed", "failed"} <= set(IMPORT_STATUSES)
    checks = [
        str(c.sqltext)
        for c in Base.metadata.tables["data_imports"].constraints
        if hasattr(c, "sqltext")
    ]
    assert any(all(repr(s.value) in check for s in ImportState) for check in checks), checks
    assert set(ImportState) >= TERMINAL_STATUSES and "needs_attention" not in TERMINAL_STATUSES
    assert PHASES == ("upload", "validation", "enrichment", "complete") == tuple(Phase)


def test_a_plain_string_status_still_serialises_and_compares() -> None:
    status = ImportStatus(
        data_import_id="11111111-1111-4111-8111-111111111111",
        workflow_id="w",
        category="cmdb_export",
    )
    status.status = "completed"  # as the workflow assigns it
    assert status.is_terminal and status.model_dump(mode="json")["status"] == "completed"
    assert ImportState("needs_attention") == "needs_attention"


def test_the_openapi_schema_names_every_status_and_phase() -> None:
    schema = create_app(Settings()).openapi()
    properties = schema["components"]["schemas"]["ImportStatus"]["properties"]
    assert properties["status"]["enum"] == [s.value for s in ImportState]
    assert properties["phase"]["enum"] == [p.value for p in Phase]


def test_the_cli_stops_following_exactly_at_terminal_and_waiting_statuses() -> None:
    from dataimport.contracts import WAITING_STATUSES
    from starter.cli import EXIT_ATTENTION, EXIT_BY_STATUS

    assert set(EXIT_BY_STATUS) == TERMINAL_STATUSES | WAITING_STATUSES
    assert EXIT_BY_STATUS.get("needs_attention") == EXIT_ATTENTION  # a plain string finds it


def test_the_cli_help_names_every_status_and_the_exit_code_of_each_it_stops_at() -> None:
    from typer.testing import CliRunner

    from starter.cli import EXIT_BY_STATUS, app

    wide = {"COLUMNS": "400", "TERMINAL_WIDTH": "400", "NO_COLOR": "1"}
    shown = CliRunner().invoke(app, ["status", "--help"], env=wide)
    assert shown.exit_code == 0, shown.output
    # The help is boxed and wrapped by rich: compare words, not lines.
    words = " ".join(shown.output.replace("│", " ").split())
    named = [state for state in ImportState if re.search(rf"\b{state.value}\b", words)]
    assert named == list(ImportState), words
    stops = [state for state in ImportState if state in EXIT_BY_STATUS]
    assert len(stops) == len(EXIT_BY_STATUS) >= 5
    for state in stops:
        group = re.search(rf"\b{EXIT_BY_STATUS[state]} ((?:[a-z_]+ / )*[a-z_]+)", words)
        assert group is not None and state.value in group.group(1).split(" / "), (state, words)
    waiting = CliRunner().invoke(app, ["import", "--help"], env=wide)
    assert "3 needs_attention, 4 awaiting_approval" in " ".join(waiting.output.split())
