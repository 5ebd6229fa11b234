"""`dataimport demo` from nothing: its own embedded PostgreSQL, Temporal dev server and worker.

Runs the real CLI (blocking subprocess.run is fine here: this module never uses the session
worker). The stack lives in its own DATAIMPORT_HOME and is always stopped at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest

from dataimport.settings import DEMO_CLIENT_ACCOUNT_ID, DEMO_ENGAGEMENT_ID
from devstack import embedded
from starter.stack import SAMPLES

CLI = Path(sys.executable).parent / "dataimport"
# Anything that would point the CLI at another stack or tenant is left out of its environment.
FOREIGN_ENV = ("DATABASE_URL", "TEMPORAL_", "DATAIMPORT_")


@dataclass
class Demo:
    home: Path
    env: dict[str, str]
    result: subprocess.CompletedProcess[str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def info(self) -> dict[str, Any]:
        shown = self.cli("info", "--json")
        assert shown.returncode == 0, shown.stderr
        data: dict[str, Any] = json.loads(shown.stdout)
        return data


def demo_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    return {**env, "DATAIMPORT_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def stack_pids(home: Path) -> list[int]:
    """The pids of the stack's processes: postmaster, Temporal dev server, worker, API."""
    parts: dict[str, Any] = embedded.stack_status(home)
    return [part["pid"] for part in parts.values() if isinstance(part.get("pid"), int)]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    # Not under pytest's tmp_path: pytest re-locks it to 0700 and the postgres user could not
    # traverse it.
    home = Path(tempfile.mkdtemp(prefix="dataimport-demo-"))
    env = demo_env(home)
    run = Demo(home, env, subprocess.CompletedProcess([], 0, "", ""))
    try:
        run.result = run.cli("demo")
        yield run
    finally:
        run.cli("down")
        # belt and braces: never leak a process, whatever `down` did
        embedded.stop_api_process(home, timeout=5)
        embedded.stop_worker_process(home, timeout=5)
        embedded.stop_temporal(home)
        embedded.stop_postgres(home)
        shutil.rmtree(home, ignore_errors=True)


def test_demo_exits_0_and_summarises_every_sample_as_completed(demo: Demo) -> None:
    assert demo.result.returncode == 0, demo.result.stdout + demo.result.stderr
    assert "Traceback" not in demo.result.stderr
    lines = demo.result.stdout.splitlines()
    for sample, category in SAMPLES:
        line = next((line for line in lines if sample.name in line), None)
        assert line is not None, f"{sample.name} missing from the summary:\n{demo.result.stdout}"
        assert category in line and "completed" in line, line


def test_demo_says_how_to_stop_it(demo: Demo) -> None:
    assert "keeps running" in demo.result.stdout
    assert f"DATAIMPORT_HOME={demo.home}" in demo.result.stdout
    assert " down" in demo.result.stdout


def test_demo_prints_a_web_ui_that_answers_http(demo: Demo) -> None:
    url = demo.info()["web_ui_url"]
    assert url.startswith("http://") and url in demo.result.stdout
    status = None
    for _ in range(50):  # bounded: the UI may still be warming up
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                status = response.status
                break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    assert status == 200


def test_demo_prints_the_console_address_and_the_page_answers(demo: Demo) -> None:
    url = f"{demo.info()['api_url']}/console/"
    assert f"Import console (sign in with the API key): {url}" in demo.result.stdout
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        page = response.read().decode("utf-8")
    assert "/console/static/console.js" in page and "<title>Import console" in page


def test_demo_prints_an_api_that_lists_the_imports(demo: Demo) -> None:
    url = demo.info()["api_url"]
    assert url.startswith("http://") and url in demo.result.stdout
    key = demo_key(demo)
    request = urllib.request.Request(
        f"{url}/api/v1/imports", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        items = json.loads(response.read())["items"]
    assert sorted(item["filename"] for item in items) == sorted(s.name for s, _ in SAMPLES)
    anonymous = urllib.request.Request(f"{url}/api/v1/imports")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(anonymous, timeout=30)
    assert refused.value.code == 401


def demo_key(demo: Demo) -> str:
    """The demo tenant's API key, as the demo printed it (`export DATAIMPORT_API_KEY=...`)."""
    line = next(
        (line for line in demo.result.stdout.splitlines() if "DATAIMPORT_API_KEY=" in line), ""
    )
    key = line.split("DATAIMPORT_API_KEY=", 1)[-1].strip()
    assert key.startswith("dik_"), demo.result.stdout
    return key


async def key_rows(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT row_to_json(k)::text FROM api_keys k")
    finally:
        await conn.close()
    return [row[0] for row in rows]


def test_demo_key_is_for_the_demo_tenant_and_stored_hashed(demo: Demo) -> None:
    key = demo_key(demo)
    rows = asyncio.run(key_rows(demo.info()["database_url"]))
    assert len(rows) == 1 and key not in rows[0] and key[:12] in rows[0]
    assert str(DEMO_CLIENT_ACCOUNT_ID) in rows[0] and str(DEMO_ENGAGEMENT_ID) in rows[0]
    assert (demo.home / "demo-api-key").read_text().strip() == key


async def count_assets(url: str) -> int:
    """As the service role (info's URL): row-level security shows the tenant that is set."""
    conn = await asyncpg.connect(url)
    try:
        unset: int = await conn.fetchval("SELECT count(*) FROM assets")
        assert unset == 0
        async with conn.transaction():
            await conn.execute(
                "SELECT set_config('app.client_account_id', $1, true), "
                "set_config('app.engagement_id', $2, true)",
                str(DEMO_CLIENT_ACCOUNT_ID),
                str(DEMO_ENGAGEMENT_ID),
            )
            count: int = await conn.fetchval(
                "SELECT count(*) FROM assets WHERE client_account_id = $1 AND engagement_id = $2",
                DEMO_CLIENT_ACCOUNT_ID,
                DEMO_ENGAGEMENT_ID,
            )
    finally:
        await conn.close()
    return count


def test_demo_database_is_reachable_and_holds_the_assets(demo: Demo) -> None:
    info = demo.info()
    assert info["database_url"].startswith("postgresql://")
    assert info["temporal_address"]
    assert asyncio.run(count_assets(info["database_url"])) > 0


def test_commands_find_the_running_demo_stack_without_any_url(demo: Demo) -> None:
    listed = demo.cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    imports = json.loads(listed.stdout)
    assert sorted(item["filename"] for item in imports) == sorted(s.name for s, _ in SAMPLES)
    assert {item["status"] for item in imports} <= {"completed", "completed_with_errors"}


def test_up_again_reuses_the_running_stack(demo: Demo) -> None:
    before, pids = demo.info(), stack_pids(demo.home)
    again = demo.cli("up", "--detach")
    assert again.returncode == 0, again.stderr
    assert "down" in again.stdout
    assert demo.info() == before
    assert stack_pids(demo.home) == pids


def test_down_stops_every_process(demo: Demo) -> None:
    pids = stack_pids(demo.home)
    assert len(pids) == 4, embedded.stack_status(demo.home)

    stopped = demo.cli("down")
    assert stopped.returncode == 0, stopped.stderr
    assert "worker" in stopped.stdout and "temporal" in stopped.stdout
    assert "postgres" in stopped.stdout and "api" in stopped.stdout
    assert all(gone(pid) for pid in pids), [p for p in pids if not gone(p)]
    assert stack_pids(demo.home) == []
    info = demo.info()
    endpoints = ("database_url", "temporal_address", "web_ui_url", "api_url")
    assert [info[key] for key in endpoints] == ["", "", "", ""]
