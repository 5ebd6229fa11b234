"""The `sensitive_data` category: data-store inventories to sensitivity fields on assets.

One row describes one data store (or one database, schema, table, or even one column) on one
host: its data categories, classification, compliance scopes, encryption at rest and in
transit, record count, owner and location. `validate_row` gives
`{"asset": {identity of the host}, "store": {one data_stores entry}}`; enrichment finds or
creates the host (as a server) and merges the stores onto it:

- `data_classification`: the most restrictive of what the asset had and what comes in
  (public < internal < confidential < restricted); an import never lowers it.
- `compliance_scopes`, `pii_categories`: sorted unions, never shrinking.
- `data_stores`: one entry per store key (store, database, schema, table). An entry from an
  earlier import is replaced by this import's (the newer inventory is the truth about that
  store); entries this import wrote from other row ranges are merged with (column-level
  inventories spread one table over many rows, and ranges may split them).
- `encryption_at_rest` / `encryption_in_transit`: encrypted only if every store on the asset
  whose status is known is; unknown everywhere leaves the asset's value alone.

Values of this category are personal or confidential: `masks_values` is True, and no issue
message quotes a cell (messages name fields and canonical values only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import pii
from dataimport.agents.base import ValidationAgent
from dataimport.agents.compliance_checker import ComplianceChecker
from dataimport.agents.pii_detector import PiiDetector, value_categories
from dataimport.asset_resolution import resolve_assets, scope_params
from dataimport.categories.base import EnrichCounts, ImportScope, RowOutcome
from dataimport.issues import Code, Issue, Severity
from dataimport.normalize import hostname_key, name_key, normalize_ip, parse_float, split_list
from dataimport.readers.plan import SheetPlan

_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "store": (
        "store",
        "data_store",
        "datastore",
        "store_name",
        "data_store_name",
        "data_source",
        "data_source_name",
        "source_system",
        "system",
        "repository",
        "data_repository",
        "instance",
        "db_instance",
        "database_instance",
    ),
    "store_type": (
        "store_type",
        "data_store_type",
        "database_type",
        "db_type",
        "engine",
        "db_engine",
        "dbms",
        "platform",
        "technology",
    ),
    "database": ("database", "database_name", "db", "db_name", "catalog"),
    "schema": ("schema", "schema_name"),
    "table": ("table", "table_name", "object", "object_name", "collection", "dataset", "entity"),
    "columns": (
        "columns",
        "column",
        "column_name",
        "column_names",
        "fields",
        "field",
        "field_name",
        "field_names",
        "attributes",
        "data_elements",
        "sensitive_columns",
        "pii_columns",
    ),
    "hostname": (
        "host",
        "hostname",
        "host_name",
        "server",
        "server_name",
        "asset",
        "asset_name",
        "db_host",
        "database_host",
        "database_server",
        "db_server",
        "machine",
        "computer_name",
        "fqdn",
    ),
    "ip_address": ("ip", "ip_address", "host_ip", "server_ip", "ipv4", "ipv4_address"),
    "data_categories": (
        "data_categories",
        "data_category",
        "categories",
        "category",
        "data_types",
        "data_type",
        "pii_categories",
        "pii_category",
        "pii_types",
        "pii_type",
        "pii",
        "sensitive_data_types",
        "information_types",
        "info_types",
    ),
    "classification": (
        "classification",
        "data_classification",
        "sensitivity",
        "sensitivity_level",
        "sensitivity_label",
        "classification_level",
        "confidentiality",
        "security_classification",
        "data_sensitivity",
        "label",
    ),
    "compliance_scopes": (
        "compliance",
        "compliance_scope",
        "compliance_scopes",
        "regulations",
        "regulation",
        "regulatory_scope",
        "frameworks",
        "compliance_frameworks",
        "compliance_requirements",
        "regulatory_requirements",
    ),
    "encryption_at_rest": (
        "encryption_at_rest",
        "encrypted_at_rest",
        "at_rest_encryption",
        "at_rest",
        "encryption",
        "encrypted",
        "tde",
        "tde_enabled",
        "storage_encryption",
        "disk_encryption",
    ),
    "encryption_in_transit": (
        "encryption_in_transit",
        "encrypted_in_transit",
        "in_transit_encryption",
        "in_transit",
        "transport_encryption",
        "tls",
        "ssl",
        "tls_enabled",
        "ssl_enabled",
    ),
    "record_count": (
        "record_count",
        "records",
        "row_count",
        "rows",
        "num_records",
        "num_rows",
        "number_of_records",
        "number_of_rows",
        "record_volume",
        "volume",
        "estimated_records",
        "approx_records",
    ),
    "owner": (
        "owner",
        "data_owner",
        "data_steward",
        "steward",
        "business_owner",
        "custodian",
        "data_custodian",
        "owner_email",
    ),
    "location": (
        "location",
        "region",
        "data_location",
        "data_residency",
        "residency",
        "country",
        "site",
        "datacenter",
        "data_center",
        "jurisdiction",
        "hosting_location",
    ),
    "sample_values": (
        "sample",
        "samples",
        "sample_value",
        "sample_values",
        "sample_data",
        "example",
        "examples",
        "example_value",
        "example_values",
    ),
}

# --- vocabularies ------------------------------------------------------------------------

_PLACEHOLDERS = frozenset({"", "-", "--", "n a", "na", "null", "unknown", "tbd", "tbc", "?"})

# Word keys (lower case, punctuation to spaces) -> classification. Sub-labels such as
# Microsoft Purview's "Highly Confidential\All Employees" match on their leading words.
_CLASSIFICATION_WORDS: dict[str, str] = {
    **dict.fromkeys(
        [
            "public",
            "unclassified",
            "open",
            "unrestricted",
            "non sensitive",
            "not sensitive",
            "nonsensitive",
            "tlp clear",
            "tlp white",
            "c0",
        ],
        "public",
    ),
    **dict.fromkeys(
        [
            "internal",
            "internal use",
            "internal only",
            "internal use only",
            "general",
            "company internal",
            "official",
            "limited",
            "tlp green",
            "business use",
        ],
        "internal",
    ),
    **dict.fromkeys(
        [
            "confidential",
            "sensitive",
            "private",
            "company confidential",
            "business confidential",
            "official sensitive",
            "protected",
            "tlp amber",
        ],
        "confidential",
    ),
    **dict.fromkeys(
        [
            "restricted",
            "highly confidential",
            "strictly confidential",
            "highly restricted",
            "highly sensitive",
            "very sensitive",
            "secret",
            "top secret",
            "tlp red",
        ],
        "restricted",
    ),
}

# (pattern over the word key, canonical scope). Versions and sub-parts are accepted after
# the name ("PCI DSS v4.0", "SOC 2 Type II", "ISO/IEC 27001:2022", "FedRAMP Moderate").
_SCOPES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"(?:{pattern})(?: .*)?"), scope)
    for pattern, scope in (
        (r"uk gdpr", "UK GDPR"),
        (r"(?:eu )?gdpr|dsgvo|rgpd|general data protection regulation", "GDPR"),
        (r"hipaa|hitech|hipaa hitech", "HIPAA"),
        (r"pci|pci ?dss|pcidss|payment card industry", "PCI-DSS"),
        (r"sox|sox ?404|sarbanes ?oxley", "SOX"),
        (r"ccpa|cpra|california consumer privacy act", "CCPA"),
        (r"iso(?: iec)? ?27001", "ISO 27001"),
        (r"soc ?(?:2|ii)", "SOC 2"),
        (r"soc ?(?:1|i)", "SOC 1"),
        (r"fedramp", "FedRAMP"),
        (r"nis ?(?:2|ii)", "NIS2"),
        (r"dora|digital operational resilience act", "DORA"),
        (r"glba|gramm leach bliley", "GLBA"),
        (r"ferpa", "FERPA"),
        (r"pipeda", "PIPEDA"),
        (r"lgpd", "LGPD"),
        (r"popia", "POPIA"),
        (r"fisma", "FISMA"),
        (r"nist(?: sp)? ?800 ?53", "NIST 800-53"),
        (r"cjis", "CJIS"),
        (r"itar", "ITAR"),
        (r"tisax", "TISAX"),
        (r"bsi ?c5|c5", "C5"),
    )
)
_SCOPE_SEPARATORS = re.compile(r"[,;|\r\n&+]+|\s+and\s+", re.IGNORECASE)

_TRUE_WORDS = frozenset(
    [
        "yes",
        "y",
        "true",
        "t",
        "1",
        "on",
        "enabled",
        "enable",
        "encrypted",
        "full",
        "fully",
        "encrypted",
        "required",
        "enforced",
    ]
)
_FALSE_WORDS = frozenset(
    [
        "no",
        "n",
        "false",
        "f",
        "0",
        "off",
        "disabled",
        "disable",
        "none",
        "unencrypted",
        "plaintext",
        "cleartext",
        "partial",
    ]
) | {"not encrypted", "plain text", "clear text", "partially encrypted", "not enabled"}
# Naming the mechanism says it is on: "AES-256", "TDE", "TLS 1.2", "BitLocker", "SSE-KMS".
_ENCRYPTION_MECHANISM = re.compile(
    r"(?:aes|tde|tls|ssl|https|bitlocker|luks|dm crypt|kms|sse|cmk|byok|hsm|ipsec|mtls|ssh"
    r"|sftp|pgp|gpg|rsa|chacha|filevault|always encrypted|column encryption|encrypted)\b.*"
)
_NEGATION = re.compile(r"(?:no|not|un|non|without)\b.*|http|ftp|telnet")

_COUNT = re.compile(
    r"(?P<number>-?\d[\d.,' ]*)\s*(?P<unit>k|thousand|m|mn|mio|million|b|bn|billion)?s?\+?",
    re.IGNORECASE,
)
_COUNT_UNITS = {
    "k": 10**3,
    "thousand": 10**3,
    "m": 10**6,
    "mn": 10**6,
    "mio": 10**6,
    "million": 10**6,
    "b": 10**9,
    "bn": 10**9,
    "billion": 10**9,
}
_COUNT_PREFIX = re.compile(r"^(?:~|≈|<|>|approx\.?|approximately|about|ca\.?|circa)\s*", re.I)
_DOTTED_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3}){2,}")
MAX_RECORD_COUNT = 10**15  # beyond this the cell is a typo or an id, not a record count

# SQL Server style "HOST\INSTANCE" and "host:1433" / "host,1433" name the host plus more.
_HOST_PORT = re.compile(r"[:,]\d{1,5}$")


def _word_key(raw: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", raw.lower()).split())


def normalize_classification(raw: str) -> str | None:
    """public, internal, confidential or restricted; ValueError for an unknown label."""
    key = _word_key(raw)
    if key in _PLACEHOLDERS:
        return None
    words = key.split()
    for size in range(len(words), 0, -1):  # longest leading phrase first
        found = _CLASSIFICATION_WORDS.get(" ".join(words[:size]))
        if found:
            return found
    raise ValueError("unknown classification")


def normalize_scope(raw: str) -> str | None:
    """Canonical compliance scope ("PCI DSS v4" -> "PCI-DSS"), None when not recognised."""
    key = _word_key(raw)
    for pattern, scope in _SCOPES:
        if pattern.fullmatch(key):
            return scope
    return None


def parse_flag(raw: str) -> bool | None:
    """Encryption status: yes/no/true/false, or a mechanism ("AES-256", "TLS 1.2") for yes."""
    key = _word_key(raw)
    if key in _FALSE_WORDS or _NEGATION.fullmatch(key):
        return False
    if key in _TRUE_WORDS or _ENCRYPTION_MECHANISM.fullmatch(key):
        return True
    if key in _PLACEHOLDERS:
        return None
    raise ValueError("not a yes/no value")


def parse_record_count(raw: str) -> int:
    """Whole record count: "1200000", "1,200,000", "1.2M", "12k", "~3.5 billion", "1M+"."""
    cleaned = _COUNT_PREFIX.sub("", raw.strip())
    match = _COUNT.fullmatch(cleaned)
    if match is None:
        raise ValueError("not a record count")
    number = match["number"].strip().replace("'", "").replace(" ", "")
    if _DOTTED_THOUSANDS.fullmatch(number):
        number = number.replace(".", "")  # "1.200.000": European thousands separators
    unit = _COUNT_UNITS[match["unit"].lower()] if match["unit"] else 1
    value = Decimal(str(parse_float(number))) * unit
    return int(value.to_integral_value())


# --- row validation ----------------------------------------------------------------------


class _Row:
    """One row being validated: its non-empty cells and the issues found."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.cells = {field: value.strip() for field, value in fields.items() if value.strip()}
        self.issues: list[Issue] = []

    def get(self, field: str) -> str | None:
        return self.cells.get(field)

    def issue(self, severity: Severity, code: Code, field: str | None, message: str) -> None:
        self.issues.append(Issue(code.value, severity, message, field))


