"""Tests of the streaming CSV reader: detection, row shape findings, failures, resume, streaming."""

from __future__ import annotations

import codecs
import inspect
import itertools
import json
import random
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataimport.issues import Code, ImportFailure, Severity
from dataimport.readers import (
    FILE_BAD_HEADER,
    FILE_EMPTY,
    FILE_NO_ROWS,
    SourceRow,
    detect_format,
    escape_formula,
    looks_like_formula,
    open_table,
)
from dataimport.readers.csv_reader import FILE_UNCLOSED_QUOTE
from dataimport.readers.detect import FILE_BINARY, FILE_ENCODING, SAMPLE_SIZE
from dataimport.readers.limits import FILE_FIELD_TOO_LARGE
from dataimport.readers.xlsx_reader import FILE_INVALID_XLSX
from dataimport.storage import FILE_NOT_FOUND
from tests.factories import failure, issue_codes, read_all


def write(tmp_path: Path, data: bytes | str, name: str = "upload.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# --- delimiter --------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_detects_delimiter(tmp_path: Path, delimiter: str) -> None:
    lines = [["host", "ip", "os"], ["web01", "10.0.0.1", "Linux"], ["db01", "10.0.0.2", "AIX"]]
    path = write(tmp_path, "".join(delimiter.join(line) + "\n" for line in lines))

    source, rows = read_all(path)

    assert source.delimiter == delimiter
    assert source.headers == ["host", "ip", "os"]
    assert rows[1].cells == {"host": "db01", "ip": "10.0.0.2", "os": "AIX"}


def test_semicolon_wins_over_decimal_commas(tmp_path: Path) -> None:
    path = write(tmp_path, "host;cpu;ram\nweb01;2,5;7,5\ndb01;1,5;16\n")

    source, rows = read_all(path)

    assert source.delimiter == ";"
    assert rows[0].cells["cpu"] == "2,5"


def test_delimiters_inside_quotes_do_not_count(tmp_path: Path) -> None:
    path = write(tmp_path, 'name,notes\nweb01,"a;b;c;d"\ndb01,"x;y|z;w"\n')

    source, rows = read_all(path)

    assert source.delimiter == ","
    assert rows[0].cells == {"name": "web01", "notes": "a;b;c;d"}


def test_single_column_falls_back_to_comma(tmp_path: Path) -> None:
    source, rows = read_all(write(tmp_path, "hostname\nweb01\ndb01\n"))

    assert source.delimiter == ","
    assert [row.cells for row in rows] == [{"hostname": "web01"}, {"hostname": "db01"}]


# --- encoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("name;city\nMüller;Köln\ncafé;Genève\n".encode(), "utf-8"),
        (codecs.BOM_UTF8 + "name;city\nMüller;Köln\ncafé;Genève\n".encode(), "utf-8-sig"),
        ("name;city\nMüller;Köln\ncafé;Genève\n".encode("cp1252"), "cp1252"),
        ("name;city\nMüller;Köln\ncafé;Genève\n".encode("utf-16"), "utf-16"),
        ("name;city\nMüller;Köln\ncafé;Genève\n".encode("utf-16-be"), None),
    ],
    ids=["utf-8", "utf-8-bom", "cp1252", "utf-16-le-bom", "utf-16-be-bom"],
)
def test_detects_encoding(tmp_path: Path, encoded: bytes, expected: str | None) -> None:
    if expected is None:  # big-endian UTF-16 with its BOM
        encoded, expected = codecs.BOM_UTF16_BE + encoded, "utf-16"

    source, rows = read_all(write(tmp_path, encoded))

    assert source.encoding == expected
    assert source.headers == ["name", "city"]  # no BOM left on the first header
    assert [row.cells for row in rows] == [
        {"name": "Müller", "city": "Köln"},
        {"name": "café", "city": "Genève"},
    ]
    assert all(not row.issues for row in rows)


def test_cp1252_single_accent_is_not_mistaken_for_another_script(tmp_path: Path) -> None:
    source, rows = read_all(write(tmp_path, b"name,owner\nweb01,Ren\xe9\n"))

    assert source.encoding == "cp1252"
    assert rows[0].cells["owner"] == "René"


def test_cyrillic_legacy_encoding_is_not_forced_to_cp1252(tmp_path: Path) -> None:
    data = "имя,город\nИван,Москва\nПётр,Самара\n".encode("cp1251")

    source, rows = read_all(write(tmp_path, data))

    assert source.encoding == "cp1251"
    assert rows[0].cells == {"имя": "Иван", "город": "Москва"}


