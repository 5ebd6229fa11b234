"""Readers over parsing libraries: defusedxml for workbook XML, ijson for JSON."""

from __future__ import annotations

import resource
import time
import zipfile
from pathlib import Path

import pytest

from dataimport.issues import FILE_INVALID_XLSX, ImportFailure
from dataimport.readers import open_table

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="xl/workbook.xml" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/officeDocument"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="http://schemas.'
    'openxmlformats.org/officeDocument/2006/relationships/worksheet"/></Relationships>'
)
_SHEET_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_LAUGHS = (
    '<!DOCTYPE worksheet [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">'
        for n in range(1, 10)
    )
    + "]>"
)
_EXTERNAL = '<!DOCTYPE worksheet [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'


def _sheet(prolog: str, cell: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<worksheet {_SHEET_NS}><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>'
        f'<row r="2"><c r="A2" t="inlineStr"><is><t>{cell}</t></is></c></row>'
        "</sheetData></worksheet>"
    )


def _workbook(path: Path, replaced: dict[str, str] | None = None) -> Path:
    """A minimal one-sheet workbook written by hand, with some parts replaced."""
    members = {
        "[Content_Types].xml": _CONTENT_TYPES,
        "_rels/.rels": _ROOT_RELS,
        "xl/workbook.xml": _WORKBOOK,
        "xl/_rels/workbook.xml.rels": _WORKBOOK_RELS,
        "xl/worksheets/sheet1.xml": _sheet("", "web01"),
        **(replaced or {}),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def _refusal(path: Path) -> ImportFailure:
    with pytest.raises(ImportFailure) as caught, open_table(path) as table:
        list(table.rows())
    return caught.value


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_the_crafted_workbook_reads_without_a_dtd(tmp_path: Path) -> None:
    with open_table(_workbook(tmp_path / "plain.xlsx")) as table:
        assert [row.cells for row in table.rows()] == [{"name": "web01"}]


@pytest.mark.parametrize(
    ("part", "text", "declares"),
    [
        ("xl/worksheets/sheet1.xml", _sheet(_LAUGHS, "&lol9;"), "a DTD"),
        ("xl/worksheets/sheet1.xml", _sheet(_EXTERNAL, "&secret;"), "a DTD"),
        ("xl/workbook.xml", _WORKBOOK.replace("<workbook", _LAUGHS + "<workbook", 1), "a DTD"),
        (
            "xl/_rels/workbook.xml.rels",
            _WORKBOOK_RELS.replace("<Relationships", _EXTERNAL + "<Relationships", 1),
            "a DTD",
        ),
    ],
    ids=["sheet-billion-laughs", "sheet-external-entity", "workbook-laughs", "rels-external"],
)
def test_workbook_xml_with_a_dtd_is_refused_fast(
    tmp_path: Path, part: str, text: str, declares: str
) -> None:
    path = _workbook(tmp_path / "evil.xlsx", {part: text})
    before = _peak_rss_kib()
    started = time.perf_counter()

    refused = _refusal(path)

    assert time.perf_counter() - started < 5
    assert _peak_rss_kib() - before < 50 * 1024  # the 10^9 "lol"s were never expanded
    assert refused.code == FILE_INVALID_XLSX
    assert part in refused.message and f"declares {declares}" in refused.message
    assert "not a readable XLSX workbook" in refused.message
