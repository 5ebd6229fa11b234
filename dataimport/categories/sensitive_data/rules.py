"""sensitive_data rules, columnar: one chunk of data-store rows validated and normalised at once.

Each rule is a set of vectorised expressions over the chunk's columns; the vocabularies'
exact parsers (`vocabulary.py`) run once per distinct value through `per_distinct`, and the
host's exact parsing only for the forms the vectorised path cannot settle (non-ASCII text,
text that could hold an IP address). The pii detector adds to `pii_categories` (it shares
`pii_detector.frame_pii`).
"""

from __future__ import annotations

import polars as pl

from dataimport import pii
from dataimport.agents import compliance_checker, pii_detector
from dataimport.agents.pii_detector import value_categories
from dataimport.categories.sensitive_data.vocabulary import (
    _HOST_PORT,
    _PLACEHOLDERS,
    _SCOPE_SEPARATORS,
    MAX_RECORD_COUNT,
    _word_key,
    normalize_classification,
    normalize_scope,
    parse_flag,
    parse_record_count,
)
from dataimport.engine.cells import FieldCells
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.identity import PLAIN_IPV4, hostname_keys, name_keys
from dataimport.engine.outcome import FrameOutcome
from dataimport.engine.text import is_ascii, per_distinct, py_strip
from dataimport.issues import Code, Severity
from dataimport.normalize import name_key, normalize_ip, split_list

_LIST = pl.List(pl.Utf8)
# `_HOST_PORT` for ASCII text (Python's \d is Unicode: other text takes the exact path).
_HOST_PORT_ASCII = r"[:,][0-9]{1,5}$"
# A host text `normalize_ip` cannot parse: one token (no separator of `_IP_SEPARATORS`, no
# CIDR slash or brackets) holding a letter, and no ':' (IPv4 is digits and dots only).
_NOT_AN_IP = r"^[^\t-\r\x1c-\x1f ,;/:\[\]]*[A-Za-z][^\t-\r\x1c-\x1f ,;/:\[\]]*$"
_PLAIN_COUNT = r"^[0-9]{1,15}$"  # below MAX_RECORD_COUNT, parsed exactly as an integer


def _series(frame: pl.DataFrame, expr: pl.Expr, name: str) -> pl.Series:
    return frame.select(expr.alias(name)).to_series()


# --- the host ----------------------------------------------------------------------------


def _ip_address(cells: FieldCells, findings: Findings, raw_host: pl.Series) -> pl.Series:
    """The ip_address field's canonical address; an invalid one is an error without a host
    name, a warning beside one (the address is dropped). Returns the address (or null)."""
    raw = cells("ip_address")
    frame = pl.DataFrame([raw.rename("s"), raw_host.rename("h")])
    plain = _series(frame, pl.col("s").str.contains(PLAIN_IPV4).fill_null(False), "plain")

    def exact(text: str) -> tuple[str | None, bool]:
        try:
            return normalize_ip(text), False
        except ValueError:
            return None, True

    parsed = per_distinct(
        frame, ["s"], exact, {"ip": pl.Utf8, "bad": pl.Boolean}, raw.is_not_null() & ~plain
    )
    bad = parsed["bad"].fill_null(False)
    field = cells.frame.display_field("ip_address")
    message = "ip_address: not a valid address"
    # At most one of the two per row: the order of a row's issues is kept.
    findings.when(
        bad & raw_host.is_null(),
        issue_json(Code.CONSTRAINT_ERROR, Severity.ERROR, message, field),
        Severity.ERROR,
    )
    findings.when(
        bad & raw_host.is_not_null(),
        issue_json(Code.CONSTRAINT_ERROR, Severity.WARNING, message, field),
        Severity.WARNING,
    )
    return pl.select(pl.when(plain).then(raw).otherwise(parsed["ip"])).to_series()


def _exact_host(raw_host: str, ip_address: str | None) -> tuple[str | None, str | None, str | None]:
    """The exact parsing of one host cell: (host, instance, ip address)."""
    instance = None
    host: str | None = _HOST_PORT.sub("", raw_host)
    assert host is not None
    if "\\" in host:
        host, instance = host.split("\\", 1)
    try:
        ip_address = ip_address or normalize_ip(host)
        host = None if host.strip() == ip_address else host
    except ValueError:
        pass
    return host, instance, ip_address


