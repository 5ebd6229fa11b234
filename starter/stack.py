"""The embedded stack from the CLI's side: up, down, endpoints, bundled samples."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rich.console import Console
from rich.markup import escape
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from dataimport.settings import Settings, redacted_url
from devstack import embedded

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "dataimport" / "samples"
SAMPLES: list[tuple[Path, str]] = [
    (SAMPLES_DIR / "servicenow_cmdb_ci_server.csv", "cmdb_export"),
    (SAMPLES_DIR / "homegrown_cmdb.csv", "cmdb_export"),
    (SAMPLES_DIR / "rvtools_export.xlsx", "infrastructure"),
    (SAMPLES_DIR / "azure_migrate_dependencies.csv", "app_discovery"),
    (SAMPLES_DIR / "data_store_inventory.csv", "sensitive_data"),
]
WORKER_READY_TIMEOUT = 60.0


def up(settings: Settings, *, worker: bool = True, api: bool = True) -> dict[str, str]:
    """Start what is not external (DATABASE_URL / TEMPORAL_ADDRESS), migrate, start a worker
    and the HTTP API (on settings.api_host / api_port, or a free port when that is taken)."""
    from dataimport.migrate import upgrade  # alembic: ~1 s of import every other command skips

    home = settings.home_dir
    embedded.secure_state_dir(home)
    data = dict(settings.embedded_stack())
    if not settings.database_url:
        postgres = embedded.start_postgres(home)
        data["database_url"] = postgres.database_url  # the service role's
        data["owner_database_url"] = postgres.owner_database_url  # migrations only
        data["pgpassfile"] = postgres.passfile
    # Migrations as the owner: configured, else the embedded cluster's (stack.json is not
    # written yet), else the one configured role.
    upgrade(
        settings.database_owner_url
        or settings.database_url
        or data.get("owner_database_url")
        or data["database_url"]
    )
    if not settings.temporal_address:
        temporal = embedded.start_temporal(home)
        data["temporal_address"] = temporal.address
        data["web_ui_url"] = temporal.web_ui_url
    running_api = embedded.stack_status(home)["api"]
    data.pop("api_url", None)
    if isinstance(running_api, dict) and running_api.get("running"):  # up --no-api: keep it
        data["api_url"] = str(running_api["api_url"])
    embedded.write_stack_file(home, data)  # before the worker and the API: they read it
    env = {"DATAIMPORT_HOME": str(home)}
    if worker:
        embedded.start_worker_process(home, env)
        asyncio.run(_wait_for_worker(Settings(), WORKER_READY_TIMEOUT))
    if api:
        started = embedded.start_api_process(
            home, env, host=settings.api_host, port=settings.api_port
        )
        data["api_url"] = started.url
        embedded.write_stack_file(home, data)
    return endpoints(Settings())


def down(settings: Settings) -> list[str]:
    home = settings.home_dir
    stopped = []
    if embedded.stop_api_process(home):
        stopped.append("api")
    if embedded.stop_worker_process(home):
        stopped.append("worker")
    if embedded.stop_temporal(home):
        stopped.append("temporal")
    if embedded.stop_postgres(home):
        stopped.append("postgres")
    embedded.remove_stack_file(home)
    return stopped


def endpoints(settings: Settings) -> dict[str, str]:
    stack = settings.embedded_stack()
    return {
        # The service role's, never a password (the embedded one is in the pgpass file).
        "database_url": redacted_url(settings.database_url or stack.get("database_url", "")),
        "temporal_address": settings.temporal_address or stack.get("temporal_address", ""),
        "web_ui_url": settings.resolved_web_ui_url() or "",
        "api_url": stack.get("api_url", ""),
        "task_queue": settings.task_queue,
        "home": str(settings.home_dir),
    }


def shell_environment(settings: Settings) -> dict[str, str]:
    """What `eval "$(dataimport env)"` exports: the stack's endpoints for other tools (psql
    reads PGPASSFILE; the URL names no password)."""
    stack = settings.embedded_stack()
    env = {
        "DATAIMPORT_HOME": str(settings.home_dir),
        "DATABASE_URL": _without_passfile(
            redacted_url(settings.database_url or stack.get("database_url", ""))
        ),
        "TEMPORAL_ADDRESS": settings.temporal_address or stack.get("temporal_address", ""),
    }
    if not settings.database_url:  # the embedded cluster: `dataimport migrate` still works
        env["DATABASE_OWNER_URL"] = _without_passfile(stack.get("owner_database_url", ""))
    passfile = os.environ.get("PGPASSFILE") or (
        "" if settings.database_url else stack.get("pgpassfile", "")
    )
    if passfile:
        env["PGPASSFILE"] = passfile
    return {name: value for name, value in env.items() if value}


def _without_passfile(url: str) -> str:
    """The URL without a passfile parameter (PGPASSFILE says it), other parameters kept."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "passfile"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def print_info(console: Console, data: dict[str, str]) -> None:
    for key, value in data.items():
        console.print(f"[bold]{key:<17}[/bold] {escape(value or '-')}")


def down_command(settings: Settings) -> str:
    """The exact command that stops this stack, runnable from any directory."""
    program = "dataimport" if shutil.which("dataimport") else str(Path(sys.argv[0]).absolute())
    if "DATAIMPORT_HOME" not in os.environ and settings.home_dir == Path.cwd() / ".dataimport":
        return f"{shlex.quote(program)} down"
    return f"DATAIMPORT_HOME={shlex.quote(str(settings.home_dir))} {shlex.quote(program)} down"


def wait_then_down(settings: Settings) -> None:
    """Foreground `up`: block until Ctrl-C or SIGTERM, then stop everything."""
    stop = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop:
        time.sleep(0.5)
    down(settings)


async def _wait_for_worker(settings: Settings, timeout: float) -> None:
    """Ready means a worker polls the task queue."""
    client = await Client.connect(settings.resolved_temporal_address())
    deadline = time.monotonic() + timeout
    request = DescribeTaskQueueRequest(
        namespace=settings.temporal_namespace,
        task_queue=TaskQueue(name=settings.task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    while time.monotonic() < deadline:
        described = await client.workflow_service.describe_task_queue(request)
        if described.pollers:
            return
        await asyncio.sleep(0.3)
    log = settings.home_dir / "logs" / "worker.log"
    tail = log.read_text()[-2000:] if log.exists() else ""
    raise RuntimeError(f"the worker did not start polling within {timeout:.0f}s\n{tail}")
