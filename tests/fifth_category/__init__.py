"""A worked fifth category, `cloud_instances`: an AWS console "Instances" CSV export.

The whole of it is this package (aliases as data, columnar rules, enrichment through the shared
inventory writes) plus one registry line; `tests/integration/test_fifth_category.py` adds that
line and imports a file through the real worker. Nothing else in the product names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import inventory
from dataimport.agents.base import ValidationAgent
from dataimport.categories.base import AliasTable, EnrichCounts, ImportScope
from dataimport.engine.findings import Findings
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.outcome import FrameOutcome
from dataimport.readers.plan import SheetPlan
from tests.fifth_category import rules

ALIASES = {
    "name": ("name", "tag_name"),
    "instance_id": ("instance_id", "instanceid"),
    "instance_type": ("instance_type", "instancetype", "type"),
    "state": ("instance_state", "state"),
    "ip_address": ("private_ip_address", "private_ipv4_address", "private_ip"),
    "platform": ("platform", "platform_details"),
    "zone": ("availability_zone", "az"),
    "environment": ("tag_environment", "environment", "env"),
}


class CloudInstancesCategory:
    name = "cloud_instances"
    aliases: Mapping[str, str] = AliasTable(ALIASES)
    required_fields = frozenset({"name", "instance_id"})
    identifying_fields = frozenset({"name", "instance_id"})
    literal_tokens: Mapping[str, frozenset[str]] = {}
    agents: Sequence[ValidationAgent] = ()
    sheet_plan: SheetPlan | None = None
    masks_values = False
    unique_external_ids = False

    def validate_frame(self, frame: ChunkFrame, findings: Findings) -> FrameOutcome:
        return rules.validate_frame(frame, findings)

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        key = (normalized.get("asset") or {}).get("name_key")
        return str(key) if key else None

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        return await inventory.upsert_assets(conn, scope)

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        return EnrichCounts()  # instances declare no dependencies


CATEGORY = CloudInstancesCategory()
