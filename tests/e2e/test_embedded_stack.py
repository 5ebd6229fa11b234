"""The embedded stack: PostgreSQL over TCP, the Temporal dev server and the HTTP API, started
for real."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

# Runs with --noconftest and without the project installed: make the project importable.
if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dataimport.settings import (
    SEARCH_ATTRIBUTES,
    STACK_FILE,
)
from devstack import embedded

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Anything that would point the CLI at another stack or tenant is left out of its environment.
FOREIGN_ENV = ("DATABASE_URL", "TEMPORAL_", "DATAIMPORT_")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("embedded")
    yield path
    # Finalizer: never leak a process, whatever the tests did.
    embedded.stop_api_process(path, timeout=5)
    embedded.stop_worker_process(path, timeout=5)
    embedded.stop_temporal(path)
    embedded.stop_postgres(path)


def _gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by init counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _query(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _custom_search_attributes(address: str) -> dict[str, int]:
    client = await Client.connect(address)
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return dict(response.custom_attributes)


# --------------------------------------------------------------------------- postgres


def test_postgres_starts_on_tcp(state_dir: Path) -> None:
    info = embedded.start_postgres(state_dir)

    # The service role, its password in the stack's pgpass file (docs/security.md).
    passfile = urllib.parse.quote(str(state_dir.resolve() / "postgres" / "pgpass"), safe="")
    base = f"@127.0.0.1:{info.port}/dataimport?passfile={passfile}"
    assert info.database_url == f"postgresql://dataimport_app{base}"
    assert info.owner_database_url == f"postgresql://postgres{base}"
    assert psutil.pid_exists(info.pid)
    rows = asyncio.run(_query(info.database_url, "select 1 as one, current_database() as db"))
    assert rows[0]["one"] == 1
    assert rows[0]["db"] == "dataimport"
    assert (state_dir / "postgres" / "port").read_text().strip() == str(info.port)
    assert (state_dir / "logs" / "postgres.log").exists()
    if os.geteuid() == 0:  # pytest's tmp root is 0700: it must have been opened for the user
        assert state_dir.parent.parent.stat().st_mode & stat.S_IXOTH


def test_postgres_shared_buffers_follow_the_machine(state_dir: Path) -> None:
    """A quarter of memory, within 256 MB..2 GB, and the server runs with it."""
    assert embedded.shared_buffers_mb(2 * 2**30) == 512
    assert embedded.shared_buffers_mb(512 * 2**20) == 256
    assert embedded.shared_buffers_mb(64 * 2**30) == 2048
    info = embedded.start_postgres(state_dir)
    sql = "select setting::bigint * 8 / 1024 as mb from pg_settings where name = 'shared_buffers'"
    rows = asyncio.run(_query(info.database_url, sql))
    assert f"{rows[0]['mb']}MB" == embedded.PG_SETTINGS["shared_buffers"]


def test_postgres_start_is_idempotent(state_dir: Path) -> None:
    first = embedded.start_postgres(state_dir)
    again = embedded.start_postgres(state_dir)
    assert again == first


def test_postgres_data_survives_restart(state_dir: Path) -> None:
    info = embedded.start_postgres(state_dir)
    asyncio.run(
        _execute(
            info.owner_database_url, "create table kept (v text); insert into kept values ('x')"
        )
    )

    assert embedded.stop_postgres(state_dir) is True
    assert _gone(info.pid)
    assert embedded.stop_postgres(state_dir) is False
    assert embedded.stack_status(state_dir)["postgres"] == {"running": False, "pid": None}

    restarted = embedded.start_postgres(state_dir)
    assert restarted.port == info.port  # remembered port reused
    assert restarted.pid != info.pid
    rows = asyncio.run(_query(restarted.owner_database_url, "select v from kept"))
    assert [r["v"] for r in rows] == ["x"]


def test_postgres_stale_pid_file_is_handled(state_dir: Path) -> None:
    embedded.stop_postgres(state_dir)
    pid_file = state_dir / "postgres" / "data" / "postmaster.pid"
    # A pid file naming a live process that is not postgres (our own pid).
    pid_file.write_text(f"{os.getpid()}\n{pid_file.parent}\n0\n5432\n\n127.0.0.1\n0 0\nready\n")

    info = embedded.start_postgres(state_dir)
    assert info.pid != os.getpid()
    assert asyncio.run(_query(info.database_url, "select 1 as one"))[0]["one"] == 1


def test_postgres_creates_another_database(state_dir: Path) -> None:
    info = embedded.start_postgres(state_dir, database="other db")
    assert info.database_url.split("?")[0].endswith("/other%20db")
    rows = asyncio.run(
        _query(
            info.database_url.replace("/other%20db?", "/postgres?"),
            "select datname from pg_database",
        )
    )
    assert {"dataimport", "other db"} <= {r["datname"] for r in rows}
    embedded.start_postgres(state_dir)  # back to the default database name for status


# --------------------------------------------------------------------------- temporal


def test_temporal_headless_registers_search_attributes(state_dir: Path) -> None:
    info = embedded.start_temporal(state_dir, ui=False)

    assert info.address.startswith("127.0.0.1:")
    assert info.web_ui_url == ""
    attributes = asyncio.run(_custom_search_attributes(info.address))
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert {name: attributes.get(name) for name in SEARCH_ATTRIBUTES} == dict.fromkeys(
        SEARCH_ATTRIBUTES, keyword
    )
    ports = json.loads((state_dir / "temporal" / "ports.json").read_text())
    assert f"127.0.0.1:{ports['port']}" == info.address


def test_temporal_start_is_idempotent(state_dir: Path) -> None:
    first = embedded.start_temporal(state_dir, ui=False)
    again = embedded.start_temporal(state_dir, ui=False)
    assert again == first


def test_temporal_restart_keeps_attributes_and_adds_new_ones(state_dir: Path) -> None:
    first = embedded.start_temporal(state_dir, ui=False)
    assert embedded.stop_temporal(state_dir) is True
    assert _gone(first.pid)
    assert embedded.stop_temporal(state_dir) is False

    # The persisted SQLite db already has the attributes: passing them again must not fail,
    # and an attribute added since then must get registered too.
    wanted = {**SEARCH_ATTRIBUTES, "ExtraAttribute": "Int"}
    again = embedded.start_temporal(state_dir, ui=False, search_attributes=wanted)
    assert again.address == first.address
    attributes = asyncio.run(_custom_search_attributes(again.address))
    assert set(wanted) <= set(attributes)
    assert attributes["ExtraAttribute"] == IndexedValueType.INDEXED_VALUE_TYPE_INT


def test_temporal_killed_process_is_restarted(state_dir: Path) -> None:
    before = embedded.start_temporal(state_dir, ui=False)
    os.killpg(before.pid, signal.SIGKILL)
    psutil.Process(before.pid).wait(10)

    assert embedded.stack_status(state_dir)["temporal"] == {"running": False, "pid": None}
    after = embedded.start_temporal(state_dir, ui=False)
    assert after.pid != before.pid
    assert set(SEARCH_ATTRIBUTES) <= set(asyncio.run(_custom_search_attributes(after.address)))


def test_temporal_with_web_ui(state_dir: Path) -> None:
    embedded.stop_temporal(state_dir)
    info = embedded.start_temporal(state_dir, ui=True)
    assert info.web_ui_url.startswith("http://127.0.0.1:")
    ui_port = int(info.web_ui_url.rsplit(":", 1)[1])
    assert embedded._tcp_open(ui_port)


def test_temporal_takes_the_conventional_ports_when_free(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """7233/8233 in production; here two ports known to be free stand in for them, so the
    test never depends on what else runs on this machine."""
    embedded.stop_temporal(state_dir)
    (state_dir / "temporal" / "ports.json").unlink(missing_ok=True)
    grpc = embedded._free_port()
    web = embedded._free_port(avoid=[grpc])
    monkeypatch.setattr(embedded, "STANDARD_TEMPORAL_PORTS", (grpc, web))
    info = embedded.start_temporal(state_dir, ui=True)
    assert (info.address, info.web_ui_url) == (f"127.0.0.1:{grpc}", f"http://127.0.0.1:{web}")
    embedded.stop_temporal(state_dir)


def test_a_taken_conventional_port_falls_back_to_a_free_one() -> None:
    assert embedded.STANDARD_TEMPORAL_PORTS == (7233, 8233)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        chosen = embedded._choose_port(None, None, preferred=busy)
        assert chosen != busy and embedded._port_free(chosen)
    free = embedded._free_port()
    assert embedded._choose_port(None, None, preferred=free) == free
    assert embedded._choose_port(None, free, preferred=busy) == free  # remembered first
    assert embedded._choose_port(4242, free, preferred=free) == 4242  # explicit wins


# --------------------------------------------------------------------------- worker + status


def test_worker_process_start_stop(
    state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "worker.py"
    fake.write_text(
        textwrap.dedent(
            """
            import os, signal, sys, time
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            print("fake worker", os.environ["FAKE_MARKER"], flush=True)
            while True:
                time.sleep(0.1)
            """
        )
    )
    monkeypatch.chdir(tmp_path)  # `python -m worker` resolves from the working directory
    pid = embedded.start_worker_process(state_dir, {"FAKE_MARKER": "hello"})
    assert embedded.start_worker_process(state_dir, {"FAKE_MARKER": "hello"}) == pid
    assert embedded.stack_status(state_dir)["worker"] == {"running": True, "pid": pid}
    log = state_dir / "logs" / "worker.log"
    deadline = time.monotonic() + 30
    while "fake worker hello" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "fake worker hello" in log.read_text()  # env was passed, output goes to the log

    assert embedded.stop_worker_process(state_dir, timeout=10) is True
    assert _gone(pid)
    assert embedded.stop_worker_process(state_dir) is False


def test_stack_status_and_stack_file(state_dir: Path) -> None:
    pg = embedded.start_postgres(state_dir)
    temporal = embedded.start_temporal(state_dir, ui=False)

    status = embedded.stack_status(state_dir)
    assert status["postgres"] == {
        "running": True,
        "pid": pg.pid,
        "port": pg.port,
        "database_url": pg.database_url,
    }
    assert status["temporal"] == {
        "running": True,
        "pid": temporal.pid,
        "address": temporal.address,
        "web_ui_url": temporal.web_ui_url,
    }

    data = {
        "database_url": pg.database_url,
        "temporal_address": temporal.address,
        "web_ui_url": temporal.web_ui_url,
    }
    embedded.write_stack_file(state_dir, data)
    assert json.loads((state_dir / STACK_FILE).read_text()) == data
    embedded.remove_stack_file(state_dir)
    embedded.remove_stack_file(state_dir)
    assert not (state_dir / STACK_FILE).exists()


def test_stop_everything(state_dir: Path) -> None:
    embedded.start_postgres(state_dir)
    embedded.start_temporal(state_dir, ui=False)
    assert embedded.stop_temporal(state_dir) is True
    assert embedded.stop_postgres(state_dir) is True
    status = embedded.stack_status(state_dir)
    assert all(not part["running"] for part in status.values())  # type: ignore[index]


# --------------------------------------------------------------------------- up: HTTP API


def _cli(state_dir: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """`dataimport ...` (as `python -m starter`, the project need not be installed) against
    the stack in `state_dir`. Blocking is fine: this module never uses the session loop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env |= {"PYTHONPATH": os.pathsep.join(paths), "DATAIMPORT_HOME": str(state_dir)}
    env |= {"PYTHONUNBUFFERED": "1", **extra_env}
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        env=env,
        cwd=state_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=5):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _api_pid(state_dir: Path) -> int | None:
    api: dict[str, Any] = embedded.stack_status(state_dir)["api"]  # type: ignore[assignment]
    pid: int | None = api["pid"]
    return pid