def _host(row: _Row) -> tuple[dict[str, Any], str | None]:
    """The host asset's identity, and an instance name carried in "HOST\\INSTANCE"."""
    raw_host = row.get("hostname")
    ip_address = _ip_address(row, required=raw_host is None)
    instance = None
    host = None
    if raw_host:
        host = _HOST_PORT.sub("", raw_host)
        if "\\" in host:  # SQL Server "HOST\INSTANCE": in an inventory of data stores, the
            host, instance = host.split("\\", 1)  # part after the backslash is the instance
        try:
            ip_address = ip_address or normalize_ip(host)
            host = None if host.strip() == ip_address else host
        except ValueError:
            pass
    name = host or ip_address
    if name is None:
        if not any(issue.is_error for issue in row.issues):
            row.issue(
                Severity.ERROR, Code.MISSING_REQUIRED, "hostname", "host: no host name or IP given"
            )
        return {}, instance
    identity = {
        "name": name,
        "name_key": name_key(name),
        "hostname": host,
        "hostname_key": hostname_key(host) if host else None,
        "ip_address": ip_address,
    }
    return identity, instance or None


def _ip_address(row: _Row, *, required: bool) -> str | None:
    raw = row.get("ip_address")
    if raw is None:
        return None
    try:
        return normalize_ip(raw)
    except ValueError:
        # With a host name the asset is still known: the address is dropped, the row kept.
        severity = Severity.ERROR if required else Severity.WARNING
        row.issue(severity, Code.CONSTRAINT_ERROR, "ip_address", "ip_address: not a valid address")
        return None


