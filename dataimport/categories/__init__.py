"""Registry of import categories: adding one is one module plus one line here."""

from __future__ import annotations

from dataimport.categories.base import ImportCategory
from dataimport.categories.cmdb_export import CATEGORY as CMDB_EXPORT

REGISTRY: dict[str, ImportCategory] = {
    CMDB_EXPORT.name: CMDB_EXPORT,
}


def get_category(name: str) -> ImportCategory:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown import category {name!r} (known: {known})") from None