def test_api_port_is_the_wanted_one_while_free() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        holder.listen()
        other = embedded._api_port("127.0.0.1", port)
    assert other != port
    assert embedded._port_free(other)
    assert embedded._api_port("127.0.0.1", other) == other
    assert embedded._api_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert embedded._api_url("::1", 8000) == "http://[::1]:8000"


def test_api_that_cannot_start_names_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    # No stack.json and no DATABASE_URL: `dataimport api` refuses to start.
    with pytest.raises(RuntimeError) as failure:
        embedded.start_api_process(tmp_path, {"DATAIMPORT_HOME": str(tmp_path)}, port=0)
    assert str(tmp_path / "logs" / "api.log") in str(failure.value)
    assert "no database" in str(failure.value)
    assert not (tmp_path / "api.pid").exists()
    assert embedded.stop_api_process(tmp_path) is False


@pytest.fixture(scope="module")
def stack_up(state_dir: Path) -> Iterator[tuple[subprocess.CompletedProcess[str], int]]:
    """`dataimport up --detach` while the configured API port is taken by someone else."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        result = _cli(state_dir, "up", "--detach", DATAIMPORT_API_PORT=str(busy))
    try:
        yield result, busy
    finally:
        _cli(state_dir, "down")


def test_up_publishes_the_api_on_a_free_port(
    state_dir: Path, stack_up: tuple[subprocess.CompletedProcess[str], int]
) -> None:
    result, busy = stack_up
    assert result.returncode == 0, result.stdout + result.stderr
    api_url = json.loads((state_dir / STACK_FILE).read_text())["api_url"]
    assert api_url.startswith("http://127.0.0.1:")
    assert not api_url.endswith(f":{busy}")  # the configured port was busy: another one
    assert api_url in result.stdout

    shown = _cli(state_dir, "info", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["api_url"] == api_url
    assert (state_dir / "logs" / "api.log").exists()


def test_up_api_answers_http(
    state_dir: Path, stack_up: tuple[subprocess.CompletedProcess[str], int]
) -> None:
    api_url = json.loads((state_dir / STACK_FILE).read_text())["api_url"]
    status, schema = _get(f"{api_url}/openapi.json")
    assert status == 200 and "/api/v1/imports" in schema["paths"]
    key = (state_dir / "demo-api-key").read_text().strip()
    assert key in stack_up[0].stdout  # `up` printed the key it made for the demo tenant
    status, listed = _get(f"{api_url}/api/v1/imports", {"Authorization": f"Bearer {key}"})
    assert status == 200
    assert isinstance(listed["items"], list)


def test_up_again_reuses_the_running_api(
    state_dir: Path, stack_up: tuple[subprocess.CompletedProcess[str], int]
) -> None:
    before, pid = json.loads((state_dir / STACK_FILE).read_text()), _api_pid(state_dir)
    again = _cli(state_dir, "up", "--detach", "--no-worker")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((state_dir / STACK_FILE).read_text()) == before
    assert _api_pid(state_dir) == pid


def test_down_stops_the_api(
    state_dir: Path, stack_up: tuple[subprocess.CompletedProcess[str], int]
) -> None:
    api_url = json.loads((state_dir / STACK_FILE).read_text())["api_url"]
    pid = _api_pid(state_dir)
    assert pid is not None

    stopped = _cli(state_dir, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert "api" in stopped.stdout.split("stopped:", 1)[1]
    assert "Traceback" not in stopped.stderr
    assert _gone(pid)
    assert _api_pid(state_dir) is None
    assert not (state_dir / "api.pid").exists()
    assert not embedded._tcp_open(int(api_url.rsplit(":", 1)[1]))
    assert not _answers(api_url)
    shown = _cli(state_dir, "info", "--json")
    assert json.loads(shown.stdout)["api_url"] == ""


def test_up_no_api_starts_none(state_dir: Path) -> None:
    try:
        result = _cli(state_dir, "up", "--detach", "--no-worker", "--no-api")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "api_url" not in json.loads((state_dir / STACK_FILE).read_text())
        assert _api_pid(state_dir) is None
        assert not (state_dir / "api.pid").exists()
        shown = _cli(state_dir, "info", "--json")
        assert json.loads(shown.stdout)["api_url"] == ""
    finally:
        stopped = _cli(state_dir, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert "api" not in stopped.stdout.split("stopped:", 1)[1]
