"""/api/v1/assets, /dependencies, /dependency-groups: the tenant's inventory, keyset-paginated."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from dataimport.api import inventory_queries as queries
from dataimport.api.errors import ApiError, error_responses
from dataimport.api.schemas import AssetDetail, AssetOut, DependencyGroupOut, DependencyOut, Page
from dataimport.api.tenant import ReadTenant, credential_of

router = APIRouter(
    prefix="/api/v1",
    tags=["inventory"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(400, 401, 403, 422),
)

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page.")]


@router.get("/assets", response_model=Page[AssetOut])
async def list_assets(
    request: Request,
    tenant: ReadTenant,
    limit: Limit = 100,
    cursor: Cursor = None,
    asset_type: Annotated[str | None, Query(description="e.g. server, virtual_machine")] = None,
    environment: Annotated[str | None, Query(description="e.g. production")] = None,
    dependency_group: Annotated[str | None, Query(description="e.g. G-<uuid>")] = None,
    source_import_id: Annotated[uuid.UUID | None, Query()] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Substring of name, host, FQDN or IP.")
    ] = None,
    source_category: Annotated[
        str | None, Query(description="Category of the import that last wrote the asset.")
    ] = None,
) -> Page[AssetOut]:
    """The tenant's assets, by name."""
    filters = queries.AssetFilter(
        asset_type, environment, dependency_group, source_import_id, q, source_category
    )
    engine = request.app.state.engine
    items, after = await queries.list_assets(engine, tenant, filters, limit, cursor)
    return Page[AssetOut](items=items, next_cursor=after)


@router.get("/assets/{asset_id}", response_model=AssetDetail, responses=error_responses(404))
async def get_asset(request: Request, tenant: ReadTenant, asset_id: uuid.UUID) -> AssetDetail:
    """One asset, each of its fields with the import that last set it."""
    found = await queries.get_asset(request.app.state.engine, tenant, asset_id)
    if found is None:
        # The same words for an unknown id and another tenant's: nothing leaks across tenants.
        raise ApiError(404, "asset-not-found", f"no asset {asset_id}")
    return found


@router.get("/dependencies", response_model=Page[DependencyOut])
async def list_dependencies(
    request: Request,
    tenant: ReadTenant,
    limit: Limit = 100,
    cursor: Cursor = None,
    asset_id: Annotated[uuid.UUID | None, Query(description="Either end is this asset.")] = None,
    dependency_type: Annotated[str | None, Query(description="e.g. declared, observed")] = None,
    protocol: Annotated[str | None, Query(description="e.g. tcp")] = None,
    port: Annotated[int | None, Query(ge=0, le=65535)] = None,
    dependency_group: Annotated[
        str | None, Query(description="Only edges inside this group, e.g. G-<uuid>.")
    ] = None,
) -> Page[DependencyOut]:
    """The tenant's asset dependencies, with both endpoint names."""
    filters = queries.DependencyFilter(asset_id, dependency_type, protocol, port, dependency_group)
    engine = request.app.state.engine
    items, after = await queries.list_dependencies(engine, tenant, filters, limit, cursor)
    return Page[DependencyOut](items=items, next_cursor=after)


@router.get("/dependency-groups", response_model=Page[DependencyGroupOut])
async def list_dependency_groups(
    request: Request,
    tenant: ReadTenant,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_assets: Annotated[int, Query(ge=1, description="Only groups at least this big.")] = 1,
) -> Page[DependencyGroupOut]:
    """Dependency groups (connected components): move-group candidates, largest first."""
    engine = request.app.state.engine
    items, after = await queries.list_groups(engine, tenant, min_assets, limit, cursor)
    return Page[DependencyGroupOut](items=items, next_cursor=after)
