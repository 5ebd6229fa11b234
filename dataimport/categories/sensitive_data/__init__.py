"""The `sensitive_data` category: data-store inventories to sensitivity fields on assets.

One row describes one data store (or one database, schema, table, or even one column) on one
host: its data categories, classification, compliance scopes, encryption at rest and in
transit, record count, owner and location. The columnar rules (`rules.py`) give per row
`{"asset": {identity of the host}, "store": {one data_stores entry}}`; enrichment finds or
creates the host (as a server) and merges the stores onto it:

- `data_classification`: the most restrictive of what the asset had and what comes in
  (public < internal < confidential < restricted); an import never lowers it.
- `compliance_scopes`, `pii_categories`: sorted unions, never shrinking.
- `data_stores`: one entry per store key (store, database, schema, table). An entry from an
  earlier import is replaced by this import's (the newer inventory is the truth about that
  store); entries this import wrote from other row ranges are merged with (column-level
  inventories spread one table over many rows, and ranges may split them).
- `encryption_at_rest` / `encryption_in_transit`: encrypted only if every store on the asset
  whose status is known is; unknown everywhere leaves the asset's value alone.

Values of this category are personal or confidential: `masks_values` is True, and no issue
message quotes a cell (messages name fields and canonical values only).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import steps
from dataimport.agents.base import ValidationAgent
from dataimport.agents.compliance_checker import ComplianceChecker
from dataimport.agents.pii_detector import PiiDetector
from dataimport.asset_resolution import resolve_assets, scope_params
from dataimport.categories.base import EnrichCounts, ImportScope
from dataimport.categories.sensitive_data import rules
from dataimport.categories.sensitive_data.aliases import FIELD_ALIASES
from dataimport.categories.sensitive_data.enrichment import (
    _STORES_MERGED,
    RANGE_HOSTS,
    STORES_MERGED_AGENT,
    STORES_MERGED_STEP,
    merge_stores,
)
from dataimport.categories.sensitive_data.vocabulary import (
    MAX_RECORD_COUNT,
    normalize_classification,
    normalize_scope,
    parse_flag,
    parse_record_count,
    store_key,
)
from dataimport.contracts import ImportRef
from dataimport.engine.findings import Findings
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.outcome import FrameOutcome
from dataimport.normalize import name_key
from dataimport.readers.plan import SheetPlan

__all__ = [
    "CATEGORY",
    "MAX_RECORD_COUNT",
    "SensitiveDataCategory",
    "normalize_classification",
    "normalize_scope",
    "parse_flag",
    "parse_record_count",
    "store_key",
]


class SensitiveDataCategory:
    """Data-store inventories: one store (or table) on one host per row."""

    name = "sensitive_data"
    aliases: Mapping[str, str] = {
        alias: field for field, aliases in FIELD_ALIASES.items() for alias in aliases
    }
    # The host is what the row is about: without a host column nothing can be attached.
    required_fields = frozenset({"hostname", "ip_address"})
    # A row is its host (name, else address) and its store; counts and flags are not.
    identifying_fields = frozenset(
        {"hostname", "ip_address", "store", "database", "schema", "table"}
    )
    # "None" encryption means not encrypted, not unknown.
    literal_tokens: Mapping[str, frozenset[str]] = {
        "encryption_at_rest": frozenset({"none"}),
        "encryption_in_transit": frozenset({"none"}),
    }
    agents: Sequence[ValidationAgent] = (PiiDetector(), ComplianceChecker())
    sheet_plan: SheetPlan | None = None
    masks_values = True
    unique_external_ids = False

    def validate_frame(self, frame: ChunkFrame, findings: Findings) -> FrameOutcome:
        """Validate and normalise a whole chunk at once (the columnar engine)."""
        return rules.validate_frame(frame, findings)

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        # Host + store + database + schema + table, plus the columns: column-level inventories
        # describe one table over many rows, and each of them must count.
        asset = normalized.get("asset") or {}
        store = normalized.get("store") or {}
        host = asset.get("name_key")
        if not host:
            return None
        columns = ",".join(sorted(name_key(column) for column in store.get("columns") or ()))
        return f"{host}|{store.get('key', '')}|{columns}"

    async def prepare(self, conn: AsyncConnection, scope: ImportScope) -> bool:
        """Once per import: the hosts of all its stores found or created and every store
        merged onto its host, set-based over the whole import, so that parallel ranges (many
        stores per host, a host's stores across ranges) never write the same host. Recorded
        as a step of its own (`STORES_MERGED_STEP`), which its ranges look for. No link pass."""
        started = datetime.now(UTC)
        await resolve_assets(conn, scope, "asset", default_type="server", write_back=False)
        merged = await merge_stores(conn, scope)
        ref = ImportRef(
            data_import_id=uuid.UUID(scope.data_import_id),
            client_account_id=uuid.UUID(scope.client_account_id),
            engagement_id=uuid.UUID(scope.engagement_id),
            category=self.name,
        )
        await steps.record_step(
            conn,
            ref,
            step=STORES_MERGED_STEP,
            agent=STORES_MERGED_AGENT,
            started_at=started,
            records=merged.rows,
            findings={"hosts": merged.assets_touched},
        )
        return False

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of a prepared import: its hosts exist and hold its stores; it links its
        rows to their hosts and marks them processed (lookups only, no shared row written).
        An import prepared before its stores were merged in `prepare` (no STORES_MERGED_STEP)
        merges its range's stores here, as its ranges always did."""
        if not await conn.scalar(text(_STORES_MERGED), scope_params(scope)):
            return await self.enrich_unprepared(conn, scope)
        await resolve_assets(conn, scope, "asset", create_missing=False)
        return EnrichCounts(assets_touched=int(await conn.scalar(text(RANGE_HOSTS)) or 0))

    async def enrich_unprepared(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of an import whose enrichment began before `prepare` existed."""
        await resolve_assets(conn, scope, "asset", default_type="server")
        merged = await merge_stores(conn, scope)
        return EnrichCounts(assets_touched=merged.assets_touched)

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        return EnrichCounts()  # data stores carry no dependencies between assets


CATEGORY = SensitiveDataCategory()
