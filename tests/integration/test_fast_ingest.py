"""The native CSV fast path stages exactly what the reference reader stages.

Every file is read both ways: through `readers.fast_csv` (with the reference reader taking
over where a file turns irregular) and through the csv-module reader alone; the staged rows
(row_number, raw_data, read_issues, is_blank), counts and detected format must be identical.
Small blocks and batches make every file cross block and batch boundaries.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import staging
from dataimport.categories.base import HeaderMapping
from dataimport.contracts import ImportRef
from dataimport.engine import staged_batch
from dataimport.issues import ImportFailure
from dataimport.readers import fast_csv, open_table
from dataimport.readers.detect import SAMPLE_SIZE
from dataimport.readers.fast_csv import PY_WHITESPACE, FastCsvStream, cell_column, row_json
from dataimport.readers.limits import FILE_FIELD_TOO_LARGE
from tests.factories import CMDB_HEADERS, cmdb_row, new_import_record, write_cmdb, write_csv

Row = tuple[int, Any, Any, bool]


def _csv_text(rows: list[list[str]], delimiter: str = ",", lineterminator: str = "\r\n") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=lineterminator).writerows(rows)
    return out.getvalue()


def _wide() -> str:
    headers = [f"col_{i}" for i in range(150)]
    rows = [[f"r{r}c{i}" if (r + i) % 7 else "" for i in range(150)] for r in range(40)]
    return _csv_text([headers, *rows])


def _tricky_values() -> str:
    values = [
        'a "quoted" word',
        "back\\slash \\n not a newline",
        "tab\tinside",
        "line\nbreak",
        "crlf\r\ninside",
        "lone\rcr inside quotes",
        "unicode é ß 中文 😀 \u2028 \u2029 \u00a0",
        '{"json": [1, 2]}',
        "-5",
        "-",
        "+1.5",
        "=1+1",
        "@SUM(A1)",
        "\t=cmd",
        " ",
        "\u3000",
        ",;|",
        "",
    ]
    headers = ['head "q"', "back\\slash", "uni é", "plain", "_extra_1"]
    rows = [[values[(r * 3 + c) % len(values)] for c in range(5)] for r in range(60)]
    rows[30] = ["ctrl \x01\x02\x1f\x7f", "\x1c", "x", "\x1e\x1f", "y"]  # few: not "binary"
    rows[31] = ["\x1c", "\x1d", "\x1e", "\x1f", " "]  # str.isspace() says blank
    return _csv_text([headers, *rows])


# name -> file bytes. The first group is the row corpus of test_csv_reader.py.
CORPUS: dict[str, bytes] = {
    "delim_comma": b"host,ip,os\nweb01,10.0.0.1,Linux\ndb01,10.0.0.2,AIX\n",
    "delim_semicolon": b"host;ip;os\nweb01;10.0.0.1;Linux\ndb01;10.0.0.2;AIX\n",
    "delim_tab": b"host\tip\tos\nweb01\t10.0.0.1\tLinux\ndb01\t10.0.0.2\tAIX\n",
    "delim_pipe": b"host|ip|os\nweb01|10.0.0.1|Linux\ndb01|10.0.0.2|AIX\n",
    "decimal_commas": b"host;cpu;ram\nweb01;2,5;7,5\ndb01;1,5;16\n",
    "delims_in_quotes": b'name,notes\nweb01,"a;b;c;d"\ndb01,"x;y|z;w"\n',
    "single_column": b"hostname\nweb01\ndb01\n",
    "single_column_blank_lines": b"hostname\nweb01\n\n\ndb01\n",
    "utf8": "name;city\nMüller;Köln\ncafé;Genève\n".encode(),
    "utf8_bom": codecs.BOM_UTF8 + "name;city\nMüller;Köln\ncafé;Genève\n".encode(),
    "cp1252": "name;city\r\nMüller;Köln\r\ncafé;Genève\r\nJosé;Besançon €\r\n".encode("cp1252"),
    "cp1252_single_accent": b"name,owner\nweb01,Ren\xe9\n",
    "cp1252_undefined_byte_after_sample": (
        "".join(f"h{i},Ren\xe9\n" for i in range(SAMPLE_SIZE // 8)).encode("cp1252") + b"x\x81y,z\n"
    ),
    "cp1251": "имя,город\nИван,Москва\nПётр,Самара\n".encode("cp1251"),
    "utf16_le": "name;city\nMüller;Köln\ncafé;Genève\n".encode("utf-16"),
    "utf16_be": codecs.BOM_UTF16_BE + "name;city\nMüller;Köln\ncafé;Genève\n".encode("utf-16-be"),
    "cut_multibyte": (
        "name,city\n" + "x" * (SAMPLE_SIZE - len("name,city\n") - 3) + ",Zürich\n"
    ).encode(),
    "invalid_utf8_after_sample": (
        ("name,os\n" + "".join(f"host{i},Linux\n" for i in range(SAMPLE_SIZE // 10))).encode()
        + b"bad\xff\xfehost,Linux\n"
    ),
    "quoted_newlines_crlf": (
        b'name,notes,os\r\nweb01,"line one\r\nline two",Linux\r\ndb01,"a ""quoted"" word",AIX\r\n'
    ),
    "cells_not_stripped": b" name , os \n web01 ,Linux\n",
    "ragged": b"name,ip,os\nweb01,10.0.0.1,Linux,extra1,extra2\ndb01\nok,1,2\n",
    "blank_rows": b"name,os\nweb01,Linux\n\n , \ndb01,AIX\n,\n",
    "duplicate_headers": "\ufeff Name ,Name,,Name_2,Name\n1,2,3,4,5\n".encode(),
    "formulas": b"name,cpu,notes\n=cmd|' /C calc'!A0,-5,+SUM(1)\nweb01,-0.25,fine\n",
    "resume_mix": b'name,notes\nweb01,"multi\nline"\n\ndb01,x\n=bad,y\nr5,z,extra\nr6\n',
    # Generated tricky files.
    "no_final_newline": b"a,b\n1,2\n3,4",
    "no_final_newline_quoted": b'a,b\n1,2\n3,"4\n5"',
    "crlf_blank_lines": b"a,b\r\n1,2\r\n\r\n,\r\n3,4\r\n",
    "lone_cr_line_ends": b"a,b\r1,2\r3,4\r",
    "lone_cr_mid_file": b"a,b\n1,2\n3,4\r5,6\n7,8\n",
    "stray_quote_unquoted": b'a,b\n1,2\nx"y,z\n3,4\n',
    "text_after_closing_quote": b'a,b\n1,2\n"ab"cd,z\n3,4\n',
    "space_before_quote": b'a,b\n1, "x"\n3,4\n',
    "quoted_empty_and_quotes": b'a,b,c\n"",x,""\n"""",",",""""""\n',
    "quote_only_header": b'"a","b","c"\n"1","2","3"\n"4","5","6"\n',
    "ragged_and_quoted": b'a,b,c\n"1,1",2\n"x\ny",2,3,"4"\n,\n"5",6,7\n',
    "whitespace_blank_rows": "a,b\n\u3000,\x1c\n\u00a0,\t\n1,\u2003\n".encode(),
    "semicolon_ragged": b"a;b;c\n1;2\n1;2;3;4\n;;\n",
    "tab_quoted": b'a\tb\n"x\ty"\t2\n3\t"4\n5"\n',
    "pipe_formulas": b"a|b\n=1|-2\n+x|@y\n-|+\n",
    "wide": _wide().encode(),
    "tricky_values": _tricky_values().encode(),
    "tricky_values_cp1252_semicolon": _csv_text(
        [["name", "owner", "site"], *[[f"SRV-É{i}", "José Müller", "Zürich"] for i in range(50)]],
        delimiter=";",
    ).encode("cp1252"),
    "tricky_values_utf16_tab": _csv_text(
        [["name", "notes"], *[[f"h{i}", f"multi\nline {i} é"] for i in range(50)]], delimiter="\t"
    ).encode("utf-16"),
}
CMDB_RAGGED = _csv_text(
    [
        CMDB_HEADERS,
        cmdb_row(1),
        [*cmdb_row(2), "surplus"],
        cmdb_row(3)[:5],
        [""] * len(CMDB_HEADERS),
        cmdb_row(4),
        [*cmdb_row(5)[:11], '=HYPERLINK("http://evil","click")', *cmdb_row(5)[12:]],
    ]
).encode()
CORPUS["cmdb_ragged_blank_formula"] = CMDB_RAGGED


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(data)
    return path


def _normal(rows: list[tuple[Any, ...]]) -> list[Row]:
    return [
        (int(n), json.loads(raw), json.loads(issues) if issues else None, bool(blank))
        for n, raw, issues, blank in rows
    ]


def reference_rows(path: Path, start_after: int = 0, **kwargs: Any) -> list[Row]:
    with open_table(path, **kwargs) as table:
        return _normal([(r.row_number, *row_json(r), r.is_blank) for r in table.rows(start_after)])


def fast_rows(
    path: Path, start_after: int = 0, *, block_bytes: int = 64, batch_size: int = 3, **kwargs: Any
) -> tuple[list[Row], int | None]:
    """The fast stream's rows, then the reference reader's from wherever it stopped."""
    with open_table(path, **kwargs) as table:
        stream = FastCsvStream(table.row_reader, block_bytes=block_bytes)  # type: ignore[arg-type]
        rows: list[tuple[Any, ...]] = []
        for frame in stream.batches(start_after, batch_size):
            assert frame.height <= batch_size
            rows.extend(frame.rows())
        if stream.fallback_after is not None:
            rows.extend(
                (r.row_number, *row_json(r), r.is_blank) for r in table.rows(stream.fallback_after)
            )
    return _normal(rows), stream.fallback_after


# Files the fast path must take whole (no fallback): the common shapes.
FAST_WHOLE = {
    name
    for name in CORPUS
    if not name.startswith(("lone_cr", "stray_quote", "text_after", "space_before"))
}


def test_python_whitespace_set_is_exact() -> None:
    assert "".join(chr(c) for c in range(0x110000) if chr(c).isspace()) == PY_WHITESPACE


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("block_bytes", [16, 64, 1 << 20])
def test_fast_rows_equal_reference_rows(tmp_path: Path, name: str, block_bytes: int) -> None:
    if len(CORPUS[name]) > 4096:
        block_bytes *= 64  # still many blocks, and the test stays quick
    path = _write(tmp_path, name, CORPUS[name])
    expected = reference_rows(path)

    rows, fallback = fast_rows(path, block_bytes=block_bytes)

    assert rows == expected
    if block_bytes > len(CORPUS[name]) and name in FAST_WHOLE:
        assert fallback is None, "a regular file must not need the reference reader"


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_cells_a_batch_carries_are_those_of_its_raw_data(tmp_path: Path, name: str) -> None:
    # Validation at ingest reads a fast batch's cell columns instead of decoding raw_data:
    # the engine's frame must be the same either way, rows the reference reader made included.
    path = _write(tmp_path, name, CORPUS[name])
    block_bytes = 64 if len(CORPUS[name]) <= 4096 else 4096
    with open_table(path) as table:
        headers = list(table.headers)
        reader = table.row_reader
        plain = list(FastCsvStream(reader, block_bytes=block_bytes).batches(0, 3))  # type: ignore[arg-type]
        carried = list(
            FastCsvStream(reader, block_bytes=block_bytes, with_cells=True).batches(0, 3)  # type: ignore[arg-type]
        )
    mapping = HeaderMapping(field_by_header={}, unmapped_headers=headers)
    assert len(carried) == len(plain)
    given = 0
    for decoded, with_cells in zip(plain, carried, strict=True):
        assert with_cells.select(decoded.columns).equals(decoded)
        if headers:
            given += with_cells.height - with_cells.get_column(cell_column(0)).null_count()
        expected = staged_batch._frame(decoded, headers, mapping)
        frame = staged_batch._frame(with_cells, headers, mapping)
        assert frame.keys == expected.keys
        assert frame.rows.equals(expected.rows)
    if name == "wide":  # plain cells only: every row carries them
        assert given == sum(batch.height for batch in plain) == 40


@pytest.mark.parametrize("name", ["resume_mix", "ragged_and_quoted", "blank_rows", "wide"])
def test_fast_rows_resume_where_the_reference_does(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, CORPUS[name])
    total = len(reference_rows(path))
    for start_after in range(total + 2):
        rows, _ = fast_rows(path, start_after, block_bytes=8192 if name == "wide" else 64)
        assert rows == reference_rows(path, start_after), start_after


@pytest.mark.parametrize(
    "name", ["stray_quote_unquoted", "lone_cr_mid_file", "text_after_closing_quote"]
)
def test_irregular_text_hands_over_after_the_last_regular_block(tmp_path: Path, name: str) -> None:
    filler = b"".join(b"r%d,x\n" % i for i in range(200))
    data = CORPUS[name].split(b"\n", 1)[0] + b"\n" + filler + CORPUS[name].split(b"\n", 1)[1]
    path = _write(tmp_path, name, data)

    rows, fallback = fast_rows(path, block_bytes=256)

    assert rows == reference_rows(path)
    assert fallback is not None and 0 < fallback <= 201  # the regular blocks went the fast way


_ALPHABET = [
    '"',
    ",",
    ";",
    "\n",
    "\r\n",
    "\r",
    " ",
    "=",
    "-",
    "+",
    "5",
    "a",
    "é",
    "\ufffd",
    "\\",
    "\t",
    "@",
]


@pytest.mark.parametrize("seed", range(120))
def test_random_files_fast_equals_reference(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    if seed % 2:  # well-formed CSV with nasty cells, sometimes ragged
        width = rng.randint(1, 6)
        rows = [[f"h{i}" for i in range(width)]]
        for _ in range(rng.randint(1, 40)):
            cells = rng.randint(0, width + 2) if rng.random() < 0.2 else width
            rows.append(
                ["".join(rng.choices(_ALPHABET, k=rng.randint(0, 4))) for _ in range(cells)]
            )
        data = _csv_text(rows, lineterminator=rng.choice(["\n", "\r\n"])).encode()
    else:  # arbitrary character soup after a header
        body = "".join(rng.choices(_ALPHABET, k=rng.randint(1, 400)))
        data = ("a,b,c\n" + body).encode()
    path = _write(tmp_path, f"random_{seed}", data)
    try:
        expected = reference_rows(path)
    except ImportFailure as failure:  # e.g. an unclosed quote: the fast path must fail alike
        with pytest.raises(ImportFailure) as caught:
            fast_rows(path, block_bytes=rng.choice([8, 32, 4096]))
        assert (caught.value.code, caught.value.message) == (failure.code, failure.message)
        return

    staged, _ = fast_rows(path, block_bytes=rng.choice([8, 32, 4096]), batch_size=rng.randint(1, 9))

    assert staged == expected


# --- staged through ingest_file, both paths, into raw_import_records ----------------------------


async def _staged(engine: AsyncEngine, ref: ImportRef) -> tuple[list[Row], Any, tuple[int, int]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT row_number, raw_data::text, read_issues::text, is_blank "
                    "FROM raw_import_records WHERE data_import_id = :id ORDER BY row_number"
                ),
                {"id": ref.data_import_id},
            )
        ).all()
        imported = (
            await conn.execute(
                text(
                    "SELECT detected_format, total_rows, blank_rows FROM data_imports "
                    "WHERE id = :id"
                ),
                {"id": ref.data_import_id},
            )
        ).one()
    return _normal([tuple(row) for row in rows]), imported[0], (imported[1], imported[2])


async def _ingest_both(engine: AsyncEngine, path: Path, **kwargs: Any) -> tuple[Any, Any]:
    results = []
    for fast in (True, False):
        ref = await new_import_record(engine)
        result = await staging.ingest_file(
            engine,
            ref,
            path.as_uri(),
            storage_root=path.parent,
            max_field_size=1_000_000,
            fast_path=fast,
            **kwargs,
        )
        results.append((result, *await _staged(engine, ref)))
    return results[0], results[1]


async def test_ingest_stages_the_corpus_identically(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fast_csv, "BLOCK_BYTES", 512)  # many blocks per file
    files = {name: _write(tmp_path, name, data) for name, data in CORPUS.items()}
    files["cmdb_factory"] = write_cmdb(tmp_path / "cmdb.csv", 700)
    files["cmdb_semicolon"] = write_csv(
        tmp_path / "cmdb_semi.csv", CMDB_HEADERS, (cmdb_row(n) for n in range(1, 300)), ";"
    )
    for name, path in files.items():
        fast, reference = await _ingest_both(engine, path, batch_size=97)
        assert fast[1] == reference[1], name  # staged rows
        assert fast[2] == reference[2], name  # detected_format incl. headers
        assert fast[3] == reference[3], name  # total and blank rows
        assert fast[0] == reference[0], name  # IngestResult
        assert len(fast[1]) > 0


async def test_ingest_resumes_after_a_crash_mid_file(engine: AsyncEngine, tmp_path: Path) -> None:
    path = write_cmdb(tmp_path / "cmdb.csv", 2_000)
    ref = await new_import_record(engine)

    class Crash(Exception):
        pass

    def crash_after_three_batches(last_row: int) -> None:
        if last_row >= 300:
            raise Crash

    with pytest.raises(Crash):
        await staging.ingest_file(
            engine,
            ref,
            path.as_uri(),
            storage_root=path.parent,
            max_field_size=1_000_000,
            batch_size=100,
            on_progress=crash_after_three_batches,
        )
    partial, _, _ = await _staged(engine, ref)
    staged = [row[0] for row in partial]
    # Whole batches, a prefix: the crash came once rows 1..300 were in; a batch that was
    # being written beside them may have committed too.
    assert staged == list(range(1, len(staged) + 1))
    assert len(staged) >= 300 and len(staged) % 100 == 0

    progress: list[int] = []
    result = await staging.ingest_file(
        engine,
        ref,
        path.as_uri(),
        storage_root=path.parent,
        max_field_size=1_000_000,
        batch_size=100,
        on_progress=progress.append,
    )

    rows, _, counts = await _staged(engine, ref)
    assert progress[0] == len(staged) and progress[-1] == 2_000
    assert counts == (2_000, 0) and result.total_rows == 2_000
    assert rows == reference_rows(path)


async def test_ingest_resumes_at_a_gap_left_by_batches_committed_out_of_order(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Batches commit side by side, so a crash can keep a later batch and lose an earlier
    one: a resumed ingest starts at the gap and skips the rows already there."""
    path = write_cmdb(tmp_path / "cmdb.csv", 1_000)
    ref = await new_import_record(engine)
    kwargs: dict[str, Any] = {
        "storage_root": path.parent,
        "max_field_size": 1_000_000,
        "batch_size": 100,
    }
    await staging.ingest_file(engine, ref, path.as_uri(), **kwargs)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "DELETE FROM raw_import_records WHERE data_import_id = :id "
                "AND (row_number BETWEEN 301 AND 400 OR row_number > 800)"
            ),
            {"id": ref.data_import_id},
        )
    assert await staging.staged_row_count(engine, ref) == 300

    progress: list[int] = []
    result = await staging.ingest_file(
        engine, ref, path.as_uri(), on_progress=progress.append, **kwargs
    )

    rows, _, counts = await _staged(engine, ref)
    assert progress[0] == 300 and progress[-1] == 1_000
    assert counts == (1_000, 0) and result.total_rows == 1_000
    assert rows == reference_rows(path)  # every row once, as read


