"""The `cmdb_export` category: CMDB rows (ServiceNow cmdb_ci_server, home-grown CSVs) to assets.

Headers map through an alias table (`aliases.py`) onto category fields; the columnar rules
(`rules.py`) turn a chunk's cells into `{"asset": {<Asset column>: value, ...},
"dependencies": [names]}` per row plus issues. A field named after its unit ("memory_mb",
"memory_gb") says what a bare number in that column means. Mapped fields without an Asset
column land in `custom_attributes`, as do ServiceNow custom columns (`u_*`), which map to
fields named `custom.<header key>`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import inventory
from dataimport.agents.base import ValidationAgent
from dataimport.categories.base import AliasTable, EnrichCounts, ImportScope
from dataimport.categories.cmdb_export import rules
from dataimport.categories.cmdb_export.aliases import (
    FIELD_ALIASES,
    MAX_CPU_CORES,
    MAX_MEMORY_GB,
    MAX_STORAGE_GB,
    servicenow_custom,
)
from dataimport.engine.findings import Findings
from dataimport.engine.frame import ChunkFrame
from dataimport.readers.plan import SheetPlan

__all__ = ["CATEGORY", "MAX_CPU_CORES", "MAX_MEMORY_GB", "MAX_STORAGE_GB", "CmdbExportCategory"]


class CmdbExportCategory:
    """CMDB exports: one row per configuration item, declared dependencies in one column."""

    name = "cmdb_export"
    aliases: Mapping[str, str] = AliasTable(FIELD_ALIASES, servicenow_custom)
    # Any one identifying column is enough: rows fall back from name to hostname to fqdn.
    required_fields = frozenset({"name", "hostname", "fqdn"})
    # A CI is its name (else host name, else FQDN) and its sys_id; an IP, a size, a date is not.
    identifying_fields = frozenset({"name", "hostname", "fqdn", "external_id"})
    literal_tokens: Mapping[str, frozenset[str]] = {}
    agents: Sequence[ValidationAgent] = ()
    sheet_plan: SheetPlan | None = None
    masks_values = False
    unique_external_ids = True  # sys_id: one configuration item, whatever its name

    def __init__(self, as_of: date | None = None) -> None:
        self._as_of = as_of  # fixed date for tests; None means today

    def validate_frame(self, frame: ChunkFrame, findings: Findings) -> rules.FrameOutcome:
        """Validate and normalise a whole chunk at once (the columnar engine)."""
        return rules.validate_frame(frame, findings, self._as_of or date.today())

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        # The name key is what the inventory is unique on, so two rows sharing it are one asset.
        asset = normalized.get("asset") or {}
        key = asset.get("name_key")
        return str(key) if key else None

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        return await inventory.upsert_assets(conn, scope)

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        return await inventory.link_declared_dependencies(conn, scope)


CATEGORY = CmdbExportCategory()
