"""What each registered import category accepts and which agents it runs, read from the registry."""

from __future__ import annotations

from dataclasses import dataclass

from dataimport.agents import agent_names
from dataimport.categories import REGISTRY
from dataimport.categories.base import ImportCategory

# The readers recognise these from a file's bytes, whatever its category (readers.detect).
FILE_FORMATS = ("CSV", "XLSX", "JSON")


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    name: str
    title: str
    description: str
    formats: tuple[str, ...]
    fields: tuple[str, ...]
    required_fields: tuple[str, ...]
    agents: tuple[str, ...]
    multi_sheet: bool
    masks_values: bool


def fields_of(category: ImportCategory) -> list[str]:
    """Every field the category's alias table maps onto, alphabetical."""
    return sorted(set(category.aliases.values()))


def _describe(category: ImportCategory) -> CategoryInfo:
    doc = (type(category).__doc__ or "").strip().splitlines()
    return CategoryInfo(
        name=category.name,
        title=category.name.replace("_", " ").capitalize().replace("Cmdb", "CMDB"),
        description=doc[0] if doc else "",
        formats=FILE_FORMATS,
        fields=tuple(fields_of(category)),
        required_fields=tuple(sorted(category.required_fields)),
        agents=tuple(agent_names(category.masks_values, category.agents)),
        multi_sheet=category.sheet_plan is not None,
        masks_values=category.masks_values,
    )


def catalog() -> list[CategoryInfo]:
    """Every category in registry order."""
    return [_describe(category) for category in REGISTRY.values()]
