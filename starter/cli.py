"""`dataimport`: the command line of the import service (typer + rich).

Exit status: 0 completed / completed_with_errors, 1 failed / cancelled, 3 needs_attention,
2 bad usage or bad input that could not start.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from dataimport.contracts import ImportStatus
from dataimport.imports import Tenant, error_rows
from dataimport.readers import escape_formula
from dataimport.settings import DEMO_CLIENT_ACCOUNT_ID, DEMO_ENGAGEMENT_ID, Settings
from starter import stack
from starter.client import ImportService, UsageError

app = typer.Typer(
    help="Durable data imports for IT-migration discovery.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ATTENTION = 0, 1, 2, 3
EXIT_BY_STATUS = {
    "completed": EXIT_OK,
    "completed_with_errors": EXIT_OK,
    "failed": EXIT_FAILED,
    "cancelled": EXIT_FAILED,
    "needs_attention": EXIT_ATTENTION,
}

ClientAccount = Annotated[
    uuid.UUID,
    typer.Option(
        "--client-account",
        envvar="DATAIMPORT_CLIENT_ACCOUNT_ID",
        help="Tenant: client account UUID.",
        show_default=str(DEMO_CLIENT_ACCOUNT_ID),
    ),
]
Engagement = Annotated[
    uuid.UUID,
    typer.Option(
        "--engagement",
        envvar="DATAIMPORT_ENGAGEMENT_ID",
        help="Tenant: engagement UUID.",
        show_default=str(DEMO_ENGAGEMENT_ID),
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


@asynccontextmanager
async def _service(client_account: uuid.UUID, engagement: uuid.UUID) -> AsyncIterator[ImportService]:
    from dataimport.db import create_engine
    from worker import connect_client

    settings = Settings()
    try:
        engine = create_engine(settings.resolved_database_url(), pool_size=2)
        client = await connect_client(settings)
    except RuntimeError as error:
        err.print(f"[red]{error}[/red]")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        yield ImportService(settings, engine, client, Tenant(client_account, engagement))
    finally:
        await engine.dispose()


def _with_service(
    client_account: uuid.UUID, engagement: uuid.UUID, action: Callable[[ImportService], Awaitable[T]]
) -> T:
    async def go() -> T:
        async with _service(client_account, engagement) as service:
            return await action(service)

    try:
        return _run(go())
    except UsageError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(EXIT_USAGE) from None
    except LookupError as error:
        err.print(f"[red]error:[/red] {error.args[0]}")
        raise typer.Exit(EXIT_USAGE) from None


def _parse_config(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        err.print(f"[red]error:[/red] --config is not valid JSON: {error}")
        raise typer.Exit(EXIT_USAGE) from None
    if not isinstance(value, dict):
        err.print("[red]error:[/red] --config must be a JSON object")
        raise typer.Exit(EXIT_USAGE)
    return value


def _status_json(status: ImportStatus) -> str:
    return status.model_dump_json(indent=2)


def _print_status(status: ImportStatus) -> None:
    table = Table(show_header=False, box=None)
    for key, value in status.model_dump(mode="json").items():
        if value not in (None, ""):
            table.add_row(f"[bold]{key}[/bold]", str(value))
    console.print(table)


# ----- the stack ---------------------------------------------------------------------------


@app.command()
def up(
    detach: Annotated[bool, typer.Option("--detach", help="Return once everything is ready.")] = False,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Start only the services.")] = False,
) -> None:
    """Start the embedded stack: PostgreSQL, Temporal dev server with Web UI, a worker."""
    info = stack.up(Settings(), worker=not no_worker)
    stack.print_info(console, info)
    if detach:
        console.print("Stop it with: [bold]dataimport down[/bold]")
        return
    console.print("Running; press Ctrl-C to stop everything.")
    stack.wait_then_down(Settings())


@app.command()
def down() -> None:
    """Stop the embedded stack (worker, Temporal, PostgreSQL). Data is kept."""
    stopped = stack.down(Settings())
    console.print("stopped: " + (", ".join(stopped) or "nothing was running"))


@app.command()
def info(as_json: JsonFlag = False) -> None:
    """The database URL, Temporal address and Web UI in use."""
    data = stack.endpoints(Settings())
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        stack.print_info(console, data)


@app.command()
def worker() -> None:
    """Run one more worker in the foreground against the same stack."""
    from worker import main as worker_main

    worker_main()


@app.command()
def migrate() -> None:
    """Apply the database migrations (Alembic upgrade head)."""
    from dataimport.migrate import upgrade

    upgrade(Settings().resolved_database_url())
    console.print("database schema is up to date")


# ----- imports -----------------------------------------------------------------------------


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="File to import (CSV).")],
    category: Annotated[str, typer.Option("--category", "-c", help="Import category.")],
    config: Annotated[str | None, typer.Option("--config", help="processing_config JSON.")] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Idempotency key: same key, same import.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it until it ends or needs you.")] = False,
    as_json: JsonFlag = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Import a file: stores it, records the import and starts its workflow."""
    parsed = _parse_config(config)

    async def action(service: ImportService) -> ImportStatus:
        status = await service.start_import(path, category, parsed, request_id)
        if wait:
            status = await _follow(service, status, quiet=as_json)
        return status

    status = _with_service(client_account, engagement, action)
    if as_json:
        print(_status_json(status))
    else:
        _print_status(status)
        ui = Settings().resolved_web_ui_url()
        if ui:
            console.print(f"Web UI: {ui}/namespaces/default/workflows/{status.workflow_id}")
    if wait:
        raise typer.Exit(EXIT_BY_STATUS.get(status.status, EXIT_OK))