async def test_nothing_staged_resumes_from_the_start(engine: AsyncEngine, tmp_path: Path) -> None:
    """A later batch without the first one is no prefix at all."""
    path = write_cmdb(tmp_path / "cmdb.csv", 300)
    ref = await new_import_record(engine)
    kwargs: dict[str, Any] = {"storage_root": path.parent, "max_field_size": 1_000_000}
    await staging.ingest_file(engine, ref, path.as_uri(), batch_size=100, **kwargs)
    async with engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM raw_import_records WHERE data_import_id = :id AND row_number <= 100"),
            {"id": ref.data_import_id},
        )
    assert await staging.staged_row_count(engine, ref) == 0
    await staging.ingest_file(engine, ref, path.as_uri(), batch_size=100, **kwargs)
    rows, _, _ = await _staged(engine, ref)
    assert rows == reference_rows(path)


# 50 good rows, then a field over the 1,024-character cap of `_ingest_big_field`.
_BIG_FIELD = b"name,notes\n" + b"web,ok\n" * 50 + b"db," + b"x" * 2_000 + b"\n"


async def _ingest_big_field(
    engine: AsyncEngine, ref: ImportRef, path: Path, *, fast: bool
) -> ImportFailure:
    """Ingest `path` in batches of 10 under a 1,024-character field cap; the failure."""
    with pytest.raises(ImportFailure) as caught:
        await staging.ingest_file(
            engine,
            ref,
            path.as_uri(),
            storage_root=path.parent,
            max_field_size=1_024,
            fast_path=fast,
            batch_size=10,
        )
    return caught.value


