"""Tests of the XLSX and JSON readers, always through open_table() and rows()."""

from __future__ import annotations

import codecs
import datetime as dt
import itertools
import json
import random
import struct
import tempfile
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.styles import Font

from dataimport.issues import Code, ImportFailure
from dataimport.readers import (
    FILE_NO_ROWS,
    SheetPlan,
    SourceRow,
    detect_format,
    json_reader,
    open_table,
    sandbox,
    xlsx_reader,
)
from dataimport.readers.detect import FILE_BINARY
from dataimport.readers.json_reader import (
    FILE_INVALID_JSON,
    FILE_JSON_STRUCTURE,
    FILE_NESTING_TOO_DEEP,
)
from dataimport.readers.limits import FILE_FIELD_TOO_LARGE
from dataimport.readers.xlsx_reader import (
    FILE_INVALID_XLSX,
    FILE_TOO_LARGE_UNCOMPRESSED,
    FILE_TOO_MANY_SHEETS,
)
from tests.factories import REALDATA, failure, issue_codes, read_all

RVTOOLS = REALDATA / "rvtools-small-complete.xlsx"
RVTOOLS_PLAN = SheetPlan(
    primary=("vInfo",),
    companions=("vCPU", "vMemory", "vDisk", "vPartition", "vNetwork"),
    join_keys=("VM UUID", "VM"),
)
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
WORKSHEET_TYPE = f"{REL_NS}/worksheet"


def by_vm(rows: list[SourceRow]) -> dict[str, dict[str, str]]:
    return {row.cells["VM"]: row.cells for row in rows}


# --- XLSX: the real RVTools export ------------------------------------------------------------


def test_rvtools_primary_sheet_with_joined_companions() -> None:
    source, rows = read_all(RVTOOLS, sheet_plan=RVTOOLS_PLAN)

    vms = by_vm(rows)
    assert list(vms) == ["sample-web-01", "sample-db-01", "sample-archive-01"]
    assert [row.row_number for row in rows] == [1, 2, 3]
    assert all(row.issues == [] for row in rows)
    web = vms["sample-web-01"]
    assert {"VM", "Powerstate", "CPUs", "Memory", "Provisioned MiB"} <= set(source.headers)
    assert (web["CPUs"], web["Memory"], web["Powerstate"]) == ("2", "8192", "poweredOn")
    assert web["vDisk.Capacity MiB"] == "122880"  # 81920 + 40960
    assert web["vDisk.#rows"] == "2"
    assert web["vDisk.Disk"] == "Hard disk 1; Hard disk 2"
    assert web["vPartition.Consumed MiB"] == "61440"  # 40960 + 20480
    assert web["vMemory.Size MiB"] == "8192"
    assert web["vNetwork.Connected"] == "True"
    assert "vNetwork.VM" not in web  # the join key column is not repeated
    db = vms["sample-db-01"]
    assert db["vNetwork.IPv4 Address"] == "10.10.2.20; 10.10.3.20"
    assert db["vNetwork.#rows"] == "2"
    assert db["vCPU.CPU ready %"] == "6.1"
    assert source.format == "xlsx"
    assert source.describe() == {
        "format": "xlsx",
        "encoding": "",
        "delimiter": "",
        "sheet": "vInfo",
        "companions": "vCPU,vMemory,vDisk,vPartition,vNetwork",
        "engine": "calamine",
    }


def test_rvtools_without_a_plan_reads_the_first_sheet_only() -> None:
    source, rows = read_all(RVTOOLS)

    assert len(rows) == 3
    assert source.headers[0] == "VM"
    assert len(source.headers) == 14  # vInfo's own columns, nothing joined
    assert source.describe()["sheet"] == "vInfo"
    assert source.describe()["companions"] == ""


def test_plan_sheet_names_are_case_insensitive_and_missing_ones_are_skipped() -> None:
    plan = SheetPlan(primary=("Nope", "VINFO"), companions=("vdisk", "vGhost"), join_keys=("vm",))

    source, rows = read_all(RVTOOLS, sheet_plan=plan)

    assert source.describe()["sheet"] == "vInfo"
    assert source.describe()["companions"] == "vDisk"
    assert by_vm(rows)["sample-db-01"]["vDisk.Capacity MiB"] == "327680"


def test_companion_without_a_shared_join_key_is_reported_not_joined() -> None:
    plan = SheetPlan(primary=("vInfo",), companions=("vHost", "vDisk"), join_keys=("VM",))

    source, rows = read_all(RVTOOLS, sheet_plan=plan)

    assert len(rows) == 3
    assert source.describe()["companions"] == "vDisk"
    assert source.describe()["companions_unjoined"] == "vHost"
    assert not any(header.startswith("vHost.") for header in source.headers)


