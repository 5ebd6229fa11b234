"""The `app_discovery` category: application-dependency data to endpoint assets and edges.

Two families of layouts share one alias table:

- topology rows (AppDynamics / Datadog style): application, tier/component/service, node/host,
  called tier/component (or called node), calls, latency, errors, port, protocol, first/last
  seen. The source end is the node (the tier when there is no node); the target end is the
  called node, else the called tier (an `application` asset).
- network-connection exports (Azure Migrate dependency export and the like): timeslot,
  source server/IP/application/process, destination server/IP/application/process/port.

The columnar rules (`rules.py`) give per row
`{"source": endpoint, "target": endpoint | None, "dependency": {...}, "runs_on": [...]}`
where an endpoint holds the identity `asset_resolution` matches on (name, name_key, hostname,
hostname_key, ip_address, asset_type) and the dependency holds the edge key (port, protocol),
its figures (conn_count, bytes_total, first_seen, last_seen as ISO UTC), its details
(applications, processes, latency, error rate, ...), a base confidence and an
`observation_key`. `enrich` turns rows into assets (find or create) and `asset_dependencies`
whose figures are recomputed from `dependency_observations`: importing the same window twice
changes nothing, a new window adds to the counts and widens first/last seen.

The package: `aliases.py` (headers, data), `vocabulary.py` (protocols, edge columns,
confidences), `values.py` (pure value parsers), `cells.py` (the exact parsers the rules fall
back to), `rules.py` (columnar rules), `endpoints.py` / `prepare.py` / `enrichment.py` (the
enrichment SQL of a prepared import: once per import, per range, finish) and `unprepared.py`
(ranges of imports that began before `prepare` existed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import asset_resolution
from dataimport.agents.base import ValidationAgent
from dataimport.agents.dependency_validator import DependencyValidator
from dataimport.categories.app_discovery import enrichment, rules, unprepared
from dataimport.categories.app_discovery import prepare as prepare_pass
from dataimport.categories.app_discovery.aliases import FIELD_ALIASES
from dataimport.categories.app_discovery.values import (
    normalize_protocol,
    parse_bytes,
    parse_duration_ms,
    parse_timestamp,
)
from dataimport.categories.app_discovery.vocabulary import (
    CONFIDENCE,
    EDGE_COLUMNS,
    PROTOCOLS,
    RUNS_ON_CONFIDENCE,
    SIDES,
    VOLUME_BONUS,
)
from dataimport.categories.base import EnrichCounts, ImportScope
from dataimport.engine.findings import Findings
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.outcome import FrameOutcome
from dataimport.readers.plan import SheetPlan

__all__ = [
    "CATEGORY",
    "CONFIDENCE",
    "PROTOCOLS",
    "VOLUME_BONUS",
    "AppDiscoveryCategory",
    "normalize_protocol",
    "parse_bytes",
    "parse_duration_ms",
    "parse_timestamp",
]


def _alias_table() -> dict[str, str]:
    return {alias: field for field, aliases in FIELD_ALIASES.items() for alias in aliases}


class AppDiscoveryCategory:
    """Dependency data: one row per observed (or stated) connection between two endpoints."""

    name = "app_discovery"
    aliases: Mapping[str, str] = _alias_table()
    # Any column naming an end is enough to start; rows without both ends are rejected.
    required_fields = frozenset(
        {f"{side}_{part}" for side in SIDES for part in ("name", "ip", "component")}
    )
    # An edge is its two ends, its port and protocol and its observation (time window and
    # source port); its figures (counts, bytes, latency, errors) are not.
    identifying_fields = frozenset(
        {
            *(f"{side}_{part}" for side in SIDES for part in ("name", "ip", "component")),
            *("port", "protocol", "source_port", "timeslot", "first_seen", "last_seen"),
        }
    )
    literal_tokens: Mapping[str, frozenset[str]] = {}
    agents: Sequence[ValidationAgent] = (DependencyValidator(),)
    sheet_plan: SheetPlan | None = None
    masks_values = False
    unique_external_ids = False

    def validate_frame(self, frame: ChunkFrame, findings: Findings) -> FrameOutcome:
        """The columnar rules (`rules.py`)."""
        return rules.validate_frame(frame, findings)

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        # One edge seen in one observation: a second such line in the file is a duplicate.
        source, target = normalized.get("source"), normalized.get("target")
        dependency = normalized.get("dependency") or {}
        if not source or not target:
            return None
        return "|".join(
            str(part)
            for part in (
                source["name_key"],
                target["name_key"],
                dependency.get("port"),
                dependency.get("protocol"),
                dependency.get("observation_key"),
            )
        )

    async def prepare(self, conn: AsyncConnection, scope: ImportScope) -> bool:
        """Once per import, before the parallel ranges: every endpoint asset found or created,
        touched, and every edge upserted, set-based over the import (one scan of its rows).

        Returns False: there is no link pass to run.
        """
        await prepare_pass.prepare(
            conn,
            asset_resolution.scope_params(scope),
            edge_columns=EDGE_COLUMNS,
            runs_on_confidence=RUNS_ON_CONFIDENCE,
        )
        return False

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of a prepared import: look up its ends, record its observations."""
        return await enrichment.enrich_range(conn, asset_resolution.scope_params(scope))

    async def finish(self, conn: AsyncConnection, scope: ImportScope) -> None:
        """Once per prepared import, after every range: its edges' figures recomputed."""
        await enrichment.finish(
            conn, asset_resolution.scope_params(scope), volume_bonus=VOLUME_BONUS
        )

    async def enrich_unprepared(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of an import whose enrichment began before `prepare` existed: every range
        creates and updates what it shares with the others (kept for imports in flight)."""
        return await unprepared.enrich_range(conn, scope)

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        # Both ends are found or created in enrich, so there is no second pass to make.
        return EnrichCounts()


CATEGORY = AppDiscoveryCategory()