def test_multibyte_char_cut_at_sample_end_is_still_utf8(tmp_path: Path) -> None:
    header = "name,city\n"
    prefix = header + "x" * (SAMPLE_SIZE - len(header) - 3) + ",Z"
    data = (prefix + "ürich\n").encode()
    assert data[SAMPLE_SIZE - 1 : SAMPLE_SIZE + 1] == "ü".encode()  # split by the sample

    source, rows = read_all(write(tmp_path, data))

    assert source.encoding == "utf-8"
    assert rows[0].cells["city"] == "Zürich"
    assert rows[0].issues == []


def test_invalid_utf8_after_the_sample_is_replaced_with_a_warning(tmp_path: Path) -> None:
    filler = "".join(f"host{i},Linux\n" for i in range(SAMPLE_SIZE // 10))
    data = ("name,os\n" + filler).encode() + b"bad\xff\xfehost,Linux\n"

    source, rows = read_all(write(tmp_path, data))

    assert source.encoding == "utf-8"
    last = rows[-1]
    assert last.cells["name"] == "bad\ufffd\ufffdhost"
    assert [(i.code, i.severity, i.field) for i in last.issues] == [
        (Code.ENCODING_ERROR, Severity.WARNING, "name")
    ]
    assert all(not row.issues for row in rows[:-1])


# --- row shapes -------------------------------------------------------------------------------


def test_quoted_newlines_and_crlf(tmp_path: Path) -> None:
    data = 'name,notes,os\r\nweb01,"line one\r\nline two",Linux\r\ndb01,"a ""quoted"" word",AIX\r\n'

    _, rows = read_all(write(tmp_path, data))

    assert [row.row_number for row in rows] == [1, 2]
    assert rows[0].cells["notes"] == "line one\r\nline two"
    assert rows[0].cells["os"] == "Linux"
    assert rows[1].cells["notes"] == 'a "quoted" word'


def test_cells_are_not_stripped(tmp_path: Path) -> None:
    _, rows = read_all(write(tmp_path, " name , os \n web01 ,Linux\n"))

    assert rows[0].cells == {"name": " web01 ", "os": "Linux"}


def test_ragged_rows(tmp_path: Path) -> None:
    data = "name,ip,os\nweb01,10.0.0.1,Linux,extra1,extra2\ndb01\nok,1,2\n"

    _, rows = read_all(write(tmp_path, data))

    wide, narrow, ok = rows
    assert wide.cells == {
        "name": "web01",
        "ip": "10.0.0.1",
        "os": "Linux",
        "_extra_1": "extra1",
        "_extra_2": "extra2",
    }
    assert issue_codes(wide) == [Code.EXTRA_CELL]
    assert narrow.cells == {"name": "db01"}  # missing cells are absent, not ""
    assert issue_codes(narrow) == [Code.MISSING_CELL]
    assert "ip, os" in narrow.issues[0].message
    assert ok.issues == []
    assert all(i.severity is Severity.WARNING for row in rows for i in row.issues)


def test_blank_rows_are_kept_and_numbered(tmp_path: Path) -> None:
    data = "name,os\nweb01,Linux\n\n , \ndb01,AIX\n,\n"

    _, rows = read_all(write(tmp_path, data))

    assert [(row.row_number, row.is_blank) for row in rows] == [
        (1, False),
        (2, True),
        (3, True),
        (4, False),
        (5, True),
    ]
    assert [issue_codes(row) for row in rows if row.is_blank] == [[Code.BLANK_ROW]] * 3
    assert rows[3].cells == {"name": "db01", "os": "AIX"}


def test_duplicate_and_empty_headers_are_made_unique(tmp_path: Path) -> None:
    data = "\ufeff Name ,Name,,Name_2,Name\n1,2,3,4,5\n"

    source, rows = read_all(write(tmp_path, data))

    # A later real "Name_2" column keeps its name; the duplicates step around it.
    assert source.headers == ["Name", "Name_3", "_column_3", "Name_2", "Name_4"]
    assert rows[0].cells == {
        "Name": "1",
        "Name_3": "2",
        "_column_3": "3",
        "Name_2": "4",
        "Name_4": "5",
    }


# --- formulas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "=SUM(A1:A9)",
        "@SUM(A1)",
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        '=HYPERLINK("http://evil","x")',
        "\t=1+1",
        "\r@A1",
        "-A1",
        "+ 1",
    ],
)
def test_formula_detected(value: str) -> None:
    assert looks_like_formula(value)
    assert escape_formula(value) == "'" + value


