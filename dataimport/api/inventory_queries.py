"""Tenant-scoped, keyset-paginated reads of the inventory: assets, dependencies, groups.

Filters only ever add fixed SQL fragments; user text travels as bind parameters. Each read
fetches one row more than asked, to know whether there is a next page.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.api.errors import ApiError
from dataimport.api.schemas import AssetOut, DependencyGroupOut, DependencyOut
from dataimport.dependency_groups import GROUP_PREFIX, list_dependency_groups
from dataimport.imports import Tenant

_TENANT = "client_account_id = :c AND engagement_id = :e"


def encode_cursor(*values: object) -> str:
    raw = json.dumps([str(value) for value in values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != size:
        raise ApiError(422, "invalid-cursor", "cursor is not one this API handed out")
    return [str(value) for value in values]


def like(term: str) -> str:
    """A substring pattern for ILIKE with the user's own % and _ taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass
class Query:
    """WHERE conditions (fixed fragments) and their parameters."""

    conditions: list[str]
    params: dict[str, Any]

    def add(self, condition: str, **params: Any) -> None:
        self.conditions.append(condition)
        self.params.update(params)

    @property
    def where(self) -> str:
        return " AND ".join(self.conditions)


def tenant_query(tenant: Tenant, alias: str = "") -> Query:
    prefix = f"{alias}." if alias else ""
    conditions = [f"{prefix}client_account_id = :c", f"{prefix}engagement_id = :e"]
    return Query(conditions, tenant.params())


async def _rows(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).mappings())


# ----- assets -------------------------------------------------------------------------------

# An asset's group lives in dependency_group_members (one narrow row per grouped asset).
_ASSET_COLUMNS = ", ".join(
    f"'{GROUP_PREFIX}' || g.group_root AS dependency_group"
    if name == "dependency_group"
    else f"a.{name}"
    for name in AssetOut.model_fields
)
_ASSETS = "assets a LEFT JOIN dependency_group_members g ON g.asset_id = a.id"


@dataclass
class AssetFilter:
    asset_type: str | None = None
    environment: str | None = None
    dependency_group: str | None = None
    source_import_id: uuid.UUID | None = None
    search: str | None = None
    source_category: str | None = None  # the category of the import that last wrote it


def _asset_query(tenant: Tenant, filters: AssetFilter) -> Query:
    query = tenant_query(tenant, "a")
    for column in ("asset_type", "environment", "source_import_id"):
        value = getattr(filters, column)
        if value is not None:
            query.add(f"a.{column} = :{column}", **{column: value})
    if filters.dependency_group is not None:
        root = _group_root(filters.dependency_group)
        if root is None:
            query.add("false")  # not a group id this API hands out: no asset is in it
        else:
            query.add("g.group_root = :group_root", group_root=root)
    if filters.source_category is not None:
        query.add(
            "a.source_import_id IN (SELECT s.id FROM data_imports s WHERE s.import_category = "
            ":source_category AND s.client_account_id = :c AND s.engagement_id = :e)",
            source_category=filters.source_category,
        )
    if filters.search:
        query.add(
            "(a.name ILIKE :q OR a.hostname ILIKE :q OR a.fqdn ILIKE :q OR a.ip_address ILIKE :q)",
            q=like(filters.search),
        )
    return query


def _group_root(group: str) -> uuid.UUID | None:
    """The root asset id of a group id "G-<uuid>", or None for anything else."""
    if not group.startswith(GROUP_PREFIX):
        return None
    try:
        return uuid.UUID(group.removeprefix(GROUP_PREFIX))
    except ValueError:
        return None


async def list_assets(
    engine: AsyncEngine, tenant: Tenant, filters: AssetFilter, limit: int, cursor: str | None
) -> tuple[list[AssetOut], str | None]:
    """Assets by name (name_key is unique per tenant, so it is the keyset)."""
    query = _asset_query(tenant, filters)
    if cursor:
        query.add("a.name_key > :after", after=decode_cursor(cursor, 1)[0])
    rows = await _rows(
        engine,
        f"SELECT {_ASSET_COLUMNS}, a.name_key FROM {_ASSETS} WHERE {query.where} "
        "ORDER BY a.name_key LIMIT :n",
        {**query.params, "n": limit + 1},
    )
    page = rows[:limit]
    after = encode_cursor(page[-1]["name_key"]) if len(rows) > limit else None
    return [AssetOut.model_validate(dict(row)) for row in page], after


