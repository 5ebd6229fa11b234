"""/api/v1/categories: each import category with the formats it accepts and the agents it runs."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from dataimport.api.errors import error_responses
from dataimport.api.tenant import ReadTenant, credential_of
from dataimport.category_catalog import catalog

router = APIRouter(
    prefix="/api/v1",
    tags=["categories"],
    dependencies=[Depends(credential_of)],
    responses=error_responses(401, 403),
)


class CategoryOut(BaseModel):
    name: str
    title: str
    description: str
    formats: list[str]
    fields: list[str]
    required_fields: list[str]
    agents: list[str]
    multi_sheet: bool
    masks_values: bool


class CategoryList(BaseModel):
    items: list[CategoryOut]


@router.get("/categories", response_model=CategoryList)
async def list_categories(_tenant: ReadTenant) -> CategoryList:
    """The registered import categories, in registry order."""
    return CategoryList(
        items=[CategoryOut.model_validate(info, from_attributes=True) for info in catalog()]
    )
