"""infrastructure_validator: consistency rules over infrastructure rows (RVTools, Azure Migrate,
AWS Migration Hub, StratoZone), run after the category has typed each row.

The category already rejects what cannot be a value (text in a number column, a utilisation
cell outside 0–100 %). This agent looks at what the values say together, and only warns: the
row stays usable, the finding tells the migration engineer which figures not to trust.

Per-row rules (`examine`):
- utilisation-range: a utilisation *derived* from other columns (vMemory Active / Size,
  AWS RAM used / total) outside 0–100 %: the inputs disagree with each other;
- used-exceeds-provisioned: used storage above provisioned storage (beyond rounding);
- powered-off-utilisation: a powered-off VM reporting CPU or memory use (a stale reading, so
  rightsizing ignores it);
- zero-capacity: a VM with 0 cores or 0 GB memory (the inventory keeps what it knew);
- unknown-os: no operating system, or only a generic "Other ..." guest type.

Cross-row rule (`flag_shared_vm_uuids`, set-based): two VMs with different names sharing one VM
UUID (clones keep their BIOS UUID). Matching on such a UUID would merge two machines, so the
UUID is moved out of the row's identity into `custom_attributes.vm_uuid_shared` and the row
gets a warning. It runs over a row range, so enrichment calls it for its own range before
matching assets; `finalize` runs it over the whole import where a runner supports that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.agents.base import RowContext
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.text import per_distinct
from dataimport.issues import Code, Issue, Severity

AGENT_NAME = "infrastructure_validator"
RULES = (
    "utilisation-range",
    "used-exceeds-provisioned",
    "powered-off-utilisation",
    "zero-capacity",
    "unknown-os",
    "duplicate-vm-uuid",
)
# Provisioned and used sizes come from different counters (datastore vs guest file system);
# a few percent apart is rounding and metadata, not an inconsistency.
USED_STORAGE_TOLERANCE = 1.02
_UTILISATION_FIELDS = (
    "cpu_utilization_pct",
    "memory_utilization_pct",
    "cpu_utilization_peak_pct",
    "memory_utilization_peak_pct",
)
_GENERIC_OS_PREFIXES = ("other", "unknown")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class InfrastructureValidator:
    """Named rule set for the infrastructure category; every finding is a warning."""

    name = AGENT_NAME
    rules = RULES

    def examine_frame(self, frame: ChunkFrame, findings: Findings) -> None:
        examine_frame(frame, findings)

    def examine(self, row: RowContext) -> list[Issue]:
        kind = row.normalized.get("kind")
        if kind == "performance":
            return self._utilisation_range(row.normalized.get("performance") or {})
        if kind != "machine":
            return []  # templates are skipped, invalid rows carry no asset
        asset: Mapping[str, Any] = row.normalized.get("asset") or {}
        return [
            *self._utilisation_range(asset),
            *self._used_exceeds_provisioned(asset),
            *self._powered_off_utilisation(asset),
            *self._zero_capacity(asset),
            *self._unknown_os(asset),
        ]

    async def finalize(self, conn: AsyncConnection, data_import_id: str) -> int:
        """Cross-row rule over the whole import; returns the rows newly flagged."""
        return await flag_shared_vm_uuids(conn, data_import_id, 1, 2**31 - 1)

    def _warn(self, code: Code, field: str | None, message: str) -> Issue:
        return Issue(code.value, Severity.WARNING, message, field, self.name)

    def _utilisation_range(self, values: Mapping[str, Any]) -> list[Issue]:
        custom = values.get("custom_attributes") or {}
        issues = []
        for field in _UTILISATION_FIELDS:
            value = _number(values.get(field, custom.get(field)))
            if value is not None and not 0 <= value <= 100:
                issues.append(
                    self._warn(
                        Code.INCONSISTENT_VALUE,
                        field,
                        f"{field}: {value:g} % is outside 0–100 %; its source columns disagree",
                    )
                )
        return issues

    def _used_exceeds_provisioned(self, asset: Mapping[str, Any]) -> list[Issue]:
        used = _number(asset.get("storage_used_gb"))
        provisioned = _number(asset.get("storage_gb"))
        if used is None or not provisioned or used <= provisioned * USED_STORAGE_TOLERANCE:
            return []
        message = (
            f"storage_used_gb: {used:g} GB used is more than the {provisioned:g} GB provisioned"
        )
        return [self._warn(Code.INCONSISTENT_VALUE, "storage_used_gb", message)]

    def _powered_off_utilisation(self, asset: Mapping[str, Any]) -> list[Issue]:
        if asset.get("power_state") != "powered_off":
            return []
        busy = [
            f"{field} {value:g} %"
            for field in ("cpu_utilization_pct", "memory_utilization_pct")
            if (value := _number(asset.get(field)))
        ]
        if not busy:
            return []
        message = (
            f"powered-off VM reports {', '.join(busy)}: a stale reading, "
            "rightsizing uses the allocation"
        )
        return [self._warn(Code.INCONSISTENT_VALUE, "power_state", message)]

    def _zero_capacity(self, asset: Mapping[str, Any]) -> list[Issue]:
        issues = []
        for field, unit in (("cpu_cores", "cores"), ("memory_gb", "GB memory")):
            if _number(asset.get(field)) == 0:
                message = f"{field}: the VM reports 0 {unit}; the inventory keeps what it knew"
                issues.append(self._warn(Code.ZERO_CAPACITY, field, message))
        return issues

    def _unknown_os(self, asset: Mapping[str, Any]) -> list[Issue]:
        os_name = str(asset.get("operating_system") or "").strip()
        if os_name and not os_name.lower().startswith(_GENERIC_OS_PREFIXES):
            return []
        what = f"only the generic guest type {os_name!r}" if os_name else "no operating system"
        message = f"operating_system: {what}; the migration target cannot be chosen from it"
        return [self._warn(Code.UNKNOWN_OS, "operating_system", message)]


# UUIDs shared by machine rows of different names anywhere in the import (a row already moved
# keeps its UUID under vm_uuid_shared, so a retried or parallel range sees the same set).
_FLAG_SHARED_VM_UUIDS = """
WITH machine AS (
  SELECT r.id, r.row_number, r.normalized_data -> 'asset' AS a,
    coalesce(r.normalized_data -> 'asset' ->> 'vm_uuid',
             r.normalized_data -> 'asset' ->> 'vm_uuid_shared') AS vm_uuid
  FROM raw_import_records r
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.is_valid AND NOT r.superseded
    AND r.normalized_data ->> 'kind' = 'machine'
),
shared AS (
  SELECT vm_uuid, count(DISTINCT a ->> 'name_key') AS names FROM machine
  WHERE vm_uuid IS NOT NULL GROUP BY vm_uuid HAVING count(DISTINCT a ->> 'name_key') > 1
)
UPDATE raw_import_records r SET
  normalized_data = jsonb_set(
    jsonb_set(r.normalized_data #- '{asset,vm_uuid}', '{asset,vm_uuid_shared}',
              to_jsonb(shared.vm_uuid)),
    '{asset,custom_attributes}',
    coalesce(r.normalized_data -> 'asset' -> 'custom_attributes', '{}'::jsonb)
      || jsonb_build_object('vm_uuid_shared', shared.vm_uuid)),
  validation_errors = coalesce(r.validation_errors, '[]'::jsonb) || jsonb_build_array(
    jsonb_build_object('code', CAST(:code AS text), 'severity', 'warning', 'field', 'vm_uuid',
      'agent', CAST(:agent AS text),
      'message', 'vm_uuid: ' || shared.vm_uuid || ' is shared by ' || shared.names
        || ' VMs with different names (clones?); not used to match assets'))