def _host(cells: FieldCells, findings: Findings) -> dict[str, pl.Series]:
    raw_host = cells("hostname")
    ip = _ip_address(cells, findings, raw_host)
    frame = pl.DataFrame([raw_host.rename("h"), ip.rename("ip")])
    h, given_ip = pl.col("h"), pl.col("ip")
    parts = h.str.replace(_HOST_PORT_ASCII, "").str.splitn("\\", 2)
    frame = frame.with_columns(
        parts.struct.field("field_0").alias("host"),
        parts.struct.field("field_1").alias("instance"),
    )
    host = pl.col("host")
    plain = host.str.contains(PLAIN_IPV4)
    fast = h.is_null() | (
        is_ascii(h) & (given_ip.is_not_null() | plain | host.str.contains(_NOT_AN_IP))
    )
    frame = frame.with_columns(
        fast.alias("fast"), pl.coalesce([given_ip, pl.when(plain).then(host)]).alias("fast_ip")
    )
    frame = frame.with_columns(
        pl.when(py_strip(host) == pl.col("fast_ip")).then(None).otherwise(host).alias("fast_host")
    )
    exact = per_distinct(
        frame,
        ["h", "ip"],
        _exact_host,
        {"x_host": pl.Utf8, "x_instance": pl.Utf8, "x_ip": pl.Utf8},
        ~frame.get_column("fast"),
    )
    frame = pl.concat([frame, exact], how="horizontal")
    fast = pl.col("fast")
    result = frame.select(
        pl.when(fast).then(pl.col("fast_host")).otherwise(pl.col("x_host")).alias("host"),
        pl.when(fast).then(pl.col("instance")).otherwise(pl.col("x_instance")).alias("instance"),
        pl.when(fast).then(pl.col("fast_ip")).otherwise(pl.col("x_ip")).alias("ip"),
    )
    host_name = result.get_column("host")
    ip_address = result.get_column("ip")
    named = host_name.is_not_null() & (host_name != "")
    name = pl.select(pl.when(named).then(host_name).otherwise(ip_address)).to_series()
    error_so_far = findings.has_error  # only the address can have raised one
    findings.when(
        name.is_null() & ~error_so_far,
        issue_json(
            Code.MISSING_REQUIRED,
            Severity.ERROR,
            "host: no host name or IP given",
            cells.frame.display_field("hostname"),
        ),
        Severity.ERROR,
    )
    keys = name_keys(name)
    name_key_ = pl.select(pl.when(name.is_not_null()).then(keys.fill_null(""))).to_series()
    host_keys = hostname_keys(host_name)
    hostname_key = pl.select(pl.when(named).then(host_keys)).to_series()
    instance = result.get_column("instance")
    return {
        "name": name,
        "name_key": name_key_,
        "hostname": host_name,
        "hostname_key": hostname_key,
        "ip_address": ip_address,
        "instance": pl.select(pl.when(instance != "").then(instance)).to_series(),
    }


# --- the store ---------------------------------------------------------------------------


def _lists(cells: FieldCells, field: str) -> tuple[pl.Series, pl.Series]:
    """split_list of a field, and the sorted name keys of its items joined by ','."""
    raw = cells(field)
    frame = pl.DataFrame({"s": raw})

    def exact(text: str) -> tuple[list[str], str]:
        items = split_list(text)
        return items, ",".join(sorted(name_key(item) for item in items))

    found = per_distinct(frame, ["s"], exact, {"l": _LIST, "k": pl.Utf8}, raw.is_not_null())
    items = found["l"].fill_null(pl.lit([], dtype=_LIST))
    return pl.select(items).to_series(), found["k"].fill_null("")


def _classification(cells: FieldCells, findings: Findings) -> pl.Series:
    raw = cells("classification")
    levels = ", ".join(pii.CLASSIFICATIONS)
    issue = issue_json(
        Code.UNKNOWN_VALUE,
        Severity.WARNING,
        f"classification: not a known label (expected one of {levels}); left unset",
        cells.frame.display_field("classification"),
    )

    def exact(text: str) -> tuple[str | None, str | None]:
        try:
            return normalize_classification(text), None
        except ValueError:
            return None, issue

    found = per_distinct(
        pl.DataFrame({"s": raw}), ["s"], exact, {"c": pl.Utf8, "i": pl.Utf8}, raw.is_not_null()
    )
    findings.add(found["i"], Severity.WARNING)
    return found["c"]