async def test_field_too_large_fails_alike(engine: AsyncEngine, tmp_path: Path) -> None:
    path = _write(tmp_path, "big", _BIG_FIELD)
    messages = []
    for fast in (True, False):
        failure = await _ingest_big_field(engine, await new_import_record(engine), path, fast=fast)
        messages.append((failure.code, failure.message))
    assert messages[0] == messages[1] and messages[0][0] == FILE_FIELD_TOO_LARGE


async def test_nul_after_the_sample_is_flagged_alike(engine: AsyncEngine, tmp_path: Path) -> None:
    filler = b"".join(b"host%d,Linux\n" % i for i in range(SAMPLE_SIZE // 10))
    path = _write(tmp_path, "nul", b"name,os\n" + filler + b"bad\x00host,Linux\n")
    fast, reference = await _ingest_both(engine, path)
    assert fast[1:] == reference[1:]
    rows = fast[1]
    last = rows[-1]
    assert last[1] == {"name": "badhost", "os": "Linux"}  # the row is kept, its NUL removed
    assert [(issue["code"], issue["field"]) for issue in last[2]] == [("encoding-error", "name")]
    assert "NUL" in last[2][0]["message"]


async def test_a_failing_file_never_leaves_a_batch_half_done(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A reader failure while COPYs are in flight: each attempt fails with the reader's own
    error and stages a prefix of the file. (Cancelling the COPYs in flight once left a pooled
    connection to a later batch, which then inserted rows twice: a duplicate-key failure in
    a few percent of attempts, and once a CI run stuck behind the lock it held.)"""
    path = _write(tmp_path, "big", _BIG_FIELD)
    outcomes = set()
    for attempt in range(80):
        ref = await new_import_record(engine)
        failure = await _ingest_big_field(engine, ref, path, fast=attempt % 2 == 0)
        async with engine.connect() as conn:
            staged = (
                await conn.execute(
                    text(
                        "SELECT count(*), coalesce(max(row_number), 0) FROM raw_import_records "
                        "WHERE data_import_id = :id"
                    ),
                    {"id": ref.data_import_id},
                )
            ).one()
        outcomes.add((failure.code, staged[0] == staged[1] and staged[0] % 10 == 0))
    assert outcomes == {(FILE_FIELD_TOO_LARGE, True)}
