"""What an import category is: its header aliases, its columnar rules and its enrichment.

A category maps staged rows (header -> cell, exactly as read) onto its fields, validates and
normalises them (column-wise, see dataimport.engine), and turns the valid rows into inventory
with set-based SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport.agents.base import ValidationAgent
from dataimport.readers.plan import SheetPlan

if TYPE_CHECKING:  # the engine's frame names HeaderMapping of this module
    from dataimport.engine.findings import Findings
    from dataimport.engine.frame import ChunkFrame
    from dataimport.engine.outcome import FrameOutcome


def header_key(header: str) -> str:
    """Comparable form of a header: lower case, '*' dropped, words joined by '_'."""
    text = header.strip().lstrip("\ufeff").replace("*", "").lower()
    text = re.sub(r"[^0-9a-z]+", "_", text)
    return text.strip("_")


class AliasTable(Mapping[str, str]):
    """header_key -> field: explicit aliases, plus a pattern rule for keys no alias names
    (ServiceNow u_* columns, Azure per-disk columns, custom attributes ...).

    Iteration and len() cover the explicit aliases only; lookups also answer for the pattern.
    """

    def __init__(
        self,
        aliases_by_field: Mapping[str, Sequence[str]],
        pattern: Callable[[str], str | None] = lambda _key: None,
    ) -> None:
        self._explicit = {
            alias: field for field, aliases in aliases_by_field.items() for alias in aliases
        }
        self._pattern = pattern

    def __getitem__(self, key: str) -> str:
        if key in self._explicit:
            return self._explicit[key]
        field = self._pattern(key)
        if field is None:
            raise KeyError(key)
        return field

    def __iter__(self) -> Iterator[str]:
        return iter(self._explicit)

    def __len__(self) -> int:
        return len(self._explicit)


@dataclass(frozen=True, slots=True)
class HeaderMapping:
    """Which source header feeds which field, and which headers fed nothing."""

    field_by_header: dict[str, str]
    unmapped_headers: list[str]

    @property
    def mapped_fields(self) -> set[str]:
        return set(self.field_by_header.values())


def map_headers(
    headers: Sequence[str], aliases: Mapping[str, str], column_mapping: Mapping[str, str]
) -> HeaderMapping:
    """Map headers through an explicit column_mapping first, then the alias table.

    `aliases` is keyed by `header_key(...)`; `column_mapping` by the exact source header
    (a header_key match is accepted too). The first header that claims a field wins.
    """
    explicit = {header_key(k): v for k, v in column_mapping.items()}
    field_by_header: dict[str, str] = {}
    taken: set[str] = set()
    unmapped: list[str] = []
    for header in headers:
        key = header_key(header)
        target = column_mapping.get(header) or explicit.get(key) or aliases.get(key)
        if target and target not in taken:
            field_by_header[header] = target
            taken.add(target)
        else:
            unmapped.append(header)
    return HeaderMapping(field_by_header, unmapped)


@dataclass(frozen=True, slots=True)
class ImportScope:
    """The tenant and import a set-based statement works on, plus the staged row range."""

    data_import_id: str
    client_account_id: str
    engagement_id: str
    first_row: int
    last_row: int
    # False when `prepare` found no asset of the tenant carrying an external id: a range may
    # then skip matching its rows by external id (see inventory.upsert_assets).
    external_ids_known: bool = True


@dataclass(frozen=True, slots=True)
class EnrichCounts:
    assets_touched: int = 0
    dependencies_touched: int = 0


class ImportCategory(Protocol):
    """One import category. Adding a category = one package implementing this + one registry
    line. Its rules are columnar: `validate_frame` over a whole chunk (`dataimport.engine`)."""

    name: str
    aliases: Mapping[str, str]  # header_key(source header) -> field name
    # At least one of these must be mapped, or the file is refused (no-mapped-columns).
    required_fields: frozenset[str]
    # Category-specific validation agents, run after the common ones (see dataimport.agents).
    agents: Sequence[ValidationAgent]
    # For multi-sheet workbooks: which sheet is primary and which companions join it.
    sheet_plan: SheetPlan | None
    # True when cell values are sensitive: they are masked wherever they leave staging.
    masks_values: bool
    # The fields that identify a row (its asset): a malformed value there rejects the row, a
    # malformed value anywhere else is a warning and leaves that field empty.
    identifying_fields: frozenset[str]
    # Null tokens ("none", ...) that are values of a field rather than blanks, per field.
    literal_tokens: Mapping[str, frozenset[str]]
    # True when `asset.external_id` identifies an asset (a CMDB sys_id): of two valid rows of
    # one file with the same one, the last wins and the earlier is superseded.
    unique_external_ids: bool

    def validate_frame(self, frame: ChunkFrame, findings: Findings) -> FrameOutcome:
        """Validate and normalise a whole chunk: the normalised JSON text and natural key per
        row, issues added to `findings` as issue columns."""
        ...

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        """Key that identifies the same real-world thing twice in one file (duplicate-key)."""
        ...

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """Turn the valid staged rows of scope into inventory: set-based and idempotent."""
        ...

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """Second pass after all rows are enriched (dependencies between assets)."""
        ...