def _scopes(cells: FieldCells, findings: Findings) -> pl.Series:
    raw = cells("compliance_scopes")
    field = cells.frame.display_field("compliance_scopes")

    def exact(text: str) -> tuple[list[str], str | None]:
        scopes: set[str] = set()
        unknown = 0
        for part in _SCOPE_SEPARATORS.split(text):
            item = " ".join(part.split())
            if not item or _word_key(item) in _PLACEHOLDERS:
                continue
            scope = normalize_scope(item)
            if scope is None:
                unknown += 1
            scopes.add(scope or item)
        issue = None
        if unknown:
            message = f"compliance_scopes: {unknown} scope(s) not recognised; kept as given"
            issue = issue_json(Code.UNKNOWN_VALUE, Severity.WARNING, message, field)
        return sorted(scopes), issue

    found = per_distinct(
        pl.DataFrame({"s": raw}), ["s"], exact, {"l": _LIST, "i": pl.Utf8}, raw.is_not_null()
    )
    findings.add(found["i"], Severity.WARNING)
    return pl.select(found["l"].fill_null(pl.lit([], dtype=_LIST))).to_series()


def _flag(cells: FieldCells, findings: Findings, field: str) -> pl.Series:
    raw = cells(field)
    issue = issue_json(
        Code.UNKNOWN_VALUE,
        Severity.WARNING,
        f"{field}: not a yes/no value or an encryption mechanism; left unknown",
        cells.frame.display_field(field),
    )

    def exact(text: str) -> tuple[bool | None, str | None]:
        try:
            return parse_flag(text), None
        except ValueError:
            return None, issue

    found = per_distinct(
        pl.DataFrame({"s": raw}), ["s"], exact, {"f": pl.Boolean, "i": pl.Utf8}, raw.is_not_null()
    )
    findings.add(found["i"], Severity.WARNING)
    return found["f"]


def _record_count(cells: FieldCells, findings: Findings) -> pl.Series:
    raw = cells("record_count")
    field = cells.frame.display_field("record_count")
    not_a_number = issue_json(
        Code.TYPE_ERROR,
        Severity.ERROR,
        "record_count: not a number (expected e.g. 1200000, 1,200,000 or 1.2M)",
        field,
    )
    out_of_range = issue_json(
        Code.CONSTRAINT_ERROR,
        Severity.ERROR,
        f"record_count: outside 0 … {MAX_RECORD_COUNT:.0e}",
        field,
    )

    def exact(text: str) -> tuple[int | None, str | None]:
        if _word_key(text) in _PLACEHOLDERS:
            return None, None
        try:
            count = parse_record_count(text)
        except ValueError:
            return None, not_a_number
        if not 0 <= count <= MAX_RECORD_COUNT:
            return None, out_of_range
        return count, None

    frame = pl.DataFrame({"s": raw})
    plain = _series(frame, pl.col("s").str.contains(_PLAIN_COUNT).fill_null(False), "p")
    found = per_distinct(
        frame, ["s"], exact, {"n": pl.Int64, "i": pl.Utf8}, raw.is_not_null() & ~plain
    )
    findings.add(found["i"], Severity.ERROR)
    fast = _series(frame, pl.col("s").cast(pl.Int64, strict=False), "n")
    return pl.select(pl.when(plain).then(fast).otherwise(found["n"])).to_series()


def _sample_kinds(cells: FieldCells) -> pl.Series:
    raw = cells("sample_values")

    def exact(text: str) -> tuple[list[str]]:
        return (sorted(value_categories(text)),)

    found = per_distinct(pl.DataFrame({"s": raw}), ["s"], exact, {"k": _LIST}, raw.is_not_null())
    return pl.select(found["k"].fill_null(pl.lit([], dtype=_LIST))).to_series()


