"""`dataimport`: the command line of the import service (typer + rich).

Exit status: 0 completed / completed_with_errors, 1 failed / cancelled / rejected (or Temporal
refused a signal), 3 needs_attention, 4 awaiting_approval, 2 bad usage or bad input that could
not start (unknown category, missing file, bad --config, unknown import id, no reachable
database / Temporal server).

Every import command is tenant-scoped (--client-account / --engagement): another tenant's
import id answers exactly like an id that does not exist.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from dataimport.contracts import ImportState
from dataimport.settings import DEMO_CLIENT_ACCOUNT_ID, DEMO_ENGAGEMENT_ID, Settings
from starter import stack

if TYPE_CHECKING:  # imported where used: `down` must work even when the domain code is broken
    from sqlalchemy.ext.asyncio import AsyncEngine

    from dataimport.auth.keys import ApiKeyRecord
    from dataimport.contracts import ImportStatus, ProcessingStep
    from dataimport.imports import Tenant
    from service.imports import ImportService

app = typer.Typer(
    help="Durable data imports for IT-migration discovery.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print settings (URLs, secrets) in a trace
)
T = TypeVar("T")

# Not a terminal (pipes, CI, tests): rich would squeeze tables into 80 columns and cut ids.
WIDE = 200
console = Console(width=None if sys.stdout.isatty() else WIDE)
err = Console(stderr=True, width=None if sys.stderr.isatty() else WIDE)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ATTENTION, EXIT_APPROVAL = 0, 1, 2, 3, 4
# Statuses a followed import stops at (StrEnum members: looked up with the status strings).
EXIT_BY_STATUS: dict[str, int] = {
    ImportState.COMPLETED: EXIT_OK,
    ImportState.COMPLETED_WITH_ERRORS: EXIT_OK,
    ImportState.FAILED: EXIT_FAILED,
    ImportState.CANCELLED: EXIT_FAILED,
    ImportState.REJECTED: EXIT_FAILED,
    ImportState.NEEDS_ATTENTION: EXIT_ATTENTION,
    ImportState.AWAITING_APPROVAL: EXIT_APPROVAL,
}
FOLLOW_INTERVAL = 0.5


def _exit_codes() -> str:
    """What a followed import exits with, per status: '0 completed / ..., 1 failed / ...'."""
    by_code: dict[int, list[str]] = {}
    for state in ImportState:  # the enum's order, so the text reads like the lifecycle
        if state in EXIT_BY_STATUS:
            by_code.setdefault(EXIT_BY_STATUS[state], []).append(state.value)
    return ", ".join(f"{code} {' / '.join(names)}" for code, names in sorted(by_code.items()))


WAIT_HELP = f"Follow it until it ends or needs you: exit {_exit_codes()}."
STATUS_HELP = (
    f"Status of one import: {', '.join(state.value for state in ImportState)}. "
    f"A followed import (import --wait) exits {_exit_codes()}."
)


class UsageError(Exception):
    """Bad usage of the CLI itself (an unwritable --out file): exit status 2."""


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
ImportId = Annotated[uuid.UUID, typer.Argument(metavar="ID", help="The data import id.")]
ConfigOption = Annotated[str | None, typer.Option("--config", help="processing_config JSON.")]


# ----- plumbing ----------------------------------------------------------------------------


def _die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One clear line on stderr (user text is escaped, never read as rich markup), then exit."""
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


STACK_HINT = "Is the stack up (dataimport up) and are DATABASE_URL / TEMPORAL_ADDRESS right?"


def _database_error(error: BaseException) -> str:
    detail = getattr(error, "orig", None) or error  # the driver's words, not SQLAlchemy's SQL dump
    if isinstance(error, ConnectionError | TimeoutError):
        return f"cannot reach the database: {detail}. {STACK_HINT}"
    return f"database error: {detail}. {STACK_HINT} Is it migrated (dataimport migrate)?"


