"""Per-field provenance of assets: the SQL that records which import last set each field.

`assets.field_sources` is a positional `integer[]`: slot i (1-based) holds the
`data_imports.seq` of the import that last wrote a value into column `FIELD_ORDER[i - 1]`,
NULL when none did. Every asset write keeps it in the same set-based statement: the writer
says, per column it writes, when the incoming row actually sets it (a non-null incoming value
that the statement applies), and `recorded` turns that into
`ARRAY[CASE WHEN … THEN :seq ELSE field_sources[i] END, …]`. A blank incoming cell never takes
a field's provenance; a retried statement records the same.

Why an array, not the jsonb `{column: seq}` of migration 0011 (bench/README.md, fifth
session, 100k CMDB assets): the object took 457 bytes per asset, the array 96 (4 bytes per set
slot plus a ~25-byte header), the assets table shrank 44 %, and recording provenance over 25k
assets costs ~0.1–0.2 s instead of ~0.35–0.65 s (scalar CASEs, no `jsonb_build_object` + `||`).
`integer`, not `bigint`: seqs stay far below 2^31, and the cast fails loudly if one ever does
not. Readers decode it with `decode` into the same `{column: seq}` mapping.
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

SEQ = "CAST(:seq AS integer)"
# Lookup keys derived from name and hostname: they follow those fields and carry no source.
KEYS = frozenset({"name_key", "hostname_key"})

# The slot order of `assets.field_sources`: APPEND-ONLY (stored arrays are positional; a new
# provenance-carrying column goes at the end, an old one keeps its slot even if unused).
FIELD_ORDER: tuple[str, ...] = (
    "name",
    "external_id",
    "asset_type",
    "hostname",
    "fqdn",
    "ip_address",
    "operating_system",
    "os_version",
    "os_end_of_support",
    "environment",
    "criticality",
    "owner",
    "business_unit",
    "location",
    "serial_number",
    "operational_status",
    "description",
    "cpu_cores",
    "memory_gb",
    "storage_gb",
    "storage_used_gb",
    "cpu_utilization_pct",
    "memory_utilization_pct",
    "iops",
    "network_throughput_mbps",
    "performance_observed_at",
    "data_classification",
    "compliance_scopes",
    "pii_categories",
    "encryption_at_rest",
    "encryption_in_transit",
    "vm_uuid",
    "power_state",
    "host_name",
    "cluster",
    "datacenter",
    "rightsizing",
    "data_stores",
    "custom_attributes",
)
_SLOT = {column: i for i, column in enumerate(FIELD_ORDER, start=1)}

# The identity an asset is created with when an import finds no asset for a row.
RESOLVER_IDENTITY = ("name", "hostname", "external_id", "vm_uuid", "ip_address", "asset_type")


# The import's seq inside the statement, for writers whose parameters carry no `:seq` (an
# uncorrelated subquery: evaluated once per statement).
IMPORT_SEQ = "(SELECT CAST(d.seq AS integer) FROM data_imports d WHERE d.id = CAST(:id AS uuid))"


def _conditions(set_when: Mapping[str, str]) -> dict[int, str]:
    """Slot -> condition; a column without a slot is a bug of the writer (KeyError)."""
    return {_SLOT[column]: cond for column, cond in set_when.items() if column not in KEYS}


def _array(slots: Iterable[str]) -> str:
    return f"CAST(ARRAY[{', '.join(slots)}] AS integer[])"


def sources(set_when: Mapping[str, str], seq: str = SEQ) -> str:
    """The sources of a new row: `seq` in the slots of the columns whose SQL condition holds."""
    conditions = _conditions(set_when)
    if not conditions:
        return "CAST('{}' AS integer[])"
    last = max(conditions)  # trailing never-set slots need not be stored
    return _array(
        f"CASE WHEN {conditions[i]} THEN {seq} END" if i in conditions else "NULL"
        for i in range(1, last + 1)
    )


def recorded(existing: str, set_when: Mapping[str, str], seq: str = SEQ) -> str:
    """`existing` (the asset's field_sources) with the columns this statement sets moved to
    the import's seq."""
    conditions = _conditions(set_when)
    return _array(
        f"CASE WHEN {conditions[i]} THEN {seq} ELSE {existing}[{i}] END"
        if i in conditions
        else f"{existing}[{i}]"
        for i in range(1, len(FIELD_ORDER) + 1)
    )


def merged(existing: str, incoming: str) -> str:
    """`existing` with every slot `incoming` sets taken from it (an ON CONFLICT update)."""
    return _array(
        f"coalesce({incoming}[{i}], {existing}[{i}])" for i in range(1, len(FIELD_ORDER) + 1)
    )


def decode(slots: Sequence[int | None] | None) -> dict[str, int]:
    """The stored array as `{column: seq}` of its set slots."""
    return {FIELD_ORDER[i]: seq for i, seq in enumerate(slots or ()) if seq is not None}


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