def _classification(row: _Row) -> str | None:
    raw = row.get("classification")
    if raw is None:
        return None
    try:
        return normalize_classification(raw)
    except ValueError:
        levels = ", ".join(pii.CLASSIFICATIONS)
        row.issue(
            Severity.WARNING,
            Code.UNKNOWN_VALUE,
            "classification",
            f"classification: not a known label (expected one of {levels}); left unset",
        )
        return None


def _scopes(row: _Row) -> list[str]:
    raw = row.get("compliance_scopes")
    if raw is None:
        return []
    scopes: set[str] = set()
    unknown = 0
    for part in _SCOPE_SEPARATORS.split(raw):
        item = " ".join(part.split())
        if not item or _word_key(item) in _PLACEHOLDERS:
            continue
        scope = normalize_scope(item)
        if scope is None:
            unknown += 1
        scopes.add(scope or item)
    if unknown:
        row.issue(
            Severity.WARNING,
            Code.UNKNOWN_VALUE,
            "compliance_scopes",
            f"compliance_scopes: {unknown} scope(s) not recognised; kept as given",
        )
    return sorted(scopes)


def _flag(row: _Row, field: str) -> bool | None:
    raw = row.get(field)
    if raw is None:
        return None
    try:
        return parse_flag(raw)
    except ValueError:
        row.issue(
            Severity.WARNING,
            Code.UNKNOWN_VALUE,
            field,
            f"{field}: not a yes/no value or an encryption mechanism; left unknown",
        )
        return None