def test_rows_without_companion_rows_get_empty_cells_and_zero_count(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    workbook = openpyxl.Workbook()
    main = workbook.active
    assert main is not None
    main.title = "vInfo"
    for row in (["VM", "CPUs"], ["a", 1], ["b", 2]):
        main.append(row)
    disks = workbook.create_sheet("vDisk")
    disk_rows: list[list[object]] = [
        ["vm", "Capacity MiB", "Note"],
        [" A ", 10.5, "x"],
        ["a", 0.25, "x"],
        [None, 7],
    ]
    for disk_row in disk_rows:
        disks.append(disk_row)
    workbook.save(path)
    plan = SheetPlan(primary=("vInfo",), companions=("vDisk",), join_keys=("VM",))

    source, rows = read_all(path, sheet_plan=plan)

    assert source.headers == ["VM", "CPUs", "vDisk.Capacity MiB", "vDisk.Note", "vDisk.#rows"]
    assert rows[0].cells["vDisk.Capacity MiB"] == "10.75"  # key matched stripped, any case
    assert rows[0].cells["vDisk.Note"] == "x"  # distinct texts only
    assert rows[0].cells["vDisk.#rows"] == "2"  # the row without a key joins nothing
    assert rows[1].cells["vDisk.Capacity MiB"] == ""
    assert rows[1].cells["vDisk.#rows"] == "0"


def test_joined_text_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    workbook = openpyxl.Workbook()
    main = workbook.active
    assert main is not None
    main.append(["VM"])
    main.append(["a"])
    nics = workbook.create_sheet("nics")
    nics.append(["VM", "IP"])
    for i in range(500):
        nics.append(["a", f"10.0.{i // 250}.{i % 250}"])
    workbook.save(path)
    plan = SheetPlan(primary=("Sheet",), companions=("nics",), join_keys=("VM",))

    _, rows = read_all(path, sheet_plan=plan)

    joined = rows[0].cells["nics.IP"]
    assert joined.startswith("10.0.0.0; 10.0.0.1; ")
    assert joined.endswith("; …")
    assert len(joined) <= xlsx_reader.JOINED_TEXT_LIMIT + 5
    assert rows[0].cells["nics.#rows"] == "500"


def reference_join(rows: list[list[object]], key: int) -> dict[str, list[str]]:
    """The joined cells as the reader has always defined them: one fold per key, rows in sheet
    order (numbers summed, distinct texts joined and capped), kept in memory."""
    folded: dict[str, tuple[list[int], list[xlsx_reader._Aggregate]]] = {}
    for row in rows:
        name = xlsx_reader.cell_text(row[key]).strip().casefold()
        count, aggregates = folded.setdefault(name, ([0], [xlsx_reader._Aggregate() for _ in row]))
        count[0] += 1
        for aggregate, value in zip(aggregates, row, strict=True):
            if value is not None and not (isinstance(value, str) and not value.strip()):
                aggregate.add(value)
    return {
        name: [a.text() for i, a in enumerate(aggregates) if i != key] + [str(count[0])]
        for name, (count, aggregates) in folded.items()
    }


def test_companion_rows_anywhere_in_the_sheet_join_as_one_fold_in_sheet_order(
    tmp_path: Path,
) -> None:
    """Keys repeated far apart, keys vInfo does not have, floats whose sum depends on order and
    a cap reached through duplicates: the on-disk store gives what one in-memory fold gives."""
    rng = random.Random(7)
    vms = [f"vm-{i:03d}" for i in range(40)]
    nics: list[list[object]] = []
    for i in range(600):
        vm = rng.choice([*vms, "ghost-1", "ghost-2"])  # the ghosts are in no vInfo row
        label = rng.choice(["eth0", "eth1", f"10.0.{i % 7}.{i % 50}", f"{i % 9}" * 70, "", None])
        nics.append([vm, label, rng.choice([0.1, 0.2, 0.7, 3, None, "n/a"]), i % 2 == 0])
    path = tmp_path / "book.xlsx"
    book = openpyxl.Workbook(write_only=True)
    info = book.create_sheet("vInfo")
    info.append(["VM", "CPUs"])
    for position, vm in enumerate(vms):
        info.append([vm.upper() if position % 3 else vm, position])
    info.append(["nobody", 0])  # a VM without companion rows
    sheet = book.create_sheet("vNetwork")
    sheet.append(["VM", "Label", "Speed", "Up"])
    for nic in nics:
        sheet.append(nic)
    book.save(path)
    plan = SheetPlan(primary=("vInfo",), companions=("vNetwork",), join_keys=("VM",))

    source, rows = read_all(path, sheet_plan=plan)

    expected = reference_join(nics, key=0)
    joined = source.headers[2:]
    assert joined == ["vNetwork.Label", "vNetwork.Speed", "vNetwork.Up", "vNetwork.#rows"]
    assert sum(int(row.cells["vNetwork.#rows"]) for row in rows) == sum(
        1 for nic in nics if not str(nic[0]).startswith("ghost")
    )
    for row in rows[:-1]:
        assert [row.cells[name] for name in joined] == expected[row.cells["VM"].casefold()]
    assert [rows[-1].cells[name] for name in joined] == ["", "", "", "0"]
    assert any(row.cells["vNetwork.Label"].endswith("…") for row in rows)  # the cap was hit


def test_companion_store_and_spools_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    source = open_table(RVTOOLS, sheet_plan=RVTOOLS_PLAN)
    # Joined companions leave nothing but the store; the primary's spool stays for rows().
    names = sorted(p.name.split("-")[1] for p in (tmp_path / "tmp").iterdir())
    assert names == ["companions", "sheet"]

    rows = list(source.rows())
    source.close()

    assert len(rows) > 1
    assert not list((tmp_path / "tmp").iterdir())


def test_one_calamine_child_at_a_time_each_started_when_the_last_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running: list[sandbox.PendingSheet] = []
    alive_at_start: list[int] = []
    real_start = sandbox.start_sheet

    class Counted(sandbox.PendingSheet):
        def wait(self) -> sandbox.SpooledSheet:
            try:
                return super().wait()
            finally:
                running.remove(self)

    def start(path: Path, sheet: str) -> sandbox.PendingSheet:
        alive_at_start.append(len(running))
        pending = Counted(path, sheet)
        running.append(pending)
        return pending

    monkeypatch.setattr(xlsx_reader, "start_sheet", start)
    source, rows = read_all(RVTOOLS, sheet_plan=RVTOOLS_PLAN)
    monkeypatch.setattr(xlsx_reader, "start_sheet", real_start)
    _, expected = read_all(RVTOOLS, sheet_plan=RVTOOLS_PLAN)

    assert len(alive_at_start) == 1 + len(source.describe()["companions"].split(","))
    assert alive_at_start == [0] * len(alive_at_start)
    assert rows == expected


def test_companion_rows_are_not_held_in_memory(tmp_path: Path) -> None:
    """5,000 VMs with three disks each: per-key aggregates held about 8 MB of Python objects
    once the workbook was open; the store holds none, and reading holds one batch."""
    path = tmp_path / "book.xlsx"
    book = openpyxl.Workbook(write_only=True)
    info = book.create_sheet("vInfo")
    info.append(["VM", "CPUs"])
    disks = book.create_sheet("vDisk")
    disks.append(["VM", "Disk", "Capacity MiB", "Thin", "Controller", "Label", "Path"])
    for i in range(5_000):
        info.append([f"vm-{i:05d}", 2])
        for d in range(3):
            disk = [f"vm-{i:05d}", f"Hard disk {d}", 40960 + d, "True", "SCSI", f"l{d}", f"p{i}"]
            disks.append(disk)
    book.save(path)
    plan = SheetPlan(primary=("vInfo",), companions=("vDisk",), join_keys=("VM",))
    open_table(path, sheet_plan=plan).close()  # imports done before counting

    tracemalloc.start()
    try:
        source = open_table(path, sheet_plan=plan)
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        count = sum(1 for _ in source.rows())
        _, reading = tracemalloc.get_traced_memory()
        source.close()
    finally:
        tracemalloc.stop()

    assert count == 5_000
    assert held < 2 * 1024 * 1024
    assert reading < 3 * 1024 * 1024


# --- XLSX: a generated workbook ---------------------------------------------------------------


def make_workbook(path: Path) -> Path:
    """Two sheets; the data sheet has a title gap, blank rows, typed cells, formula-like text."""
    workbook = openpyxl.Workbook()
    notes = workbook.active
    assert notes is not None
    notes.title = "Notes"
    notes.append(["note"])
    notes.append(["Exported by hand"])
    servers = workbook.create_sheet("Servers")
    servers.append([])  # blank rows above the header are skipped
    servers.append(["name", "cores", "memory", "ratio", "active", "bought", "seen", "at"])
    servers.append(
        [
            "web01",
            4,
            8192.0,
            2.5,
            True,
            dt.date(2024, 1, 2),
            dt.datetime(2024, 1, 2, 3, 4, 5),
            dt.time(3, 4),
        ]
    )
    servers.append([])
    servers.append(["db01", None, 16384, 0.1, False])
    servers.append(["placeholder", 1, "-2+3+cmd", "@SUM(A1)"])
    servers.append(["app01", 2, 1024, None, None, None, None, None, "stray"])
    injected = servers.cell(row=6, column=1)
    injected.value = '=HYPERLINK("http://x")'
    injected.data_type = "s"  # text that merely looks like a formula, as users paste it
    servers.cell(row=40, column=2).font = Font(bold=True)  # styled, empty: not a row
    workbook.save(path)
    return path


PLAN_SERVERS = SheetPlan(primary=("Servers",))


def test_generated_workbook_cells_rows_and_warnings(tmp_path: Path) -> None:
    source, rows = read_all(make_workbook(tmp_path / "x.xlsx"), sheet_plan=PLAN_SERVERS)

    assert source.headers == ["name", "cores", "memory", "ratio", "active", "bought", "seen", "at"]
    assert [row.row_number for row in rows] == [1, 2, 3, 4, 5]  # trailing styled rows dropped
    assert rows[0].cells == {
        "name": "web01",
        "cores": "4",
        "memory": "8192",
        "ratio": "2.5",
        "active": "True",
        "bought": "2024-01-02",
        "seen": "2024-01-02T03:04:05",
        "at": "03:04:00",
    }
    assert issue_codes(rows[0]) == []
    assert rows[1].is_blank and issue_codes(rows[1]) == [Code.BLANK_ROW]
    assert rows[2].cells["active"] == "False"
    assert rows[2].cells["cores"] == ""
    assert issue_codes(rows[2]) == []  # a short row is padded: empty cells are not missing ones
    formula_fields = {i.field for i in rows[3].issues if i.code == Code.FORMULA_INJECTION}
    assert formula_fields == {"name", "memory", "ratio"}
    assert rows[3].cells["name"] == '=HYPERLINK("http://x")'
    assert rows[4].cells["_extra_1"] == "stray"
    assert issue_codes(rows[4]) == [Code.EXTRA_CELL]
    assert source.describe()["sheet"] == "Servers"


def test_without_a_plan_the_first_sheet_is_used(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "x.xlsx")

    source, rows = read_all(path)

    assert source.headers == ["note"]
    assert [row.cells for row in rows] == [{"note": "Exported by hand"}]
    assert source.describe()["sheet"] == "Notes"


@pytest.mark.parametrize("start_after", [0, 1, 2, 4, 5, 9])
def test_xlsx_start_after_resumes_where_a_full_read_would_be(
    tmp_path: Path, start_after: int
) -> None:
    with open_table(make_workbook(tmp_path / "x.xlsx"), sheet_plan=PLAN_SERVERS) as source:
        full = list(source.rows())
        resumed = list(source.rows(start_after=start_after))

    assert resumed == full[start_after:]


def test_openpyxl_streams_big_sheets_with_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_workbook(tmp_path / "x.xlsx")
    calamine_source, calamine_rows = read_all(path, sheet_plan=PLAN_SERVERS)
    monkeypatch.setattr(xlsx_reader, "CALAMINE_MAX_SHEET_BYTES", 0)  # every sheet is "big"

    source, rows = read_all(path, sheet_plan=PLAN_SERVERS)

    assert calamine_source.describe()["engine"] == "calamine"
    assert source.describe()["engine"] == "openpyxl"
    assert rows == calamine_rows


def test_openpyxl_is_the_fallback_when_calamine_rejects_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataimport.readers.sandbox import SheetRejected

    _, expected = read_all(RVTOOLS, sheet_plan=RVTOOLS_PLAN)

    class Rejected:  # calamine runs in a child: its refusal, as the parent sees it
        def wait(self) -> None:
            raise SheetRejected("simulated")

        def cancel(self) -> None:
            pass

    monkeypatch.setattr(xlsx_reader, "start_sheet", lambda _path, _sheet: Rejected())
    source, rows = read_all(RVTOOLS, sheet_plan=RVTOOLS_PLAN)

    assert source.describe()["engine"] == "openpyxl"
    assert rows == expected


def test_empty_sheet_and_header_only_sheet_have_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    workbook = openpyxl.Workbook()
    header_only = workbook.active
    assert header_only is not None
    header_only.append(["name", "os"])
    workbook.create_sheet("Empty")
    workbook.save(path)

    assert failure(path).code == FILE_NO_ROWS
    empty = failure(path, sheet_plan=SheetPlan(primary=("Empty",)))
    assert empty.code == FILE_NO_ROWS
    assert "Empty" in empty.message


def test_xlsx_close_stops_an_open_row_stream(tmp_path: Path) -> None:
    source = open_table(make_workbook(tmp_path / "x.xlsx"), sheet_plan=PLAN_SERVERS)
    rows = source.rows()
    next(rows)

    source.close()

    with pytest.raises(ValueError):
        next(rows)


def test_workbook_whose_xl_entries_come_late_is_still_a_workbook(tmp_path: Path) -> None:
    original = make_workbook(tmp_path / "x.xlsx")
    path = tmp_path / "late.xlsx"
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(path, "w") as target:
        # 80 KiB of incompressible bytes first: no "xl/" in the 64 KiB sniffing sample.
        thumbnail = random.Random(3).randbytes(80 * 1024)
        target.writestr("docProps/thumbnail.jpeg", thumbnail, zipfile.ZIP_STORED)
        for info in source.infolist():
            target.writestr(info, source.read(info), zipfile.ZIP_DEFLATED)

    with pytest.raises(ImportFailure):
        detect_format(path.read_bytes()[:65536])  # the sample alone cannot tell
    _, rows = read_all(path, sheet_plan=PLAN_SERVERS)
    assert len(rows) == 5


# --- XLSX: hostile and broken archives --------------------------------------------------------


def sheet_xml(rows: list[list[str]]) -> str:
    cells = "".join(
        f'<row r="{r}">'
        + "".join(f'<c t="inlineStr"><is><t>{text}</t></is></c>' for text in row)
        + "</row>"
        for r, row in enumerate(rows, 1)
    )
    return f'<worksheet xmlns="{MAIN_NS}"><sheetData>{cells}</sheetData></worksheet>'


CONTENT_TYPES = (
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    "</Types>"
)


def write_workbook_zip(
    path: Path, sheets: dict[str, str | bytes], workbook_xml: str | None = None
) -> Path:
    """A minimal XLSX package: one worksheet part per entry of `sheets` (name -> XML)."""
    entries = "".join(
        f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>' for i, name in enumerate(sheets, 1)
    )
    relations = "".join(
        f'<Relationship Id="rId{i}" Type="{WORKSHEET_TYPE}" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, len(sheets) + 1)
    )
    package_rels = "http://schemas.openxmlformats.org/package/2006/relationships"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr(
            "xl/workbook.xml",
            workbook_xml
            or f'<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}">'
            f"<sheets>{entries}</sheets></workbook>",
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{package_rels}">{relations}</Relationships>',
        )
        for i, content in enumerate(sheets.values(), 1):
            archive.writestr(f"xl/worksheets/sheet{i}.xml", content)
    return path


def test_zip_bomb_is_refused_by_its_compression_ratio(tmp_path: Path) -> None:
    zeros = bytes(20 * 1024 * 1024)  # ~20 KB once deflated: 1000:1
    path = write_workbook_zip(tmp_path / "bomb.xlsx", {"Sheet1": zeros})
    assert path.stat().st_size < 100_000

    error = failure(path)

    assert error.code == FILE_TOO_LARGE_UNCOMPRESSED
    assert "xl/worksheets/sheet1.xml" in error.message
    assert "zip bomb" in error.message


def test_uncompressed_size_cap_is_a_keyword(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "x.xlsx")

    error = failure(path, sheet_plan=PLAN_SERVERS, max_uncompressed_bytes=10_000)

    assert error.code == FILE_TOO_LARGE_UNCOMPRESSED
    assert "limit" in error.message


def _lie_about_size(path: Path, member: str, declared: int) -> None:
    """Rewrite a member's uncompressed size in its local header and central directory."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.find(b"PK\x03\x04")
    while data[local + 30 : local + 30 + len(name)] != name:
        local = data.find(b"PK\x03\x04", local + 4)
    struct.pack_into("<I", data, local + 22, declared)
    central = data.find(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name:
        central = data.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, declared)
    path.write_bytes(bytes(data))


def test_member_that_lies_about_its_size_is_refused_before_any_library_reads_it(
    tmp_path: Path,
) -> None:
    body = sheet_xml([["name"], ["web01"]]).encode() + b" " * 4_000_000
    path = write_workbook_zip(tmp_path / "liar.xlsx", {"Sheet1": body})
    _lie_about_size(path, "xl/worksheets/sheet1.xml", 1_000)

    error = failure(path)

    assert error.code == FILE_TOO_LARGE_UNCOMPRESSED
    assert "declares" in error.message


def test_plain_zip_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "upload.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/servers.csv", "name,os\nweb01,Linux\n")  # even with an xl/ entry

    error = failure(path)

    assert error.code == FILE_BINARY
    assert "ZIP archive but not an XLSX workbook" in error.message


@pytest.mark.parametrize(
    "workbook_xml", ["<workbook><sheets><sheet name=", "not xml at all \x01", "<workbook/>"]
)
def test_workbook_with_a_garbage_workbook_part_is_invalid(
    tmp_path: Path, workbook_xml: str
) -> None:
    path = write_workbook_zip(
        tmp_path / "bad.xlsx", {"Sheet1": sheet_xml([["a"], ["1"]])}, workbook_xml
    )

    error = failure(path)

    assert error.code == FILE_INVALID_XLSX
    assert "not a readable XLSX workbook" in error.message


def test_truncated_and_garbled_xlsx_are_invalid(tmp_path: Path) -> None:
    data = make_workbook(tmp_path / "x.xlsx").read_bytes()
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(data[: len(data) // 2])
    garbled = bytearray(data)
    garbled[200:400] = bytes(200)  # inside the first member's compressed data
    damaged = tmp_path / "damaged.xlsx"
    damaged.write_bytes(bytes(garbled))

    assert failure(truncated).code == FILE_INVALID_XLSX
    assert failure(damaged).code == FILE_INVALID_XLSX


def test_broken_sheet_xml_is_invalid(tmp_path: Path) -> None:
    path = write_workbook_zip(tmp_path / "bad.xlsx", {"Sheet1": "<worksheet><sheetData><row"})

    assert failure(path).code == FILE_INVALID_XLSX


def test_too_many_sheets(tmp_path: Path) -> None:
    sheets: dict[str, str | bytes] = {f"S{i}": sheet_xml([["a"], ["1"]]) for i in range(65)}
    path = write_workbook_zip(tmp_path / "many.xlsx", sheets)

    error = failure(path)

    assert error.code == FILE_TOO_MANY_SHEETS
    assert "64" in error.message
    del sheets["S64"]
    assert read_all(write_workbook_zip(tmp_path / "ok.xlsx", sheets))[1][0].cells == {"a": "1"}


# --- JSON -------------------------------------------------------------------------------------


def write(tmp_path: Path, data: str | bytes, name: str = "upload.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_json_array_of_objects(tmp_path: Path) -> None:
    data = [
        {"name": "web01", "cores": 4, "memory": 8192.0, "ratio": 2.5, "on": True, "note": None},
        {"name": "db01", "cores": 8, "memory": 16384, "on": False, "site": "fra"},
    ]
    source, rows = read_all(write(tmp_path, json.dumps(data, indent=2)))

    assert source.format == "json"
    assert source.headers == ["name", "cores", "memory", "ratio", "on", "note", "site"]
    assert rows[0].cells == {
        "name": "web01",
        "cores": "4",
        "memory": "8192",
        "ratio": "2.5",
        "on": "true",
        "note": "",
        "site": "",
    }
    assert rows[1].cells["memory"] == "16384"
    assert all(row.issues == [] for row in rows)
    assert source.describe() == {
        "format": "json",
        "encoding": "utf-8",
        "delimiter": "",
        "layout": "array",
    }


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"count": 2, "data": [{"a": 1}, {"a": 2}], "next": None}, "data"),
        ({"Items": [{"a": 1}, {"a": 2}], "tags": ["x"]}, "Items"),
        (
            {"vms": [{"a": 9}], "links": [{"rel": "self"}], "records": [{"a": 1}, {"a": 2}]},
            "records",
        ),
        ({"meta": {"total": 2}, "vms": [{"a": 1}, {"a": 2}], "ids": [1, 2]}, "vms"),
    ],
    ids=["data", "known-key-any-case", "known-key-wins", "only-list-of-objects"],
)
def test_json_wrapper_object(tmp_path: Path, document: dict[str, Any], key: str) -> None:
    source, rows = read_all(write(tmp_path, json.dumps(document)))

    assert [row.cells for row in rows] == [{"a": "1"}, {"a": "2"}]
    assert source.describe()["layout"] == "wrapper"
    assert source.describe()["records_key"] == key


def test_json_wrapper_with_several_candidate_arrays_is_ambiguous(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"vms": [{"a": 1}], "hosts": [{"b": 2}]}))

    error = failure(path)

    assert error.code == FILE_JSON_STRUCTURE
    assert '"vms", "hosts"' in error.message


def test_ndjson_with_blank_lines(tmp_path: Path) -> None:
    data = (
        '{"name": "web01", "os": "linux"}\r\n\r\n{"name": "db01"}\n  \n{"name": "=cmd", "x": 1}\n'
    )

    source, rows = read_all(write(tmp_path, data))

    assert source.describe()["layout"] == "ndjson"
    assert [row.row_number for row in rows] == [1, 2, 3]
    assert rows[1].cells == {"name": "db01", "os": "", "x": ""}
    assert issue_codes(rows[2]) == [Code.FORMULA_INJECTION]


def test_a_single_object_is_one_record(tmp_path: Path) -> None:
    _, rows = read_all(write(tmp_path, '{"name": "web01", "ips": ["10.0.0.1", "10.0.0.2"]}'))

    assert [row.cells for row in rows] == [{"name": "web01", "ips": "10.0.0.1; 10.0.0.2"}]


def test_nested_objects_are_flattened(tmp_path: Path) -> None:
    record = {
        "host": {"name": "web01", "os": {"family": "linux", "eol": None}},
        "ips": ["10.0.0.1", "10.0.0.2"],
        "disks": [{"size": 10}, {"size": 20.0}],
        "matrix": [[1, 2], [3]],
        "labels": {},
        "empty": [],
    }

    source, rows = read_all(write(tmp_path, json.dumps([record, {}])))

    assert source.headers[:3] == ["host.name", "host.os.family", "host.os.eol"]
    assert rows[0].cells == {
        "host.name": "web01",
        "host.os.family": "linux",
        "host.os.eol": "",
        "ips": "10.0.0.1; 10.0.0.2",
        "disks": '[{"size":10},{"size":20.0}]',
        "matrix": "[[1,2],[3]]",
        "labels": "",
        "empty": "",
    }
    assert rows[1].is_blank and issue_codes(rows[1]) == [Code.BLANK_ROW]


def _nested(depth: int) -> dict[str, Any]:
    record: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        record = {"n": record}
    return record


def test_nesting_depth_limit(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, json.dumps([_nested(32)])))[1][0].cells  # exactly at it
    error = failure(write(tmp_path, json.dumps([{"a": 1}, _nested(33)])))
    assert error.code == FILE_NESTING_TOO_DEEP
    assert "Record 2" in error.message
    shallow = failure(write(tmp_path, json.dumps([{"a": [[1]]}])), max_json_depth=2)
    assert shallow.code == FILE_NESTING_TOO_DEEP


def test_absurd_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "[" + '{"a":' * 200_000 + "1" + "}" * 200_000 + "]")

    assert failure(path).code == FILE_NESTING_TOO_DEEP


@pytest.mark.parametrize(
    "data",
    ["[1, 2, 3]", '["web01", "db01"]', "[[1, 2], [3, 4]]", '{"data": [1, 2]}', '{"a": 1}\n42\n'],
    ids=["numbers", "strings", "arrays", "wrapper-of-numbers", "ndjson-number"],
)
def test_wrong_top_level_type(tmp_path: Path, data: str) -> None:
    error = failure(write(tmp_path, data))

    assert error.code == FILE_JSON_STRUCTURE
    assert "object" in error.message


def test_non_object_record_after_the_header_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_reader, "HEADER_SAMPLE", 2)
    with open_table(write(tmp_path, '[{"a": 1}, {"a": 2}, {"a": 3}, "oops"]')) as source:
        rows = source.rows()
        assert [next(rows).cells["a"] for _ in range(3)] == ["1", "2", "3"]
        with pytest.raises(ImportFailure) as caught:
            next(rows)

    assert caught.value.code == FILE_JSON_STRUCTURE
    assert "Record 4 is a string" in caught.value.message


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ('[\n  {"a": 1},\n  {"a": 2,}\n]', "line 3, column 11"),
        ('[{"a": 1}, {"a"', "line 1"),
        ('[{"a": 1}]\n{"b": 2}', "line 2, column 1"),
        ('{"a": 1}\n{"a": 2\n{"a": 3}\n', "line 3, column 1"),
        ('[{"a": 1} {"a": 2}]', "line 1, column 11"),
    ],
    ids=["trailing-comma", "truncated", "data-after-array", "bad-ndjson-line", "missing-comma"],
)
def test_malformed_json_names_line_and_column(tmp_path: Path, data: str, where: str) -> None:
    error = failure(write(tmp_path, data))

    assert error.code == FILE_INVALID_JSON
    assert where in error.message


def test_malformed_json_far_into_the_file_surfaces_from_rows(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "pad": "x" * 100}) for i in range(3000)]
    lines[2500] = '{"id": 2500, "pad": oops}'
    with open_table(write(tmp_path, "\n".join(lines))) as source:
        rows = source.rows()
        assert len(list(itertools.islice(rows, 2500))) == 2500
        with pytest.raises(ImportFailure) as caught:
            next(rows)

    assert caught.value.code == FILE_INVALID_JSON
    assert "line 2501, column 21" in caught.value.message


@pytest.mark.parametrize("data", ["[]", " [ ] ", '{"data": []}', '{"items": [], "n": 0}'])
def test_empty_json_array_has_no_rows(tmp_path: Path, data: str) -> None:
    assert failure(write(tmp_path, data)).code == FILE_NO_ROWS


def test_keys_first_seen_after_the_header_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_reader, "HEADER_SAMPLE", 2)
    data = [{"a": 1}, {"a": 2, "b": 2}, {"a": 3, "late": "x"}, {"a": 4}, {"later": {"k": 1}}]

    with open_table(write(tmp_path, json.dumps(data))) as source:
        assert source.headers == ["a", "b"]
        full = list(source.rows())
        assert source.headers == ["a", "b", "late", "later.k"]
        resumed = list(source.rows(start_after=3))

    assert full[2].cells == {"a": "3", "b": "", "late": "x"}
    assert full[3].cells == {"a": "4", "b": ""}
    assert full[4].cells == {"a": "", "b": "", "later.k": "1"}
    assert all(row.issues == [] for row in full)
    assert resumed == full[3:]


@pytest.mark.parametrize("start_after", [0, 1, 3, 4, 7])
@pytest.mark.parametrize("layout", ["array", "wrapper", "ndjson"])
def test_json_start_after_resumes_where_a_full_read_would_be(
    tmp_path: Path, start_after: int, layout: str
) -> None:
    records = [{"n": i, "host": {"name": f"h{i}"}} for i in range(4)]
    text = {
        "array": json.dumps(records),
        "wrapper": json.dumps({"results": records}),
        "ndjson": "\n".join(map(json.dumps, records)),
    }[layout]

    with open_table(write(tmp_path, text)) as source:
        full = list(source.rows())
        resumed = list(source.rows(start_after=start_after))

    assert len(full) == 4
    assert resumed == full[start_after:]


def test_json_in_utf16_with_bom(tmp_path: Path) -> None:
    data = codecs.BOM_UTF16_LE + '[{"name": "Zürich-01"}]'.encode("utf-16-le")

    source, rows = read_all(write(tmp_path, data))

    assert source.encoding == "utf-16"
    assert rows[0].cells == {"name": "Zürich-01"}


def test_json_value_too_large(tmp_path: Path) -> None:
    data = json.dumps([{"a": "x" * 5000}])

    assert failure(write(tmp_path, data), max_field_size=1000).code == FILE_FIELD_TOO_LARGE


def test_json_close_stops_an_open_row_stream(tmp_path: Path) -> None:
    source = open_table(write(tmp_path, '[{"a": 1}, {"a": 2}]'))
    rows = source.rows()
    next(rows)

    source.close()

    with pytest.raises(ValueError):
        next(rows)


@pytest.mark.parametrize("layout", ["array", "wrapper", "ndjson"])
def test_json_streams_in_bounded_memory(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "big.json"
    count = 60_000
    with path.open("w", encoding="utf-8") as out:
        out.write({"array": "[\n", "wrapper": '{"total": 1, "data": [\n', "ndjson": ""}[layout])
        for i in range(count):
            record = {"id": i, "host": {"name": f"host-{i:07d}"}, "desc": "server " * 8}
            separator = "\n" if layout == "ndjson" or i == count - 1 else ",\n"
            out.write(json.dumps(record) + separator)
        out.write({"array": "]\n", "wrapper": "]}\n", "ndjson": ""}[layout])
    assert path.stat().st_size > 5_000_000

    tracemalloc.start()
    try:
        with open_table(path) as source:
            rows = source.rows()
            ids = [row.cells["id"] for row in itertools.islice(rows, 3000)]
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            ids.extend(row.cells["id"] for row in rows)
    finally:
        tracemalloc.stop()

    assert peak < 3_000_000
    assert ids == [str(i) for i in range(count)]  # numbers cut at a window edge included


def test_describe_values_are_strings(tmp_path: Path) -> None:
    cases: list[tuple[Path, dict[str, Any]]] = [
        (RVTOOLS, {"sheet_plan": RVTOOLS_PLAN}),
        (write(tmp_path, '{"data": [{"a": 1}]}'), {}),
    ]
    for path, kwargs in cases:
        with open_table(path, **kwargs) as source:
            described = source.describe()
        assert all(isinstance(value, str) for value in described.values())
        assert json.loads(json.dumps(described)) == described


def test_json_detection_from_bytes() -> None:
    assert detect_format(b'  [\n {"a": 1}]') == "json"
    assert detect_format(b"[1, 2, 3]") == "json"
    assert detect_format(codecs.BOM_UTF8 + b'{"a": 1}') == "json"
    assert detect_format(b"[name],[os]\nweb01,Linux\n") == "csv"