FROM machine JOIN shared USING (vm_uuid)
WHERE r.id = machine.id AND machine.row_number BETWEEN :first AND :last
  AND r.normalized_data -> 'asset' ? 'vm_uuid'
"""


async def flag_shared_vm_uuids(
    conn: AsyncConnection, data_import_id: str, first_row: int, last_row: int
) -> int:
    """Warn on, and stop matching by, VM UUIDs that several differently named VMs share.

    Only rows in [first_row, last_row] are changed; idempotent (a moved UUID is not moved twice).
    """
    result = await conn.execute(
        text(_FLAG_SHARED_VM_UUIDS),
        {
            "id": data_import_id,
            "first": first_row,
            "last": last_row,
            "code": Code.DUPLICATE_VM_UUID.value,
            "agent": AGENT_NAME,
        },
    )
    return result.rowcount or 0


# --- the columnar form -------------------------------------------------------------------

# What the category's columnar rules normalised, as columns of the frame's rows: the row's
# kind and the asset (or sample) values the rules above read.
_PUBLISHED = "infrastructure_validator:"
_PUBLISHED_COLUMNS = (
    "cpu_utilization_pct",
    "memory_utilization_pct",
    "cpu_utilization_peak_pct",
    "memory_utilization_peak_pct",
    "storage_used_gb",
    "storage_gb",
    "power_state",
    "cpu_cores",
    "memory_gb",
    "operating_system",
)
_TYPES: dict[str, Any] = {
    "power_state": pl.Utf8,
    "operating_system": pl.Utf8,
}


def publish(frame: ChunkFrame, kind: pl.Series, values: pl.DataFrame) -> None:
    """Put the row kinds and normalised values the agent reads on the frame (the category's
    columnar rules call this); columns a layout does not have are null."""
    columns = [kind.rename(_PUBLISHED + "kind")]
    for name in _PUBLISHED_COLUMNS:
        if name in values.columns:
            column = values.get_column(name)
        else:
            column = pl.repeat(None, frame.height, dtype=_TYPES.get(name, pl.Float64), eager=True)
        columns.append(column.rename(_PUBLISHED + name))
    frame.rows = frame.rows.with_columns(columns)


def _published(frame: ChunkFrame) -> pl.DataFrame:
    names = [_PUBLISHED + name for name in ("kind", *_PUBLISHED_COLUMNS)]
    if any(name not in frame.rows.columns for name in names):
        raise TypeError("infrastructure_validator needs the infrastructure columnar rules first")
    return frame.rows.select(pl.col(name).alias(name.removeprefix(_PUBLISHED)) for name in names)


def examine_frame(frame: ChunkFrame, findings: Findings) -> None:
    """The columnar form of `examine`: each rule's candidate rows picked by expressions, the
    rule itself (the very methods `examine` calls) run once per distinct candidate."""
    agent = InfrastructureValidator()
    data = _published(frame)
    kind = pl.col("kind")
    machine = kind == "machine"

    def add(where: pl.Expr, keys: list[str], rule: Callable[..., list[Issue]]) -> None:
        candidates = data.select(where.fill_null(False)).to_series()
        if not candidates.any():
            return

        def exact(*values: Any) -> tuple[list[str]]:
            return ([_issue_text(frame, issue) for issue in rule(*values)],)

        found = per_distinct(data, keys, exact, {"i": pl.List(pl.Utf8)}, candidates)
        findings.add(found["i"], Severity.WARNING)

    measured = machine | (kind == "performance")
    for field in _UTILISATION_FIELDS:
        value = pl.col(field)
        add(
            measured & value.is_not_null() & ((value < 0) | (value > 100)),
            [field],
            lambda v, field=field: agent._utilisation_range({field: v}),
        )
    used, provisioned = pl.col("storage_used_gb"), pl.col("storage_gb")
    add(
        machine
        & used.is_not_null()
        & provisioned.is_not_null()
        & (provisioned != 0)
        & (used > provisioned * USED_STORAGE_TOLERANCE),
        ["storage_used_gb", "storage_gb"],
        lambda u, p: agent._used_exceeds_provisioned({"storage_used_gb": u, "storage_gb": p}),
    )
    cpu, memory = pl.col("cpu_utilization_pct"), pl.col("memory_utilization_pct")
    add(
        machine
        & (pl.col("power_state") == "powered_off")
        & ((cpu.fill_null(0) != 0) | (memory.fill_null(0) != 0)),
        ["cpu_utilization_pct", "memory_utilization_pct"],
        lambda c, m: agent._powered_off_utilisation(
            {"power_state": "powered_off", "cpu_utilization_pct": c, "memory_utilization_pct": m}
        ),
    )
    for field in ("cpu_cores", "memory_gb"):
        add(
            machine & (pl.col(field) == 0),
            [field],
            lambda v, field=field: agent._zero_capacity(
                {field: int(v) if field == "cpu_cores" else v}
            ),
        )
    add(
        machine,
        ["operating_system"],
        lambda name: agent._unknown_os({"operating_system": name}),
    )


def _issue_text(frame: ChunkFrame, issue: Issue) -> str:
    field = frame.display_field(issue.field)
    return issue_json(issue.code, issue.severity, issue.message, field, issue.agent)
