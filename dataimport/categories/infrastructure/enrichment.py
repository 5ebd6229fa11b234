"""infrastructure enrichment SQL: machines matched or created with precedence, samples
aggregated per machine (moved unchanged from the single-module category)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dataimport import field_sources
from dataimport.rightsizing import recommend_from_samples
from dataimport.row_links import link_rows_sql

# --- enrichment SQL ------------------------------------------------------------------------

# Asset columns the category fills only when empty: CMDB owns identity and business fields.
_FILL_BLANKS: dict[str, str] = {
    "hostname": "text",
    "hostname_key": "text",
    "fqdn": "text",
    "external_id": "text",
    "vm_uuid": "text",
    "ip_address": "text",
    "operating_system": "text",
    "os_version": "text",
    "os_end_of_support": "boolean",
    "location": "text",
    "description": "text",
}
# Asset columns where the newer observation wins (older data only fills blanks).
_NEWER_WINS: dict[str, str] = {
    "cpu_cores": "integer",
    "memory_gb": "double precision",
    "storage_gb": "double precision",
    "storage_used_gb": "double precision",
    "cpu_utilization_pct": "double precision",
    "memory_utilization_pct": "double precision",
    "iops": "double precision",
    "network_throughput_mbps": "double precision",
    "power_state": "text",
    "host_name": "text",
    "cluster": "text",
    "datacenter": "text",
}
# A VM reporting 0 cores or 0 GB is a broken reading, not a size: it never replaces one.
_ZERO_IS_UNKNOWN = frozenset({"cpu_cores", "memory_gb"})
_NEWER = "(t.performance_observed_at IS NULL OR s.observed_at >= t.performance_observed_at)"
_TENANT = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"


def _newer_wins(column: str, incoming: str) -> str:
    return (
        f"{column} = CASE WHEN {_NEWER} THEN coalesce({incoming}, t.{column}) "
        f"ELSE coalesce(t.{column}, {incoming}) END"
    )


def _newer_sets(incoming: str, column: str) -> str:
    """When `_newer_wins` writes the incoming value: it has one, and it is newer or the
    asset has none."""
    return f"{incoming} IS NOT NULL AND ({_NEWER} OR t.{column} IS NULL)"


def _custom_sets(incoming: str) -> str:
    """When the custom-attribute merge writes an incoming key: any key when newer, else only
    keys the asset lacks."""
    return (
        f"{incoming} <> '{{}}'::jsonb AND CASE WHEN {_NEWER} THEN true ELSE EXISTS ("
        f"SELECT 1 FROM jsonb_object_keys({incoming}) AS k(key) "
        f"WHERE NOT t.custom_attributes ? k.key) END"
    )


def _recorded(set_when: dict[str, str]) -> str:
    """The asset's sources with this statement's (the resolver recorded a created asset's)."""
    return field_sources.recorded("t.field_sources", set_when)


def _incoming(column: str, sql_type: str, alias: str = "s") -> str:
    value = f"CAST({alias}.a ->> '{column}' AS {sql_type})"
    return f"nullif({value}, 0)" if column in _ZERO_IS_UNKNOWN else value


# The range's machines, typed once into a temporary table (dropped at commit): per asset its
# latest row (observation time, then row number), each row's JSONB read once, the casts done
# once per machine. The update is then a hash join of plain columns with the tenant's assets
# (nested and merge joins off: a tenant whose statistics say "empty" must not turn it into a
# nested loop over every asset per machine).
MACHINES = "infrastructure_range_machines"
HASH_ONLY = {"enable_nestloop": "off", "enable_mergejoin": "off", "work_mem": "64MB"}


def _machines_select() -> str:
    columns = {**_FILL_BLANKS, **_NEWER_WINS}
    typed = ",\n  ".join(f"{_incoming(col, typ, 'm')} AS {col}" for col, typ in columns.items())
    return f"""
SELECT m.asset_id, m.seen_at AS observed_at,
  {typed},
  nullif(m.a -> 'rightsizing', 'null') AS rightsizing,
  m.a -> 'custom_attributes' AS custom_attributes
FROM (
  SELECT DISTINCT ON (l.asset_id) l.asset_id, d.asset AS a,
    coalesce(CAST(d.observed_at AS timestamptz), now()) AS seen_at
  FROM raw_import_records r
  JOIN staged_row_assets l ON l.data_import_id = r.data_import_id
    AND l.row_number = r.row_number
  CROSS JOIN LATERAL jsonb_to_record(r.normalized_data)
    AS d(kind text, observed_at text, asset jsonb)
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
    AND l.row_number BETWEEN :first AND :last
    AND r.is_valid AND NOT r.superseded AND l.asset_id IS NOT NULL AND d.kind = 'machine'
  ORDER BY l.asset_id, seen_at DESC, r.row_number DESC
) m
"""


def _update_machines_sql() -> str:
    fills = [f"{col} = coalesce(t.{col}, s.{col})" for col in _FILL_BLANKS]
    newer = [_newer_wins(col, f"s.{col}") for col in _NEWER_WINS]
    sets = ",\n  ".join([*fills, *newer, _newer_wins("rightsizing", "s.rightsizing")])
    sources = _recorded(
        {
            **{col: f"t.{col} IS NULL AND s.{col} IS NOT NULL" for col in _FILL_BLANKS},
            **{col: _newer_sets(f"s.{col}", col) for col in (*_NEWER_WINS, "rightsizing")},
            "custom_attributes": _custom_sets("s.custom_attributes"),
            "performance_observed_at": _NEWER,
        }
    )
    return f"""
UPDATE assets t SET {sets},
  custom_attributes = CASE WHEN {_NEWER}
    THEN t.custom_attributes || coalesce(s.custom_attributes, '{{}}')
    ELSE coalesce(s.custom_attributes, '{{}}') || t.custom_attributes END,
  performance_observed_at = CASE WHEN {_NEWER} THEN s.observed_at
    ELSE t.performance_observed_at END,
  field_sources = {sources},
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM {MACHINES} s
WHERE t.id = s.asset_id AND {_TENANT}
"""


MACHINES_SELECT = _machines_select()
UPDATE_MACHINES = _update_machines_sql()

# The shared-UUID check reads the whole import: only worth it when this range has UUIDs.
_RANGE_HAS_VM_UUIDS = """
SELECT EXISTS (SELECT 1 FROM raw_import_records r
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
    AND r.is_valid AND NOT r.superseded AND r.normalized_data -> 'asset' ->> 'vm_uuid' IS NOT NULL)
"""

# Per machine over the whole import: average, 95th percentile ("peak": a single spike should
# not size a machine) and maximum, then the asset it belongs to (external id, else the
# machine id a vmInfo import kept in custom_attributes when CMDB owned the external id).
_AGGREGATE_SAMPLES = f"""
WITH samples AS (
  SELECT r.normalized_data ->> 'machine_id' AS machine_id,
    CAST(r.normalized_data ->> 'observed_at' AS timestamptz) AS observed_at,
    CAST(r.normalized_data -> 'performance' ->> 'cpu_utilization_pct' AS double precision) AS cpu,
    CAST(r.normalized_data -> 'performance' ->> 'memory_utilization_pct' AS double precision)
      AS mem,
    CAST(r.normalized_data -> 'performance' ->> 'iops' AS double precision) AS iops,
    CAST(r.normalized_data -> 'performance' ->> 'network_throughput_mbps' AS double precision)
      AS net
  FROM raw_import_records r
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.is_valid AND NOT r.superseded
    AND r.normalized_data ->> 'kind' = 'performance'
),
machines AS (
  SELECT machine_id, count(*) AS samples, max(observed_at) AS observed_at,
    avg(cpu) AS cpu_avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY cpu) AS cpu_p95,
    max(cpu) AS cpu_max,
    avg(mem) AS mem_avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY mem) AS mem_p95,
    max(mem) AS mem_max,
    avg(iops) AS iops_avg, max(iops) AS iops_max, avg(net) AS net_avg, max(net) AS net_max
  FROM samples GROUP BY machine_id
),
known AS (
  SELECT t.id, t.external_id AS machine_id, 1 AS rank FROM assets t
  WHERE {_TENANT} AND t.external_id IN (SELECT machine_id FROM machines)
  UNION ALL
  SELECT t.id, t.custom_attributes ->> 'machine_id', 2 FROM assets t
  WHERE {_TENANT} AND t.custom_attributes ? 'machine_id'
),
best AS (SELECT DISTINCT ON (machine_id) machine_id, id FROM known ORDER BY machine_id, rank)
SELECT m.*, a.id AS asset_id, a.cpu_cores, a.memory_gb, a.power_state
FROM machines m
LEFT JOIN best b ON b.machine_id = m.machine_id
LEFT JOIN assets a ON a.id = b.id
ORDER BY m.machine_id
"""

_SAMPLE_COLUMNS = {
    "cpu_utilization_pct": "s.cpu",
    "memory_utilization_pct": "s.mem",
    "iops": "s.iops",
    "network_throughput_mbps": "s.net",
    "rightsizing": "s.rightsizing",
}
_SAMPLE_SETS = ",\n  ".join(_newer_wins(col, incoming) for col, incoming in _SAMPLE_COLUMNS.items())
_SAMPLE_SOURCES = field_sources.recorded(
    "t.field_sources",
    {
        **{col: _newer_sets(incoming, col) for col, incoming in _SAMPLE_COLUMNS.items()},
        "custom_attributes": _custom_sets("s.custom"),
        "performance_observed_at": _NEWER,
    },
)

_APPLY_SAMPLES = f"""
WITH s AS (
  SELECT * FROM unnest(CAST(:asset_id AS uuid[]), CAST(:observed AS timestamptz[]),
    CAST(:cpu AS double precision[]), CAST(:mem AS double precision[]),
    CAST(:iops AS double precision[]), CAST(:net AS double precision[]),
    CAST(:rightsizing AS jsonb[]), CAST(:custom AS jsonb[]))
    AS v(asset_id, observed_at, cpu, mem, iops, net, rightsizing, custom)
)
UPDATE assets t SET
  {_SAMPLE_SETS},
  custom_attributes = CASE WHEN {_NEWER} THEN t.custom_attributes || s.custom
    ELSE s.custom || t.custom_attributes END,
  performance_observed_at = CASE WHEN {_NEWER} THEN s.observed_at
    ELSE t.performance_observed_at END,
  field_sources = {_SAMPLE_SOURCES},
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM s
WHERE t.id = s.asset_id AND {_TENANT}
"""

_MARK_SAMPLES = link_rows_sql(
    """
SELECT r.data_import_id, r.row_number, v.asset_id, CAST(:c AS uuid), CAST(:e AS uuid)
FROM unnest(CAST(:machine_ids AS text[]), CAST(:asset_ids AS uuid[])) AS v(machine_id, asset_id)
JOIN raw_import_records r ON r.normalized_data ->> 'machine_id' = v.machine_id
WHERE r.data_import_id = CAST(:id AS uuid) AND r.is_valid AND NOT r.superseded
  AND r.normalized_data ->> 'kind' = 'performance'
ORDER BY r.row_number
"""
)

# Unmatched machines: one warning on each machine's last sample, added once.
_WARN_UNMATCHED = """
WITH last AS (
  SELECT DISTINCT ON (r.normalized_data ->> 'machine_id') r.id,
    r.normalized_data ->> 'machine_id' AS machine_id
  FROM raw_import_records r
  WHERE r.data_import_id = CAST(:id AS uuid) AND r.is_valid AND NOT r.superseded
    AND r.normalized_data ->> 'kind' = 'performance'
    AND r.normalized_data ->> 'machine_id' = ANY(CAST(:machine_ids AS text[]))
  ORDER BY r.normalized_data ->> 'machine_id', r.row_number DESC
)
UPDATE raw_import_records r SET validation_errors = coalesce(r.validation_errors, '[]'::jsonb)
  || jsonb_build_array(jsonb_build_object('code', CAST(:code AS text), 'severity', 'warning',
    'field', 'machine_id', 'message', 'machine_id: no asset has machine id '
      || quote_literal(last.machine_id) || '; import its vmInfo first, then these samples'))
FROM last
WHERE r.id = last.id
  AND NOT coalesce(r.validation_errors, '[]'::jsonb) @> jsonb_build_array(
    jsonb_build_object('code', CAST(:code AS text)))
"""


def _round(value: Any, digits: int = 2) -> float | None:
    return round(float(value), digits) if value is not None else None


def _sample_update(machine: Mapping[str, Any]) -> dict[str, Any]:
    """One matched machine's aggregated samples as an asset update, with its rightsizing."""
    recommendation = recommend_from_samples(
        machine["cpu_cores"],
        machine["memory_gb"],
        cpu_average=_round(machine["cpu_avg"]),
        cpu_peak=_round(machine["cpu_p95"]),
        memory_average=_round(machine["mem_avg"]),
        memory_peak=_round(machine["mem_p95"]),
        powered_off=machine["power_state"] == "powered_off",
    )
    custom = {
        "performance_samples": machine["samples"],
        "cpu_utilization_peak_pct": _round(machine["cpu_p95"]),
        "cpu_utilization_max_pct": _round(machine["cpu_max"]),
        "memory_utilization_peak_pct": _round(machine["mem_p95"]),
        "memory_utilization_max_pct": _round(machine["mem_max"]),
        "iops_max": _round(machine["iops_max"]),
        "network_throughput_max_mbps": _round(machine["net_max"], 3),
    }
    return {
        "asset_id": str(machine["asset_id"]),
        "observed": machine["observed_at"],
        "cpu": _round(machine["cpu_avg"]),
        "mem": _round(machine["mem_avg"]),
        "iops": _round(machine["iops_avg"]),
        "net": _round(machine["net_avg"], 3),
        "rightsizing": _json(recommendation),
        "custom": _json({key: value for key, value in custom.items() if value is not None}),
    }


def _json(value: Any) -> str | None:
    return json.dumps(value) if value is not None else None