def _record_count(row: _Row) -> int | None:
    raw = row.get("record_count")
    if raw is None or _word_key(raw) in _PLACEHOLDERS:
        return None
    try:
        count = parse_record_count(raw)
    except ValueError:
        row.issue(
            Severity.ERROR,
            Code.TYPE_ERROR,
            "record_count",
            "record_count: not a number (expected e.g. 1200000, 1,200,000 or 1.2M)",
        )
        return None
    if not 0 <= count <= MAX_RECORD_COUNT:
        row.issue(
            Severity.ERROR,
            Code.CONSTRAINT_ERROR,
            "record_count",
            f"record_count: outside 0 … {MAX_RECORD_COUNT:.0e}",
        )
        return None
    return count


def _pii_categories(columns: list[str], categories: list[str], samples: str | None) -> list[str]:
    """From column names and declared data categories, and from sample values."""
    found: set[str] = set()
    for item in (*columns, *categories):
        found |= pii.detect_column(item)
    if samples:
        found |= value_categories(samples)
    return sorted(found)


def store_key(*parts: str | None) -> str:
    """Comparable key of a store entry: store|database|schema|table, case-insensitive."""
    return "|".join(name_key(part) if part else "" for part in parts)


def _store(row: _Row, instance: str | None) -> dict[str, Any]:
    store = row.get("store") or instance
    database, schema, table = row.get("database"), row.get("schema"), row.get("table")
    if not (store or database or table):
        row.issue(
            Severity.WARNING,
            Code.INCOMPLETE_ROW,
            "store",
            "no store, database or table: the sensitivity applies to the host as a whole",
        )
    columns = split_list(row.get("columns") or "")
    categories = split_list(row.get("data_categories") or "")
    return {
        "key": store_key(store, database, schema, table),
        "store": store,
        "store_type": row.get("store_type"),
        "database": database,
        "schema": schema,
        "table": table,
        "columns": columns,
        "data_categories": categories,
        "classification": _classification(row),
        "compliance_scopes": _scopes(row),
        "pii_categories": _pii_categories(columns, categories, row.get("sample_values")),
        "encryption_at_rest": _flag(row, "encryption_at_rest"),
        "encryption_in_transit": _flag(row, "encryption_in_transit"),
        "record_count": _record_count(row),
        "owner": row.get("owner"),
        "location": row.get("location"),
    }


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


