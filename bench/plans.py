"""Measured plans of the slow statements of a bench run (`bench_import --plans MS`).

PostgreSQL's auto_explain logs, for every statement slower than MS, its EXPLAIN ANALYZE plan
(actual rows and times per node) into the stack's PostgreSQL log; after each import the
entries it added are grouped by statement (literals and parameters aside, the text is the
same for every range) into a table of count, total, mean and max milliseconds, and written
whole to `<state>/logs/plans-<n>.log` for reading.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from devstack.embedded import postgres_log

# Loaded into each new session (no restart); the workers connect after this is set.
_SETTINGS = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_nested_statements": "on",
    "auto_explain.log_format": "text",
}

_ENTRY = re.compile(r"duration: ([0-9.]+) ms\s+plan:\s*\n\s*Query Text:\s*(.*)", re.S)
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.M)


async def enable(owner_url: str, min_ms: int) -> None:
    """Log the plan of every statement slower than `min_ms` from the next session on."""
    conn = await asyncpg.connect(owner_url)
    try:
        for key, value in {**_SETTINGS, "auto_explain.log_min_duration": f"{min_ms}ms"}.items():
            await conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


def log_size(state_dir: Path) -> int:
    path = postgres_log(state_dir)
    return path.stat().st_size if path.exists() else 0


@dataclass
class Statement:
    text: str
    durations: list[float] = field(default_factory=list)


def _key(query: str) -> str:
    """The statement without its literals: one key per statement however many ranges ran it."""
    body = " ".join(query.split())
    body = re.sub(r"'[^']*'", "?", body)
    return re.sub(r"\b\d+\b", "N", body)[:200]


def _query(entry: str) -> str:
    """The statement's text: the entry's lines up to its plan's first node."""
    lines = []
    for line in entry.splitlines():
        if "(actual " in line or "(cost=" in line:
            break
        lines.append(line)
    return "\n".join(lines)


def entries(text: str) -> list[tuple[float, str, str]]:
    """(ms, query key, whole entry) of every auto_explain entry in a log excerpt."""
    starts = [m.start() for m in _LOG_LINE.finditer(text)] + [len(text)]
    found = []
    for begin, end in itertools.pairwise(starts):
        chunk = text[begin:end]
        match = _ENTRY.search(chunk)
        if match:
            found.append((float(match.group(1)), _key(_query(match.group(2))), chunk))
    return found


def summarise(state_dir: Path, offset: int, label: str, top: int = 15) -> str:
    """Markdown table of the statements logged since `offset`, slowest total first; the whole
    entries go to a file of their own (its path is named under the table)."""
    path = postgres_log(state_dir)
    with path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", "replace")
    statements: dict[str, Statement] = {}
    plans = []
    for ms, key, chunk in entries(text):
        statements.setdefault(key, Statement(key)).durations.append(ms)
        plans.append(chunk)
    logs = path.parent
    out = logs / f"plans-{len(list(logs.glob('plans-*.log'))) + 1}.log"
    out.write_text("".join(plans))
    ranked = sorted(statements.values(), key=lambda s: -sum(s.durations))[:top]
    lines = [
        f"#### slow statements · {label}",
        "",
        "| statement | count | total s | mean ms | max ms |",
        "|---|--:|--:|--:|--:|",
    ]
    for s in ranked:
        total = sum(s.durations)
        shown = s.text.replace("|", "\\|")
        lines.append(
            f"| `{shown}` | {len(s.durations)} | {total / 1000:.1f} | "
            f"{total / len(s.durations):.0f} | {max(s.durations):.0f} |"
        )
    lines += ["", f"plans: {out}"]
    return "\n".join(lines)
