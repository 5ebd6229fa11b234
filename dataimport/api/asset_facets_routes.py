"""/api/v1/asset-facets: the asset types and environments the tenant's inventory holds (filters)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import CompoundSelect, Select, literal, select, union_all
from sqlalchemy.orm import InstrumentedAttribute

from dataimport.api.errors import error_responses
from dataimport.api.tenant import ReadTenant, credential_of
from dataimport.imports import Tenant
from dataimport.models import Asset
from dataimport.tenant_scope import where_tenant

router = APIRouter(
    prefix="/api/v1",
    tags=["inventory"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(400, 401, 403),
)


def _facet(tenant: Tenant, column: InstrumentedAttribute[Any]) -> Select[str, Any]:
    """The distinct non-NULL values of one column of the tenant's assets."""
    return (
        select(literal(column.key).label("facet"), column.label("value"))
        .where(where_tenant(Asset, tenant), column.is_not(None))
        .group_by(column)
    )


def _facets(tenant: Tenant) -> CompoundSelect[str, Any]:
    # Two small DISTINCTs over the tenant's assets (the tenant index leads both).
    both = union_all(_facet(tenant, Asset.asset_type), _facet(tenant, Asset.environment))
    return both.order_by(both.selected_columns.facet, both.selected_columns.value)


class AssetFacets(BaseModel):
    asset_types: list[str]
    environments: list[str]


@router.get("/asset-facets", response_model=AssetFacets)
async def asset_facets(request: Request, tenant: ReadTenant) -> AssetFacets:
    """Values to filter the asset list by."""
    async with request.app.state.engine.connect() as conn:
        rows = list(await conn.execute(_facets(tenant)))
    return AssetFacets(
        asset_types=[value for facet, value in rows if facet == "asset_type"],
        environments=[value for facet, value in rows if facet == "environment"],
    )
