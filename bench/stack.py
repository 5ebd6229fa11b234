"""The embedded stack a benchmark runs on: a fresh state dir, PostgreSQL migrated, Temporal.

Started once per bench run (`bench_import`, `crash_check`) and stopped afterwards, its state
dir removed unless kept. Progress lines go to stderr through `log`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dataimport.migrate import upgrade
from devstack import embedded

DATABASE = "dataimport_bench"


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    owner_url: str  # the schema's owner: inspection across tenants
    app_url: str  # the service role: what workers connect as (row-level security applies)
    temporal_address: str


@contextmanager
def bench_stack(prefix: str, home: Path | None, *, keep: bool = False) -> Iterator[Stack]:
    """A fresh state dir under `home` (default: the temp dir) with the stack running in it."""
    parent = home.resolve() if home else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    state_dir.chmod(0o755)  # mkdtemp makes it 0700: the postgres system user must traverse it
    (state_dir / "input").mkdir()
    log(f"state dir {state_dir}")
    try:
        log("starting PostgreSQL + Temporal")
        pg = embedded.start_postgres(state_dir, database=DATABASE)
        upgrade(pg.owner_database_url)  # migrations run as the owner
        temporal = embedded.start_temporal(state_dir, ui=False, standard_ports=False)
        yield Stack(state_dir, pg.owner_database_url, pg.database_url, temporal.address)
    finally:
        log("stopping the stack")
        embedded.stop_temporal(state_dir)
        embedded.stop_postgres(state_dir)
        if keep:
            log(f"kept {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