@pytest.mark.parametrize(
    "value",
    ["", "web01", "-5", "+1.5", "-0.25", "-.5", "+1e6", "-1,234.50", "-12%", "-", "a=b", "\t"],
)
def test_not_a_formula(value: str) -> None:
    assert not looks_like_formula(value)
    assert escape_formula(value) == value


def test_formula_cells_get_a_warning_per_field(tmp_path: Path) -> None:
    data = "name,cpu,notes\n=cmd|' /C calc'!A0,-5,+SUM(1)\nweb01,-0.25,fine\n"

    _, rows = read_all(write(tmp_path, data))

    assert [(i.code, i.field) for i in rows[0].issues] == [
        (Code.FORMULA_INJECTION, "name"),
        (Code.FORMULA_INJECTION, "notes"),
    ]
    assert rows[0].cells["name"] == "=cmd|' /C calc'!A0"  # kept as read; escaping is for output
    assert rows[1].issues == []


# --- resume and streaming ---------------------------------------------------------------------


@pytest.mark.parametrize("start_after", [0, 1, 3, 6, 10])
def test_start_after_resumes_where_a_full_read_would_be(tmp_path: Path, start_after: int) -> None:
    data = 'name,notes\nweb01,"multi\nline"\n\ndb01,x\n=bad,y\nr5,z,extra\nr6\n'
    path = write(tmp_path, data)

    with open_table(path) as source:
        full = list(source.rows())
        resumed = list(source.rows(start_after=start_after))

    assert len(full) == 6
    assert resumed == full[start_after:]


def test_streams_a_large_file_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    row_count = 200_000
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("id,hostname,description,os\n")
        for i in range(row_count):
            out.write(f"{i},host-{i:07d}.example.com,{'server description ' * 4},Linux\n")
    assert path.stat().st_size > 20_000_000

    # Trace allocations from the open through the first rows only (tracing all 200k rows
    # is slow): reading the file whole, up front or growing, would show up as a 20 MB peak.
    tracemalloc.start()
    try:
        with open_table(path) as source:
            rows: Iterator[SourceRow] = source.rows()
            assert inspect.isgenerator(source.rows())  # a lazy stream, not a list
            numbers = [row.row_number for row in itertools.islice(rows, 20_000)]
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            last = numbers[-1]
            count = len(numbers)
            for row in rows:
                count, last = count + 1, row.row_number
    finally:
        tracemalloc.stop()

    assert peak < 5_000_000
    assert count == last == row_count


def test_describe_is_json_ready(tmp_path: Path) -> None:
    with open_table(write(tmp_path, "a\tb\n1\t2\n")) as source:
        described = source.describe()

    assert described == {"format": "csv", "encoding": "utf-8", "delimiter": "\t"}
    assert json.loads(json.dumps(described)) == described


def test_close_stops_an_open_row_stream(tmp_path: Path) -> None:
    source = open_table(write(tmp_path, "a,b\n1,2\n3,4\n"))
    rows = source.rows()
    next(rows)

    source.close()

    with pytest.raises(ValueError):
        next(rows)


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data", [b"", b"   \r\n\n\t", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF8 + b"\n\n"]
)
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    assert failure(write(tmp_path, data)).code == FILE_EMPTY


@pytest.mark.parametrize("data", ["name,os\n", "name,os", "name,os\r\n\r\n,\n \n"])
def test_header_only(tmp_path: Path, data: str) -> None:
    with pytest.raises(ImportFailure) as caught:
        open_table(write(tmp_path, data))  # found up front, before any row is ingested

    assert caught.value.code == FILE_NO_ROWS


@pytest.mark.parametrize("data", [",,\n1,2,3\n", "\nname,os\nweb01,Linux\n", ' ,""\n1,2\n'])
def test_header_without_names(tmp_path: Path, data: str) -> None:
    assert failure(write(tmp_path, data)).code == FILE_BAD_HEADER


def test_missing_file(tmp_path: Path) -> None:
    assert failure(tmp_path / "gone.csv").code == FILE_NOT_FOUND


def _zip_bytes(tmp_path: Path, members: dict[str, str]) -> bytes:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path.read_bytes()


def test_png_is_binary(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))

    error = failure(write(tmp_path, png, "data.csv"))  # the name does not matter

    assert error.code == FILE_BINARY
    assert "PNG" in error.message


