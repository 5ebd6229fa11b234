"""sensitive_data enrichment SQL: stores merged onto their hosts (see the package docstring).

Set-based on typed temporary tables (dropped at commit), hash joins only (nested and merge
joins off: statistics of fresh temp tables and of a tenant that just grew are useless):

1. `STORE_ROWS`: the scope's staged stores, each row's JSONB read once, its host from the
   resolver's temp tables (`asset_resolution.RESOLVED`);
2. `LOCKED`: their hosts locked in id order, with the stores they hold now (the lock comes
   first, so what another transaction committed on them is what is read);
3. `EXISTING`: those stores, one row per entry, typed; what this import already wrote for a
   store of the scope joins `STORE_ROWS` as its oldest part (an entry from an earlier import
   is replaced, not merged);
4. `INCOMING`: per host the most restrictive classification and the distinct scopes and PII
   categories of the scope's rows;
5. one UPDATE of the hosts: one entry per (host, store key) — a part alone is its own entry,
   the parts of a group merged — plus the host's other entries, classification, scopes, PII,
   encryption (the entries are built as they are aggregated, never stored in between).

A prepared import merges all its rows once (in `prepare`, before the ranges: a host whose
stores span many ranges is written once, and ranges never wait on each other's locks); its
ranges then only link their rows to their hosts. Merging per range (an unprepared import)
gives the same result when the ranges run in row order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import field_sources, pii
from dataimport.asset_resolution import RESOLVED, scope_params
from dataimport.categories.base import ImportScope
from dataimport.planner import planner

_LEVELS = "ARRAY[" + ", ".join(f"'{level}'" for level in pii.CLASSIFICATIONS) + "]"
_TENANT = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"
_HASH_ONLY = {"enable_nestloop": "off", "enable_mergejoin": "off", "work_mem": "64MB"}

STORE_ROWS = "sensitive_store_rows"
LOCKED = "sensitive_locked_assets"
EXISTING = "sensitive_existing_stores"

_TEXT_FIELDS = ("store", "store_type", "database", "schema", "table", "owner", "location")
_LIST_FIELDS = ("columns", "data_categories", "compliance_scopes", "pii_categories")


def _typed(entry: str) -> str:
    """The typed columns of a data_stores entry (JSON object expression `entry`), read with
    the casts the merge always used."""
    return ",\n  ".join(
        [
            f"{entry} ->> 'key' AS key",
            *(f'{entry} ->> {field!r} AS "{field}"' for field in _TEXT_FIELDS),
            *(f'{entry} -> {field!r} AS "{field}"' for field in _LIST_FIELDS),
            f"array_position({_LEVELS}, {entry} ->> 'classification') AS level",
            f"CAST({entry} ->> 'encryption_at_rest' AS boolean) AS at_rest",
            f"CAST({entry} ->> 'encryption_in_transit' AS boolean) AS in_transit",
            f"CAST({entry} ->> 'record_count' AS bigint) AS record_count",
        ]
    )


_COLUMNS = ", ".join(
    [
        "key",
        *(f'"{f}"' for f in (*_TEXT_FIELDS, *_LIST_FIELDS)),
        *("level", "at_rest", "in_transit", "record_count"),
    ]
)

# `staged`: a row of the scope (else an entry this import already wrote, see _ADD_WRITTEN).
_STORE_ROWS_SELECT = f"""
SELECT m.asset_id, r.row_number AS ord, true AS staged,
  {_typed("s.store")}
FROM raw_import_records r
JOIN ({RESOLVED}) m ON m.rid = r.id
CROSS JOIN LATERAL jsonb_to_record(r.normalized_data) AS s(store jsonb)
WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.client_account_id = CAST(:c AS uuid) AND r.engagement_id = CAST(:e AS uuid)
  AND r.is_valid AND NOT r.superseded AND jsonb_typeof(s.store) = 'object'
"""

# Locked in id order (no deadlock with another transaction merging onto the same hosts).
_LOCKED_SELECT = f"""
SELECT t.id AS asset_id, t.data_stores FROM assets t
JOIN (SELECT DISTINCT asset_id FROM {STORE_ROWS}) x ON x.asset_id = t.id
WHERE {_TENANT}
ORDER BY t.id FOR UPDATE OF t
"""

_EXISTING_SELECT = f"""
SELECT l.asset_id, x.e, x.e ->> 'key' AS key, x.e ->> 'import_id' AS import_id,
  CAST(x.e ->> 'encryption_at_rest' AS boolean) AS at_rest,
  CAST(x.e ->> 'encryption_in_transit' AS boolean) AS in_transit
