"""infrastructure rules, columnar: one chunk of VM/server rows validated and normalised at once.

Every rule is a set of vectorised expressions: numbers take a native fast path
where the text is a plain decimal the parser provably reads the same way (sizes in MiB are
converted with integer arithmetic, so the rounding is exact), and the exact parser runs once
per distinct remaining value (units, commas, negatives, values above a maximum). Python's
`round()` is reproduced natively except within a hair of a tie, where Python itself rounds.
Vocabulary values (OS, power state, flags, times) are few per export: exact per distinct
value. Issues are added in the order the row rules report them; rules that the row rules
run only conditionally are masked by the same conditions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl

from dataimport.agents import infrastructure_validator
from dataimport.categories.cmdb_export import MAX_CPU_CORES, MAX_MEMORY_GB, MAX_STORAGE_GB
from dataimport.categories.infrastructure.aliases import (
    _DISK_FIELD,
    _FALSE,
    _TRUE,
    CUSTOM_PREFIX,
)
from dataimport.categories.infrastructure.values import (
    ip_addresses,
    is_performance_layout,
    normalize_power_state,
    normalize_vm_uuid,
    parse_timestamp,
)
from dataimport.engine.cells import FieldCells
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.identity import PLAIN_IPV4, hostname_keys, name_keys
from dataimport.engine.jsontext import json_object, json_value
from dataimport.engine.outcome import FrameOutcome
from dataimport.engine.text import is_ascii, lower_in, per_distinct
from dataimport.issues import Code, Severity
from dataimport.normalize import (
    NULL_TOKENS,
    normalize_ip,
    normalize_os,
    parse_float,
    parse_int,
    parse_memory_gb,
    parse_storage_gb,
    quote_value,
)
from dataimport.rightsizing import DEFAULT_HEADROOM, MIN_CORES, MIN_MEMORY_GB

ERROR, WARNING = Severity.ERROR, Severity.WARNING
_LIST = pl.List(pl.Utf8)


def _s(expr: pl.Expr) -> pl.Series:
    """An expression over literal series, evaluated."""
    return pl.select(expr).to_series()


def _null(height: int, dtype: Any = pl.Utf8) -> pl.Series:
    return pl.repeat(None, height, dtype=dtype, eager=True)


def _divided(values: pl.Expr, divisor: float, height: int) -> pl.Expr:
    """values / divisor, IEEE-divided as Python divides: polars turns a division by a
    constant into a multiplication by its reciprocal, which can differ in the last bit."""
    return values / pl.lit(pl.repeat(divisor, height, dtype=pl.Float64, eager=True))


# --- numbers -----------------------------------------------------------------------------


def py_round(values: pl.Series, digits: int) -> pl.Series:
    """Python's `round(x, digits)` for floats: native unless x·10^digits lies within its
    float error of a .5 tie (or is too large to tell), where Python rounds the distinct values."""
    scale = float(10**digits)
    frame = pl.DataFrame({"x": values.cast(pl.Float64)})
    x = pl.col("x")
    y = x * scale
    floor = y.floor()
    frac = y - floor
    ambiguous = ((frac - 0.5).abs() <= y.abs() * 1e-15 + 1e-9) | (y.abs() >= 1e15) | ~x.is_finite()
    fast = frame.select(
        _divided(pl.when(frac > 0.5).then(floor + 1).otherwise(floor), scale, frame.height).alias(
            "v"
        ),
        (x.is_not_null() & ambiguous.fill_null(False)).alias("slow"),
    )
    slow = per_distinct(
        frame, ["x"], lambda v: (round(v, digits),), {"v": pl.Float64}, where=fast["slow"]
    )
    return _s(pl.when(pl.lit(fast["slow"])).then(pl.lit(slow["v"])).otherwise(pl.lit(fast["v"])))


def _total(*values: pl.Series) -> pl.Series:
    """`round(sum(present), 6)`, null when none is present (sequential sum, as Python's)."""
    acc: pl.Expr | None = None
    for value in values:
        v = pl.lit(value)
        acc = v if acc is None else pl.when(acc.is_null()).then(v).otherwise(acc + v.fill_null(0.0))
    assert acc is not None
    return py_round(_s(acc), 6)


def _share_pct(used: pl.Series, total: pl.Series) -> pl.Series:
    ok = used.is_not_null() & total.is_not_null() & (total != 0)
    share = _s(pl.when(pl.lit(ok)).then(pl.lit(used) / pl.lit(total) * 100.0))
    return py_round(share, 2)


_PLAIN_FLOAT = r"^[0-9]{1,15}(?:\.[0-9]{1,15})?$"
_PLAIN_INT = r"^[0-9]{1,15}$"
_PLAIN_GB = r"^[0-9]{1,9}(?:\.[0-9]{1,6})?$"
_PLAIN_MB = r"^[0-9]{1,12}$"

# kind -> the row rules' parser
_PARSERS: dict[str, Callable[[str], float]] = {
    "float": parse_float,
    "int": parse_int,
    "gb": lambda t: parse_storage_gb(t, "GB"),
    "mb": lambda t: parse_memory_gb(t, "MB"),  # parse_storage_gb(t, "MB") is the same
}


def _fast_number(raw: pl.Series, kind: str) -> tuple[pl.Series, pl.Series]:
    """(value, fast) where the text is a plain number the parser reads exactly this way."""
    frame = pl.DataFrame({"s": raw})
    s = pl.col("s")
    if kind == "float":
        plain = s.str.contains(_PLAIN_FLOAT)
        value = s.cast(pl.Float64, strict=False)
    elif kind == "int":
        plain = s.str.contains(_PLAIN_INT)
        value = s.cast(pl.Int64, strict=False).cast(pl.Float64)
    elif kind == "gb":
        # float(text) rounded to 6 places is float(text) for ≤ 6 decimals below 1e9
        plain = s.str.contains(_PLAIN_GB)
        value = s.cast(pl.Float64, strict=False)
    else:
        # n MiB = n/1024 GB exactly; round half even to 6 places in integers (n·10^6/1024)
        plain = s.str.contains(_PLAIN_MB)
        scaled = s.cast(pl.Int64, strict=False) * 15625
        quotient, rest = scaled // 16, scaled % 16
        up = (rest > 8) | ((rest == 8) & (quotient % 2 == 1))
        value = _divided((quotient + up.cast(pl.Int64)).cast(pl.Float64), 1e6, frame.height)
    out = frame.select(value.alias("v"), plain.fill_null(False).alias("p"))
    return out["v"], out["p"]


# --- a chunk's cells ---------------------------------------------------------------------


class _Cells:
    """The chunk's non-blank cells per field (the row rules' `_Row.cells`), numbers parsed
    once per (field, parser, maximum), and the findings, masked to the rows rules apply to."""

    def __init__(self, frame: ChunkFrame, findings: Findings) -> None:
        self.frame = frame
        self.findings = findings
        self.height = frame.height
        self.fields = FieldCells(frame)
        self.mapped = [field for _header, field in frame.mapped_fields()]
        self.active: pl.Series | None = None
        self._text: dict[str, pl.Series] = {}
        self._numbers: dict[tuple[str, str, float | None, str], tuple[pl.Series, pl.Series]] = {}

    def text(self, field: str) -> pl.Series:
        if field not in self._text:
            value = self.fields(field)
            column = self.frame.column_of_field(field) or ""
            blanked = self.frame.blanked_tokens.get(column, frozenset())
            if value.null_count() == len(value) or blanked >= NULL_TOKENS:
                # an unmapped or empty field, or one whose null tokens the policy blanked
                self._text[field] = value.rename(field)
            else:
                s = pl.col("s")
                self._text[field] = (
                    pl.DataFrame({"s": value})
                    .select(pl.when(~lower_in(s, NULL_TOKENS)).then(s))
                    .to_series()
                    .rename(field)
                )
        return self._text[field]

    def first(self, *fields: str) -> pl.Series:
        return _s(pl.coalesce([pl.lit(self.text(f)) for f in fields]))

    def present(self, field: str) -> pl.Series:
        return self.text(field).is_not_null()

    def issue(self, code: Code, severity: Severity) -> Callable[[str, str], str]:
        return self.fields.issue(code, severity)

    def add(self, issues: pl.Series, severity: Severity, where: pl.Series | None = None) -> None:
        if issues.null_count() == len(issues):
            return  # nothing found: no mask to apply
        mask = (
            self.active
            if where is None
            else (where if self.active is None else where & self.active)
        )
        if mask is not None:
            issues = _s(pl.when(pl.lit(mask)).then(pl.lit(issues)))
        self.findings.add(issues, severity)

    def number(
        self, field: str, kind: str = "float", maximum: float | None = None, unit: str = ""
    ) -> tuple[pl.Series, pl.Series]:
        """(value, issue) of `_Row._parse_number`: value null where blank or invalid."""
        key = (field, kind, maximum, unit)
        if key not in self._numbers:
            self._numbers[key] = self._parse(field, kind, maximum, unit)
        return self._numbers[key]

    def _parse(
        self, field: str, kind: str, maximum: float | None, unit: str
    ) -> tuple[pl.Series, pl.Series]:
        raw = self.text(field)
        value, plain = _fast_number(raw, kind)
        fast = plain if maximum is None else plain & (value <= maximum).fill_null(False)
        slow_rows = raw.is_not_null() & ~fast
        if not slow_rows.any():  # every value plain (the usual case): no exact parse
            values = _s(pl.when(pl.lit(fast)).then(pl.lit(value)))
            return values.rename(field), _null(self.height).rename("i")
        parse = _PARSERS[kind]
        type_error = self.issue(Code.TYPE_ERROR, ERROR)
        constraint = self.issue(Code.CONSTRAINT_ERROR, ERROR)

        def exact(text: str) -> tuple[float | None, str | None]:
            try:
                parsed = parse(text)
            except ValueError as exc:
                return None, type_error(field, f"{field}: {exc}")
            if parsed < 0:
                return None, constraint(field, f"{field}: {quote_value(text)} is negative")
            if maximum is not None and parsed > maximum:
                message = (
                    f"{field}: {quote_value(text)} is {parsed:g}{unit}, above the maximum of "
                    f"{maximum:g}{unit}"
                )
                return None, constraint(field, message)
            return float(parsed), None

        slow = per_distinct(
            pl.DataFrame({"s": raw}),
            ["s"],
            exact,
            {"v": pl.Float64, "i": pl.Utf8},
            where=slow_rows,
        )
        values = _s(pl.when(pl.lit(fast)).then(pl.lit(value)).otherwise(pl.lit(slow["v"])))
        return values.rename(field), slow["i"]

    def percent(self, field: str) -> tuple[pl.Series, pl.Series]:
        return self.number(field, "float", 100.0, " %")

    def flag(self, field: str) -> tuple[pl.Series, pl.Series]:
        raw = self.text(field)
        issue = self.issue(Code.UNKNOWN_VALUE, WARNING)

        def exact(text: str) -> tuple[bool, str | None]:
            if text.lower() in _FALSE:
                return False, None
            if text.lower() in _TRUE:
                return True, None
            return False, issue(field, f"{field}: {quote_value(text)} is not true/false")

        found = per_distinct(
            pl.DataFrame({"s": raw}),
            ["s"],
            exact,
            {"v": pl.Boolean, "i": pl.Utf8},
            raw.is_not_null(),
        )
        return found["v"].fill_null(False), found["i"]

    def first_number(
        self, candidates: tuple[tuple[str, str], ...], maximum: float, unit: str
    ) -> tuple[pl.Series, list[tuple[str, pl.Series]]]:
        """Value of the first present candidate; the chosen mask per candidate."""
        chosen: list[tuple[str, pl.Series]] = []
        taken = pl.repeat(False, self.height, eager=True)
        value = _null(self.height, pl.Float64)
        for field, kind in candidates:
            here = self.present(field) & ~taken
            taken = taken | here
            parsed, issues = self.number(field, kind, maximum, unit)
            self.add(issues, ERROR, here)
            value = _s(pl.when(pl.lit(here)).then(pl.lit(parsed)).otherwise(pl.lit(value)))
            chosen.append((field, here))
        return value, chosen

    def timestamp(self, required: bool) -> pl.Series:
        raw = self.text("observed_at")
        if required:
            self.add(
                _s(
                    pl.when(pl.lit(raw).is_null()).then(
                        pl.lit(
                            issue_json(
                                Code.MISSING_REQUIRED,
                                ERROR,
                                "observed_at: a sample needs a time",
                                self.frame.display_field("observed_at"),
                            )
                        )
                    )
                ),
                ERROR,
            )
        issue = self.issue(Code.TYPE_ERROR, ERROR if required else WARNING)

        def exact(text: str) -> tuple[str | None, str | None]:
            try:
                return parse_timestamp(text).isoformat(), None
            except ValueError as exc:
                suffix = "" if required else "; import time used"
                return None, issue("observed_at", f"observed_at: {exc}{suffix}")

        found = per_distinct(
            pl.DataFrame({"s": raw}), ["s"], exact, {"v": pl.Utf8, "i": pl.Utf8}, raw.is_not_null()
        )
        self.add(found["i"], ERROR if required else WARNING)
        return found["v"]


# --- parts of a machine row ----------------------------------------------------------------


def _disk_totals(cells: _Cells) -> dict[str, pl.Series]:
    """Azure Migrate's per-disk columns summed per measure, in the row rules' order."""
    totals: dict[str, pl.Series] = {}
    for field in sorted(f for f in cells.mapped if _DISK_FIELD.fullmatch(f)):
        match = _DISK_FIELD.fullmatch(field)
        assert match is not None
        measure = match["measure"]
        value, issues = cells.number(field, "gb" if measure == "size_gb" else "float")
        cells.add(issues, ERROR)
        before = totals.get(measure)
        summed = py_round(
            _s(pl.lit(before).fill_null(0.0) + pl.lit(value)) if before is not None else value, 6
        )
        totals[measure] = (
            summed
            if before is None
            else _s(
                pl.when(pl.lit(value).is_not_null()).then(pl.lit(summed)).otherwise(pl.lit(before))
            )
        )
    return totals


def _disk(disks: dict[str, pl.Series], measure: str, height: int) -> pl.Series:
    return disks.get(measure, _null(height, pl.Float64))


def _capacity(cells: _Cells, disks: dict[str, pl.Series]) -> tuple[dict[str, pl.Series], pl.Series]:
    cores, _ = cells.first_number(
        (("cpu_cores", "int"), ("cpu_logical_cores", "int")), MAX_CPU_CORES, " cores"
    )
    memory, chosen = cells.first_number(
        (("memory_gb", "gb"), ("memory_mb", "mb"), ("memory_mib", "mb"), ("memory_size_mib", "mb")),
        MAX_MEMORY_GB,
        " GB",
    )
    provisioned, _ = cells.first_number(
        (
            ("provisioned_gb", "gb"),
            ("provisioned_mib", "mb"),
            ("disk_capacity_mib", "mb"),
            ("vdisk_capacity_mib", "mb"),
        ),
        MAX_STORAGE_GB,
        " GB",
    )
    used, _ = cells.first_number(
        (("partition_consumed_mib", "mb"), ("in_use_mib", "mb"), ("used_gb", "gb")),
        MAX_STORAGE_GB,
        " GB",
    )
    size_gb = _disk(disks, "size_gb", cells.height)
    return {
        "cpu_cores": cores.cast(pl.Int64),
        "memory_gb": memory,
        "storage_gb": _s(pl.coalesce([pl.lit(provisioned), pl.lit(size_gb)])),
        "storage_used_gb": used,
    }, chosen[-1][1]


def _utilisation(
    cells: _Cells, memory_gb: pl.Series, size_in_capacity: pl.Series
) -> dict[str, pl.Series]:
    cpu, cpu_issue = cells.percent("cpu_util")
    cells.add(cpu_issue, ERROR)
    cpu_peak, issue = cells.percent("cpu_util_peak")
    cells.add(issue, ERROR)
    memory, issue = cells.percent("mem_util")
    cells.add(issue, ERROR)
    memory_peak, issue = cells.percent("mem_util_peak")
    cells.add(issue, ERROR)

    derive = memory.is_null()
    checked, _ = cells.number("memory_size_mib", "mb", MAX_MEMORY_GB, " GB")
    unchecked, unchecked_issue = cells.number("memory_size_mib", "mb")
    cells.add(unchecked_issue, ERROR, derive & ~size_in_capacity)
    size_value = _s(
        pl.when(pl.lit(size_in_capacity)).then(pl.lit(checked)).otherwise(pl.lit(unchecked))
    )
    # `size or memory_gb`: 0 and None both fall back
    size = _s(
        pl.when(pl.lit(size_value).fill_null(0.0) != 0)
        .then(pl.lit(size_value))
        .otherwise(pl.lit(memory_gb))
    )
    used, issue = cells.number("mem_used_mb", "mb")
    cells.add(issue, ERROR, derive)
    from_used = _share_pct(used, memory_gb)
    active, issue = cells.number("memory_active_mib", "mb")
    cells.add(issue, ERROR, derive & from_used.is_null())
    derived = _s(pl.coalesce([pl.lit(from_used), pl.lit(_share_pct(active, size))]))
    memory = _s(pl.when(pl.lit(derive)).then(pl.lit(derived)).otherwise(pl.lit(memory)))

    derive_peak = memory_peak.is_null()
    used_peak, issue = cells.number("mem_used_mb_peak", "mb")
    cells.add(issue, ERROR, derive_peak)
    memory_peak = _s(
        pl.when(pl.lit(derive_peak))
        .then(pl.lit(_share_pct(used_peak, memory_gb)))
        .otherwise(pl.lit(memory_peak))
    )
    return {"cpu": cpu, "cpu_peak": cpu_peak, "memory": memory, "memory_peak": memory_peak}


def _numbers(cells: _Cells, where: pl.Series | None, *fields: str) -> list[pl.Series]:
    """parse_float numbers of fields (no maximum), their issues added where given."""
    values = []
    for field in fields:
        value, issue = cells.number(field)
        cells.add(issue, ERROR, where)
        values.append(value)
    return values


def _iops(cells: _Cells, disks: dict[str, pl.Series]) -> pl.Series:
    (given,) = _numbers(cells, None, "iops")
    missing = given.is_null()
    read, write = _numbers(cells, missing, "read_iops", "write_iops")
    height = cells.height
    total = _total(read, write, _disk(disks, "read_ops", height), _disk(disks, "write_ops", height))
    return _s(pl.coalesce([pl.lit(given), pl.lit(total)]))


def _network_mbps(cells: _Cells) -> pl.Series:
    (given,) = _numbers(cells, None, "network_mbps")
    missing = given.is_null()
    values = _numbers(
        cells,
        missing,
        "net_in_mb_s",
        "net_out_mb_s",
        "net_in_kb_s",
        "net_out_kb_s",
        "net_in_bytes_s",
        "net_out_bytes_s",
    )
    scaled = [
        py_round(_s(pl.lit(_total(values[2 * i], values[2 * i + 1])) * factor), 3)
        for i, factor in enumerate((8.0, 8.0 / 1000, 8.0 / 1_000_000))
    ]
    return _s(pl.coalesce([pl.lit(given), *(pl.lit(s) for s in scaled)]))


def _disk_throughput(cells: _Cells, disks: dict[str, pl.Series]) -> pl.Series:
    height = cells.height
    azure = _total(_disk(disks, "read_mb_s", height), _disk(disks, "write_mb_s", height))
    aws = _total(*_numbers(cells, None, "disk_read_kb_s", "disk_write_kb_s"))
    value = _s(pl.coalesce([pl.lit(azure), _divided(pl.lit(aws), 1000, height)]))
    return py_round(value, 3)


def _power_state(cells: _Cells) -> tuple[pl.Series, pl.Series]:
    raw = cells.text("power_state")
    issue = cells.issue(Code.UNKNOWN_VALUE, WARNING)

    def exact(text: str) -> tuple[str | None, str | None, str | None]:
        try:
            return normalize_power_state(text), None, None
        except ValueError as exc:
            return None, text, issue("power_state", f"power_state: {exc}")

    found = per_distinct(
        pl.DataFrame({"s": raw}),
        ["s"],
        exact,
        {"v": pl.Utf8, "raw": pl.Utf8, "i": pl.Utf8},
        raw.is_not_null(),
    )
    cells.add(found["i"], WARNING)
    return found["v"], found["raw"]


def _vm_uuid(cells: _Cells) -> tuple[pl.Series, pl.Series]:
    raw = cells.text("vm_uuid")
    frame = pl.DataFrame({"s": raw})
    digits = pl.col("s").str.to_lowercase().str.replace_all(r"[\t-\r\x1c-\x1f {}\-]", "")
    fast = frame.select(
        (is_ascii(pl.col("s")) & digits.str.contains(r"^[0-9a-f]{32}$"))
        .fill_null(False)
        .alias("f"),
        pl.concat_str(
            [
                digits.str.slice(0, 8),
                digits.str.slice(8, 4),
                digits.str.slice(12, 4),
                digits.str.slice(16, 4),
                digits.str.slice(20),
            ],
            separator="-",
        ).alias("v"),
    )
    issue = cells.issue(Code.CONSTRAINT_ERROR, WARNING)

    def exact(text: str) -> tuple[str | None, str | None, str | None]:
        try:
            return normalize_vm_uuid(text), None, None
        except ValueError as exc:
            return None, text, issue("vm_uuid", f"vm_uuid: {exc}; not used for matching")

    slow = per_distinct(
        frame,
        ["s"],
        exact,
        {"v": pl.Utf8, "raw": pl.Utf8, "i": pl.Utf8},
        raw.is_not_null() & ~fast["f"],
    )
    cells.add(slow["i"], WARNING)
    value = _s(pl.when(pl.lit(fast["f"])).then(pl.lit(fast["v"])).otherwise(pl.lit(slow["v"])))
    return value, slow["raw"]


def _address_list(raw: pl.Series, vectorised: bool) -> pl.Series:
    """`ip_addresses` of each cell: lists of plain IPv4 addresses natively, the rest exactly."""
    frame = pl.DataFrame({"s": raw})
    split = (
        pl.col("s")
        .str.replace_all(r"[,;\t-\r\x1c-\x1f |]+", "\x00")
        .str.strip_chars("\x00")
        .str.split("\x00")
    )
    fast = frame.select(
        (
            is_ascii(pl.col("s"))
            & split.list.eval(pl.element().str.contains(PLAIN_IPV4)).list.all()
            & pl.lit(vectorised)
        )
        .fill_null(False)
        .alias("f"),
        split.list.unique(maintain_order=True).alias("v"),
    )
    slow = per_distinct(
        frame,
        ["s"],
        lambda text: (ip_addresses(text),),
        {"v": _LIST},
        raw.is_not_null() & ~fast["f"],
    )
    return _s(pl.when(pl.lit(fast["f"])).then(pl.lit(fast["v"])).otherwise(pl.lit(slow["v"])))


def _primary_ip(cells: _Cells) -> tuple[pl.Series, pl.Series]:
    """(ip_address, custom ip_addresses)."""
    empty = pl.lit([], dtype=_LIST)
    v4 = _address_list(cells.text("ip_list"), vectorised=True)
    v6 = _address_list(cells.text("ip_list_v6"), vectorised=False)
    listed = _s(pl.concat_list([pl.lit(v4).fill_null(empty), pl.lit(v6).fill_null(empty)]))
    raw = cells.text("ip_address")
    frame = pl.DataFrame({"s": raw})
    plain = frame.select(pl.col("s").str.contains(PLAIN_IPV4).fill_null(False)).to_series()
    issue = cells.issue(Code.CONSTRAINT_ERROR, WARNING)

    def exact(text: str) -> tuple[str | None, str | None]:
        try:
            return normalize_ip(text), None
        except ValueError as exc:
            return None, issue("ip_address", f"ip_address: {exc}; dropped")

    slow = per_distinct(
        frame, ["s"], exact, {"ip": pl.Utf8, "i": pl.Utf8}, raw.is_not_null() & ~plain
    )
    cells.add(slow["i"], WARNING)
    primary = _s(pl.when(pl.lit(plain)).then(pl.lit(raw)).otherwise(pl.lit(slow["ip"])))
    addresses = _s(
        pl.when(pl.lit(primary).is_not_null())
        .then(pl.concat_list([pl.lit(primary), pl.lit(listed)]).list.unique(maintain_order=True))
        .otherwise(pl.lit(listed).list.unique(maintain_order=True))
    )
    many = _s(pl.when(pl.lit(addresses).list.len() > 1).then(pl.lit(addresses)))
    ip = _s(pl.coalesce([pl.lit(primary), pl.lit(addresses).list.first()]))
    return ip, many


def _identity(cells: _Cells) -> tuple[dict[str, pl.Series], list[tuple[str, pl.Series]]]:
    hostname, dns_name = cells.text("hostname"), cells.text("dns_name")
    name = _s(pl.coalesce([pl.lit(cells.text("name")), pl.lit(hostname), pl.lit(dns_name)]))
    cells.add(
        _s(
            pl.when(pl.lit(name).is_null()).then(
                pl.lit(
                    issue_json(
                        Code.MISSING_REQUIRED,
                        ERROR,
                        "no name: VM/server name and host name are empty",
                        cells.frame.display_field("name"),
                    )
                )
            )
        ),
        ERROR,
    )
    dns_key = hostname_keys(dns_name)
    dns_host = _s(
        pl.when(pl.lit(dns_key).is_not_null()).then(pl.lit(dns_name).str.split(".").list.first())
    )
    dotted = [
        pl.when(pl.lit(v).str.contains(".", literal=True)).then(pl.lit(v))
        for v in (dns_name, hostname)
    ]
    fqdn = _s(pl.coalesce(dotted))
    fqdn = _s(pl.when(pl.lit(hostname_keys(fqdn)).is_not_null()).then(pl.lit(fqdn)))
    key_source = _s(pl.coalesce([pl.lit(hostname), pl.lit(dns_name), pl.lit(name)]))
    machine_id = cells.text("machine_id")
    vm_uuid, vm_uuid_raw = _vm_uuid(cells)
    ip, ip_addresses = _primary_ip(cells)
    identity = {
        "name": name,
        "name_key": name_keys(name),
        "hostname": _s(pl.coalesce([pl.lit(hostname), pl.lit(dns_host)])),
        "hostname_key": hostname_keys(key_source),
        "fqdn": fqdn,
        "external_id": _s(pl.coalesce([pl.lit(cells.text("external_id")), pl.lit(machine_id)])),
        "vm_uuid": vm_uuid,
        "ip_address": ip,
    }
    custom = [
        ("machine_id", machine_id),
        ("vm_uuid_raw", vm_uuid_raw),
        ("ip_addresses", ip_addresses),
    ]
    return identity, custom


def _operating_system(cells: _Cells, as_of: date) -> tuple[dict[str, pl.Series], pl.Series]:
    raw_name = cells.first("os_name", "os_config", "os_type")

    def exact(name: str | None, version: str | None) -> tuple[Any, ...]:
        family, os_version, past = normalize_os(name or "", version, as_of)
        return family, os_version, past, name if name and family != name else None

    found = per_distinct(
        pl.DataFrame([raw_name.rename("n"), cells.text("os_version").rename("v")]),
        ["n", "v"],
        exact,
        {
            "operating_system": pl.Utf8,
            "os_version": pl.Utf8,
            "os_end_of_support": pl.Boolean,
            "raw": pl.Utf8,
        },
    )
    values = {n: found[n] for n in ("operating_system", "os_version", "os_end_of_support")}
    return values, found["raw"]


def _asset_type(cells: _Cells) -> pl.Series:
    physical, issue = cells.flag("is_physical")
    cells.add(issue, WARNING)
    machine_type = cells.text("machine_type")
    said = per_distinct(
        pl.DataFrame({"s": machine_type}),
        ["s"],
        lambda text: ("physical" in text.lower(),),
        {"p": pl.Boolean},
        machine_type.is_not_null(),
    )["p"].fill_null(False)
    return _s(
        pl.when(pl.lit(physical) | pl.lit(said))
        .then(pl.lit("server"))
        .otherwise(pl.lit("virtual_machine"))
    )


def _rightsizing(
    cores: pl.Series,
    memory_gb: pl.Series,
    usage: dict[str, pl.Series],
    powered_off: pl.Series,
) -> pl.Expr:
    """`recommend_from_samples` per row as a JSON-ready struct (null where it gives None)."""
    off = pl.lit(powered_off)
    cpu = pl.when(~off).then(pl.coalesce([pl.lit(usage["cpu_peak"]), pl.lit(usage["cpu"])]))
    mem = pl.when(~off).then(pl.coalesce([pl.lit(usage["memory_peak"]), pl.lit(usage["memory"])]))
    used_average = (pl.lit(usage["cpu_peak"]).is_null() & pl.lit(usage["cpu"]).is_not_null()) | (
        pl.lit(usage["memory_peak"]).is_null() & pl.lit(usage["memory"]).is_not_null()
    )
    basis = (
        pl.when(off)
        .then(pl.lit("allocation"))
        .when(used_average)
        .then(pl.lit("average"))
        .otherwise(pl.lit("peak"))
    )
    has_cores = pl.lit(cores).fill_null(0) != 0
    has_memory = pl.lit(memory_gb).fill_null(0.0) != 0
    cpu = pl.when(has_cores).then(cpu)
    mem = pl.when(has_memory).then(mem)
    parts = pl.select(
        cpu.alias("cpu"),
        mem.alias("mem"),
        basis.alias("basis"),
        has_cores.alias("has_cores"),
        has_memory.alias("has_memory"),
        pl.lit(cores).cast(pl.Float64).alias("cores"),
        pl.lit(memory_gb).alias("memory"),
    )
    factor = 1.0 + DEFAULT_HEADROOM

    def sized(allocated: str, used: str, has: str, minimum: int) -> pl.Series:
        share = _divided(pl.col(used).clip(0.0, 100.0), 100.0, parts.height)
        needed = py_round(parts.select(pl.col(allocated) * share * factor).to_series(), 6)
        allocation = py_round(parts.select(pl.col(allocated)).to_series(), 6)
        frame = parts.with_columns(needed.alias("needed"), allocation.alias("allocation"))
        return frame.select(
            pl.when(pl.col(has) & pl.col(used).is_not_null())
            .then(pl.max_horizontal(pl.lit(minimum), pl.col("needed").ceil()))
            .when(pl.col(has))
            .then(pl.max_horizontal(pl.lit(minimum), pl.col("allocation").ceil()))
            .cast(pl.Int64)
        ).to_series()

    recommended_cores = sized("cores", "cpu", "has_cores", MIN_CORES)
    recommended_memory = sized("memory", "mem", "has_memory", MIN_MEMORY_GB)
    basis_out = parts.select(
        pl.when(pl.col("cpu").is_null() & pl.col("mem").is_null())
        .then(pl.lit("allocation"))
        .otherwise(pl.col("basis"))
    ).to_series()
    known = parts["has_cores"] | parts["has_memory"]
    return pl.when(pl.lit(known)).then(
        pl.struct(
            pl.lit(recommended_cores).alias("cores"),
            pl.lit(recommended_memory).alias("memory_gb"),
            pl.lit(basis_out).alias("basis"),
            pl.lit(DEFAULT_HEADROOM).alias("headroom"),
            pl.lit(parts["cpu"]).alias("cpu_utilization_pct"),
            pl.lit(parts["mem"]).alias("memory_utilization_pct"),
        )
    )


# --- the three kinds of row ----------------------------------------------------------------


def _machines(cells: _Cells, as_of: date) -> tuple[pl.Series, pl.Series, pl.DataFrame]:
    """Normalised JSON and natural key of machine rows, and what the agent reads."""
    disks = _disk_totals(cells)
    capacity, size_in_capacity = _capacity(cells, disks)
    usage = _utilisation(cells, capacity["memory_gb"], size_in_capacity)
    power_state, power_raw = _power_state(cells)
    throughput = _disk_throughput(cells, disks)
    identity, identity_custom = _identity(cells)
    asset_type = _asset_type(cells)
    os_values, os_raw = _operating_system(cells, as_of)
    iops = _iops(cells, disks)
    network = _network_mbps(cells)
    observed_at = cells.timestamp(required=False)
    powered_off = (power_state == "powered_off").fill_null(False)

    custom = [
        (field.removeprefix(CUSTOM_PREFIX), cells.text(field))
        for field in cells.mapped
        if field.startswith(CUSTOM_PREFIX)
    ]
    custom += [
        ("cpu_utilization_peak_pct", usage["cpu_peak"]),
        ("memory_utilization_peak_pct", usage["memory_peak"]),
        ("disk_throughput_mb_per_s", throughput),
        ("power_state_raw", power_raw),
        *identity_custom,
        ("operating_system_raw", os_raw),
    ]
    # An all-null attribute adds no member to any row: left out, it costs no encoding pass.
    custom = [(key, values) for key, values in custom if values.null_count() < len(values)]
    asset: dict[str, pl.Series] = {
        **identity,
        "asset_type": asset_type,
        **os_values,
        **capacity,
        "cpu_utilization_pct": usage["cpu"],
        "memory_utilization_pct": usage["memory"],
        "iops": iops,
        "network_throughput_mbps": network,
        "power_state": power_state,
        "host_name": cells.text("host_name"),
        "cluster": cells.text("cluster"),
        "datacenter": cells.text("datacenter"),
        "location": cells.text("location"),
        "description": cells.text("description"),
    }
    rightsizing = _rightsizing(capacity["cpu_cores"], capacity["memory_gb"], usage, powered_off)
    columns = pl.DataFrame(
        [
            *(series.rename(name) for name, series in asset.items()),
            *(series.rename(f"c{i}") for i, (_key, series) in enumerate(custom)),
            observed_at.rename("observed_at"),
        ]
    ).with_columns(rightsizing.alias("rightsizing"))
    custom_json = json_object(columns, [(key, f"c{i}", True) for i, (key, _s) in enumerate(custom)])
    asset_json = pl.struct(
        [*(pl.col(name) for name in asset), pl.col("rightsizing")]
    ).struct.json_encode()
    normalized = columns.select(
        pl.concat_str(
            [
                pl.lit('{"kind":"machine","asset":'),
                asset_json.str.head(-1),
                pl.lit(',"custom_attributes":'),
                custom_json,
                pl.lit('},"observed_at":'),
                json_value(pl.col("observed_at")),
                pl.lit("}"),
            ]
        )
    ).to_series()
    external_id, name_key = identity["external_id"], identity["name_key"]
    natural_key = _s(
        pl.when(pl.lit(external_id).is_not_null())
        .then(pl.lit("id:") + pl.lit(external_id))
        .when(pl.lit(name_key).fill_null("") != "")
        .then(pl.lit("name:") + pl.lit(name_key))
    )
    published = pl.DataFrame(
        {
            "cpu_utilization_pct": usage["cpu"],
            "memory_utilization_pct": usage["memory"],
            "cpu_utilization_peak_pct": usage["cpu_peak"],
            "memory_utilization_peak_pct": usage["memory_peak"],
            "storage_used_gb": capacity["storage_used_gb"],
            "storage_gb": capacity["storage_gb"],
            "power_state": power_state,
            "cpu_cores": capacity["cpu_cores"].cast(pl.Float64),
            "memory_gb": capacity["memory_gb"],
            "operating_system": os_values["operating_system"],
        }
    )
    return normalized, natural_key, published


def _templates(cells: _Cells, where: pl.Series) -> pl.Series:
    name = cells.text("name")
    issue = cells.issue(Code.TEMPLATE_SKIPPED, WARNING)
    found = per_distinct(
        pl.DataFrame({"s": name}),
        ["s"],
        lambda text: (
            issue("template", f"{quote_value(text or '(unnamed)')} is a template; skipped"),
        ),
        {"i": pl.Utf8},
        where,
    )
    cells.add(found["i"], WARNING, where)
    template = pl.struct(pl.lit(name).alias("name"), pl.lit(cells.text("vm_uuid")).alias("vm_uuid"))
    return _s(
        pl.concat_str(
            [
                pl.lit('{"kind":"template","skip":true,"template":'),
                template.struct.json_encode(),
                pl.lit("}"),
            ]
        )
    )


def _performance(cells: _Cells) -> tuple[pl.Series, pl.Series, pl.DataFrame]:
    machine_id = cells.text("machine_id")
    cells.add(
        _s(
            pl.when(pl.lit(machine_id).is_null()).then(
                pl.lit(
                    issue_json(
                        Code.MISSING_REQUIRED,
                        ERROR,
                        "machine_id: a sample needs its machine",
                        cells.frame.display_field("machine_id"),
                    )
                )
            )
        ),
        ERROR,
    )
    cpu, issue = cells.percent("cpu_util")
    cells.add(issue, ERROR)
    memory, issue = cells.percent("mem_util")
    cells.add(issue, ERROR)
    iops = _iops(cells, {})
    network = _network_mbps(cells)
    observed_at = cells.timestamp(required=True)
    frame = pl.DataFrame(
        [
            machine_id.rename("machine_id"),
            observed_at.rename("observed_at"),
            cpu.rename("cpu_utilization_pct"),
            memory.rename("memory_utilization_pct"),
            iops.rename("iops"),
            network.rename("network_throughput_mbps"),
        ]
    )
    performance = pl.struct(
        "cpu_utilization_pct", "memory_utilization_pct", "iops", "network_throughput_mbps"
    ).struct.json_encode()
    normalized = frame.select(
        pl.concat_str(
            [
                pl.lit('{"kind":"performance","machine_id":'),
                json_value(pl.col("machine_id")),
                pl.lit(',"observed_at":'),
                json_value(pl.col("observed_at")),
                pl.lit(',"performance":'),
                performance,
                pl.lit("}"),
            ]
        )
    ).to_series()
    key = frame.select(
        pl.concat_str(
            [
                pl.lit("sample:"),
                pl.col("machine_id").fill_null("None"),
                pl.lit("@"),
                pl.col("observed_at").fill_null("None"),
            ]
        )
    ).to_series()
    height = cells.height
    published = pl.DataFrame(
        {
            "cpu_utilization_pct": cpu,
            "memory_utilization_pct": memory,
            "cpu_utilization_peak_pct": _null(height, pl.Float64),
            "memory_utilization_peak_pct": _null(height, pl.Float64),
        }
    )
    return normalized, key, published


def validate_frame(frame: ChunkFrame, findings: Findings, as_of: date) -> FrameOutcome:
    cells = _Cells(frame, findings)
    height = frame.height
    if is_performance_layout(frozenset(cells.mapped)):
        normalized, key, published = _performance(cells)
        kind = pl.repeat("performance", height, eager=True)
        infrastructure_validator.publish(frame, kind, published)
        return FrameOutcome(normalized=normalized, natural_key=key)
    is_template, issue = cells.flag("template")
    cells.add(issue, WARNING)
    template_json = _templates(cells, is_template)
    cells.active = ~is_template
    machine_json, machine_key, published = _machines(cells, as_of)
    cells.active = None
    normalized = _s(
        pl.when(pl.lit(is_template)).then(pl.lit(template_json)).otherwise(pl.lit(machine_json))
    )
    key = _s(pl.when(~pl.lit(is_template)).then(pl.lit(machine_key)))
    kind = _s(pl.when(pl.lit(is_template)).then(pl.lit("template")).otherwise(pl.lit("machine")))
    infrastructure_validator.publish(frame, kind, published)
    return FrameOutcome(normalized=normalized, natural_key=key)


__all__ = ["FrameOutcome", "py_round", "validate_frame"]
