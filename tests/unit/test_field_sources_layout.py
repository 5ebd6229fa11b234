"""The slot order of `assets.field_sources` is append-only and covers every recorded column."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

from dataimport import field_sources
from dataimport.inventory import ASSET_FIELDS
from dataimport.models import Asset

# Columns appended to FIELD_ORDER after the order migration 0012 stored (which is the frozen
# copy of everything before them): extend this when a column is appended, never edit it.
APPENDED_SINCE_0012: tuple[str, ...] = ()

# Asset columns that are no field an import sets: identity, tenant, lookup keys, bookkeeping.
UNTRACKED = {
    "id",
    "client_account_id",
    "engagement_id",
    "name_key",
    "hostname_key",
    "quality_score",
    "source_import_id",
    "created_by_import_id",
    "created_at",
    "updated_at",
    "field_sources",
}

# Every module whose statements record sources (each builds them at import time, and the
# helpers raise KeyError for a column without a slot).
WRITERS = (
    "dataimport.inventory",
    "dataimport.asset_resolution",
    "dataimport.categories.app_discovery.prepare",
    "dataimport.categories.infrastructure",
    "dataimport.categories.infrastructure.enrichment",
    "dataimport.categories.sensitive_data.enrichment",
)

MIGRATION = (
    Path(__file__).resolve().parents[2] / "migrations/versions/0012_compact_field_sources.py"
)


def _stored_by_0012() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("m0012", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.FIELD_ORDER)


def test_field_order_is_append_only() -> None:
    # no slot moved, renamed or dropped since the arrays were stored
    assert _stored_by_0012() + APPENDED_SINCE_0012 == field_sources.FIELD_ORDER
    assert len(set(field_sources.FIELD_ORDER)) == len(field_sources.FIELD_ORDER)


def test_every_asset_field_has_a_slot() -> None:
    columns = {column.name for column in Asset.__table__.columns}
    assert columns - UNTRACKED == set(field_sources.FIELD_ORDER)
    written = set(ASSET_FIELDS) - field_sources.KEYS
    assert written <= set(field_sources.FIELD_ORDER)


@pytest.mark.parametrize("module", WRITERS)
def test_writers_build_their_sources(module: str) -> None:
    assert importlib.import_module(module).field_sources is field_sources


def test_a_column_without_a_slot_is_refused() -> None:
    with pytest.raises(KeyError):
        field_sources.sources({"no_such_column": "true"})
    with pytest.raises(KeyError):
        field_sources.recorded("t.field_sources", {"no_such_column": "true"})


def test_sql_slots_follow_the_order() -> None:
    recorded = field_sources.recorded("t.fs", {"cpu_cores": "c", "name_key": "KEYCOND"})
    slot = field_sources.FIELD_ORDER.index("cpu_cores") + 1
    assert f"CASE WHEN c THEN CAST(:seq AS integer) ELSE t.fs[{slot}] END" in recorded
    assert f"t.fs[{len(field_sources.FIELD_ORDER)}]" in recorded and "KEYCOND" not in recorded
    # a new row stores no trailing never-set slots
    assert field_sources.sources({"name": "n"}) == (
        "CAST(ARRAY[CASE WHEN n THEN CAST(:seq AS integer) END] AS integer[])"
    )


def test_decode_names_the_set_slots() -> None:
    assert field_sources.decode(None) == {}
    assert field_sources.decode([4, None, 9]) == {"name": 4, "asset_type": 9}
