"""Validation engine throughput, in process: rows/s per phase, no database, no worker.

    python -m bench.bench_validation --category cmdb_export --rows 100000
    python -m bench.bench_validation --category all --rows 100000 --repeat 3

Rows come from the seeded generators (bench/generators.py). Each category is validated twice,
the two ways a worker does it:

    batch   10,000-row batches as ingest validates them (`staged_batch.BatchValidation`):
            raw_data JSON text decoded into the engine's frame, `chunk.validate`, the results
            joined to the batch and written as COPY text (`staging._copy_text`)
    chunk   25,000-row chunks as `validate_chunk` validates them from staging: the frame as
            `staged_io.load_chunk` builds it (one text column per key), `chunk.validate`, the
            results as the CSV `staged_io.write_results` COPYs

For infrastructure the vInfo rows of the RVTools workbook are joined with their companion
sheets' aggregates in memory, as the XLSX reader stages them ("<sheet>.<column>": numbers
summed, distinct texts joined with "; ", "<sheet>.#rows"), instead of writing and reading an
XLSX. Preparing the rows is not timed. Not a test: nothing is asserted, figures only (on a
shared machine they are noisy; compare runs made one after the other).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl

from bench import generators
from dataimport.agents import FORMAT_VALIDATOR
from dataimport.categories import get_category
from dataimport.categories.base import HeaderMapping
from dataimport.contracts import ImportRef, ProcessingConfig
from dataimport.engine import chunk, staged_batch
from dataimport.engine.frame import BLANK, READ_ISSUES, ROW, ChunkFrame, jsonb_key_order, key_column
from dataimport.staging import COPY_COLUMNS, RESULT_COLUMNS, _copy_text
from dataimport.validation import header_mapping

BATCH_ROWS = 10_000  # staging.VALIDATED_BATCH_ROWS
CHUNK_ROWS = 25_000  # the default validation chunk size

# Phases outside the agents, in print order.
DECODE = "frame"  # raw cells into the engine's frame
RESULTS = "results"  # chunk.validate beyond the agents: errors / normalized JSON text
COPY_FORM = "copy form"  # the results as the COPY input the worker sends
VALIDATE = "validate"  # chunk.validate as a whole
VALIDATE_CPU = "validate, cpu"  # its CPU time (all threads): steadier on a shared machine
TOTAL = "total"  # every phase: frame to COPY form
_SUMMARY = (DECODE, RESULTS, COPY_FORM, VALIDATE, VALIDATE_CPU, TOTAL)


# --------------------------------------------------------------------------- rows


def _cell_text(value: object) -> str:
    """A workbook cell as the XLSX reader stages it."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _infrastructure_rows(count: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """vInfo rows with the companion sheets' aggregates, as the reader joins them by VM."""
    sheets = dict(generators._infrastructure_sheets(count, seed))
    primary = generators.RVTOOLS_SHEETS["vInfo"]
    headers = [h.strip() for h in primary]
    joined: list[dict[str, Any]] = [{} for _ in range(count)]
    index = {}
    vinfo = [[_cell_text(v) for v in row] for row in sheets["vInfo"]]
    for i, row in enumerate(vinfo):
        index[row[0]] = i
    for sheet in ("vCPU", "vMemory", "vDisk", "vPartition", "vNetwork"):
        columns = [h.strip() for h in generators.RVTOOLS_SHEETS[sheet]]
        names = [f"{sheet}.{c}" for c in columns if c != "VM"] + [f"{sheet}.#rows"]
        headers.extend(names)
        for values in sheets[sheet]:
            entry = joined[index[_cell_text(values[0])]]
            rows_key = f"{sheet}.#rows"
            entry[rows_key] = entry.get(rows_key, 0) + 1
            for column, value in zip(columns[1:], values[1:], strict=True):
                if value in (None, ""):
                    continue
                key = f"{sheet}.{column}"
                have = entry.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    entry[key] = (have if isinstance(have, int | float) else 0) + value
                else:
                    texts = have if isinstance(have, list) else []
                    if _cell_text(value) not in texts:
                        texts.append(_cell_text(value))
                    entry[key] = texts
    rows = []
    width = len(primary)
    for cells, entry in zip(vinfo, joined, strict=True):
        extra = [
            "; ".join(v) if isinstance(v := entry.get(name), list) else _cell_text(v)
            for name in headers[width:]
        ]
        rows.append([*cells, *extra])
    return headers, rows


