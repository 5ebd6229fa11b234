"""sensitive_data enrichment SQL: stores merged onto their hosts (see the package docstring)."""

from __future__ import annotations

from dataimport import pii

# --- enrichment --------------------------------------------------------------------------

_LEVELS = "ARRAY[" + ", ".join(f"'{level}'" for level in pii.CLASSIFICATIONS) + "]"
_TENANT = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"

_STAGED = """
SELECT r.asset_id, r.row_number AS ord, r.normalized_data -> 'store' AS e
FROM raw_import_records r
WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.client_account_id = CAST(:c AS uuid) AND r.engagement_id = CAST(:e AS uuid)
  AND r.is_valid AND NOT r.superseded AND r.asset_id IS NOT NULL
  AND jsonb_typeof(r.normalized_data -> 'store') = 'object'
"""

# Ranges of one import run in parallel and may touch the same host: lock the range's assets
# in id order first, so that the merge below reads what the other range committed (its
# statement snapshot starts after the lock) and two ranges never deadlock.
_LOCK_ASSETS = f"""
SELECT t.id FROM assets t
WHERE {_TENANT} AND t.id IN (SELECT s.asset_id FROM ({_STAGED}) s)
ORDER BY t.id FOR UPDATE
"""


def _elements(expression: str) -> str:
    """Text elements of a JSON array expression; nothing for null or a non-array."""
    return (
        f"jsonb_array_elements_text(CASE WHEN jsonb_typeof({expression}) = 'array' "
        f"THEN {expression} ELSE '[]'::jsonb END)"
    )


def _union_of_lists(aggregate: str) -> str:
    """Sorted distinct union of the JSON arrays collected by `aggregate` (an array of arrays)."""
    return (
        f"(SELECT coalesce(jsonb_agg(DISTINCT v.x ORDER BY v.x), '[]'::jsonb) "
        f"FROM jsonb_array_elements({aggregate}) AS l(arr) "
        f"CROSS JOIN LATERAL {_elements('l.arr')} AS v(x))"
    )


def _latest(field: str) -> str:
    """The field's value from the latest row that has one (staged rows before older entries)."""
    value = f"p.e ->> '{field}'"
    return f"(array_agg({value} ORDER BY p.ord DESC) FILTER (WHERE {value} IS NOT NULL))[1]"


_TEXT_FIELDS = ("store", "store_type", "database", "schema", "table", "owner", "location")
_LIST_FIELDS = ("columns", "data_categories", "compliance_scopes", "pii_categories")


def _merged_entry() -> str:
    pairs = [
        "'key', p.e ->> 'key'",
        *(f"'{field}', {_latest(field)}" for field in _TEXT_FIELDS),
        *(
            f"'{field}', {_union_of_lists(f'jsonb_agg(p.e -> {field!r})')}"
            for field in _LIST_FIELDS
        ),
        f"'classification', ({_LEVELS})[max(array_position({_LEVELS}, p.e ->> 'classification'))]",
        "'encryption_at_rest', bool_and(CAST(p.e ->> 'encryption_at_rest' AS boolean))",
        "'encryption_in_transit', bool_and(CAST(p.e ->> 'encryption_in_transit' AS boolean))",
        "'record_count', max(CAST(p.e ->> 'record_count' AS bigint))",
        "'import_id', CAST(:id AS text)",
    ]
    return "jsonb_build_object(\n    " + ",\n    ".join(pairs) + ")"


def _asset_union(column: str, incoming: str) -> str:
    return (
        f"coalesce((SELECT jsonb_agg(DISTINCT u.x ORDER BY u.x) FROM ("
        f"SELECT {_elements(f't.{column}')} AS x UNION ALL "
        f"SELECT v.x FROM jsonb_array_elements({incoming}) AS l(arr) "
        f"CROSS JOIN LATERAL {_elements('l.arr')} AS v(x)) u), t.{column})"
    )


_MERGE_SENSITIVITY = f"""
WITH staged AS ({_STAGED}),
existing AS (
  SELECT t.id AS asset_id, x.e FROM assets t
  CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(t.data_stores) = 'array' THEN t.data_stores ELSE '[]'::jsonb END
  ) AS x(e)
  WHERE {_TENANT} AND t.id IN (SELECT asset_id FROM staged)
),
-- This range's rows, plus what this import already wrote for the same store from another
-- range; an entry from an earlier import is not merged: it is replaced.
parts AS (
  SELECT asset_id, ord, e FROM staged
  UNION ALL
  SELECT x.asset_id, 0, x.e FROM existing x
  WHERE x.e ->> 'import_id' = CAST(:id AS text) AND EXISTS (
    SELECT 1 FROM staged s WHERE s.asset_id = x.asset_id AND s.e ->> 'key' = x.e ->> 'key')
),
merged AS (
  SELECT p.asset_id, p.e ->> 'key' AS key, {_merged_entry()} AS entry
  FROM parts p GROUP BY p.asset_id, p.e ->> 'key'
),
kept AS (
  SELECT x.asset_id, x.e AS entry FROM existing x
  WHERE NOT EXISTS (
    SELECT 1 FROM merged m WHERE m.asset_id = x.asset_id AND m.key = x.e ->> 'key')
),
stores AS (
  SELECT a.asset_id, jsonb_agg(a.entry ORDER BY a.entry ->> 'key') AS data_stores,
    bool_and(CAST(a.entry ->> 'encryption_at_rest' AS boolean)) AS at_rest,
    bool_and(CAST(a.entry ->> 'encryption_in_transit' AS boolean)) AS in_transit
  FROM (SELECT asset_id, entry FROM merged UNION ALL SELECT asset_id, entry FROM kept) a
  GROUP BY a.asset_id
),
incoming AS (
  SELECT asset_id, max(array_position({_LEVELS}, e ->> 'classification')) AS level,
    jsonb_agg(e -> 'compliance_scopes') AS scopes, jsonb_agg(e -> 'pii_categories') AS pii
  FROM staged GROUP BY asset_id
)
UPDATE assets t SET
  data_classification = coalesce(
    ({_LEVELS})[GREATEST(array_position({_LEVELS}, t.data_classification), i.level)],
    t.data_classification),
  compliance_scopes = {_asset_union("compliance_scopes", "i.scopes")},
  pii_categories = {_asset_union("pii_categories", "i.pii")},
  encryption_at_rest = coalesce(s.at_rest, t.encryption_at_rest),
  encryption_in_transit = coalesce(s.in_transit, t.encryption_in_transit),
  data_stores = s.data_stores,
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM stores s JOIN incoming i ON i.asset_id = s.asset_id
WHERE t.id = s.asset_id AND {_TENANT}
"""

_MARK_PROCESSED = """
UPDATE raw_import_records r SET is_processed = true
WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.is_valid AND NOT r.superseded AND r.asset_id IS NOT NULL
"""
