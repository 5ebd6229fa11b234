"""cmdb_export rules, columnar: one chunk of CMDB rows validated and normalised at once.

Each rule is a set of vectorised expressions over the chunk's columns. Where a value needs
the exact Python normaliser (an unusual IP form, an OS name, a size with a unit, non-ASCII
text), that normaliser runs once per distinct value through `per_distinct`; exports repeat
those values, so the Python work follows the distinct values, not the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl

from dataimport.categories.cmdb_export.aliases import (
    CUSTOM_FIELDS,
    CUSTOM_PREFIX,
    FALLBACKS,
    MAX_CPU_CORES,
    MAX_MEMORY_GB,
    MAX_STORAGE_GB,
    TRUE_WORDS,
)
from dataimport.engine.cells import FieldCells
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.identity import PLAIN_IPV4, hostname_keys, name_keys
from dataimport.engine.jsontext import json_object, json_value
from dataimport.engine.outcome import FrameOutcome
from dataimport.engine.text import (
    collapse_whitespace_ascii,
    is_ascii,
    name_key_ascii,
    per_distinct,
    py_strip,
)
from dataimport.issues import Code, Severity
from dataimport.normalize import (
    name_key,
    normalize_asset_type,
    normalize_criticality,
    normalize_environment,
    normalize_ip,
    normalize_os,
    os_support_end,
    parse_int,
    parse_memory_gb,
    parse_storage_gb,
    quote_value,
    split_list,
)

_LIST_SEPARATORS = r"[,;|\r\n]+"
_SEPARATOR = "\x00"  # never in staged text: JSONB refuses NUL
_LIST = pl.List(pl.Utf8)


# --- identity ----------------------------------------------------------------------------


def _identity(cells: FieldCells, findings: Findings) -> dict[str, pl.Series]:
    """Name (falling back to host name, then the FQDN's short name) and the natural keys."""
    hostname, domain = cells("hostname"), cells("dns_domain")
    frame = pl.DataFrame([hostname.rename("h"), domain.rename("d"), cells("fqdn").rename("f")])
    h, d, f = pl.col("h"), pl.col("d"), pl.col("f")
    fqdn = (
        frame.select(
            pl.when(f.is_not_null())
            .then(f)
            # exports put the FQDN in host_name more often than not
            .when(h.str.contains(".", literal=True))
            .then(h)
            .when(h.is_not_null() & d.is_not_null())
            .then(pl.concat_str([h, pl.lit("."), d.str.strip_chars(".")]))
        )
        .to_series()
        .rename("fqdn")
    )
    # ".corp" names a domain, not a host: its empty first label is no name.
    short = pl.lit(fqdn).str.split(".").list.first()
    fqdn_short = pl.select(pl.when(short != "").then(short)).to_series()
    name = pl.select(pl.coalesce([cells("name"), hostname, fqdn_short])).to_series()
    findings.when(
        name.is_null(),
        issue_json(
            Code.MISSING_REQUIRED,
            Severity.ERROR,
            "no name: name, hostname and fqdn are all empty",
            cells.frame.display_field("name"),
        ),
        Severity.ERROR,
    )
    host_source = pl.select(pl.coalesce([hostname, fqdn])).to_series()
    return {
        "name": name.rename("name"),
        "name_key": name_keys(name).rename("name_key"),
        "external_id": cells("external_id").rename("external_id"),
        "hostname": hostname.rename("hostname"),
        "hostname_key": hostname_keys(host_source).rename("hostname_key"),
        "fqdn": fqdn,
    }


def _ip_address(cells: FieldCells, findings: Findings) -> pl.Series:
    raw = cells("ip_address")
    frame = pl.DataFrame({"s": raw})
    plain = frame.select(pl.col("s").str.contains(PLAIN_IPV4).fill_null(False)).to_series()
    issue = cells.issue(Code.CONSTRAINT_ERROR, Severity.ERROR)

    def exact(text: str) -> tuple[str | None, str | None]:
        try:
            return normalize_ip(text), None
        except ValueError as exc:
            return None, issue("ip_address", f"ip_address: {exc}")

    parsed = per_distinct(
        frame, ["s"], exact, {"ip": pl.Utf8, "issue": pl.Utf8}, raw.is_not_null() & ~plain
    )
    findings.add(parsed["issue"], Severity.ERROR)
    return pl.select(pl.when(plain).then(raw).otherwise(parsed["ip"])).to_series()


# --- classification ----------------------------------------------------------------------


def _vocabulary(
    cells: FieldCells,
    findings: Findings,
    field: str,
    normalizer: Callable[[str], str | None],
    custom: list[tuple[str, pl.Series]],
) -> pl.Series:
    """A controlled value; an unknown one is a warning and its raw text is kept."""
    raw = cells(field)
    issue = cells.issue(Code.UNKNOWN_VALUE, Severity.WARNING)

    def exact(text: str) -> tuple[str | None, str | None, str | None]:
        try:
            return normalizer(text), None, None
        except ValueError as exc:
            message = f"{field}: {exc}; kept as custom_attributes.{field}_raw"
            return None, issue(field, message), text

    result = per_distinct(
        pl.DataFrame({"s": raw}),
        ["s"],
        exact,
        {"value": pl.Utf8, "issue": pl.Utf8, "raw": pl.Utf8},
        raw.is_not_null(),
    )
    findings.add(result["issue"], Severity.WARNING)
    custom.append((f"{field}_raw", result["raw"]))
    return result["value"]


def _classification(
    cells: FieldCells, findings: Findings, custom: list[tuple[str, pl.Series]]
) -> dict[str, pl.Series]:
    asset_type = _vocabulary(cells, findings, "asset_type", normalize_asset_type, custom)
    asset_type = asset_type.fill_null("server")
    virtual = cells("virtual")
    is_virtual = per_distinct(
        pl.DataFrame({"s": virtual}),
        ["s"],
        lambda text: (text.lower() in TRUE_WORDS,),
        {"v": pl.Boolean},
        virtual.is_not_null(),
    )["v"].fill_null(False)
    # ServiceNow keeps VMs in the server classes and flags them with `virtual`.
    asset_type = pl.select(
        pl.when(pl.lit(asset_type) == "server", pl.lit(is_virtual))
        .then(pl.lit("virtual_machine"))
        .otherwise(pl.lit(asset_type))
    ).to_series()
    return {
        "asset_type": asset_type.rename("asset_type"),
        "environment": _vocabulary(
            cells, findings, "environment", normalize_environment, custom
        ).rename("environment"),
        "criticality": _vocabulary(
            cells, findings, "criticality", normalize_criticality, custom
        ).rename("criticality"),
    }


def _operating_system(
    cells: FieldCells, findings: Findings, as_of: date, custom: list[tuple[str, pl.Series]]
) -> dict[str, pl.Series]:
    issue = cells.issue(Code.END_OF_SUPPORT, Severity.WARNING)

    def exact(raw_name: str | None, raw_version: str | None) -> tuple[Any, ...]:
        family, version, past_support = normalize_os(raw_name or "", raw_version, as_of)
        kept_raw = raw_name if raw_name and family != raw_name else None
        found = None
        if past_support and family:
            ended = os_support_end(family, version)
            when = f" (ended {ended.isoformat()})" if ended else ""
            label = f"{family} {version}" if version else family
            message = f"operating_system: {label} is past end of vendor support{when}"
            found = issue("operating_system", message)
        return family, version, past_support, kept_raw, found

    frame = pl.DataFrame([cells("operating_system").rename("n"), cells("os_version").rename("v")])
    result = per_distinct(
        frame,
        ["n", "v"],
        exact,
        {
            "operating_system": pl.Utf8,
            "os_version": pl.Utf8,
            "os_end_of_support": pl.Boolean,
            "raw": pl.Utf8,
            "issue": pl.Utf8,
        },
    )
    custom.append(("operating_system_raw", result["raw"]))
    findings.add(result["issue"], Severity.WARNING)
    return {name: result[name] for name in ("operating_system", "os_version", "os_end_of_support")}


# --- capacity ----------------------------------------------------------------------------


def _checked_number(
    cells: FieldCells,
    findings: Findings,
    candidates: tuple[tuple[str, Callable[[str], float]], ...],
    maximum: float,
    unit: str,
) -> pl.Series:
    """The first present field of candidates, parsed; type and plausibility errors reported."""
    parsers = dict(candidates)
    chosen = pl.select(
        pl.coalesce(
            [pl.when(pl.lit(cells(f)).is_not_null()).then(pl.lit(f)) for f, _ in candidates]
        )
    ).to_series()
    raw = cells.first(*parsers)
    type_error = cells.issue(Code.TYPE_ERROR, Severity.ERROR)
    constraint = cells.issue(Code.CONSTRAINT_ERROR, Severity.ERROR)

    def exact(field: str, text: str) -> tuple[float | None, str | None]:
        try:
            value = parsers[field](text)
        except ValueError as exc:
            return None, type_error(field, f"{field}: {exc}")
        if value < 0:
            return None, constraint(field, f"{field}: {quote_value(text)} is negative")
        if value > maximum:
            message = (
                f"{field}: {quote_value(text)} is {value:g} {unit}, "
                f"above the plausible maximum of {maximum:g} {unit}"
            )
            return None, constraint(field, message)
        # CMDB exports write 0 for "not discovered": unknown, not a zero-sized machine.
        return float(value) or None, None

    result = per_distinct(
        pl.DataFrame([chosen.rename("f"), raw.rename("s")]),
        ["f", "s"],
        exact,
        {"value": pl.Float64, "issue": pl.Utf8},
        chosen.is_not_null(),
    )
    findings.add(result["issue"], Severity.ERROR)
    return result["value"]


def _memory(unit: str) -> Callable[[str], float]:
    return lambda text: parse_memory_gb(text, unit)


def _storage(unit: str) -> Callable[[str], float]:
    return lambda text: parse_storage_gb(text, unit)


def _capacity(cells: FieldCells, findings: Findings) -> dict[str, pl.Series]:
    cores = _checked_number(cells, findings, (("cpu_cores", parse_int),), MAX_CPU_CORES, "cores")
    memory = _checked_number(
        cells,
        findings,
        (("memory_gb", _memory("GB")), ("memory_mb", _memory("MB"))),
        MAX_MEMORY_GB,
        "GB",
    )
    storage = _checked_number(
        cells,
        findings,
        (("storage_gb", _storage("GB")), ("storage_mb", _storage("MB"))),
        MAX_STORAGE_GB,
        "GB",
    )
    return {
        "cpu_cores": cores.cast(pl.Int64).rename("cpu_cores"),
        "memory_gb": memory.rename("memory_gb"),
        "storage_gb": storage.rename("storage_gb"),
    }


def _business(cells: FieldCells) -> dict[str, pl.Series]:
    values = {column: cells.first(*fields).rename(column) for column, fields in FALLBACKS.items()}
    values["location"] = cells("location").rename("location")
    values["serial_number"] = cells("serial_number").rename("serial_number")
    return values


# --- dependencies ------------------------------------------------------------------------


def _dependencies_exact(
    raw: str, own: frozenset[str], issue: Callable[[str, str], str]
) -> tuple[list[str], list[str]]:
    """Declared dependency names without the asset itself, and one warning per self-mention."""
    kept: list[str] = []
    found: list[str] = []
    for item in split_list(raw):
        target = " ".join(item.split())
        if name_key(target) in own:
            message = f"dependencies: {quote_value(target)} is the asset itself; dropped"
            found.append(issue("dependencies", message))
        else:
            kept.append(target)
    return kept, found


def _dependencies(
    cells: FieldCells, findings: Findings, identity: dict[str, pl.Series]
) -> pl.Series:
    raw = cells("dependencies")
    issue = cells.issue(Code.SELF_DEPENDENCY, Severity.WARNING)
    height = cells.frame.height
    own = [
        identity["name_key"].rename("own0"),
        name_keys(identity["hostname"]).rename("own1"),
        name_keys(identity["fqdn"]).rename("own2"),
    ]
    rows = pl.DataFrame([pl.Series("row", range(height), dtype=pl.UInt32), raw.rename("raw"), *own])
    # The own keys are exact whatever the text; the splitting is vectorised for ASCII lists.
    ascii_rows = rows.select(pl.col("raw").is_not_null() & is_ascii(pl.col("raw"))).to_series()

    # Exact Python for the (rare) non-ASCII rows.
    def exact(raw_text: str, *keys: str | None) -> tuple[list[str], list[str]]:
        return _dependencies_exact(raw_text, frozenset(k for k in keys if k), issue)

    slow = per_distinct(
        rows,
        ["raw", *(o.name for o in own)],
        exact,
        {"kept": _LIST, "issues": _LIST},
        raw.is_not_null() & ~ascii_rows,
    )

    items = (
        rows.filter(ascii_rows)
        .with_columns(
            pl.col("raw").str.replace_all(_LIST_SEPARATORS, _SEPARATOR).str.split(_SEPARATOR)
        )
        .explode("raw")
        .with_columns(py_strip(pl.col("raw")).alias("item"))
        .filter(pl.col("item") != "")
        .with_columns(name_key_ascii(pl.col("item")).alias("key"))
        .unique(subset=["row", "key"], keep="first", maintain_order=True)
        .with_columns(
            collapse_whitespace_ascii(pl.col("item")).alias("target"),
            pl.any_horizontal(
                (pl.col("key") == pl.col(o.name)).fill_null(False) for o in own
            ).alias("is_self"),
        )
    )
    selves = items.filter(pl.col("is_self"))
    messages = per_distinct(
        selves,
        ["target"],
        lambda target: (
            issue(
                "dependencies", f"dependencies: {quote_value(target)} is the asset itself; dropped"
            ),
        ),
        {"issue": pl.Utf8},
    )
    selves = selves.with_columns(messages["issue"])
    kept = (
        items.filter(~pl.col("is_self"))
        .group_by("row", maintain_order=True)
        .agg(pl.col("target").alias("kept"))
    )
    self_issues = selves.group_by("row", maintain_order=True).agg(pl.col("issue").alias("issues"))
    fast = (
        rows.select("row")
        .join(kept, on="row", how="left", maintain_order="left")
        .join(self_issues, on="row", how="left", maintain_order="left")
    )
    dependencies = pl.select(
        pl.when(pl.lit(ascii_rows))
        .then(pl.lit(fast["kept"]))
        .otherwise(pl.lit(slow["kept"]))
        .fill_null(pl.lit([], dtype=_LIST))
    ).to_series()
    found = pl.select(
        pl.when(pl.lit(ascii_rows)).then(pl.lit(fast["issues"])).otherwise(pl.lit(slow["issues"]))
    ).to_series()
    findings.add(found, Severity.WARNING)
    return dependencies.rename("dependencies")


# --- the chunk ---------------------------------------------------------------------------


def _custom_attributes(
    cells: FieldCells, derived: list[tuple[str, pl.Series]]
) -> list[tuple[str, pl.Series]]:
    parts = [(field, cells(field)) for field in CUSTOM_FIELDS]
    for _header, field in cells.frame.mapped_fields():
        if field.startswith(CUSTOM_PREFIX):
            parts.append((field.removeprefix(CUSTOM_PREFIX), cells(field)))
    # derived (…_raw) last: the later key wins, as in a dict merge. An all-null part adds no
    # member to any row: left out, it costs no encoding pass.
    return [
        (key, values) for key, values in [*parts, *derived] if values.null_count() < len(values)
    ]


def validate_frame(frame: ChunkFrame, findings: Findings, as_of: date) -> FrameOutcome:
    cells = FieldCells(frame)
    custom: list[tuple[str, pl.Series]] = []
    identity = _identity(cells, findings)
    asset: dict[str, pl.Series] = {
        **identity,
        "ip_address": _ip_address(cells, findings).rename("ip_address"),
        **_classification(cells, findings, custom),
        **_operating_system(cells, findings, as_of, custom),
        **_capacity(cells, findings),
        **_business(cells),
    }
    dependencies = _dependencies(cells, findings, identity)
    parts = _custom_attributes(cells, custom)
    columns = pl.DataFrame(
        [
            *(series.rename(name) for name, series in asset.items()),
            dependencies,
            *(series.rename(f"c{i}") for i, (_key, series) in enumerate(parts)),
        ]
    )
    custom_json = json_object(columns, [(key, f"c{i}", True) for i, (key, _s) in enumerate(parts)])
    asset_json = pl.struct([pl.col(name) for name in asset]).struct.json_encode()
    normalized = columns.select(
        pl.concat_str(
            [
                pl.lit('{"asset":'),
                asset_json.str.head(-1),  # a slice: the custom attributes join the object
                pl.lit(',"custom_attributes":'),
                custom_json,
                pl.lit('},"dependencies":'),
                json_value(pl.col("dependencies")),
                pl.lit("}"),
            ]
        ).alias("normalized")
    ).to_series()
    return FrameOutcome(normalized=normalized, natural_key=identity["name_key"])


__all__ = ["FrameOutcome", "validate_frame"]