def source_rows(category: str, count: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of cell text) of the category's generated file."""
    if category == "infrastructure":
        return _infrastructure_rows(count, seed)
    produce: dict[str, tuple[list[str], Iterator[list[str]]]] = {
        "cmdb_export": (generators.CMDB_HEADERS, generators.cmdb_rows(count, seed)),
        "app_discovery": (generators.AZURE_HEADERS, generators.app_discovery_rows(count, seed)),
        "sensitive_data": (
            generators.DATA_STORE_HEADERS,
            generators.sensitive_data_rows(count, seed),
        ),
    }
    headers, rows = produce[category]
    return list(headers), list(rows)


def cell_frame(headers: Sequence[str], rows: list[list[str]]) -> pl.DataFrame:
    """One text column per header (named by the header) plus the row facts."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in headers]
    data: dict[str, pl.Series] = {
        ROW: pl.Series(ROW, range(1, len(rows) + 1), dtype=pl.Int64),
        BLANK: pl.Series(BLANK, [False] * len(rows), dtype=pl.Boolean),
        READ_ISSUES: pl.Series(READ_ISSUES, [None] * len(rows), dtype=pl.Utf8),
    }
    for header, values in zip(headers, columns, strict=True):
        data[header] = pl.Series(header, values, dtype=pl.Utf8)
    return pl.DataFrame(data)


def batch_input(cells: pl.DataFrame, headers: Sequence[str]) -> pl.DataFrame:
    """What ingest hands `validate_batch`: row_number, raw_data JSON text, read_issues,
    is_blank (the JSON encoded by polars: not timed)."""
    return cells.select(
        ROW,
        pl.struct([pl.col(h) for h in headers]).struct.json_encode().alias("raw_data"),
        READ_ISSUES,
        BLANK,
    )


def chunk_frame(cells: pl.DataFrame, headers: Sequence[str], mapping: HeaderMapping) -> ChunkFrame:
    """The frame `staged_io.load_chunk` builds: keys in JSONB order, one column per key."""
    keys = jsonb_key_order(headers)
    frame = cells.select(
        ROW, BLANK, READ_ISSUES, *(pl.col(key).alias(key_column(i)) for i, key in enumerate(keys))
    )
    return ChunkFrame(frame, keys, mapping)


# --------------------------------------------------------------------------- timing


def _timed_validate(
    category: chunk.FrameRules, frame: ChunkFrame, phases: dict[str, float]
) -> chunk.ValidatedChunk:
    started, cpu = time.perf_counter(), time.process_time()
    validated = chunk.validate(category, frame)
    seconds = time.perf_counter() - started
    phases[VALIDATE_CPU] += time.process_time() - cpu
    phases[VALIDATE] += seconds
    agents = 0.0
    for name, ms in validated.agent_ms.items():
        phases[name] += ms / 1000
        agents += ms / 1000
    phases[RESULTS] += seconds - agents
    return validated


def run_batches(
    category: chunk.FrameRules, mapping: HeaderMapping, headers: list[str], staged: pl.DataFrame
) -> dict[str, float]:
    """Ingest's path: seconds per phase over every BATCH_ROWS batch."""
    phases: dict[str, float] = defaultdict(float)
    ref = ImportRef(
        data_import_id=uuid.uuid4(),
        client_account_id=uuid.uuid4(),
        engagement_id=uuid.uuid4(),
        category=category.name,
    )
    for batch in staged.iter_slices(BATCH_ROWS):
        started = time.perf_counter()
        frame = staged_batch._frame(batch, headers, mapping)
        phases[DECODE] += time.perf_counter() - started
        validated = _timed_validate(category, frame, phases)
        started = time.perf_counter()
        results = validated.rows.select(
            ROW,
            "is_valid",
            pl.col("errors").alias("validation_errors"),
            pl.col("normalized").alias("normalized_data"),
        )
        joined = batch.join(results, on=ROW, how="left", maintain_order="left")
        _copy_text(joined, ref, (*COPY_COLUMNS, *RESULT_COLUMNS))
        phases[COPY_FORM] += time.perf_counter() - started
    return phases


