"""Registry of import categories: adding one is one package plus one line here."""

from __future__ import annotations

from dataimport.categories.app_discovery import CATEGORY as APP_DISCOVERY
from dataimport.categories.base import ImportCategory
from dataimport.categories.cmdb_export import CATEGORY as CMDB_EXPORT
from dataimport.categories.infrastructure import CATEGORY as INFRASTRUCTURE
from dataimport.categories.sensitive_data import CATEGORY as SENSITIVE_DATA

REGISTRY: dict[str, ImportCategory] = {
    CMDB_EXPORT.name: CMDB_EXPORT,
    APP_DISCOVERY.name: APP_DISCOVERY,
    INFRASTRUCTURE.name: INFRASTRUCTURE,
    SENSITIVE_DATA.name: SENSITIVE_DATA,
}


def get_category(name: str) -> ImportCategory:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown import category {name!r} (known: {known})") from None