class SensitiveDataCategory:
    """Data-store inventories: one store (or table) on one host per row."""

    name = "sensitive_data"
    aliases: Mapping[str, str] = {
        alias: field for field, aliases in _FIELD_ALIASES.items() for alias in aliases
    }
    # The host is what the row is about: without a host column nothing can be attached.
    required_fields = frozenset({"hostname", "ip_address"})
    agents: Sequence[ValidationAgent] = (PiiDetector(), ComplianceChecker())
    sheet_plan: SheetPlan | None = None
    masks_values = True

    def validate_row(self, fields: Mapping[str, str]) -> RowOutcome:
        row = _Row(fields)
        asset, instance = _host(row)
        store = _store(row, instance)
        return RowOutcome(normalized={"asset": asset, "store": store}, issues=row.issues)

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        # Host + store + database + schema + table, plus the columns: column-level inventories
        # describe one table over many rows, and each of them must count.
        asset = normalized.get("asset") or {}
        store = normalized.get("store") or {}
        host = asset.get("name_key")
        if not host:
            return None
        columns = ",".join(sorted(name_key(column) for column in store.get("columns") or ()))
        return f"{host}|{store.get('key', '')}|{columns}"

    async def prepare(self, conn: AsyncConnection, scope: ImportScope) -> bool:
        """Once per import: the hosts of all its stores created, so that parallel ranges
        (many stores per host) never insert the same host. No link pass."""
        await resolve_assets(conn, scope, "asset", default_type="server", write_back=False)
        return False

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of a prepared import: its hosts exist, it looks them up and merges."""
        await resolve_assets(conn, scope, "asset", create_missing=False)
        return await self._merge(conn, scope)

    async def enrich_unprepared(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of an import whose enrichment began before `prepare` existed."""
        await resolve_assets(conn, scope, "asset", default_type="server")
        return await self._merge(conn, scope)

    async def _merge(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        params = scope_params(scope)
        await conn.execute(text(_LOCK_ASSETS), params)
        updated = await conn.execute(text(_MERGE_SENSITIVITY), params)
        await conn.execute(text(_MARK_PROCESSED), params)
        return EnrichCounts(assets_touched=updated.rowcount or 0)

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        return EnrichCounts()  # data stores carry no dependencies between assets


CATEGORY = SensitiveDataCategory()
