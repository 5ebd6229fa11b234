"""/api/v1/asset-facets: the asset types and environments the tenant's inventory holds (filters)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import text

from dataimport.api.errors import error_responses
from dataimport.api.tenant import ReadTenant, credential_of

router = APIRouter(
    prefix="/api/v1",
    tags=["inventory"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(400, 401, 403),
)

# Two small DISTINCTs over the tenant's assets (the tenant index leads both).
_FACETS = """
SELECT 'asset_type' AS facet, asset_type AS value FROM assets
  WHERE client_account_id = :c AND engagement_id = :e GROUP BY asset_type
UNION ALL
SELECT 'environment', environment FROM assets
  WHERE client_account_id = :c AND engagement_id = :e AND environment IS NOT NULL
  GROUP BY environment
ORDER BY 1, 2
"""


class AssetFacets(BaseModel):
    asset_types: list[str]
    environments: list[str]


@router.get("/asset-facets", response_model=AssetFacets)
async def asset_facets(request: Request, tenant: ReadTenant) -> AssetFacets:
    """Values to filter the asset list by."""
    async with request.app.state.engine.connect() as conn:
        rows = list(await conn.execute(text(_FACETS), tenant.params()))
    return AssetFacets(
        asset_types=[value for facet, value in rows if facet == "asset_type"],
        environments=[value for facet, value in rows if facet == "environment"],
    )
