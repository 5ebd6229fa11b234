"""The database's category CHECK follows the category registry.

`data_imports.import_category` is checked against the registered categories; every Alembic
run (migrations/env.py) brings the CHECK in line with `dataimport.categories.REGISTRY`, so a
new category needs its package and its registry line, and no migration. The constraint is
re-added NOT VALID: imports of a category that was since removed stay readable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection

CONSTRAINT = "ck_data_imports_import_category"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def check_expression(names: Iterable[str]) -> str:
    wanted = sorted(set(names))
    for name in wanted:
        if not _NAME.fullmatch(name):  # names become SQL literals: only safe ones
            raise ValueError(f"category name {name!r} must match {_NAME.pattern}")
    return "import_category IN (" + ", ".join(f"'{name}'" for name in wanted) + ")"


def checked_names(connection: Connection) -> set[str] | None:
    """The names the live CHECK admits (None: no data_imports table or no CHECK yet)."""
    definition = connection.scalar(
        text(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "WHERE c.conname = :name AND c.conrelid = to_regclass('data_imports')"
        ),
        {"name": CONSTRAINT},
    )
    return set(re.findall(r"'([^']*)'", definition)) if definition else None


def sync_category_check(connection: Connection, names: Iterable[str] | None = None) -> bool:
    """Make the CHECK admit exactly `names` (default: the registry); True when it changed."""
    if names is None:
        from dataimport.categories import REGISTRY  # the categories load the engine: lazily

        names = REGISTRY
    wanted = set(names)
    if connection.scalar(text("SELECT to_regclass('data_imports')")) is None:
        return False
    if checked_names(connection) == wanted:
        return False
    connection.execute(text(f"ALTER TABLE data_imports DROP CONSTRAINT IF EXISTS {CONSTRAINT}"))
    connection.execute(
        text(
            f"ALTER TABLE data_imports ADD CONSTRAINT {CONSTRAINT} "
            f"CHECK ({check_expression(wanted)}) NOT VALID"
        )
    )
    return True
