"""calamine runs in a child process with memory and CPU limits: its crash is a classified
unreadable-file, never retried, and the worker goes on (docs/untrusted-input.md)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import openpyxl
import pytest
from temporalio.client import Client

from dataimport.issues import ImportFailure
from dataimport.readers import open_table, sandbox, xlsx_reader
from dataimport.readers.sandbox import SandboxFailed, load_sheet
from dataimport.readers.xlsx_reader import UNREADABLE_FILE
from service.imports import ImportService
from tests.factories import (
    A1_AND_XFD1048576,
    a_good_import_completes,
    wait_for,
    workbook,
)


def test_a_sheet_that_makes_calamine_abort_fails_in_the_child_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calamine asks for 549 GB for this 2 KB sheet and aborts (its issue #693): here only
    the child dies, past its address-space limit, and the parent gets the reason; its spool
    (made in the temporary directory, here the test's own) is gone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = workbook(tmp_path / "bomb.xlsx", A1_AND_XFD1048576)

    with pytest.raises(SandboxFailed) as failed:
        load_sheet(path, "Servers")

    assert "limits:" in failed.value.reason
    assert not list(Path(tmp_path).glob("dataimport-sheet-*"))


def test_rows_and_their_types_cross_the_process_boundary(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Servers"
    sheet.append(["name", "cores", "ratio", "since", "on", "up"])
    sheet.append(["srv-1", 4, 0.5, dt.datetime(2024, 5, 1, 12, 30), dt.date(2023, 1, 2), True])
    path = tmp_path / "typed.xlsx"
    book.save(path)

    loaded = load_sheet(path, "Servers")
    rows = list(loaded.iter_rows())
    assert rows == list(loaded.iter_rows())  # replayable
    loaded.release()

    assert rows[0] == ["name", "cores", "ratio", "since", "on", "up"]
    name, cores, ratio, since, on, up = rows[1]
    assert (name, cores, ratio, up) == ("srv-1", 4, 0.5, True)
    assert since == dt.datetime(2024, 5, 1, 12, 30)
    assert on in (dt.date(2023, 1, 2), dt.datetime(2023, 1, 2))


@pytest.fixture
def extent_unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the A1:XFD1048576 sheet past the area check, so calamine meets it (in its child)."""
    monkeypatch.setattr(xlsx_reader, "check_sheet_extent", lambda *_args, **_kw: 1)


@pytest.mark.usefixtures("extent_unchecked")
def test_a_crash_in_the_child_is_unreadable_file(tmp_path: Path) -> None:
    path = workbook(tmp_path / "bomb.xlsx", A1_AND_XFD1048576)

    with pytest.raises(ImportFailure) as refused:
        open_table(path, max_field_size=1_000_000)

    assert refused.value.code == UNREADABLE_FILE.code
    assert "it is not retried" in refused.value.message


@pytest.mark.usefixtures("extent_unchecked")
def test_a_tight_memory_limit_is_unreadable_file_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "MEMORY_LIMIT_BYTES", 16 * 1024 * 1024)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["name"])
    sheet.append(["srv-1"])
    path = tmp_path / "small.xlsx"
    book.save(path)

    with pytest.raises(ImportFailure) as refused:
        open_table(path, max_field_size=1_000_000)

    assert refused.value.code == UNREADABLE_FILE.code
    assert "16 MiB of memory" in refused.value.message


@pytest.mark.usefixtures("worker", "extent_unchecked")
async def test_an_import_whose_reader_crashes_ends_classified_after_one_attempt(
    service: ImportService, client: Client, tmp_path: Path
) -> None:
    path = workbook(tmp_path / "bomb.xlsx", A1_AND_XFD1048576)
    started = await service.start_import(path, "cmdb_export")
    status = await wait_for(service, started.data_import_id, ["needs_attention", "failed"])

    assert (status.status, status.error_code) == ("needs_attention", UNREADABLE_FILE.code)
    history = await client.get_workflow_handle(status.workflow_id).fetch_history()
    attempts = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
    ]
    assert attempts and max(attempts) == 1  # never handed to another attempt
    await service.fail(started.data_import_id, "refused")
    await a_good_import_completes(service, tmp_path)