# ----- dependencies -------------------------------------------------------------------------

_DEPENDENCIES = """
SELECT x.id, x.source_asset_id, s.name AS source_name, x.target_asset_id, t.name AS target_name,
  x.dependency_type, x.port, x.protocol, x.conn_count, x.bytes_total, x.first_seen,
  x.last_seen, x.confidence, x.source_import_id
FROM asset_dependencies x
JOIN assets s ON s.id = x.source_asset_id
JOIN assets t ON t.id = x.target_asset_id
WHERE {where}
ORDER BY x.id LIMIT :n
"""


@dataclass
class DependencyFilter:
    asset_id: uuid.UUID | None = None
    dependency_type: str | None = None
    protocol: str | None = None
    port: int | None = None
    dependency_group: str | None = None  # both ends in this group (a move group's edges)


def _dependency_query(tenant: Tenant, filters: DependencyFilter) -> Query:
    query = tenant_query(tenant, "x")
    if filters.asset_id is not None:
        either_end = "(x.source_asset_id = :asset OR x.target_asset_id = :asset)"
        query.add(either_end, asset=filters.asset_id)
    if filters.dependency_type is not None:
        query.add("x.dependency_type = :dtype", dtype=filters.dependency_type)
    if filters.protocol is not None:
        query.add("lower(x.protocol) = lower(:protocol)", protocol=filters.protocol)
    if filters.port is not None:
        query.add("x.port = :port", port=filters.port)
    if filters.dependency_group is not None:
        root = _group_root(filters.dependency_group)
        if root is None:
            query.add("false")  # not a group id this API hands out
        else:
            # Groups are connected components: an edge with its source in one is inside it.
            query.add(
                "x.source_asset_id IN (SELECT m.asset_id FROM dependency_group_members m "
                "WHERE m.group_root = :group_root AND m.client_account_id = :c "
                "AND m.engagement_id = :e)",
                group_root=root,
            )
    return query


async def list_dependencies(
    engine: AsyncEngine,
    tenant: Tenant,
    filters: DependencyFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[DependencyOut], str | None]:
    """Dependencies with both endpoint names, in id order (the keyset)."""
    query = _dependency_query(tenant, filters)
    if cursor:
        query.add("x.id > :after", after=_uuid_cursor(cursor))
    sql = _DEPENDENCIES.format(where=query.where)
    rows = await _rows(engine, sql, {**query.params, "n": limit + 1})
    page = rows[:limit]
    after = encode_cursor(page[-1]["id"]) if len(rows) > limit else None
    return [DependencyOut.model_validate(dict(row)) for row in page], after


def _uuid_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(decode_cursor(cursor, 1)[0])
    except ValueError:
        raise ApiError(422, "invalid-cursor", "cursor is not one this API handed out") from None


# ----- dependency groups --------------------------------------------------------------------


async def list_groups(
    engine: AsyncEngine, tenant: Tenant, min_assets: int, limit: int, cursor: str | None
) -> tuple[list[DependencyGroupOut], str | None]:
    """Dependency groups (move-group candidates) as last refreshed, largest first."""
    after = None
    if cursor:
        size, group = decode_cursor(cursor, 2)
        if not size.isdigit():
            raise ApiError(422, "invalid-cursor", "cursor is not one this API handed out")
        after = (int(size), group)
    async with engine.connect() as conn:
        rows = await list_dependency_groups(
            conn,
            str(tenant.client_account_id),
            str(tenant.engagement_id),
            limit + 1,
            min_assets=min_assets,
            after=after,
        )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(page[-1]["assets"], page[-1]["group"])
    return [DependencyGroupOut.model_validate(dict(row)) for row in page], next_cursor
