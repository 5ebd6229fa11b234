"""Tenant-scoped, keyset-paginated reads of the inventory: assets, dependencies, groups.

Statements are built from the typed models (dataimport.models); user text travels as bind
parameters. Each read fetches one row more than asked, to know whether there is a next page.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Executable, Text, cast, false, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from dataimport import field_sources
from dataimport.api.errors import ApiError
from dataimport.api.schemas import (
    AssetDetail,
    AssetOut,
    DependencyGroupOut,
    DependencyOut,
    FieldSource,
)
from dataimport.dependency_groups import GROUP_PREFIX, list_dependency_groups
from dataimport.imports import Tenant
from dataimport.models import Asset, AssetDependency, DataImport, DependencyGroupMember
from dataimport.tenant_scope import where_tenant


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


async def _rows(engine: AsyncEngine, stmt: Executable) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).mappings())


def _group_root(group: str) -> uuid.UUID | None:
    """The root asset id of a group id "G-<uuid>", or None for anything else."""
    if not group.startswith(GROUP_PREFIX):
        return None
    try:
        return uuid.UUID(group.removeprefix(GROUP_PREFIX))
    except ValueError:
        return None


# ----- assets -------------------------------------------------------------------------------

# An asset's group lives in dependency_group_members (one narrow row per grouped asset);
# NULL for an ungrouped asset ('G-' || NULL).
_GROUP_ID = (literal(GROUP_PREFIX, Text) + cast(DependencyGroupMember.group_root, Text)).label(
    "dependency_group"
)
_ASSET_COLUMNS = [
    _GROUP_ID if name == "dependency_group" else getattr(Asset, name)
    for name in AssetOut.model_fields
]


@dataclass
class AssetFilter:
    asset_type: str | None = None
    environment: str | None = None
    dependency_group: str | None = None
    source_import_id: uuid.UUID | None = None
    search: str | None = None
    source_category: str | None = None  # the category of the import that last wrote it


def _asset_conditions(tenant: Tenant, filters: AssetFilter) -> list[ColumnElement[bool]]:
    conditions = [where_tenant(Asset, tenant)]
    if filters.asset_type is not None:
        conditions.append(Asset.asset_type == filters.asset_type)
    if filters.environment is not None:
        conditions.append(Asset.environment == filters.environment)
    if filters.source_import_id is not None:
        conditions.append(Asset.source_import_id == filters.source_import_id)
    if filters.dependency_group is not None:
        root = _group_root(filters.dependency_group)
        # Not a group id this API hands out: no asset is in it.
        conditions.append(false() if root is None else DependencyGroupMember.group_root == root)
    if filters.source_category is not None:
        imports_of_category = select(DataImport.id).where(
            DataImport.import_category == filters.source_category,
            where_tenant(DataImport, tenant),
        )
        conditions.append(Asset.source_import_id.in_(imports_of_category))
    if filters.search:
        # autoescape: the user's own % and _ match literally.
        conditions.append(
            or_(
                *(
                    column.icontains(filters.search, autoescape=True)
                    for column in (Asset.name, Asset.hostname, Asset.fqdn, Asset.ip_address)
                )
            )
        )
    return conditions


async def list_assets(
    engine: AsyncEngine,
    tenant: Tenant,
    filters: AssetFilter,
    limit: int,
    cursor: str | None,
    *,
    with_sources: bool = False,
) -> tuple[list[AssetOut], str | None]:
    """Assets by name (name_key is unique per tenant, so it is the keyset); `with_sources`:
    each with the import that last set each of its fields (one more query per page)."""
    conditions = _asset_conditions(tenant, filters)
    if cursor:
        conditions.append(Asset.name_key > decode_cursor(cursor, 1)[0])
    stmt = (
        select(*_ASSET_COLUMNS, Asset.name_key, Asset.field_sources)
        .outerjoin(DependencyGroupMember, DependencyGroupMember.asset_id == Asset.id)
        .where(*conditions)
        .order_by(Asset.name_key)
        .limit(limit + 1)
    )
    async with engine.connect() as conn:
        rows = list((await conn.execute(stmt)).mappings())
        page = rows[:limit]
        imports = await _imports_by_seq(conn, tenant, page) if with_sources else {}
    after = encode_cursor(page[-1]["name_key"]) if len(rows) > limit else None
    if not with_sources:
        return [AssetOut.model_validate(dict(row)) for row in page], after
    return [_detail(row, imports) for row in page], after


async def get_asset(engine: AsyncEngine, tenant: Tenant, asset_id: uuid.UUID) -> AssetDetail | None:
    """One asset of the tenant with the import that last set each of its fields."""
    stmt = (
        select(*_ASSET_COLUMNS, Asset.field_sources)
        .outerjoin(DependencyGroupMember, DependencyGroupMember.asset_id == Asset.id)
        .where(where_tenant(Asset, tenant), Asset.id == asset_id)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).mappings().one_or_none()
        if row is None:
            return None
        return _detail(row, await _imports_by_seq(conn, tenant, [row]))


async def _imports_by_seq(
    conn: AsyncConnection, tenant: Tenant, rows: list[Any]
) -> dict[int, FieldSource]:
    """The tenant's imports the rows' field_sources name, by seq (one indexed lookup)."""
    seqs = {seq for row in rows for seq in field_sources.decode(row["field_sources"]).values()}
    if not seqs:
        return {}
    stmt = select(
        DataImport.seq,
        DataImport.id.label("data_import_id"),
        DataImport.filename,
        DataImport.import_category.label("category"),
        DataImport.completed_at.label("finished_at"),
    ).where(where_tenant(DataImport, tenant), DataImport.seq.in_(sorted(seqs)))
    return {
        found["seq"]: FieldSource.model_validate(dict(found))
        for found in (await conn.execute(stmt)).mappings()
    }


def _detail(row: Any, imports: dict[int, FieldSource]) -> AssetDetail:
    # A seq no import of the tenant has any more (its import was deleted) reads as null.
    recorded = field_sources.decode(row["field_sources"])
    sources = {field: imports.get(seq) for field, seq in sorted(recorded.items())}
    values = {key: value for key, value in row.items() if key in AssetOut.model_fields}
    return AssetDetail.model_validate({**values, "field_sources": sources})


# ----- dependencies -------------------------------------------------------------------------

_SOURCE = aliased(Asset, name="s")
_TARGET = aliased(Asset, name="t")


@dataclass
class DependencyFilter:
    asset_id: uuid.UUID | None = None
    dependency_type: str | None = None
    protocol: str | None = None
    port: int | None = None
    dependency_group: str | None = None  # both ends in this group (a move group's edges)


def _dependency_conditions(tenant: Tenant, filters: DependencyFilter) -> list[ColumnElement[bool]]:
    edge = AssetDependency
    conditions = [where_tenant(edge, tenant)]
    if filters.asset_id is not None:
        conditions.append(
            or_(edge.source_asset_id == filters.asset_id, edge.target_asset_id == filters.asset_id)
        )
    if filters.dependency_type is not None:
        conditions.append(edge.dependency_type == filters.dependency_type)
    if filters.protocol is not None:
        conditions.append(func.lower(edge.protocol) == func.lower(filters.protocol))
    if filters.port is not None:
        conditions.append(edge.port == filters.port)
    if filters.dependency_group is not None:
        root = _group_root(filters.dependency_group)
        if root is None:
            conditions.append(false())  # not a group id this API hands out
        else:
            # Groups are connected components: an edge with its source in one is inside it.
            members = select(DependencyGroupMember.asset_id).where(
                DependencyGroupMember.group_root == root,
                where_tenant(DependencyGroupMember, tenant),
            )
            conditions.append(edge.source_asset_id.in_(members))
    return conditions


async def list_dependencies(
    engine: AsyncEngine,
    tenant: Tenant,
    filters: DependencyFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[DependencyOut], str | None]:
    """Dependencies with both endpoint names, in id order (the keyset)."""
    edge = AssetDependency
    conditions = _dependency_conditions(tenant, filters)
    if cursor:
        conditions.append(edge.id > _uuid_cursor(cursor))
    stmt = (
        select(
            edge.id,
            edge.source_asset_id,
            _SOURCE.name.label("source_name"),
            edge.target_asset_id,
            _TARGET.name.label("target_name"),
            edge.dependency_type,
            edge.port,
            edge.protocol,
            edge.conn_count,
            edge.bytes_total,
            edge.first_seen,
            edge.last_seen,
            edge.confidence,
            edge.source_import_id,
        )
        .join(_SOURCE, _SOURCE.id == edge.source_asset_id)
        .join(_TARGET, _TARGET.id == edge.target_asset_id)
        .where(*conditions)
        .order_by(edge.id)
        .limit(limit + 1)
    )
    rows = await _rows(engine, stmt)
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