def _store_key(parts: list[pl.Series]) -> pl.Series:
    keys = [pl.lit(name_keys(part)).fill_null("") for part in parts]
    return pl.select(pl.concat_str(keys, separator="|")).to_series()


# --- the chunk ---------------------------------------------------------------------------


def _object(members: list[tuple[str, pl.Series]]) -> pl.Expr:
    """A JSON object text with every member (null values as null): one encode of a struct,
    each member encoded as `json_value` would encode it."""
    return pl.struct(pl.col(f"_{key}").alias(key) for key, _values in members).struct.json_encode()


def validate_frame(frame: ChunkFrame, findings: Findings) -> FrameOutcome:
    cells = FieldCells(frame)
    host = _host(cells, findings)
    store = pl.select(pl.coalesce([cells("store"), host["instance"]])).to_series()
    database, schema, table = cells("database"), cells("schema"), cells("table")
    findings.when(
        store.is_null() & database.is_null() & table.is_null(),
        issue_json(
            Code.INCOMPLETE_ROW,
            Severity.WARNING,
            "no store, database or table: the sensitivity applies to the host as a whole",
            frame.display_field("store"),
        ),
        Severity.WARNING,
    )
    columns, column_keys = _lists(cells, "columns")
    categories, _category_keys = _lists(cells, "data_categories")
    classification = _classification(cells, findings)
    scopes = _scopes(cells, findings)
    at_rest = _flag(cells, findings, "encryption_at_rest")
    in_transit = _flag(cells, findings, "encryption_in_transit")
    record_count = _record_count(cells, findings)
    found = pii_detector.frame_pii(frame, findings)
    kinds = pl.DataFrame(
        [found.declared.rename("d"), _sample_kinds(cells).rename("s"), found.seen().rename("v")]
    )
    # Sorted once per distinct combination: a sort per row's list is the slow part.
    combined = kinds.select(pl.concat_list("d", "s", "v").alias("p"))
    distinct = combined.unique().with_columns(pl.col("p").list.unique().list.sort().alias("u"))
    pii_categories = (
        combined.join(distinct, on="p", how="left", maintain_order="left")
        .get_column("u")
        .rename("p")
    )
    location = cells("location")
    compliance_checker.publish_facts(
        findings,
        pl.DataFrame(
            [
                classification.rename("classification"),
                scopes.rename("compliance_scopes"),
                pii_categories.rename("pii_categories"),
                at_rest.rename("encryption_at_rest"),
                in_transit.rename("encryption_in_transit"),
                location.rename("location"),
            ]
        ),
    )
    asset = [(name, host[name]) for name in ("name", "name_key", "hostname", "hostname_key")]
    asset.append(("ip_address", host["ip_address"]))
    entry = [
        ("key", _store_key([store, database, schema, table])),
        ("store", store),
        ("store_type", cells("store_type")),
        ("database", database),
        ("schema", schema),
        ("table", table),
        ("columns", columns),
        ("data_categories", categories),
        ("classification", classification),
        ("compliance_scopes", scopes),
        ("pii_categories", pii_categories),
        ("encryption_at_rest", at_rest),
        ("encryption_in_transit", in_transit),
        ("record_count", record_count),
        ("owner", cells("owner")),
        ("location", location),
    ]
    data = pl.DataFrame(
        [
            *(values.rename(f"_{key}") for key, values in [*asset, *entry] if key != "key"),
            entry[0][1].rename("_key"),
            column_keys.rename("column_keys"),
        ]
    )
    has_name = pl.col("_name").is_not_null()
    asset_json = pl.when(has_name).then(_object(asset)).otherwise(pl.lit("{}"))
    normalized = pl.concat_str(
        [pl.lit('{"asset":'), asset_json, pl.lit(',"store":'), _object(entry), pl.lit("}")]
    )
    name_key_ = pl.col("_name_key")
    natural_key = pl.when(name_key_.is_not_null() & (name_key_ != "")).then(
        pl.concat_str([name_key_, pl.col("_key"), pl.col("column_keys")], separator="|")
    )
    result = data.select(normalized.alias("normalized"), natural_key.alias("natural_key"))
    return FrameOutcome(result.get_column("normalized"), result.get_column("natural_key"))