async def _follow(service: ImportService, status: ImportStatus, quiet: bool) -> ImportStatus:
    """Poll until terminal or needs_attention, showing progress."""
    shown = ""
    while status.status not in EXIT_BY_STATUS:
        await asyncio.sleep(0.5)
        status = await service.status(status.data_import_id) or status
        line = f"{status.status:<12} {status.phase:<10} {status.progress:>5.0%}  rows {status.total_rows}"
        if not quiet and line != shown:
            err.print(line)
            shown = line
    return status


@app.command()
def status(
    data_import_id: Annotated[uuid.UUID, typer.Argument(metavar="ID")],
    as_json: JsonFlag = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Status of one import."""
    found = _with_service(client_account, engagement, lambda s: s.status(data_import_id))
    if found is None:
        err.print(f"[red]error:[/red] no import {data_import_id}")
        raise typer.Exit(EXIT_USAGE)
    print(_status_json(found)) if as_json else _print_status(found)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: JsonFlag = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """The tenant's imports, newest first."""
    found = _with_service(client_account, engagement, lambda s: s.list(limit))
    if as_json:
        print(json.dumps([s.model_dump(mode="json") for s in found], indent=2))
        return
    table = Table("id", "category", "file", "status", "rows", "valid", "invalid", "error")
    for s in found:
        table.add_row(
            str(s.data_import_id), s.category, s.filename or "", s.status,
            str(s.total_rows), str(s.valid_rows), str(s.invalid_rows), s.error_code or "",
        )
    console.print(table)


@app.command()
def retry(
    data_import_id: Annotated[uuid.UUID, typer.Argument(metavar="ID")],
    config: Annotated[str | None, typer.Option("--config", help="New processing_config JSON.")] = None,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Re-run an import that needs attention from its failed phase (no re-upload)."""
    parsed = _parse_config(config)
    _with_service(client_account, engagement, lambda s: s.retry(data_import_id, parsed))
    console.print(f"retry sent to {data_import_id}")


@app.command()
def fail(
    data_import_id: Annotated[uuid.UUID, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is failed.")],
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Finish an import that needs attention as failed."""
    _with_service(client_account, engagement, lambda s: s.fail(data_import_id, reason))
    console.print(f"fail sent to {data_import_id}")


@app.command()
def errors(
    data_import_id: Annotated[uuid.UUID, typer.Argument(metavar="ID")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the CSV report here.")] = None,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Error report of an import: row, column, code, severity, message (CSV)."""

    async def action(service: ImportService) -> int:
        if await service.status(data_import_id) is None:
            raise LookupError(f"no import {data_import_id}")
        handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
        try:
            return await write_error_report(service, data_import_id, handle)
        finally:
            if out:
                handle.close()

    count = _with_service(client_account, engagement, action)
    if out:
        console.print(f"{count} findings written to {out}")


async def write_error_report(service: ImportService, data_import_id: uuid.UUID, handle: Any) -> int:
    writer = csv.writer(handle)
    writer.writerow(["row", "column", "code", "severity", "message"])
    count = 0
    async for item in error_rows(service.engine, service.tenant, data_import_id):
        cells = [item["row_number"], item["field"] or "", item["code"], item["severity"], item["message"]]
        writer.writerow([escape_formula(str(cell)) for cell in cells])
        count += 1
    return count


@app.command()
def demo(
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Bring the stack up, import the bundled samples, print a summary; the stack stays up."""
    settings = Settings()
    data = stack.up(settings, worker=True)
    results = []
    for sample, category in stack.SAMPLES:
        status = _with_service(
            client_account,
            engagement,
            lambda s, sample=sample, category=category: _import_and_follow(s, sample, category),
        )
        results.append(status)
    table = Table("file", "category", "status", "rows", "valid", "invalid", "assets +", "assets ~", "deps")
    for s in results:
        table.add_row(
            s.filename or "", s.category, s.status, str(s.total_rows), str(s.valid_rows),
            str(s.invalid_rows), str(s.assets_created), str(s.assets_updated), str(s.dependencies_created),
        )
    console.print(table)
    stack.print_info(console, data)
    console.print("The stack keeps running. Stop it with: [bold].venv/bin/dataimport down[/bold]")
    if any(s.status not in ("completed", "completed_with_errors") for s in results):
        raise typer.Exit(EXIT_FAILED)


async def _import_and_follow(service: ImportService, path: Path, category: str) -> ImportStatus:
    status = await service.start_import(path, category, None, request_id=None)
    return await _follow(service, status, quiet=False)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
