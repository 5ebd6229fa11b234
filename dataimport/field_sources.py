"""Per-field provenance of assets: the SQL that records which import last set each field.

`assets.field_sources` maps an asset column to the `data_imports.seq` of the import that last
wrote a value into it. Every asset write keeps it in the same set-based statement: the writer
says, per column it writes, when the incoming row actually sets it (a non-null incoming value
that the statement applies), and `recorded` turns that into
`field_sources || jsonb_strip_nulls(jsonb_build_object('name', CASE WHEN … THEN :seq END, …))`.
A blank incoming cell never takes a field's provenance; a retried statement records the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.models import DataImport

if TYPE_CHECKING:  # the categories import this module: no cycle at run time
    from dataimport.categories.base import ImportScope

SEQ = "CAST(:seq AS bigint)"
# Lookup keys derived from name and hostname: they follow those fields and carry no source.
KEYS = frozenset({"name_key", "hostname_key"})
# jsonb_build_object takes at most 100 arguments (50 fields): longer lists are built in parts.
_PART = 50

# The identity an asset is created with when an import finds no asset for a row.
RESOLVER_IDENTITY = ("name", "hostname", "external_id", "vm_uuid", "ip_address", "asset_type")


# The import's seq inside the statement, for writers whose parameters carry no `:seq` (an
# uncorrelated subquery: evaluated once per statement).
IMPORT_SEQ = "(SELECT d.seq FROM data_imports d WHERE d.id = CAST(:id AS uuid))"


def sources(set_when: Mapping[str, str], seq: str = SEQ) -> str:
    """A JSON object `{column: seq}` of the columns whose SQL condition holds."""
    pairs = [
        f"'{column}', CASE WHEN {condition} THEN {seq} END"
        for column, condition in set_when.items()
        if column not in KEYS
    ]
    if not pairs:
        return "'{}'::jsonb"
    parts = [
        "jsonb_build_object(" + ", ".join(pairs[i : i + _PART]) + ")"
        for i in range(0, len(pairs), _PART)
    ]
    return f"jsonb_strip_nulls({' || '.join(parts)})"


def recorded(existing: str, set_when: Mapping[str, str], seq: str = SEQ) -> str:
    """`existing` (the asset's field_sources) with the columns this statement sets moved to
    the import's seq."""
    return f"{existing} || {sources(set_when, seq)}"


def non_null(columns: Iterable[str], alias: str = "s") -> dict[str, str]:
    """Columns copied with `coalesce(incoming, existing)`: set exactly when incoming is not NULL."""
    return {column: f"{alias}.{column} IS NOT NULL" for column in columns}


def created(
    alias: str = "u",
    columns: Sequence[str] = RESOLVER_IDENTITY,
    set_when: Mapping[str, str] | None = None,
) -> str:
    """The sources an INSERT gives the asset it creates: this import for each identity column
    that gets a value (asset_type always: it has a default); `set_when` overrides a column's
    condition where the inserted value is an expression."""
    conditions = {column: f"{alias}.{column} IS NOT NULL" for column in columns}
    conditions.update({"asset_type": "true", **(set_when or {})})
    return sources({c: conditions[c] for c in columns}, IMPORT_SEQ)


async def import_seq(conn: AsyncConnection, scope: ImportScope) -> int:
    """The import's seq (read once per range, bound as `:seq`)."""
    seq = await conn.scalar(
        select(DataImport.seq).where(
            DataImport.id == uuid.UUID(str(scope.data_import_id)),
            DataImport.client_account_id == uuid.UUID(str(scope.client_account_id)),
            DataImport.engagement_id == uuid.UUID(str(scope.engagement_id)),
        )
    )
    if seq is None:
        raise LookupError(f"no import {scope.data_import_id} for this tenant")
    return int(seq)