def run_chunks(
    category: chunk.FrameRules, mapping: HeaderMapping, headers: list[str], cells: pl.DataFrame
) -> dict[str, float]:
    """validate_chunk's path: seconds per phase over every CHUNK_ROWS chunk."""
    phases: dict[str, float] = defaultdict(float)
    for part in cells.iter_slices(CHUNK_ROWS):
        started = time.perf_counter()
        frame = chunk_frame(part, headers, mapping)
        phases[DECODE] += time.perf_counter() - started
        validated = _timed_validate(category, frame, phases)
        started = time.perf_counter()
        validated.rows.select(ROW, "is_valid", "errors", "normalized").write_csv(
            include_header=False
        )
        phases[COPY_FORM] += time.perf_counter() - started
    return phases


def _order(phases: dict[str, float]) -> list[str]:
    agents = [n for n in phases if n not in _SUMMARY]
    first = [FORMAT_VALIDATOR] if FORMAT_VALIDATOR in agents else []
    return [DECODE, *first, *(a for a in agents if a != FORMAT_VALIDATOR), RESULTS, COPY_FORM]


def report(category: str, path: str, rows: int, phases: dict[str, float]) -> dict[str, Any]:
    """Print one table of rows/s per phase; returns the figures."""
    phases = dict(phases)
    phases[TOTAL] = sum(phases[name] for name in _order(phases))
    print(f"\n{category} ({rows:,} rows, {path})")
    print("| phase | ms | rows/s |\n|---|--:|--:|")
    for name in [*_order(phases), VALIDATE, VALIDATE_CPU, TOTAL]:
        seconds = phases[name]
        rate = rows / seconds if seconds > 0 else float("inf")
        print(f"| {name} | {seconds * 1000:,.0f} | {rate:,.0f} |")
    return {
        "category": category,
        "path": path,
        "rows": rows,
        "ms": {name: round(seconds * 1000, 1) for name, seconds in phases.items()},
    }


def bench(category_name: str, count: int, seed: int, repeat: int) -> list[dict[str, Any]]:
    print(f"preparing {category_name} ({count:,} rows)...", file=sys.stderr)
    category = get_category(category_name)
    headers, rows = source_rows(category_name, count, seed)
    mapping = header_mapping(category, headers, ProcessingConfig())
    cells = cell_frame(headers, rows)
    staged = batch_input(cells, headers)
    del rows
    figures = []
    for path, run in (
        ("batch", lambda: run_batches(category, mapping, headers, staged)),
        ("chunk", lambda: run_chunks(category, mapping, headers, cells)),
    ):
        # The best of `repeat` runs per phase: the least disturbed by other processes.
        best: dict[str, float] = {}
        for _ in range(repeat):
            for name, seconds in run().items():
                best[name] = min(best.get(name, seconds), seconds)
        figures.append(report(category_name, path, count, best))
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--category", default="cmdb_export", help="a category, or all")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=1, help="runs per path; best kept")
    args = parser.parse_args(argv)
    names = generators.CATEGORIES if args.category == "all" else (args.category,)
    figures = [f for name in names for f in bench(name, args.rows, args.seed, args.repeat)]
    print()
    for figure in figures:
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
