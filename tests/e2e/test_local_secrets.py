"""Local secrets stay local: the embedded PostgreSQL asks every connection for a password,
the generated passwords live in a 0600 pgpass file, uploads are 0700/0600, and neither
`dataimport info` nor `dataimport env` prints a password.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from dataimport.scram import scram_verifier
from dataimport.settings import Settings
from dataimport.storage import store_stream, store_upload
from devstack import embedded
from starter import stack


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def without_passfile(url: str) -> str:
    return url.split("?", 1)[0]


async def connect_fails(url: str) -> str:
    """The error a connection gets (asyncpg: no password or a wrong one)."""
    with pytest.raises(
        (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)
    ) as failure:
        conn = await asyncpg.connect(url, passfile="/nonexistent/pgpass")  # none at all
        await conn.close()
    return str(failure.value)


def test_the_session_cluster_asks_for_passwords(
    postgres: embedded.PostgresInfo, stack_dir: Path
) -> None:
    passfile = Path(postgres.passfile)
    assert passfile.parent == stack_dir / "postgres"
    assert mode(passfile) == 0o600
    hba = (stack_dir / "postgres" / "data" / "pg_hba.conf").read_text()
    methods = {
        line.split()[-1] for line in hba.splitlines() if line.strip() and not line.startswith("#")
    }
    assert methods == {"scram-sha-256"}
    for url in (postgres.database_url, postgres.owner_database_url):
        assert urlsplit(url).password is None  # the URL names the file, not the password
        assert "password" in asyncio.run(connect_fails(without_passfile(url)))
        wrong = without_passfile(url).replace("@", ":not-the-password@", 1)
        assert "password authentication failed" in asyncio.run(connect_fails(wrong))


def test_psql_reads_the_passfile(postgres: embedded.PostgresInfo) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = postgres.passfile
    psql = str(embedded.POSTGRES_BIN_PATH / "psql")
    out = subprocess.run(
        [psql, without_passfile(postgres.database_url), "-XAtc", "SELECT current_user"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == embedded.SERVICE_ROLE


@pytest.fixture(scope="module")
def legacy_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dataimport-legacy-"))
    yield path
    embedded.stop_postgres(path)
    shutil.rmtree(path, ignore_errors=True)


def test_a_trust_cluster_of_an_earlier_version_is_converted(legacy_dir: Path) -> None:
    """State directories made with --auth=trust: on the next start passwords are generated
    and set, pg_hba.conf asks for them, and the data is still there."""
    layout = embedded._pg_layout(legacy_dir.resolve())
    layout.data.mkdir(parents=True, mode=0o700)
    user = embedded._pg_system_user()
    layout.log.touch()
    if user is not None:
        embedded._prepare_root_permissions(layout, user)
    args = ["-D", str(layout.data), "--auth=trust", "-U", "postgres", "--encoding=UTF8"]
    embedded._run_pg("initdb", [*args, "--locale=C"], user=user, cwd=layout.root, timeout=120)
    assert not layout.pgpass.exists()

    info = embedded.start_postgres(legacy_dir, database="legacy")

    assert mode(layout.pgpass) == 0o600
    assert embedded._hba_trusts(layout.data / "pg_hba.conf") is False
    assert "password" in asyncio.run(connect_fails(without_passfile(info.owner_database_url)))

    async def who(url: str) -> str:
        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SELECT current_user"))
        finally:
            await conn.close()

    assert asyncio.run(who(info.database_url)) == embedded.SERVICE_ROLE
    assert asyncio.run(who(info.owner_database_url)) == "postgres"
    # Idempotent: a second start keeps the passwords.
    before = layout.pgpass.read_text()
    embedded.start_postgres(legacy_dir, database="legacy")
    assert layout.pgpass.read_text() == before


async def test_a_role_given_our_scram_verifier_logs_in_with_the_password(
    postgres: embedded.PostgresInfo,
) -> None:
    """Roles get SCRAM verifiers computed here (the password never reaches the server): the
    server must accept the password they were computed from, and nothing else."""
    role = f"verifier_{uuid.uuid4().hex[:8]}"
    owner = await asyncpg.connect(postgres.owner_database_url)
    try:
        await owner.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{scram_verifier('s3cret')}'")
        stored = await owner.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
        assert str(stored).startswith("SCRAM-SHA-256$4096:")
        url = without_passfile(postgres.owner_database_url).replace("postgres@", f"{role}:s3cret@")
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT current_user") == role
        await conn.close()
        assert "password authentication failed" in await connect_fails(
            url.replace(":s3cret@", ":s3cret2@")
        )
    finally:
        await owner.execute(f"DROP ROLE IF EXISTS {role}")
        await owner.close()


async def test_uploads_are_the_services_alone(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    source = tmp_path / "inventory.csv"
    source.write_text("name\nSRV-1\n")
    old = os.umask(0o022)
    try:
        stored = store_upload(source, uploads, uuid.uuid4())

        async def chunks() -> AsyncIterator[bytes]:
            yield b"name\nSRV-2\n"

        streamed = await store_stream(chunks(), uploads, uuid.uuid4())
    finally:
        os.umask(old)
    assert mode(uploads) == 0o700
    for uri in (stored.uri, streamed.uri):
        assert mode(Path(urlsplit(uri).path)) == 0o600
    uploads.chmod(0o755)  # an uploads folder of an earlier version is tightened
    store_upload(source, uploads, uuid.uuid4())
    assert mode(uploads) == 0o700


def test_info_and_env_never_print_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "compose-secret-password"
    url = f"postgresql://dataimport_app:{secret}@postgres:5432/dataimport"
    for name in ("DATABASE_URL", "DATABASE_OWNER_URL", "PGPASSFILE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(dataimport_home=tmp_path, database_url=url, temporal_address="t:7233")
    shown = stack.endpoints(settings)
    assert secret not in str(shown)
    assert shown["database_url"] == "postgresql://dataimport_app@postgres:5432/dataimport"
    exported = stack.shell_environment(settings)
    assert secret not in str(exported)
    assert exported["DATABASE_URL"] == shown["database_url"]


def test_env_exports_the_embedded_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "DATABASE_OWNER_URL", "PGPASSFILE", "TEMPORAL_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    passfile = tmp_path / "postgres" / "pgpass"
    query = f"?passfile={passfile}"
    embedded.write_stack_file(
        tmp_path,
        {
            "database_url": f"postgresql://dataimport_app@127.0.0.1:5999/dataimport{query}",
            "owner_database_url": f"postgresql://postgres@127.0.0.1:5999/dataimport{query}",
            "pgpassfile": str(passfile),
            "temporal_address": "127.0.0.1:7999",
        },
    )
    exported = stack.shell_environment(Settings(dataimport_home=tmp_path))
    assert exported == {
        "DATAIMPORT_HOME": str(tmp_path.resolve()),
        "DATABASE_URL": "postgresql://dataimport_app@127.0.0.1:5999/dataimport",
        "DATABASE_OWNER_URL": "postgresql://postgres@127.0.0.1:5999/dataimport",
        "TEMPORAL_ADDRESS": "127.0.0.1:7999",
        "PGPASSFILE": str(passfile),
    }
