"""The first staged rows of an import as a proposed column_mapping would map them.

Read-only: nothing is saved; the retry decision carries the mapping. Values of categories
that mask values are masked here too (invariant 7).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport import pii
from dataimport.categories import get_category
from dataimport.categories.base import map_headers
from dataimport.import_report import shown_headers
from dataimport.imports import Tenant
from dataimport.models import DataImport, RawImportRecord
from dataimport.tenant_scope import where_tenant

PREVIEW_ROWS = 5


@dataclass
class MappingPreview:
    field_by_header: dict[str, str]
    unmapped_headers: list[str]
    fields: list[str]  # the mapped fields, in header order
    rows: list[dict[str, Any]]  # {"row": n, "values": {field: cell}}


async def preview_mapping(
    engine: AsyncEngine,
    tenant: Tenant,
    data_import_id: uuid.UUID,
    column_mapping: dict[str, str],
    limit: int = PREVIEW_ROWS,
) -> MappingPreview | None:
    """None when the import is unknown to this tenant."""
    the_import = select(DataImport.import_category, DataImport.detected_format).where(
        DataImport.id == data_import_id, where_tenant(DataImport, tenant)
    )
    first_rows = (
        select(RawImportRecord.row_number, RawImportRecord.raw_data)
        .where(
            RawImportRecord.data_import_id == data_import_id,
            where_tenant(RawImportRecord, tenant),
            ~RawImportRecord.is_blank,
        )
        .order_by(RawImportRecord.row_number)
        .limit(limit)
    )
    async with engine.connect() as conn:
        found = (await conn.execute(the_import)).first()
        if found is None:
            return None
        staged = list(await conn.execute(first_rows))
    category = get_category(found.import_category)
    headers = list((found.detected_format or {}).get("headers", []))
    mapping = map_headers(headers, category.aliases, column_mapping)
    rows = []
    for row_number, raw in staged:
        cells = pii.mask_record(raw) if category.masks_values else raw
        values = {
            target: cells.get(header, "") for header, target in mapping.field_by_header.items()
        }
        rows.append({"row": row_number, "values": values})
    unmapped = shown_headers(category.name, mapping.unmapped_headers, column_mapping)
    return MappingPreview(
        field_by_header=mapping.field_by_header,
        unmapped_headers=unmapped,
        fields=list(mapping.field_by_header.values()),
        rows=rows,
    )