@asynccontextmanager
async def _service(tenant: Tenant) -> AsyncIterator[ImportService]:
    from dataimport.db import create_engine
    from service.imports import ImportService
    from service.temporal import connect_client

    settings = Settings()
    try:
        database_url = settings.resolved_database_url()
        address = settings.resolved_temporal_address()
    except RuntimeError as error:  # neither configured nor an embedded stack up
        _die(str(error))
    try:
        client = await connect_client(settings)
    except RuntimeError as error:
        _die(f"cannot reach Temporal at {address}: {error}. {STACK_HINT}")
    engine = create_engine(database_url, pool_size=2)
    try:
        yield ImportService(settings, engine, client, tenant)
    finally:
        await engine.dispose()


def _with_service(
    client_account: uuid.UUID,
    engagement: uuid.UUID,
    action: Callable[[ImportService], Awaitable[T]],
) -> T:
    """Run `action` with a tenant-scoped service; map every expected failure to an exit code."""
    from sqlalchemy.exc import SQLAlchemyError
    from temporalio.service import RPCError

    from dataimport.imports import Tenant
    from service.errors import ServiceError

    async def go() -> T:
        async with _service(Tenant(client_account, engagement)) as service:
            return await action(service)

    try:
        return asyncio.run(go())
    except (UsageError, ServiceError) as error:
        _die(str(error))
    except LookupError as error:
        _die(str(error.args[0]))
    except (SQLAlchemyError, ConnectionError, TimeoutError) as error:
        _die(_database_error(error))
    except RPCError as error:
        _die(f"Temporal refused the request: {error}", EXIT_FAILED)


