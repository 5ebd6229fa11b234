"""Apply or roll back the Alembic revisions from code (CLI, tests, embedded stack)."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

import migrations
from dataimport.scram import scram_verifier

ALEMBIC_INI = Path(migrations.__file__).with_name("alembic.ini")


# How long a revision waits for a lock another session holds before it fails (env.py).
LOCK_TIMEOUT = "60s"


def alembic_config(database_url: str, lock_timeout: str = LOCK_TIMEOUT) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ALEMBIC_INI.parent))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.set_main_option("lock_timeout", lock_timeout)
    return config


def upgrade(database_url: str, revision: str = "head", lock_timeout: str = LOCK_TIMEOUT) -> None:
    command.upgrade(alembic_config(database_url, lock_timeout), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


SERVICE_GROUP = "dataimport_service"  # created by migration 0006: the service's privileges
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


async def ensure_service_login(owner_url: str, service_url: str) -> str | None:
    """Create (or update) the service's login role named by `service_url`, with that URL's
    password, as a member of the service group; run as the owner (needs CREATEROLE).

    Only when the service URL names another role than the owner's and carries a password
    (compose: both come from the environment); returns the role name, None when skipped.
    The password reaches the server as a SCRAM verifier only.
    """
    owner, service = make_url(owner_url), make_url(service_url)
    if not service.password or not service.username or service.username == owner.username:
        return None
    role = service.username
    if not _ROLE_NAME.match(role):
        raise ValueError(f"service role name {role!r}: use lower-case letters, digits and _")
    verifier = scram_verifier(str(service.password)).replace("'", "''")
    conn = await asyncpg.connect(_plain_dsn(owner_url))
    try:
        await conn.execute(
            f"""
            DO $$
            BEGIN
              IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} LOGIN;
              END IF;
            END
            $$;
            ALTER ROLE {role} LOGIN PASSWORD '{verifier}';
            GRANT {SERVICE_GROUP} TO {role};
            """
        )
        # Created NOSUPERUSER NOBYPASSRLS by default; a role made elsewhere is checked.
        bypasses = await conn.fetchval(
            "SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = $1", role
        )
        if bypasses:
            raise RuntimeError(f"the service role {role} bypasses row-level security")
    finally:
        await conn.close()
    return role


def _plain_dsn(url: str) -> str:
    """A libpq-style URL for asyncpg (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
