"""app_discovery rules, columnar: one chunk of dependency rows validated and normalised at once.

Each rule is a set of vectorised expressions over the chunk's columns. The common forms (a
host name of ASCII host-name characters, a plain unicast IPv4 address, a port, a count or byte
figure of plain digits) are settled by expressions; anything else (an address in the name
column, a loopback or multicast IP, "443/tcp", "1.5 GB", a timestamp, a protocol name,
non-ASCII text) goes through the exact parsers of `cells.py` once per distinct value
through `per_distinct`. Exports repeat endpoints,
timeslots, protocols and processes, so the Python work follows the distinct values.

The dependency_validator agent reads what these rules normalised from columns published on
the frame (`dependency_validator.published`), so it never re-derives them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from dataimport.agents import dependency_validator as agent
from dataimport.categories.app_discovery.cells import (
    _PLACEHOLDERS,
    _dependency_type,
    _digest,
    _endpoint,
    _number,
    _percent,
    _port,
    _protocol,
    _Row,
    _timestamp,
)
from dataimport.categories.app_discovery.values import parse_bytes, parse_duration_ms
from dataimport.categories.app_discovery.vocabulary import (
    BIGINT_MAX,
    CONFIDENCE,
    DISCRIMINATORS,
    EDGE_COLUMNS,
    SIDES,
)
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.jsontext import json_object, json_value
from dataimport.engine.outcome import FrameOutcome
from dataimport.engine.text import by_distinct, is_ascii, name_key_ascii, per_distinct, py_strip
from dataimport.issues import Code, Severity
from dataimport.normalize import name_key, parse_int

_TEXT_FIELDS = (
    "source_name",
    "source_ip",
    "source_port",
    "source_application",
    "source_process",
    "source_component",
    "target_name",
    "target_ip",
    "target_application",
    "target_process",
    "target_component",
    "port",
    "protocol",
    "dependency_type",
    "conn_count",
    "bytes_total",
    "bytes_sent",
    "bytes_received",
    "latency_ms",
    "error_rate",
    "error_count",
    "first_seen",
    "last_seen",
    "timeslot",
    "application",
)
_LONGEST_PLACEHOLDER = max(len(p) for p in _PLACEHOLDERS)

# A name of host-name characters with something no IP address has: never an IP (IPv4 is
# digits and dots, IPv6 needs a ':'), its hostname_key a plain split.
_FAST_HOST = r"^[A-Za-z0-9_.-]*[A-Za-z_-][A-Za-z0-9_.-]*$"
_HOST_LABEL = r"^[a-z0-9][a-z0-9_-]*$"
# A dotted quad without leading zeros: `ipaddress` reads it as itself.
_PLAIN_IPV4 = (
    r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
)
_PLAIN_PORT = r"^[1-9][0-9]{0,4}$"
_PLAIN_COUNT = r"^[0-9]{1,18}$"  # always <= BIGINT_MAX
_PLAIN_DECIMAL = r"^[0-9]{1,9}(?:\.[0-9]{1,6})?$"
_JSON_LIST = pl.List(pl.Utf8)

_IDENTITY = ("name", "name_key", "hostname", "hostname_key", "ip_address", "asset_type")


def _add(findings: Findings, issues: pl.Series, severity: Severity) -> None:
    """`findings.add`, skipping a column with no issue at all (it would add nothing to any
    row, only work to the final join)."""
    if issues.dtype == pl.List(pl.Utf8):
        if issues.list.len().fill_null(0).max() or 0:
            findings.add(issues, severity)
    elif issues.null_count() < len(issues):
        findings.add(issues, severity)


def _when(findings: Findings, condition: pl.Series, issue: str, severity: Severity) -> None:
    if condition.fill_null(False).any():
        findings.when(condition.fill_null(False), issue, severity)


def _series(frame: pl.DataFrame, expr: pl.Expr, name: str) -> pl.Series:
    return frame.select(expr.alias(name)).to_series()


class _Chunk:
    """The chunk's mapped fields as `_Row` sees them (stripped; null when empty or a
    placeholder), and the columns the rules derive, in one frame."""

    def __init__(self, frame: ChunkFrame) -> None:
        self.frame = frame
        columns: list[pl.Series] = []
        source = frame.rows
        for field in _TEXT_FIELDS:
            column = frame.column_of_field(field)
            if column is None:
                columns.append(
                    pl.repeat(None, frame.height, dtype=pl.Utf8, eager=True).rename(field)
                )
                continue
            # A function of each cell alone: computed once per distinct cell.
            cleaned = by_distinct(
                source.get_column(column),
                lambda cells: self._without_placeholders(
                    pl.select(py_strip(pl.lit(cells))).to_series()
                ),
            )
            columns.append(cleaned.rename(field))
        self.data = pl.DataFrame(columns) if columns else pl.DataFrame()

    @staticmethod
    def _without_placeholders(values: pl.Series) -> pl.Series:
        frame = pl.DataFrame({"s": values})
        s = pl.col("s")
        ascii_text = is_ascii(s)
        odd = frame.select(
            (~ascii_text & (s.str.len_chars() <= _LONGEST_PLACEHOLDER)).alias("odd")
        ).to_series()
        exact = per_distinct(
            frame, ["s"], lambda v: (v.lower() in _PLACEHOLDERS,), {"p": pl.Boolean}, odd
        )
        placeholder = frame.select(
            (s == "")
            | (ascii_text & s.str.to_lowercase().is_in(list(_PLACEHOLDERS)))
            | pl.lit(exact["p"]).fill_null(False)
        ).to_series()
        return values.set(placeholder, None)

    def add(self, **columns: Any) -> None:
        self.data = self.data.with_columns(
            (value.alias(name) if isinstance(value, pl.Expr) else value.rename(name))
            for name, value in columns.items()
        )

    def col(self, name: str) -> pl.Series:
        return self.data.get_column(name)

    def issue(self, code: Code, severity: Severity, field: str, message: str) -> str:
        return issue_json(code, severity, message, self.frame.display_field(field))

    def issues_of(self, row: _Row) -> tuple[str | None, str | None]:
        """(first error, first warning) of a scratch row, as issue JSON."""
        error = warning = None
        for found in row.issues:
            text = issue_json(
                found.code, found.severity, found.message, self.frame.display_field(found.field)
            )
            if found.is_error:
                error = error or text
            else:
                warning = warning or text
        return error, warning


def _scratch(**cells: str | None) -> _Row:
    return _Row({field: value for field, value in cells.items() if value is not None})


def _exact_or_fast(
    chunk: _Chunk,
    keys: Sequence[str],
    exact: Callable[..., tuple[Any, ...]],
    schema: dict[str, pl.DataType | type[pl.DataType]],
    fast: pl.Expr,
    fast_values: dict[str, pl.Expr],
    where: pl.Expr | None = None,
) -> dict[str, pl.Series]:
    """Per row: `fast_values` where `fast` holds, else `exact(*keys)` once per distinct keys
    (only on rows in `where`, null elsewhere)."""
    expressions = [fast, *fast_values.values(), *([] if where is None else [where])]
    if all(set(e.meta.root_names()) <= set(keys) for e in expressions):
        # Every answer is a function of the keys alone, and exports repeat them (the same
        # endpoints in every timeslot): computed once per distinct keys, joined back.
        keyed = chunk.data.select(keys)
        distinct = keyed.unique()
        if 2 * distinct.height <= keyed.height:
            out = _exact_or_fast_on(distinct, keys, exact, schema, fast, fast_values, where)
            computed = pl.concat(
                [distinct, out.select(pl.all().name.prefix("__r_"))], how="horizontal"
            )
            joined = keyed.join(
                computed, on=list(keys), how="left", maintain_order="left", nulls_equal=True
            )
            return {name: joined.get_column(f"__r_{name}").rename(name) for name in schema}
    out = _exact_or_fast_on(chunk.data, keys, exact, schema, fast, fast_values, where)
    return {name: out.get_column(name) for name in schema}


def _exact_or_fast_on(
    data: pl.DataFrame,
    keys: Sequence[str],
    exact: Callable[..., tuple[Any, ...]],
    schema: dict[str, pl.DataType | type[pl.DataType]],
    fast: pl.Expr,
    fast_values: dict[str, pl.Expr],
    where: pl.Expr | None,
) -> pl.DataFrame:
    candidate = ~fast if where is None else (~fast & where)
    candidates = _series(data, candidate.fill_null(False), "c")
    hidden = {f"__{name}": dtype for name, dtype in schema.items()}  # never a key's name
    result = per_distinct(data, keys, exact, hidden, candidates)
    merged = pl.concat([data.select(keys), result], how="horizontal").with_columns(
        fast.fill_null(False).alias("__fast")
    )
    return merged.select(
        pl.when(pl.col("__fast"))
        .then(fast_values.get(name, pl.lit(None)))
        .otherwise(pl.col(f"__{name}"))
        .alias(name)
        for name in schema
    )


# --- endpoints ---------------------------------------------------------------------------


def _endpoints(chunk: _Chunk, findings: Findings, side: str) -> None:
    """`_endpoint` per row: identity columns `{side}.*`, `{side}.present`, `{side}.loopback`."""
    name_f, ip_f, comp_f = f"{side}_name", f"{side}_ip", f"{side}_component"
    name, ip, comp = pl.col(name_f), pl.col(ip_f), pl.col(comp_f)
    octet = ip.str.extract(r"^([0-9]+)\.").cast(pl.Int32, strict=False)
    unicast = ip.str.contains(_PLAIN_IPV4) & octet.is_between(1, 223) & (octet != 127)
    fast = (
        (name.is_null() | name.str.contains(_FAST_HOST))
        & (ip.is_null() | unicast)
        & (comp.is_null() | is_ascii(comp))
    )
    text = name.str.to_lowercase().str.strip_chars_end(".")
    short = text.str.split(".").list.first()
    host_key = pl.when(short.str.contains(_HOST_LABEL)).then(short)
    fast_values = {
        "present": name.is_not_null() | ip.is_not_null() | comp.is_not_null(),
        "name": pl.coalesce(name, ip, comp),
        "name_key": pl.when(name.is_not_null())
        .then(name.str.to_lowercase())
        .when(ip.is_not_null())
        .then(ip)
        .otherwise(name_key_ascii(comp)),
        "hostname": pl.when(name.is_not_null() & host_key.is_not_null()).then(name),
        "hostname_key": pl.when(name.is_not_null()).then(host_key),
        "ip_address": pl.when(name.is_not_null() | ip.is_not_null()).then(ip),
        "asset_type": pl.when(name.is_not_null() | ip.is_not_null())
        .then(pl.lit("server"))
        .when(comp.is_not_null())
        .then(pl.lit("application")),
        "loopback": pl.lit(False),
    }

    def exact(name: str | None, ip: str | None, comp: str | None) -> tuple[Any, ...]:
        row = _scratch(**{name_f: name, ip_f: ip, comp_f: comp})
        identity, loopback = _endpoint(row, side)
        values = [identity[key] for key in _IDENTITY] if identity else [None] * len(_IDENTITY)
        return (identity is not None, *values, loopback, *chunk.issues_of(row))

    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "present": pl.Boolean,
        **dict.fromkeys(_IDENTITY, pl.Utf8),
        "loopback": pl.Boolean,
        "error": pl.Utf8,
        "warning": pl.Utf8,
    }
    result = _exact_or_fast(chunk, [name_f, ip_f, comp_f], exact, schema, fast, fast_values)
    _add(findings, result["error"], Severity.ERROR)
    _add(findings, result["warning"], Severity.WARNING)
    chunk.add(
        **{f"{side}.{key}": result[key] for key in ("present", *_IDENTITY, "loopback")},
    )


def _missing_ends(chunk: _Chunk, findings: Findings) -> None:
    source_missing = ~chunk.col("source.present")
    for loopback, why in ((True, "is a loopback address"), (False, "has no name, IP or component")):
        _when(
            findings,
            source_missing & (chunk.col("source.loopback") == loopback),
            chunk.issue(
                Code.MISSING_REQUIRED, Severity.ERROR, "source_name", f"source endpoint {why}"
            ),
            Severity.ERROR,
        )
    _when(
        findings,
        ~chunk.col("target.present") & ~chunk.col("target.loopback"),
        chunk.issue(
            Code.MISSING_REQUIRED,
            Severity.ERROR,
            "target_name",
            "target endpoint has no name, IP or component",
        ),
        Severity.ERROR,
    )


# --- the dependency ----------------------------------------------------------------------


def _port_column(chunk: _Chunk, findings: Findings, field: str) -> pl.Series:
    """`_port`: the number (the protocol written next to it goes to `{field}.hint`)."""
    raw = pl.col(field)
    fast = raw.is_null() | (
        raw.str.contains(_PLAIN_PORT) & (raw.cast(pl.Int64, strict=False) <= 65535)
    )

    def exact(text: str) -> tuple[Any, ...]:
        row = _scratch(**{field: text})
        port, hint = _port(row, field)
        return port, hint, chunk.issues_of(row)[0]

    result = _exact_or_fast(
        chunk,
        [field],
        exact,
        {"port": pl.Int64, "hint": pl.Utf8, "error": pl.Utf8},
        fast,
        {"port": raw.cast(pl.Int64, strict=False)},
    )
    _add(findings, result["error"], Severity.ERROR)
    chunk.add(**{f"{field}.hint": result["hint"]})
    return result["port"]


def _protocol_column(chunk: _Chunk, findings: Findings) -> pl.Series:
    raw = _series(chunk.data, pl.coalesce(pl.col("protocol"), pl.col("port.hint")), "raw")

    def exact(text: str) -> tuple[Any, ...]:
        row = _scratch()
        return (_protocol(row, text), *chunk.issues_of(row))

    result = per_distinct(
        pl.DataFrame({"raw": raw}),
        ["raw"],
        exact,
        {"protocol": pl.Utf8, "error": pl.Utf8, "warning": pl.Utf8},
        raw.is_not_null(),
    )
    _add(findings, result["error"], Severity.ERROR)
    _add(findings, result["warning"], Severity.WARNING)
    return result["protocol"]


def _figure(
    chunk: _Chunk,
    findings: Findings,
    field: str,
    parse: Callable[[str], Any],
    maximum: float,
    what: str,
    dtype: type[pl.DataType],
) -> pl.Series:
    """`_number`: plain digits (or a plain decimal within range) by cast, the rest exact."""
    raw = pl.col(field)
    if dtype is pl.Int64:
        fast = raw.is_null() | raw.str.contains(_PLAIN_COUNT)
    else:
        fast = raw.is_null() | (
            raw.str.contains(_PLAIN_DECIMAL) & (raw.cast(pl.Float64, strict=False) <= maximum)
        )

    def exact(text: str) -> tuple[Any, ...]:
        row = _scratch(**{field: text})
        value = _number(row, field, parse, maximum, what)
        return value, chunk.issues_of(row)[0]

    result = _exact_or_fast(
        chunk,
        [field],
        exact,
        {"value": dtype, "error": pl.Utf8},
        fast,
        {"value": raw.cast(dtype, strict=False)},
    )
    _add(findings, result["error"], Severity.ERROR)
    return result["value"]


def _figures(chunk: _Chunk, findings: Findings) -> None:
    """Counts, bytes, latency and error rate; bytes sent + received stand in for a total."""
    conn = _figure(chunk, findings, "conn_count", parse_int, BIGINT_MAX, "", pl.Int64)
    sent = _figure(chunk, findings, "bytes_sent", parse_bytes, BIGINT_MAX, "bytes", pl.Int64)
    received = _figure(
        chunk, findings, "bytes_received", parse_bytes, BIGINT_MAX, "bytes", pl.Int64
    )
    total = _figure(chunk, findings, "bytes_total", parse_bytes, BIGINT_MAX, "bytes", pl.Int64)
    rate = _figure(chunk, findings, "error_rate", _percent, 100, "%", pl.Float64)
    errors = _figure(chunk, findings, "error_count", parse_int, BIGINT_MAX, "", pl.Int64)
    latency = _figure(
        chunk, findings, "latency_ms", parse_duration_ms, 86_400_000, "ms", pl.Float64
    )
    chunk.add(
        conn_count_v=conn,
        bytes_sent_v=sent,
        bytes_received_v=received,
        bytes_total_v=total,
        error_rate_v=rate,
        error_count_v=errors,
        latency_ms_v=latency,
    )
    s, r = pl.col("bytes_sent_v"), pl.col("bytes_received_v")
    s0, r0 = s.fill_null(0), r.fill_null(0)
    summed = pl.when(s0 > BIGINT_MAX - r0).then(pl.lit(BIGINT_MAX, pl.Int64)).otherwise(s0 + r0)
    chunk.add(
        bytes_total_v=pl.when(
            pl.col("bytes_total_v").is_null() & (s.is_not_null() | r.is_not_null())
        )
        .then(summed)
        .otherwise(pl.col("bytes_total_v"))
    )

    def derived_rate(error_count: int, conn_count: int) -> tuple[float]:
        return (min(100.0, round(100.0 * error_count / conn_count, 4)),)

    derive = _series(
        chunk.data,
        pl.col("error_rate_v").is_null()
        & pl.col("error_count_v").is_not_null()
        & (pl.col("conn_count_v").fill_null(0) != 0),
        "d",
    )
    rates = per_distinct(
        chunk.data, ["error_count_v", "conn_count_v"], derived_rate, {"r": pl.Float64}, derive
    )
    chunk.add(error_rate_v=pl.coalesce(pl.col("error_rate_v"), pl.lit(rates["r"])))


def _timestamps(chunk: _Chunk, findings: Findings, field: str) -> None:
    """`_timestamp`: ISO text (`{field}.iso`) and epoch microseconds (`{field}.us`)."""

    def exact(text: str) -> tuple[Any, ...]:
        row = _scratch(**{field: text})
        when = _timestamp(row, field)
        if when is None:
            return None, None, chunk.issues_of(row)[0]
        return when.isoformat(), agent.epoch_us(when), None

    result = per_distinct(
        chunk.data,
        [field],
        exact,
        {"iso": pl.Utf8, "us": pl.Int64, "error": pl.Utf8},
        chunk.col(field).is_not_null(),
    )
    _add(findings, result["error"], Severity.ERROR)
    chunk.add(**{f"{field}.iso": result["iso"], f"{field}.us": result["us"]})


def _window(chunk: _Chunk, findings: Findings) -> None:
    """First/last seen (`first.iso`, `first.us`, `last.iso`, `last.us`): a timeslot is both,
    one of first/last alone stands for both, last before first is an error."""
    for field in ("timeslot", "first_seen", "last_seen"):
        _timestamps(chunk, findings, field)
    for part in ("iso", "us"):
        slot = pl.col(f"timeslot.{part}")
        first = pl.coalesce(pl.col(f"first_seen.{part}"), slot)
        last = pl.coalesce(pl.col(f"last_seen.{part}"), slot)
        chunk.add(**{f"first.{part}": pl.coalesce(first, last), f"last.{part}": last})
    chunk.add(**{"last.iso": pl.coalesce(pl.col("last.iso"), pl.col("first.iso"))})
    chunk.add(**{"last.us": pl.coalesce(pl.col("last.us"), pl.col("first.us"))})
    chunk.add(backwards=(pl.col("last.us") < pl.col("first.us")).fill_null(False))
    backwards = pl.col("backwards")
    message = pl.concat_str(
        pl.lit("last_seen "),
        pl.col("last.iso"),
        pl.lit(" is before first_seen "),
        pl.col("first.iso"),
    )
    shown = chunk.frame.display_field("last_seen")
    head = json.dumps({"code": str(Code.CONSTRAINT_ERROR), "severity": "error"})[:-1]
    issue = pl.concat_str(
        pl.lit(head + ', "message": '),
        json_value(message),
        pl.lit(', "field": ' + json.dumps(shown) + "}"),
    )
    _add(findings, _series(chunk.data, pl.when(backwards).then(issue), "i"), Severity.ERROR)
    chunk.add(
        **{
            f"{end}.{part}": pl.when(~backwards).then(pl.col(f"{end}.{part}"))
            for end in ("first", "last")
            for part in ("iso", "us")
        }
    )


# Keys of the normalised dependency in `_dependency`'s order (before confidence and
# observation_key); edge columns are always present, the others only when not null.
_DEPENDENCY_KEYS = (
    "port",
    "protocol",
    "dependency_type",
    "conn_count",
    "bytes_total",
    "first_seen",
    "last_seen",
    "kind",
    "service",
    "protocol_inferred",
    "application",
    "source_application",
    "source_process",
    "source_component",
    "target_application",
    "target_process",
    "target_component",
    "source_port",
    "bytes_sent",
    "bytes_received",
    "latency_ms",
    "error_rate_pct",
    "error_count",
)


def _dependency(chunk: _Chunk, findings: Findings) -> None:
    """The dependency (edge key, figures, details, confidence, observation key): every key as
    a column `d.<key>`. Without a protocol, a port of a network row is TCP (connection exports
    record TCP only); a network row with a window and no count was seen once."""
    port = _port_column(chunk, findings, "port")
    source_port = _port_column(chunk, findings, "source_port")
    chunk.add(**{"d.port": port, "d.source_port": source_port})
    protocol = _protocol_column(chunk, findings)
    topology = pl.col("source_component").is_not_null() | pl.col("target_component").is_not_null()
    kind = pl.when(topology).then(pl.lit("topology")).otherwise(pl.lit("network"))
    chunk.add(**{"d.kind": kind, "d.protocol": protocol})
    inferred = (
        pl.col("d.protocol").is_null() & pl.col("d.port").is_not_null() & ~topology
    ).fill_null(False)
    chunk.add(
        **{
            "d.protocol": pl.when(inferred).then(pl.lit("TCP")).otherwise(pl.col("d.protocol")),
            "d.protocol_inferred": pl.when(inferred).then(pl.lit(True)),
        }
    )
    _figures(chunk, findings)
    _window(chunk, findings)
    network = pl.col("d.kind") == "network"
    conn = pl.col("conn_count_v")
    one = network & conn.is_null() & pl.col("first.iso").is_not_null()
    chunk.add(**{"d.conn_count": pl.when(one).then(pl.lit(1, pl.Int64)).otherwise(conn)})
    measured = (
        pl.col("first.iso").is_not_null()
        | pl.col("d.conn_count").is_not_null()
        | pl.col("bytes_total_v").is_not_null()
    )
    kinds = per_distinct(
        chunk.data,
        ["dependency_type", "d.kind"],
        lambda raw, kind: (_dependency_type(_scratch(dependency_type=raw), kind),),
        {"t": pl.Utf8},
    )
    services = {port: service.name for port, service in agent.WELL_KNOWN_PORTS.items()}
    chunk.add(
        **{
            "d.dependency_type": kinds["t"],
            "d.bytes_total": pl.col("bytes_total_v"),
            "d.first_seen": pl.col("first.iso"),
            "d.last_seen": pl.col("last.iso"),
            "d.service": pl.col("d.port").replace_strict(
                services, default=None, return_dtype=pl.Utf8
            ),
            "d.bytes_sent": pl.col("bytes_sent_v"),
            "d.bytes_received": pl.col("bytes_received_v"),
            "d.latency_ms": pl.col("latency_ms_v"),
            "d.error_rate_pct": pl.col("error_rate_v"),
            "d.error_count": pl.col("error_count_v"),
            **{f"d.{key}": pl.col(key) for key in DISCRIMINATORS if key != "source_port"},
            "d.confidence": pl.when(measured & network)
            .then(pl.lit(CONFIDENCE["network"]))
            .when(measured)
            .then(pl.lit(CONFIDENCE["topology"]))
            .otherwise(pl.lit(CONFIDENCE["stated"])),
        }
    )
    _observation_key(chunk)


def _observation_key(chunk: _Chunk) -> None:
    """Which observation of its edge a row is, stable across re-imports of the same data: the
    window plus a digest of the processes/applications behind it (two processes on one server
    pair in one timeslot are two observations), else a digest of every figure and detail, so
    the same file adds nothing twice."""
    who_keys = [f"d.{key}" for key in DISCRIMINATORS]
    windowed = chunk.col("d.first_seen").is_not_null()

    def who_digest(*values: Any) -> tuple[str]:
        return (_digest(dict(zip(DISCRIMINATORS, values, strict=True)), 12),)

    who = per_distinct(chunk.data, who_keys, who_digest, {"w": pl.Utf8}, windowed)
    content_keys = [f"d.{key}" for key in _DEPENDENCY_KEYS]

    def content_digest(*values: Any) -> tuple[str]:
        content = {
            key: value
            for key, value in zip(_DEPENDENCY_KEYS, values, strict=True)
            if value is not None or key in EDGE_COLUMNS
        }
        return (f"h:{_digest(content, 20)}",)

    content = per_distinct(chunk.data, content_keys, content_digest, {"h": pl.Utf8}, ~windowed)
    timed = pl.concat_str(
        pl.lit("t:"),
        pl.col("d.first_seen"),
        pl.lit("/"),
        pl.col("d.last_seen"),
        pl.lit(":"),
        pl.lit(who["w"]),
    )
    chunk.add(
        **{
            "d.observation_key": pl.when(pl.col("d.first_seen").is_not_null())
            .then(timed)
            .otherwise(pl.lit(content["h"]))
        }
    )


# --- ends that are one machine, tiers on nodes -------------------------------------------


def _self_dependency(chunk: _Chunk, findings: Findings) -> None:
    """A row whose ends are one machine is kept (its source is real) but makes no edge: a
    warning, and no target."""
    source = pl.col("source.present")
    loopback = source & pl.col("target.loopback")
    same = (
        source
        & ~pl.col("target.loopback")
        & pl.col("target.present")
        & (pl.col("target.name_key") == pl.col("source.name_key")).fill_null(False)
    )
    chunk.add(loop=loopback, same=same)

    def messages(name: str) -> tuple[str, str]:
        loop = chunk.issue(
            Code.SELF_DEPENDENCY,
            Severity.WARNING,
            "target_ip",
            f"target is a loopback address: {name!r} talks to itself; no dependency",
        )
        twice = chunk.issue(
            Code.SELF_DEPENDENCY,
            Severity.WARNING,
            "target_name",
            f"source and target are both {name!r}; no dependency",
        )
        return loop, twice

    found = per_distinct(
        chunk.data,
        ["source.name"],
        messages,
        {"loop": pl.Utf8, "same": pl.Utf8},
        chunk.col("loop") | chunk.col("same"),
    )
    issue = _series(
        pl.DataFrame(
            [
                chunk.col("loop"),
                chunk.col("same"),
                found["loop"].rename("l"),
                found["same"].rename("s"),
            ]
        ),
        pl.when(pl.col("loop")).then(pl.col("l")).when(pl.col("same")).then(pl.col("s")),
        "i",
    )
    _add(findings, issue, Severity.WARNING)
    chunk.add(**{"target.present": pl.col("target.present") & ~pl.col("loop") & ~pl.col("same")})


def _name_keys(chunk: _Chunk, field: str) -> pl.Series:
    values = chunk.col(field)
    frame = pl.DataFrame({"s": values})
    odd = _series(frame, pl.col("s").is_not_null() & ~is_ascii(pl.col("s")), "o")
    exact = per_distinct(frame, ["s"], lambda s: (name_key(s),), {"k": pl.Utf8}, odd)
    return _series(
        frame.with_columns(exact["k"]),
        pl.when(pl.lit(odd)).then(pl.col("k")).otherwise(name_key_ascii(pl.col("s"))),
        "k",
    )


def _runs_on(chunk: _Chunk) -> pl.Expr:
    """The tier/component each host end runs, when the row names both (topology rows), as a
    JSON array: without it a tier ("Orders") and its node ("orders-node-1") would be two
    unconnected assets; enrichment links them with a `runs_on` edge."""
    members = []
    for side in SIDES:
        component = f"{side}_component"
        chunk.add(**{f"{side}.component_key": _name_keys(chunk, component)})
        key = pl.col(f"{side}.component_key")
        applies = (
            pl.col(component).is_not_null()
            & pl.col(f"{side}.present")
            & (pl.col(f"{side}.asset_type") != "application")
            & (key != pl.col(f"{side}.name_key"))
        )
        identity = pl.struct(
            pl.lit(side).alias("side"),
            pl.col(component).alias("name"),
            key.alias("name_key"),
            *(pl.lit(None, pl.Utf8).alias(k) for k in ("hostname", "hostname_key", "ip_address")),
            pl.lit("application").alias("asset_type"),
        ).struct.json_encode()
        members.append(pl.when(applies.fill_null(False)).then(identity))
    joined = pl.concat_list(members).list.drop_nulls().list.join(",")
    return pl.lit("[") + joined + pl.lit("]")


# --- the chunk ---------------------------------------------------------------------------


def _endpoint_json(side: str) -> pl.Expr:
    identity = pl.struct(
        *(pl.col(f"{side}.{key}").alias(key) for key in _IDENTITY)
    ).struct.json_encode()
    return pl.when(pl.col(f"{side}.present")).then(identity).otherwise(pl.lit("null"))


def validate_frame(frame: ChunkFrame, findings: Findings) -> FrameOutcome:
    """The category's rules over a whole chunk: per row the source and target endpoints, the
    dependency and its runs_on links; a row without both ends is rejected."""
    chunk = _Chunk(frame)
    for side in SIDES:
        _endpoints(chunk, findings, side)
    _missing_ends(chunk, findings)
    _dependency(chunk, findings)
    _self_dependency(chunk, findings)
    # A member outside the edge columns is absent where null (as the row form leaves it out).
    dependency = json_object(
        chunk.data,
        [
            (key, f"d.{key}", key not in EDGE_COLUMNS)
            for key in (*_DEPENDENCY_KEYS, "confidence", "observation_key")
        ],
    )
    normalized = pl.concat_str(
        pl.lit('{"source":'),
        _endpoint_json("source"),
        pl.lit(',"target":'),
        _endpoint_json("target"),
        pl.lit(',"dependency":'),
        dependency,
        pl.lit(',"runs_on":'),
        _runs_on(chunk),
        pl.lit("}"),
    )
    both = pl.col("source.present") & pl.col("target.present")
    key = pl.concat_str(
        pl.col("source.name_key"),
        pl.col("target.name_key"),
        pl.col("d.port").cast(pl.Utf8).fill_null("None"),
        pl.col("d.protocol").fill_null("None"),
        pl.col("d.observation_key"),
        separator="|",
    )
    result = chunk.data.select(
        normalized.alias("normalized"), pl.when(both).then(key).alias("natural_key")
    )
    agent.publish(frame, chunk.data)
    return FrameOutcome(result.get_column("normalized"), result.get_column("natural_key"))


__all__ = ["validate_frame"]