def _parse_config(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        _die(f"--config is not valid JSON: {error}")
    if not isinstance(value, dict):
        _die('--config must be a JSON object, e.g. \'{"column_mapping": {"Server": "name"}}\'')
    return value


def _cells(*values: object) -> list[Text]:
    """Table cells as plain text: a filename or message with [brackets] is not rich markup."""
    return [Text("" if value is None else str(value)) for value in values]


def _show(status: ImportStatus, as_json: bool) -> None:
    if as_json:
        print(status.model_dump_json(indent=2))
        return
    table = Table(show_header=False, box=None)
    for key, value in status.model_dump(mode="json").items():
        if value not in (None, ""):
            table.add_row(*_cells(key, value))
    console.print(table)


# ----- the stack ---------------------------------------------------------------------------


def _stack_up(settings: Settings, worker: bool, api: bool = True) -> dict[str, str]:
    try:
        return stack.up(settings, worker=worker, api=api)
    except RuntimeError as error:  # a service did not start: its log tail is in the message
        _die(f"the stack did not start: {error}", EXIT_FAILED)


@app.command()
def up(
    detach: Annotated[
        bool, typer.Option("--detach", help="Return once everything is ready.")
    ] = False,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Start no worker.")] = False,
    no_api: Annotated[bool, typer.Option("--no-api", help="Start no HTTP API.")] = False,
) -> None:
    """Start the embedded stack: PostgreSQL, Temporal dev server with Web UI, a worker and
    the HTTP API (DATAIMPORT_API_HOST / DATAIMPORT_API_PORT, a free port when that is taken)."""
    settings = Settings()
    data = _stack_up(settings, worker=not no_worker, api=not no_api)
    stack.print_info(console, data)
    _print_console_address(data)
    _print_demo_key(settings, settings.client_account_id, settings.engagement_id)
    if detach:
        console.print(f"Stop it with: [bold]{escape(stack.down_command(settings))}[/bold]")
        return
    console.print("Running; press Ctrl-C to stop everything.")
    stack.wait_then_down(settings)


def _print_console_address(data: dict[str, str]) -> None:
    """The import console is a page of the API process: sign in there with the key below."""
    if data.get("api_url"):
        console.print(
            f"Import console (sign in with the API key): {escape(data['api_url'])}/console/"
        )


def _print_demo_key(settings: Settings, client_account: uuid.UUID, engagement: uuid.UUID) -> None:
    """The embedded stack's admin key for the demo tenant (with an external DATABASE_URL,
    keys are made with `dataimport keys create`)."""
    if settings.database_url:
        return
    from devstack import embedded

    key = embedded.ensure_demo_api_key(
        settings.home_dir, settings.resolved_database_url(), client_account, engagement
    )
    where = embedded.demo_api_key_file(settings.home_dir)
    console.print(
        f"[bold]{'api_key':<17}[/bold] {escape(key)}  (admin, tenant {client_account} / "
        f"{engagement}; kept in {escape(str(where))})",
        soft_wrap=True,
    )
    console.print(f"  export DATAIMPORT_API_KEY={escape(key)}", soft_wrap=True, highlight=False)


@app.command()
def down() -> None:
    """Stop the embedded stack (API, worker, Temporal, PostgreSQL). Data is kept."""
    stopped = stack.down(Settings())
    console.print("stopped: " + (", ".join(stopped) or "nothing was running"))


@app.command()
def info(
    as_json: JsonFlag = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """The database URL, Temporal address, Web UI and HTTP API in use (and the tenant)."""
    data = stack.endpoints(Settings())
    data |= {"client_account_id": str(client_account), "engagement_id": str(engagement)}
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        stack.print_info(console, data)


@app.command()
def env() -> None:
    """Shell exports for the stack in use: eval "$(dataimport env)" (then psql "$DATABASE_URL"
    works; the database URL names no password, PGPASSFILE holds the embedded ones)."""
    import shlex
    from urllib.parse import urlsplit

    settings = Settings()
    exports = stack.shell_environment(settings)
    if settings.database_url and urlsplit(settings.database_url).password:
        err.print("# DATABASE_URL printed without its password: supply it (PGPASSFILE)")
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")


@app.command()
def worker() -> None:
    """Run one more worker in the foreground against the same stack."""
    from worker import main as worker_main

    worker_main()


@app.command()
def api(
    host: Annotated[str | None, typer.Option("--host", help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port.")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) against the same stack."""
    import uvicorn

    from dataimport.api import create_app
    from observability.logging_setup import configure_logging

    settings = Settings()
    try:  # fail here with one clear line, not inside the server's start-up
        settings.resolved_database_url()
        settings.resolved_temporal_address()
    except RuntimeError as error:
        _die(str(error))
    configure_logging()
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=None,  # keep the project's logging setup
    )


@app.command()
def migrate() -> None:
    """Apply the database migrations (Alembic upgrade head) as the schema's owner
    (DATABASE_OWNER_URL, else DATABASE_URL). When DATABASE_URL names another role with a
    password, that login role is created or updated as a member of the service group."""
    from asyncpg import PostgresError
    from sqlalchemy.exc import SQLAlchemyError

    from dataimport.migrate import ensure_service_login, upgrade

    settings = Settings()
    try:
        owner_url = settings.resolved_owner_database_url()
    except RuntimeError as error:
        _die(str(error))
    try:
        upgrade(owner_url)
        role = None
        if settings.database_url:
            role = asyncio.run(ensure_service_login(owner_url, settings.database_url))
    except (SQLAlchemyError, ConnectionError, TimeoutError) as error:
        _die(f"cannot migrate: {_database_error(error)}")
    except (PostgresError, RuntimeError, ValueError) as error:
        _die(f"cannot set up the service role: {error}")
    console.print("database schema is up to date")
    if role:
        console.print(f"service role {role} can log in (row-level security applies to it)")


@app.command()
def retention(
    run_now: Annotated[
        bool, typer.Option("--run-now", help="Also start a retention run now.")
    ] = False,
) -> None:
    """Create or update the staging-retention Temporal Schedule (workers do this at start too);
    with --run-now, trigger a run. Staged rows of imports finished more than
    DATAIMPORT_STAGING_RETENTION_DAYS ago are removed; inventory and import records stay."""
    from temporalio.service import RPCError

    from service.temporal import connect_client
    from worker import RETENTION_SCHEDULE_ID, ensure_retention_schedule, trigger_retention

    settings = Settings()
    try:
        address = settings.resolved_temporal_address()
    except RuntimeError as error:
        _die(str(error))

    async def go() -> str:
        try:
            client = await connect_client(settings)
        except RuntimeError as error:
            _die(f"cannot reach Temporal at {address}: {error}. {STACK_HINT}")
        outcome = await ensure_retention_schedule(client, settings)
        if run_now:
            await trigger_retention(client)
        return outcome

    try:
        outcome = asyncio.run(go())
    except RPCError as error:
        _die(f"Temporal refused the request: {error}", EXIT_FAILED)
    console.print(
        f"schedule {RETENTION_SCHEDULE_ID}: {outcome} (staged rows kept "
        f"{settings.staging_retention_days} days, checked every "
        f"{settings.staging_retention_interval_minutes} minutes)"
    )
    if run_now:
        console.print(
            "retention run triggered (skipped while one is still running): "
            "see Schedules in the Temporal Web UI"
        )


# ----- imports -----------------------------------------------------------------------------


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="File to import (CSV).")],
    category: Annotated[str, typer.Option("--category", "-c", help="Import category.")],
    config: ConfigOption = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Idempotency key: same key, same import.")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help=WAIT_HELP,
        ),
    ] = False,
    as_json: JsonFlag = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Import a file: stores it, records the import and starts its workflow."""
    parsed = _parse_config(config)

    async def action(service: ImportService) -> ImportStatus:
        status = await service.start_import(path, category, parsed, request_id)
        return await _follow(service, status, quiet=as_json) if wait else status

    status = _with_service(client_account, engagement, action)
    _show(status, as_json)
    if not as_json:
        _print_web_ui_link(Settings(), status)
    if wait:
        raise typer.Exit(EXIT_BY_STATUS.get(status.status, EXIT_OK))


def _print_web_ui_link(settings: Settings, status: ImportStatus) -> None:
    ui = settings.resolved_web_ui_url()
    if ui:
        link = f"{ui}/namespaces/{settings.temporal_namespace}/workflows/{status.workflow_id}"
        console.print(f"Web UI: {escape(link)}")


def _progress_line(status: ImportStatus, label: str) -> str:
    line = f"{status.status:<21} {status.phase:<10} {status.progress:>5.0%}"
    return f"{label}{line}  rows {status.total_rows}"


async def _follow(
    service: ImportService, status: ImportStatus, quiet: bool, label: str = ""
) -> ImportStatus:
    """Poll until terminal, needs_attention or awaiting_approval, showing progress on stderr."""
    shown = ""
    try:
        while status.status not in EXIT_BY_STATUS:
            await asyncio.sleep(FOLLOW_INTERVAL)
            status = await service.status(status.data_import_id) or status
            line = _progress_line(status, label)
            if not quiet and line != shown:
                err.print(line, markup=False, highlight=False)
                shown = line
    except asyncio.CancelledError:  # Ctrl-C: only the watching stops, the import goes on
        err.print(
            f"stopped watching; the import goes on: dataimport status {status.data_import_id}"
        )
        raise
    return status


async def _existing(service: ImportService, data_import_id: uuid.UUID) -> ImportStatus:
    found = await service.status(data_import_id)
    if found is None:
        raise LookupError(f"no import {data_import_id}")
    return found


@app.command(help=STATUS_HELP)
def status(
    data_import_id: ImportId,
    as_json: JsonFlag = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    found = _with_service(client_account, engagement, lambda s: _existing(s, data_import_id))
    _show(found, as_json)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    as_json: JsonFlag = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """The tenant's imports, newest first."""
    found = _with_service(client_account, engagement, lambda s: s.list(limit))
    if as_json:
        print(json.dumps([s.model_dump(mode="json") for s in found], indent=2))
        return
    console.print(_list_table(found))


