"""The bare-COPY floor: the same file's rows parsed, JSON-encoded and COPYed, nothing else.

CSV rows are parsed with the stdlib csv module; an XLSX is parsed with python-calamine: the
primary sheet's rows, each joined with the companion sheets' aggregates the way the reader
stages them ("<sheet>.<column>" cells: numbers summed, distinct texts joined with "; ",
"<sheet>.#rows"), so the floor's JSON is as wide as the staged rows. Each row becomes the
tenant, import id, row number and the header -> cell JSON, and goes through asyncpg
``copy_records_to_table`` into a scratch copy of ``raw_import_records``
(``CREATE TABLE ... (LIKE raw_import_records ...)``):

    bare      INCLUDING DEFAULTS (no index, no constraint): the floor every ratio divides by
    indexed   INCLUDING ALL (its primary key and unique (data_import_id, row_number))

Rows are prepared and COPYed in batches of BATCH rows inside one transaction, so memory stays
bounded at any size; the COPY time is the sum of the copy calls only, the preparation
(parse + json.dumps) is timed apart and reported as well.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

BATCH = 100_000
TABLE = "bench_copy_floor"
COLUMNS = ("client_account_id", "engagement_id", "data_import_id", "row_number", "raw_data")
_VARIANTS = {
    "bare": f"CREATE TABLE {TABLE} (LIKE raw_import_records INCLUDING DEFAULTS)",
    "indexed": f"CREATE TABLE {TABLE} (LIKE raw_import_records INCLUDING ALL)",
}
PRIMARY_SHEETS = ("vInfo", "tabvInfo")
COMPANION_SHEETS = ("vCPU", "vMemory", "vDisk", "vPartition", "vNetwork")
JOIN_KEYS = ("VM UUID", "VM")


@dataclass(frozen=True)
class CopyFloor:
    rows: int
    prepare_seconds: float  # parse + json.dumps, in Python: not part of the floor
    bare_seconds: float  # COPY into the scratch table without indexes: the floor
    indexed_seconds: float  # COPY into the scratch table with raw_import_records' indexes
    json_bytes: int  # total size of the JSON documents COPYed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- parsing


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        headers = next(reader)
        for cells in reader:
            yield dict(zip(headers, cells, strict=False))


def _cell_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _sheet_table(workbook: Any, name: str) -> tuple[list[str], list[list[Any]]]:
    rows = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
    if not rows:
        return [], []
    return [_cell_text(h).strip() for h in rows[0]], rows[1:]


def _companion_cells(workbook: Any, sheet: str) -> dict[str, dict[str, str]]:
    """key -> {"<sheet>.<column>": text}: numbers summed, distinct texts joined, #rows."""
    headers, rows = _sheet_table(workbook, sheet)
    key_index = next((headers.index(k) for k in JOIN_KEYS if k in headers), None)
    if key_index is None:
        return {}
    sums: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = _cell_text(row[key_index])
        entry = sums.setdefault(key, {"#rows": 0})
        entry["#rows"] += 1
        for column, value in zip(headers, row, strict=False):
            if column in JOIN_KEYS or value in (None, ""):
                continue
            have = entry.get(column)
            if isinstance(value, int | float) and not isinstance(value, bool):
                entry[column] = (have if isinstance(have, int | float) else 0) + value
            else:
                texts = have if isinstance(have, list) else []
                if _cell_text(value) not in texts:
                    texts.append(_cell_text(value))
                entry[column] = texts
    return {
        key: {
            f"{sheet}.{column}": "; ".join(v) if isinstance(v, list) else _cell_text(v)
            for column, v in entry.items()
        }
        for key, entry in sums.items()
    }


def _xlsx_rows(path: Path) -> Iterator[dict[str, str]]:
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_path(str(path))
    names = workbook.sheet_names
    primary = next((name for name in PRIMARY_SHEETS if name in names), names[0])
    companions = [_companion_cells(workbook, s) for s in COMPANION_SHEETS if s in names]
    headers, rows = _sheet_table(workbook, primary)
    key_index = next((headers.index(k) for k in JOIN_KEYS if k in headers), 0)
    for row in rows:
        cells = {h: _cell_text(v) for h, v in zip(headers, row, strict=False)}
        key = _cell_text(row[key_index])
        for companion in companions:
            cells.update(companion.get(key, {}))
        yield cells


def source_rows(path: Path) -> Iterator[dict[str, str]]:
    """The file's data rows as header -> cell text."""
    return _xlsx_rows(path) if path.suffix.lower() == ".xlsx" else _csv_rows(path)


# --------------------------------------------------------------------------- COPY


def _batches(path: Path) -> Iterator[list[tuple[Any, ...]]]:
    tenant, engagement, data_import = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    numbered = enumerate(source_rows(path), 1)
    while batch := list(itertools.islice(numbered, BATCH)):
        yield [
            (tenant, engagement, data_import, n, json.dumps(cells, ensure_ascii=False))
            for n, cells in batch
        ]


async def _copy_variant(
    conn: asyncpg.Connection[Any], path: Path, ddl: str
) -> tuple[int, float, float, int]:
    """(rows, prepare seconds, COPY seconds, JSON bytes) for one scratch table."""
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await conn.execute(ddl)
    await conn.execute("CHECKPOINT")  # do not bill the import's dirty pages to the floor
    rows = json_bytes = 0
    prepare = copy = 0.0
    batches = _batches(path)
    async with conn.transaction():
        while True:
            started = time.perf_counter()
            records: Sequence[tuple[Any, ...]] | None = await asyncio.to_thread(next, batches, None)
            prepare += time.perf_counter() - started
            if records is None:
                break
            rows += len(records)
            json_bytes += sum(len(r[4]) for r in records)
            started = time.perf_counter()
            await conn.copy_records_to_table(TABLE, records=records, columns=COLUMNS)
            copy += time.perf_counter() - started
    await conn.execute(f"DROP TABLE {TABLE}")
    return rows, prepare, copy, json_bytes


async def measure_copy_floor(database_url: str, path: Path) -> CopyFloor:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(database_url)
    try:
        rows, prepare, bare, json_bytes = await _copy_variant(conn, path, _VARIANTS["bare"])
        _, _, indexed, _ = await _copy_variant(conn, path, _VARIANTS["indexed"])
    finally:
        await conn.close()
    return CopyFloor(
        rows=rows,
        prepare_seconds=prepare,
        bare_seconds=bare,
        indexed_seconds=indexed,
        json_bytes=json_bytes,
    )