FROM {LOCKED} l
CROSS JOIN LATERAL jsonb_array_elements(
  CASE WHEN jsonb_typeof(l.data_stores) = 'array' THEN l.data_stores ELSE '[]'::jsonb END
) AS x(e)
"""

# What this import already wrote for a store of the scope (another range, an earlier
# attempt) is merged with the scope's rows, as the oldest part; an entry from an earlier
# import is not merged: it is replaced.
_ADD_WRITTEN = f"""
INSERT INTO {STORE_ROWS}
SELECT x.asset_id, 0 AS ord, false AS staged, {_typed("x.e")} FROM {EXISTING} x
WHERE x.import_id = CAST(:id AS text)
  AND (x.asset_id, x.key) IN (SELECT asset_id, key FROM {STORE_ROWS})
"""

# The (host, store key) groups of more than one part (NULL keys alike, as GROUP BY groups
# them); every other part is a whole entry by itself.
MULTI = "sensitive_multi_part_stores"
_MULTI_SELECT = f"""
SELECT asset_id, coalesce(key, '') AS k, key IS NULL AS no_key FROM {STORE_ROWS}
GROUP BY asset_id, coalesce(key, ''), key IS NULL HAVING count(*) > 1
"""
_IN_MULTI = f"""EXISTS (SELECT 1 FROM {MULTI} g WHERE g.asset_id = p.asset_id
    AND g.k = coalesce(p.key, '') AND g.no_key = (p.key IS NULL))"""


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


def _sorted_distinct(array: str) -> str:
    """`_union_of_lists` of one array: its sorted distinct text elements. An empty array, or
    one of a single string, is that already (no sort)."""
    return (
        f"CASE WHEN jsonb_typeof({array}) IS DISTINCT FROM 'array' THEN '[]'::jsonb "
        f"WHEN jsonb_array_length({array}) = 0 THEN {array} "
        f"WHEN jsonb_array_length({array}) = 1 AND jsonb_typeof({array} -> 0) = 'string' "
        f"THEN {array} "
        f"ELSE (SELECT coalesce(jsonb_agg(DISTINCT v.x ORDER BY v.x), '[]'::jsonb) "
        f"FROM jsonb_array_elements_text({array}) AS v(x)) END"
    )


def _latest(field: str) -> str:
    """The field's value from the latest row that has one (staged rows before older entries)."""
    value = f'p."{field}"'
    return f"(array_agg({value} ORDER BY p.ord DESC) FILTER (WHERE {value} IS NOT NULL))[1]"


def _entry(
    text_value: Callable[[str], str], list_value: Callable[[str], str], aggregate: bool
) -> str:
    pairs = [
        "'key', p.key",
        *(f"'{field}', {text_value(field)}" for field in _TEXT_FIELDS),
        *(f"'{field}', {list_value(field)}" for field in _LIST_FIELDS),
        f"'classification', ({_LEVELS})[{'max(p.level)' if aggregate else 'p.level'}]",
        f"'encryption_at_rest', {'bool_and(p.at_rest)' if aggregate else 'p.at_rest'}",
        f"'encryption_in_transit', {'bool_and(p.in_transit)' if aggregate else 'p.in_transit'}",
        f"'record_count', {'max(p.record_count)' if aggregate else 'p.record_count'}",
        "'import_id', CAST(:id AS text)",
    ]
    return "jsonb_build_object(\n    " + ",\n    ".join(pairs) + ")"


# One entry per (host, store key): a part alone is its own entry (the common case: one row
# per table); the parts of a group are merged: each text field from the latest part that has
# one, lists united (sorted, distinct), the most restrictive classification, encrypted only
# if every part says so, the largest record count.
_MERGED_SELECT = f"""
SELECT p.asset_id, p.key, p.at_rest, p.in_transit,
  {_entry(lambda f: f'p."{f}"', lambda f: _sorted_distinct(f"p.{f}"), aggregate=False)} AS entry
FROM {STORE_ROWS} p WHERE NOT {_IN_MULTI}
UNION ALL
SELECT p.asset_id, p.key, bool_and(p.at_rest), bool_and(p.in_transit),
  {_entry(_latest, lambda f: _union_of_lists(f"jsonb_agg(p.{f})"), aggregate=True)}
FROM {STORE_ROWS} p WHERE {_IN_MULTI}
GROUP BY p.asset_id, p.key
"""

# The distinct incoming compliance scopes and PII categories per host, as one array each.
INCOMING = "sensitive_incoming"
_INCOMING_SELECT = f"""
WITH items AS (
  SELECT DISTINCT p.asset_id, l.list, v.x
  FROM {STORE_ROWS} p
  CROSS JOIN LATERAL (VALUES (1, p.compliance_scopes), (2, p.pii_categories)) AS l(list, arr)
  CROSS JOIN LATERAL {_elements("l.arr")} AS v(x)
  WHERE p.staged
),
lists AS (
  SELECT asset_id,
    jsonb_agg(x ORDER BY x) FILTER (WHERE list = 1) AS scopes,
    jsonb_agg(x ORDER BY x) FILTER (WHERE list = 2) AS pii
  FROM items GROUP BY asset_id
)
SELECT a.asset_id, a.level, coalesce(l.scopes, '[]'::jsonb) AS scopes,
  coalesce(l.pii, '[]'::jsonb) AS pii, a.at_rest_known, a.in_transit_known
FROM (
  SELECT asset_id, max(level) AS level, bool_or(at_rest IS NOT NULL) AS at_rest_known,
    bool_or(in_transit IS NOT NULL) AS in_transit_known
  FROM {STORE_ROWS} WHERE staged GROUP BY asset_id
) a
LEFT JOIN lists l ON l.asset_id = a.asset_id
"""


