"""The `infrastructure` category: VM and server inventories with capacity and performance.

Accepted layouts, told apart by their headers (one alias table serves them all):
- RVTools: the XLSX (vInfo joined with vCPU, vMemory, vDisk, vPartition, vNetwork through
  `sheet_plan`; companion cells arrive as "<sheet>.<column>") or the vInfo tab as CSV. Old
  ("Provisioned MB", "In Use MB") and new ("… MiB") spellings mean the same binary unit.
  Columns RVTools does not define are vCenter custom attributes: they land in
  `custom_attributes`; standard vInfo columns nobody sizes on stay unmapped.
- Azure Migrate import CSV ("Server name*", "Cores*", "Memory (In MB)*", per-disk columns
  "Disk N …", summed over the disks).
- AWS Migration Hub import template ("VMware.VMName", "CPU.UsagePct.Avg", "RAM.TotalSizeInMB").
- StratoZone vmInfo (one row per machine) and perfInfo (time series, one row per machine and
  sample, matched to machines by MachineId; never creates assets).

Units: memory and storage in GB (binary, as the rest of the inventory); utilisation in %;
IOPS as read + write operations per second; network throughput in megabits per second
(in + out; byte rates are decimal, as network rates are: 1 MB/s = 8 Mbit/s).

Memory utilisation for RVTools comes from vMemory "Active" / "Size MiB" (or vInfo "Active
Memory" / "Memory"): Active is what the guest touched recently, the working set sizing needs;
"Consumed" counts every page the host ever backed (guest caches, zeroed pages) and would
overstate nearly every VM, so it is kept as a custom attribute only.

Precedence (DESIGN §6): identity and business fields only fill blanks (CMDB wins them);
performance and placement fields are taken when the row's observation is at least as new as
the asset's `performance_observed_at` (a row without a timestamp counts as observed at import
time); older data only fills blanks. Templates are skipped with a warning.

The package: `aliases.py` (headers, as data), `rules.py` (the columnar rules the engine runs),
`values.py` (exact parsers of cell values), `enrichment.py` (SQL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.agents.base import ValidationAgent
from dataimport.agents.infrastructure_validator import (
    InfrastructureValidator,
    flag_shared_vm_uuids,
)
from dataimport.asset_resolution import resolve_assets, scope_params
from dataimport.categories.base import AliasTable, EnrichCounts, ImportScope
from dataimport.categories.infrastructure import rules
from dataimport.categories.infrastructure.aliases import (
    _FIELD_ALIASES,
    CUSTOM_PREFIX,
    RVTOOLS_COMPANIONS,
    _pattern_field,
)
from dataimport.categories.infrastructure.enrichment import (
    _AGGREGATE_SAMPLES,
    _APPLY_SAMPLES,
    _MARK_SAMPLES,
    _RANGE_HAS_VM_UUIDS,
    _WARN_UNMATCHED,
    HASH_ONLY,
    MACHINES,
    MACHINES_SELECT,
    UPDATE_MACHINES,
    _sample_update,
)
from dataimport.categories.infrastructure.values import (
    normalize_power_state,
    normalize_vm_uuid,
    parse_timestamp,
)
from dataimport.engine.findings import Findings
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.outcome import FrameOutcome
from dataimport.issues import Code
from dataimport.planner import planner
from dataimport.readers.plan import SheetPlan

__all__ = [
    "CATEGORY",
    "CUSTOM_PREFIX",
    "RVTOOLS_COMPANIONS",
    "UPDATE_MACHINES",
    "InfrastructureCategory",
    "normalize_power_state",
    "normalize_vm_uuid",
    "parse_timestamp",
]


class InfrastructureCategory:
    """RVTools, Azure Migrate, AWS Migration Hub and StratoZone inventories and samples."""

    name = "infrastructure"
    aliases: Mapping[str, str] = AliasTable(_FIELD_ALIASES, _pattern_field)
    required_fields = frozenset({"name", "hostname", "dns_name", "vm_uuid", "machine_id"})
    # A machine is its names and ids; a performance sample is its machine id and its time
    # (which also decides whether a machine row's figures are newer than the inventory's).
    identifying_fields = frozenset(
        {"name", "hostname", "dns_name", "vm_uuid", "machine_id", "observed_at"}
    )
    literal_tokens: Mapping[str, frozenset[str]] = {}
    agents: Sequence[ValidationAgent] = (InfrastructureValidator(),)
    sheet_plan: SheetPlan | None = SheetPlan(
        primary=("vInfo", "tabvInfo"), companions=RVTOOLS_COMPANIONS, join_keys=("VM UUID", "VM")
    )
    masks_values = False
    unique_external_ids = False

    def __init__(self, as_of: date | None = None) -> None:
        self._as_of = as_of  # fixed date for tests; None means today, evaluated per row

    def validate_frame(self, frame: ChunkFrame, findings: Findings) -> FrameOutcome:
        """Validate and normalise a whole chunk at once (the columnar engine)."""
        return rules.validate_frame(frame, findings, self._as_of or date.today())

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        kind = normalized.get("kind")
        if kind == "performance":
            # Samples of one machine are many rows: only a repeated sample time is a duplicate.
            return f"sample:{normalized.get('machine_id')}@{normalized.get('observed_at')}"
        if kind != "machine":
            return None
        asset = normalized.get("asset") or {}
        # An external id is unique in the inventory: two rows carrying it are one machine.
        if asset.get("external_id"):
            return f"id:{asset['external_id']}"
        return f"name:{asset['name_key']}" if asset.get("name_key") else None

    async def prepare(self, conn: AsyncConnection, scope: ImportScope) -> bool:
        """Once per import, before the parallel ranges: VM UUIDs shared by differently named
        VMs taken out of matching, and every machine's asset found or created, set-based over
        the whole import (ranges then only look them up: no shared inserts between them).
        The samples still need the link pass."""
        await flag_shared_vm_uuids(conn, scope.data_import_id, scope.first_row, scope.last_row)
        await resolve_assets(conn, scope, "asset", default_type="virtual_machine", write_back=False)
        return True

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of a prepared import: look its machines up, apply their fields. Nothing is
        left to create after `prepare` (the creation inserts no row, takes no lock); an import
        prepared before machines were created there still gets its range's machines here."""
        await resolve_assets(conn, scope, "asset", default_type="virtual_machine")
        return await self._apply_machines(conn, scope)

    async def enrich_unprepared(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of an import whose enrichment began before `prepare` existed: match or
        create the range's machines, then apply their fields with precedence."""
        params = scope_params(scope)
        if await conn.scalar(text(_RANGE_HAS_VM_UUIDS), params):
            await flag_shared_vm_uuids(conn, scope.data_import_id, scope.first_row, scope.last_row)
        await resolve_assets(conn, scope, "asset", default_type="virtual_machine")
        return await self._apply_machines(conn, scope)

    async def _apply_machines(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """The range's machines (typed once) applied to their assets with precedence."""
        params = scope_params(scope)
        async with planner(conn, **HASH_ONLY):
            await conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{MACHINES}"))
            await conn.execute(
                text(f"CREATE TEMPORARY TABLE {MACHINES} ON COMMIT DROP AS {MACHINES_SELECT}"),
                params,
            )
            updated = await conn.execute(text(UPDATE_MACHINES), params)
        return EnrichCounts(assets_touched=updated.rowcount or 0)

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """Apply performance samples, aggregated per machine over the whole import.

        A machine's samples may span row ranges, so one pass (the first range's) aggregates
        them all: linear in the import, where a per-range pass would rescan it per range.
        """
        if scope.first_row != 1:
            return EnrichCounts()
        params = scope_params(scope)
        machines = (await conn.execute(text(_AGGREGATE_SAMPLES), params)).mappings().all()
        matched = {str(m["asset_id"]): dict(m) for m in machines if m["asset_id"] is not None}
        unmatched = [m["machine_id"] for m in machines if m["asset_id"] is None]
        if matched:
            updates = [_sample_update(machine) for machine in matched.values()]
            arrays = {key: [update[key] for update in updates] for key in updates[0]}
            await conn.execute(text(_APPLY_SAMPLES), {**params, **arrays})
        if machines:
            await conn.execute(
                text(_MARK_SAMPLES),
                {
                    **params,
                    "machine_ids": [m["machine_id"] for m in machines if m["asset_id"]],
                    "asset_ids": [str(m["asset_id"]) for m in machines if m["asset_id"]],
                },
            )
        if unmatched:
            await conn.execute(
                text(_WARN_UNMATCHED),
                {**params, "machine_ids": unmatched, "code": Code.UNMATCHED_ASSET.value},
            )
        return EnrichCounts(assets_touched=len(matched))


CATEGORY = InfrastructureCategory()