def _list_table(found: Sequence[ImportStatus]) -> Table:
    id_column = Column("id", no_wrap=True, min_width=36)
    table = Table(id_column, "category", "file", "status", "rows", "valid", "invalid", "error")
    for s in found:
        table.add_row(
            *_cells(s.data_import_id, s.category, s.filename, s.status),
            *_cells(s.total_rows, s.valid_rows, s.invalid_rows, s.error_code),
        )
    return table


@app.command()
def retry(
    data_import_id: ImportId,
    config: ConfigOption = None,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Re-run an import that needs attention from its failed phase (no re-upload)."""
    parsed = _parse_config(config)
    _with_service(client_account, engagement, lambda s: s.retry(data_import_id, parsed))
    console.print(f"retry sent to {data_import_id}")


@app.command()
def fail(
    data_import_id: ImportId,
    reason: Annotated[str, typer.Option("--reason", help="Why it is failed.")],
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Finish an import that needs attention as failed."""
    if not reason.strip():
        _die("--reason must not be empty")
    _with_service(client_account, engagement, lambda s: s.fail(data_import_id, reason))
    console.print(f"fail sent to {data_import_id}")


@app.command()
def approve(
    data_import_id: ImportId,
    plan_id: Annotated[
        uuid.UUID | None,
        typer.Option("--plan", help="The plan id you reviewed (dataimport plan): only it runs."),
    ] = None,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Approve the plan of an import awaiting approval: its enrichment runs. A stale plan (the
    inventory changed since it was made) is made again instead: review it, approve again."""
    _with_service(client_account, engagement, lambda s: s.approve(data_import_id, plan_id))
    console.print(f"approve sent to {data_import_id}")


@app.command()
def reject(
    data_import_id: ImportId,
    reason: Annotated[str, typer.Option("--reason", help="Why the plan is rejected.")],
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Reject the plan of an import awaiting approval: it ends as rejected, inventory untouched."""
    if not reason.strip():
        _die("--reason must not be empty")
    _with_service(client_account, engagement, lambda s: s.reject(data_import_id, reason))
    console.print(f"reject sent to {data_import_id}")


@app.command()
def plan(
    data_import_id: ImportId,
    as_json: JsonFlag = False,
    recompute: Annotated[
        bool,
        typer.Option("--recompute", help="Make the plan again from the inventory as it is now."),
    ] = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """What an import with require_approval would do to the inventory (its plan)."""
    found = _with_service(
        client_account,
        engagement,
        lambda s: s.replan(data_import_id) if recompute else s.plan(data_import_id),
    )
    if as_json:
        print(found.model_dump_json(indent=2))
        return
    creates, updates = found.assets_to_create, found.assets_to_update
    deps = found.dependencies_to_add
    console.print(
        f"import {found.data_import_id} ({found.status}): {creates.count} assets to create, "
        f"{updates.count} to update, {deps.count} dependencies to add"
    )
    console.print(f"plan {found.plan_id}, made {found.computed_at}", highlight=False)
    if found.stale:
        err.print(
            f"[yellow]stale:[/yellow] {escape(found.stale_reason or '')}; approving makes it "
            "again first (or: dataimport plan --recompute)"
        )
    if creates.sample:
        table = Table("new asset", "type", title="assets to create (sample)")
        for new in creates.sample:
            table.add_row(*_cells(new.name, new.asset_type))
        console.print(table)
    if updates.sample:
        table = Table("asset", "field", "old", "new", title="fields to change (sample)")
        for change in updates.sample:
            table.add_row(*_cells(change.name, change.field, change.old, change.new))
        console.print(table)
    if deps.sample:
        table = Table("source", "target", "type", title="dependencies to add (sample)")
        for dep in deps.sample:
            table.add_row(*_cells(dep.source, dep.target, dep.dependency_type))
        console.print(table)


@app.command()
def errors(
    data_import_id: ImportId,
    out: Annotated[Path | None, typer.Option("--out", help="Write the CSV report here.")] = None,
    failed_rows: Annotated[
        Path | None,
        typer.Option("--failed-rows", help="Write the rejected rows, in their columns, here."),
    ] = None,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Error report of an import: row, column, code, severity, message (CSV, formula-safe).

    With --failed-rows, also the rejected rows as a CSV to fix and import again.
    """
    from dataimport.reports import write_error_report, write_failed_rows

    async def action(service: ImportService) -> tuple[int, int]:
        await _existing(service, data_import_id)
        args = (service.engine, service.tenant, data_import_id)
        findings = rejected = 0
        if out is None and failed_rows is None:
            findings = await write_error_report(*args, sys.stdout)
        if out is not None:
            with _open_report(out) as handle:
                findings = await write_error_report(*args, handle)
        if failed_rows is not None:
            with _open_report(failed_rows) as handle:
                rejected = await write_failed_rows(*args, handle)
        return findings, rejected

    findings, rejected = _with_service(client_account, engagement, action)
    if out:
        console.print(f"{findings} findings written to {escape(str(out))}")
    if failed_rows:
        console.print(f"{rejected} rejected rows written to {escape(str(failed_rows))}")


def _open_report(out: Path) -> TextIO:
    try:
        return out.open("w", newline="", encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror}") from None


@app.command()
def steps(
    data_import_id: ImportId,
    as_json: JsonFlag = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Every agent run of an import (rule-based and model-backed): status, rows, findings."""
    from dataimport.imports import processing_steps

    async def action(service: ImportService) -> list[ProcessingStep]:
        await _existing(service, data_import_id)
        return await processing_steps(service.engine, service.tenant, data_import_id)

    found = _with_service(client_account, engagement, action)
    if as_json:
        print(json.dumps([step.model_dump(mode="json") for step in found], indent=2))
        return
    table = Table("step", "agent", "status", "rows", "ms", "findings")
    for step in found:
        table.add_row(
            escape(step.step),
            escape(step.agent),
            step.status,
            str(step.records_processed),
            str(step.duration_ms if step.duration_ms is not None else ""),
            escape(_findings_line(step)),
        )
    console.print(table)


def _findings_line(step: ProcessingStep) -> str:
    """Counts per code (rule-based agents) or outcome, model and tokens (model-backed)."""
    if step.model or "outcome" in step.findings:
        tokens = f"{step.input_tokens or 0}+{step.output_tokens or 0} tokens"
        return f"{step.findings.get('outcome')} · {step.model or '-'} · {tokens}"
    return ", ".join(f"{k}={v}" for k, v in step.findings.items() if isinstance(v, int | float))


@app.command()
def groups(
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: JsonFlag = False,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Dependency groups (connected components): move-group candidates, largest first."""
    from dataimport.dependency_groups import list_dependency_groups

    async def action(service: ImportService) -> list[dict[str, Any]]:
        tenant = service.tenant
        async with service.engine.connect() as conn:
            return await list_dependency_groups(
                conn, str(tenant.client_account_id), str(tenant.engagement_id), limit
            )

    found = _with_service(client_account, engagement, action)
    if as_json:
        print(json.dumps(found, indent=2, default=str))
        return
    table = Table("group", "assets", "dependencies", "members")
    for group in found:
        members = ", ".join(str(name) for name in group.get("sample", []))
        table.add_row(
            escape(str(group.get("group"))),
            str(group.get("assets")),
            str(group.get("dependencies", "")),
            escape(members),
        )
    console.print(table)


# ----- inventory ---------------------------------------------------------------------------

FormatOption = Annotated[
    str,
    typer.Option("--format", help="table, json or csv.", case_sensitive=False),
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=1000, help="Rows per page.")]
AllFlag = Annotated[bool, typer.Option("--all", help="Every row (pages through them).")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write to this file.")]
FORMATS = ("table", "json", "csv")


def _pages(
    client_account: uuid.UUID,
    engagement: uuid.UUID,
    read: Callable[[AsyncEngine, Tenant, int, str | None], Awaitable[tuple[list[Any], str | None]]],
    limit: int,
    every: bool,
) -> list[dict[str, Any]]:
    """Rows of a keyset-paginated inventory read (the API's queries), one page or all."""
    from dataimport.db import for_tenant
    from dataimport.imports import Tenant

    async def action(engine: AsyncEngine) -> list[dict[str, Any]]:
        tenant, cursor = Tenant(client_account, engagement), None
        scoped = for_tenant(engine, tenant)  # row-level security: the tenant's rows only
        rows: list[dict[str, Any]] = []
        while True:
            page, cursor = await read(scoped, tenant, limit, cursor)
            rows.extend(item.model_dump(mode="json") for item in page)
            if not every or cursor is None:
                return rows

    return _with_engine(action)


def _emit(rows: list[dict[str, Any]], fmt: str, columns: Sequence[str], out: Path | None) -> None:
    """rows as a table (the given columns), JSON or CSV (every field), to stdout or a file."""
    import csv

    fmt = fmt.lower()
    if fmt not in FORMATS:
        _die(f"--format must be one of {', '.join(FORMATS)}")
    try:
        handle: TextIO = _open_report(out) if out else sys.stdout
    except UsageError as error:
        _die(str(error))
    try:
        if fmt == "json":
            handle.write(json.dumps(rows, indent=2) + "\n")
        elif fmt == "csv":
            fields = list(rows[0]) if rows else list(columns)
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(
                {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
                for row in rows
            )
        else:
            table = Table(*columns)
            for row in rows:
                table.add_row(*(escape("" if row.get(c) is None else str(row[c])) for c in columns))
            Console(file=handle, width=console.width).print(table)
    finally:
        if out:
            handle.close()
    if out:
        err.print(f"{len(rows)} rows written to {out}")


@app.command()
def assets(
    asset_type: Annotated[str | None, typer.Option("--type", help="e.g. server")] = None,
    environment: Annotated[str | None, typer.Option("--environment")] = None,
    group: Annotated[str | None, typer.Option("--group", help="G-<uuid>")] = None,
    source_import: Annotated[uuid.UUID | None, typer.Option("--source-import")] = None,
    search: Annotated[str | None, typer.Option("--search", help="name/host/IP text")] = None,
    fmt: FormatOption = "table",
    limit: LimitOption = 100,
    every: AllFlag = False,
    out: OutOption = None,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """The asset inventory, by name: list it or export it (JSON, CSV), like the API."""
    from dataimport.api import inventory_queries as queries

    filters = queries.AssetFilter(asset_type, environment, group, source_import, search)

    rows = _pages(
        client_account,
        engagement,
        lambda engine, tenant, n, cursor: queries.list_assets(engine, tenant, filters, n, cursor),
        limit,
        every,
    )
    columns = ("name", "asset_type", "ip_address", "operating_system", "environment", "owner")
    _emit(rows, fmt, (*columns, "dependency_group"), out)


@app.command()
def dependencies(
    asset: Annotated[uuid.UUID | None, typer.Option("--asset", help="Either end.")] = None,
    dependency_type: Annotated[str | None, typer.Option("--type")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535)] = None,
    fmt: FormatOption = "table",
    limit: LimitOption = 100,
    every: AllFlag = False,
    out: OutOption = None,
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Dependencies between assets (both names, port, protocol, counts), like the API."""
    from dataimport.api import inventory_queries as queries

    filters = queries.DependencyFilter(asset, dependency_type, protocol, port)

    rows = _pages(
        client_account,
        engagement,
        lambda engine, tenant, n, cursor: queries.list_dependencies(
            engine, tenant, filters, n, cursor
        ),
        limit,
        every,
    )
    columns = ("source_name", "target_name", "dependency_type", "port", "protocol", "conn_count")
    _emit(rows, fmt, columns, out)


# ----- API keys ----------------------------------------------------------------------------

keys_app = typer.Typer(
    help="API keys of the HTTP API: create (shown once), list, revoke.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


def _with_engine(action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `action` with an engine on the configured database; map failures to exit codes."""
    from sqlalchemy.exc import SQLAlchemyError

    from dataimport.db import create_engine

    try:
        url = Settings().resolved_database_url()
    except RuntimeError as error:
        _die(str(error))

    async def go() -> T:
        engine = create_engine(url, pool_size=1)
        try:
            return await action(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except ValueError as error:
        _die(str(error))
    except (SQLAlchemyError, ConnectionError, TimeoutError) as error:
        _die(_database_error(error))


def _key_rows(found: Sequence[ApiKeyRecord]) -> Table:
    table = Table(
        Column("id", no_wrap=True, min_width=36),
        "prefix",
        "name",
        "scope",
        Column("client account", no_wrap=True),
        "engagements",
        "created",
        "last used",
        "state",
    )
    for key in found:
        state = "revoked" if key.revoked_at else "active"
        if key.expires_at and not key.revoked_at:
            state = f"expires {key.expires_at:%Y-%m-%d}"
        table.add_row(
            *_cells(key.id, f"{key.prefix}…", key.name, key.scope.value, key.client_account_id),
            *_cells(
                ", ".join(str(e) for e in key.engagement_ids), f"{key.created_at:%Y-%m-%d %H:%M}"
            ),
            *_cells(f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never", state),
        )
    return table


@keys_app.command("create")
def keys_create(
    client: Annotated[uuid.UUID, typer.Option("--client", help="Client account UUID.")],
    engagement: Annotated[
        list[uuid.UUID],
        typer.Option("--engagement", help="Engagement UUID; repeat for several (first: default)."),
    ],
    scope: Annotated[
        str, typer.Option("--scope", help="read, write (uploads, decisions) or admin (keys).")
    ],
    name: Annotated[str, typer.Option("--name", help="What the key is for.")] = "",
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", min=1, max=3650, help="Expire after N days.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue an API key and print it, once: only its hash is kept."""
    from datetime import UTC, datetime, timedelta

    from dataimport.auth import Scope, keys

    if scope not in {s.value for s in Scope}:
        _die(f"--scope must be one of: {', '.join(s.value for s in Scope)}")
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    issued = _with_engine(
        lambda engine: keys.create_key(
            engine, client, engagement, Scope(scope), name=name, expires_at=expires
        )
    )
    if as_json:
        print(issued.model_dump_json(indent=2))
        return
    console.print(_key_rows([issued.record]))
    console.print("The key, shown this once (store it now; only its hash is kept):")
    print(issued.key)


@keys_app.command("list")
def keys_list(
    client: Annotated[
        uuid.UUID | None, typer.Option("--client", help="Only this client account's keys.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every API key (never the key itself): prefix, scope, tenant, last use, revoked."""
    from dataimport.auth import keys

    found = _with_engine(lambda engine: keys.list_keys(engine, client))
    if as_json:
        print(json.dumps([key.model_dump(mode="json") for key in found], indent=2))
        return
    console.print(_key_rows(found))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[uuid.UUID, typer.Argument(metavar="ID", help="The key's id.")],
) -> None:
    """Revoke an API key: it stops working at once (its record stays)."""
    from dataimport.auth import keys

    revoked = _with_engine(lambda engine: keys.revoke_key(engine, key_id))
    if revoked is None:
        _die(f"no API key {key_id}")
    console.print(f"revoked {revoked.id} ({escape(revoked.prefix)}…)")


# ----- demo --------------------------------------------------------------------------------


@app.command()
def demo(
    client_account: ClientAccount = DEMO_CLIENT_ACCOUNT_ID,
    engagement: Engagement = DEMO_ENGAGEMENT_ID,
) -> None:
    """Bring the stack up, import the bundled samples, print a summary; the stack stays up."""
    settings = Settings()
    data = _stack_up(settings, worker=True)
    results = _with_service(client_account, engagement, _import_samples)
    console.print(_summary_table(results))
    stack.print_info(console, data)
    if data.get("web_ui_url"):
        console.print(f"Open the Temporal Web UI: {escape(data['web_ui_url'])}")
    if data.get("api_url"):
        console.print(f"HTTP API (OpenAPI docs): {escape(data['api_url'])}/docs")
    _print_console_address(data)
    _print_demo_key(settings, client_account, engagement)
    hint = escape(stack.down_command(settings))
    console.print(f"The stack keeps running. Stop it with: [bold]{hint}[/bold]")
    if any(EXIT_BY_STATUS.get(s.status) != EXIT_OK for s in results):
        raise typer.Exit(EXIT_FAILED)


async def _import_samples(service: ImportService) -> list[ImportStatus]:
    results = []
    for path, category in stack.SAMPLES:
        started = await service.start_import(path, category, None, request_id=None)
        results.append(await _follow(service, started, quiet=False, label=f"{path.name}: "))
    return results


def _summary_table(results: Sequence[ImportStatus]) -> Table:
    headers = ("file", "category", "status", "rows", "valid", "invalid")
    table = Table(*headers, "assets +", "assets ~", "deps", title="Sample imports")
    for s in results:
        table.add_row(
            *_cells(s.filename, s.category, s.status, s.total_rows, s.valid_rows),
            *_cells(s.invalid_rows, s.assets_created, s.assets_updated, s.dependencies_created),
        )
    return table


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