def _asset_union(column: str, incoming: str) -> str:
    """The asset's list united with the incoming distinct list (sorted, distinct)."""
    return (
        f"coalesce((SELECT jsonb_agg(DISTINCT u.x ORDER BY u.x) FROM ("
        f"SELECT {_elements(f't.{column}')} AS x UNION ALL "
        f"SELECT v.x FROM jsonb_array_elements_text({incoming}) AS v(x)) u), t.{column})"
    )


# What the hosts' rows set: the most restrictive classification when theirs is at least the
# asset's; a union when they bring members; an encryption status (an aggregate over all the
# host's stores) when one of them knows it; the stores always (rebuilt).
_HOST_SOURCES = field_sources.recorded(
    "t.field_sources",
    {
        "data_classification": "i.level IS NOT NULL AND i.level >= coalesce("
        f"array_position({_LEVELS}, t.data_classification), 0)",
        "compliance_scopes": "jsonb_array_length(i.scopes) > 0",
        "pii_categories": "jsonb_array_length(i.pii) > 0",
        "encryption_at_rest": "i.at_rest_known",
        "encryption_in_transit": "i.in_transit_known",
        "data_stores": "true",
    },
)

_UPDATE_HOSTS = f"""
WITH merged AS ({_MERGED_SELECT}),
-- the host's other entries (every store the scope names is in `merged`)
kept AS (
  SELECT x.asset_id, x.key, x.e AS entry, x.at_rest, x.in_transit FROM {EXISTING} x
  WHERE NOT EXISTS (
    SELECT 1 FROM {STORE_ROWS} p WHERE p.asset_id = x.asset_id AND p.key = x.key)
),
stores AS (
  SELECT a.asset_id, jsonb_agg(a.entry ORDER BY a.key) AS data_stores,
    bool_and(a.at_rest) AS at_rest, bool_and(a.in_transit) AS in_transit
  FROM (
    SELECT asset_id, key, entry, at_rest, in_transit FROM merged
    UNION ALL SELECT asset_id, key, entry, at_rest, in_transit FROM kept
  ) a
  GROUP BY a.asset_id
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
  field_sources = {_HOST_SOURCES},
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM stores s JOIN {INCOMING} i ON i.asset_id = s.asset_id
WHERE t.id = s.asset_id AND {_TENANT}
"""


async def _temp(conn: AsyncConnection, name: str, select: str, params: dict[str, object]) -> None:
    await conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{name}"))
    await conn.execute(text(f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS {select}"), params)


@dataclass(frozen=True, slots=True)
class Merged:
    rows: int  # staged rows merged
    assets_touched: int  # hosts updated


async def merge_stores(conn: AsyncConnection, scope: ImportScope) -> Merged:
    """Merge the scope's stores onto their hosts; call right after `resolve_assets` of the same
    scope (its temporary tables name each row's host)."""
    params = {**scope_params(scope), "seq": await field_sources.import_seq(conn, scope)}
    async with planner(conn, **_HASH_ONLY):
        await _temp(conn, STORE_ROWS, _STORE_ROWS_SELECT, params)
        await _temp(conn, LOCKED, _LOCKED_SELECT, params)
        await _temp(conn, EXISTING, _EXISTING_SELECT, params)
        await conn.execute(text(_ADD_WRITTEN), params)
        await _temp(conn, MULTI, _MULTI_SELECT, params)
        await _temp(conn, INCOMING, _INCOMING_SELECT, params)
        rows = await conn.execute(text(_STORE_ROWS_SELECT_COUNT))
        updated = await conn.execute(text(_UPDATE_HOSTS), params)
    return Merged(rows=int(rows.scalar() or 0), assets_touched=updated.rowcount or 0)


RANGE_HOSTS = f"SELECT count(DISTINCT asset_id) FROM ({RESOLVED}) m"
_STORE_ROWS_SELECT_COUNT = f"SELECT count(*) FROM {STORE_ROWS} WHERE staged"

# The step a prepare that merged the import's stores records (its ranges only link rows).
STORES_MERGED_STEP = "enrichment_prepare:stores"
STORES_MERGED_AGENT = "store_merger"
_STORES_MERGED = f"""
SELECT EXISTS (SELECT 1 FROM import_processing_steps
  WHERE data_import_id = CAST(:id AS uuid) AND client_account_id = CAST(:c AS uuid)
    AND engagement_id = CAST(:e AS uuid) AND step_key = '{STORES_MERGED_STEP}')
"""