def test_random_bytes_with_nuls_are_binary(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(4096)
    assert b"\x00" in data

    assert failure(write(tmp_path, data)).code == FILE_BINARY


@pytest.mark.parametrize(
    "head",
    [
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 32,
        b"name,os\nweb01,Lin\x00ux\n",
        bytes(range(1, 32)) * 20,
    ],
    ids=["pdf", "gzip", "ole2-xls", "nul-in-text", "control-bytes"],
)
def test_other_binaries(tmp_path: Path, head: bytes) -> None:
    assert failure(write(tmp_path, head)).code == FILE_BINARY


def test_xlsx_is_recognised_from_its_bytes_not_its_name(tmp_path: Path) -> None:
    xlsx = _zip_bytes(
        tmp_path, {"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>"}
    )
    assert detect_format(xlsx) == "xlsx"

    error = failure(write(tmp_path, xlsx, "inventory.csv"))

    assert error.code == FILE_INVALID_XLSX  # read as XLSX (a stub one), not as CSV
    assert "XLSX" in error.message


def test_zip_that_is_not_xlsx(tmp_path: Path) -> None:
    data = _zip_bytes(tmp_path, {"servers.csv": "name,os\nweb01,Linux\n"})

    with pytest.raises(ImportFailure) as caught:
        detect_format(data)

    assert caught.value.code == FILE_BINARY
    assert failure(write(tmp_path, data)).code == FILE_BINARY


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b'[{"name": "web01"}]', None),
        (b'  {"rows": []}', FILE_NO_ROWS),
        (codecs.BOM_UTF8 + b"[\n  {}\n]", FILE_NO_ROWS),
    ],
)
def test_json_is_recognised_and_read_as_json(tmp_path: Path, data: bytes, code: str | None) -> None:
    assert detect_format(data) == "json"
    path = write(tmp_path, data, "inventory.csv")

    if code is not None:
        assert failure(path).code == code
        return
    source, rows = read_all(path)
    assert source.format == "json"
    assert rows[0].cells == {"name": "web01"}


def test_bracketed_csv_header_is_not_json() -> None:
    assert detect_format(b"[name],[os]\nweb01,Linux\n") == "csv"


def test_unclosed_quote(tmp_path: Path) -> None:
    data = 'name,notes\nweb01,ok\ndb01,"never closed\napp01,x\napp02,y\n'

    with open_table(write(tmp_path, data)) as source:
        rows = source.rows()
        assert next(rows).cells["name"] == "web01"
        with pytest.raises(ImportFailure) as caught:
            next(rows)

    assert caught.value.code == FILE_UNCLOSED_QUOTE
    assert "row 2" in caught.value.message


def test_unclosed_quote_in_first_row_surfaces_from_rows(tmp_path: Path) -> None:
    source = open_table(write(tmp_path, 'name,notes\nweb01,"open\n'))  # opening succeeds

    with source, pytest.raises(ImportFailure) as caught:
        list(source.rows())

    assert caught.value.code == FILE_UNCLOSED_QUOTE
    assert "row 1" in caught.value.message


def test_field_too_large(tmp_path: Path) -> None:
    data = f"name,notes\nweb01,short\ndb01,{'x' * 101}\n"

    error = failure(write(tmp_path, data), max_field_size=100)

    assert error.code == FILE_FIELD_TOO_LARGE
    assert "row 2" in error.message


def test_field_too_large_for_the_csv_module_limit(tmp_path: Path) -> None:
    data = f'name,notes\nweb01,"{"x" * 1_000_001}"\n'

    error = failure(write(tmp_path, data))

    assert error.code == FILE_FIELD_TOO_LARGE
    assert "row 1" in error.message


def test_line_too_long_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    data = "a,b\n1,2\n" + "x," * 1000 + "\n"

    error = failure(write(tmp_path, data), max_field_size=10)

    assert error.code == FILE_FIELD_TOO_LARGE
    assert "row 2" in error.message


@pytest.mark.parametrize(
    "data",
    [
        b"name,notes\n\x81\x8d\x8f,\x90\x9d\x81\n" * 5,
        bytes(range(0x80, 0x100)) * 4,
    ],
    ids=["cp1252-undefined-bytes", "high-bytes"],
)
def test_undecodable(tmp_path: Path, data: bytes) -> None:
    assert failure(write(tmp_path, data)).code == FILE_ENCODING
