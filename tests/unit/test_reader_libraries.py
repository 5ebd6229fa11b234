"""Readers over parsing libraries: defusedxml for workbook XML, ijson for JSON."""

from __future__ import annotations

import json
import resource
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import ijson
import pytest

from dataimport.issues import ImportFailure
from dataimport.readers import json_reader, open_table
from dataimport.readers.json_reader import (
    FILE_INVALID_JSON,
    FILE_JSON_STRUCTURE,
    FILE_NESTING_TOO_DEEP,
)
from dataimport.readers.limits import FILE_FIELD_TOO_LARGE
from dataimport.readers.xlsx_reader import FILE_INVALID_XLSX

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


# ----- JSON on ijson -----------------------------------------------------------------------------


def _json(tmp_path: Path, text: str, name: str = "upload.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(path: Path, **kwargs: Any) -> list[dict[str, str]]:
    with open_table(path, **kwargs) as table:
        return [row.cells for row in table.rows()]


def _json_refusal(path: Path, **kwargs: Any) -> ImportFailure:
    with pytest.raises(ImportFailure) as caught:
        _rows(path, **kwargs)
    return caught.value


def test_the_fast_backend_is_the_c_one_when_installed() -> None:
    available = [name for name in ("yajl2_c",) if _has_backend(name)]
    if available:
        assert json_reader.FAST_BACKEND.backend_name == "yajl2_c"


def _has_backend(name: str) -> bool:
    try:
        ijson.get_backend(name)
    except ImportError:
        return False
    return True


def test_absurd_nesting_is_refused_before_the_parser_builds_it(tmp_path: Path) -> None:
    # ijson keeps a dotted prefix per level: unguarded, this file cost it 23 GB.
    path = _json(tmp_path, "[" + '{"a":' * 200_000 + "1" + "}" * 200_000 + "]")
    tracemalloc.start()
    try:
        refused = _json_refusal(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert refused.code == FILE_NESTING_TOO_DEEP
    assert peak < 20_000_000


def test_brackets_and_escaped_quotes_inside_strings_are_not_nesting(tmp_path: Path) -> None:
    text = json.dumps([{"a": "[" * 100 + "{" * 100, "b": 'say "[[[[" \\ ' * 50}])
    padded = json.dumps([{"pad": "x" * 70_000, "a": "[" * 100}] * 3)  # strings across chunks

    assert _rows(_json(tmp_path, text))[0]["a"] == "[" * 100 + "{" * 100
    assert [row["a"] for row in _rows(_json(tmp_path, padded, "padded.json"))] == ["[" * 100] * 3


@pytest.mark.parametrize("shift", range(14))
def test_surrogate_escapes_pairs_kept_lone_ones_flagged_at_a_chunk_edge(
    tmp_path: Path, shift: int
) -> None:
    # The escapes start 13 characters before the 64 Ki-character edge, then one later each time.
    pad = "x" * (65_536 - 13 - len('[{"pad": "", "s": "') + shift)
    text = '[{"pad": "' + pad + '", "s": "\\ud83d\\ude00 \\ud800"}]'
    with open_table(_json(tmp_path, text)) as table:
        rows = list(table.rows())

    assert rows[0].cells["s"] == "😀 \ufffd"
    assert [(i.code, i.field) for i in rows[0].issues] == [("encoding-error", "s")]


def test_an_escaped_backslash_before_u_is_text_not_a_surrogate(tmp_path: Path) -> None:
    path = _json(tmp_path, r'[{"path": "C:\\ud800\\x"}]')

    assert _rows(path) == [{"path": "C:\\ud800\\x"}]


def test_integers_beyond_64_bits_are_read_whole(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [{"id": n, "serial": n} for n in range(3000)]
    records[2500]["serial"] = 12345678901234567890123456789
    rows = _rows(_json(tmp_path, json.dumps(records)))

    assert [row["id"] for row in rows] == [str(n) for n in range(3000)]  # none twice, none lost
    assert rows[2500]["serial"] == "12345678901234567890123456789"


def test_a_record_longer_than_its_limit_is_refused_while_read(tmp_path: Path) -> None:
    record = {f"k{n}": "v" * 1000 for n in range(400)}  # 400 KB, the limit 16 x 1 KiB
    path = _json(tmp_path, json.dumps([{"a": 1}, record]))

    refused = _json_refusal(path, max_field_size=1024)

    assert refused.code == FILE_FIELD_TOO_LARGE
    assert "16,384 characters" in refused.message


@pytest.mark.parametrize(
    "document",
    [
        '{"data": [{"a": 1}], "data": [{"a": 2}]}',
        '{"vm.list": [{"a": 1}], "vm": {"list": [{"a": 2}]}}',
    ],
    ids=["duplicate-key", "dotted-key"],
)
def test_an_ambiguous_records_path_is_a_structure_error(tmp_path: Path, document: str) -> None:
    assert _json_refusal(_json(tmp_path, document)).code == FILE_JSON_STRUCTURE


def test_malformed_json_position_far_past_the_first_chunk(tmp_path: Path) -> None:
    text = "[" + ",".join(['{"a": "' + "é" * 50 + '"}'] * 5000) + ", oops]"
    refused = _json_refusal(_json(tmp_path, text))

    assert refused.code == FILE_INVALID_JSON
    assert f"line 1, column {len(text) - 4}" in refused.message
