"""cloud_instances rules, columnar: identity, instance size from its type, IP, environment."""

from __future__ import annotations

import polars as pl

from dataimport.engine.cells import FieldCells
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.identity import PLAIN_IPV4, name_keys
from dataimport.engine.jsontext import json_object_of_present, with_members
from dataimport.engine.outcome import FrameOutcome
from dataimport.engine.text import per_distinct
from dataimport.issues import Code, Severity
from dataimport.normalize import normalize_environment, normalize_ip, quote_value

# instance type -> (vCPUs, memory GiB); a real category would carry the whole price list.
SIZES: dict[str, tuple[int, float]] = {
    "t3.micro": (2, 1.0),
    "t3.large": (2, 8.0),
    "m5.large": (2, 8.0),
    "m5.xlarge": (4, 16.0),
    "c5.2xlarge": (8, 16.0),
    "r5.4xlarge": (16, 128.0),
}
_INSTANCE_ID = r"^i-[0-9a-f]{8,17}$"


def validate_frame(frame: ChunkFrame, findings: Findings) -> FrameOutcome:
    cells = FieldCells(frame)
    instance_id = cells("instance_id")
    name = cells.first("name", "instance_id")
    findings.when(
        name.is_null(),
        issue_json(Code.MISSING_REQUIRED, Severity.ERROR, "no name and no instance id", None),
        Severity.ERROR,
    )
    # The instance id identifies the asset: a malformed one rejects the row.
    bad_id = instance_id.is_not_null() & ~instance_id.str.contains(_INSTANCE_ID).fill_null(True)
    bad_ids = per_distinct(
        pl.DataFrame({"s": instance_id}),
        ["s"],
        lambda text: (
            issue_json(
                Code.CONSTRAINT_ERROR,
                Severity.ERROR,
                f"instance_id: {quote_value(text)} is not an EC2 instance id",
                frame.display_field("instance_id"),
            ),
        ),
        {"issue": pl.Utf8},
        bad_id,
    )
    findings.add(bad_ids["issue"], Severity.ERROR)

    ip = _ip_address(cells, findings)
    size = _size(cells, findings)
    environment = _environment(cells, findings)
    keys = name_keys(name)
    columns = pl.DataFrame(
        [
            name.rename("name"),
            keys.rename("name_key"),
            instance_id.rename("external_id"),
            pl.repeat("virtual_machine", frame.height, eager=True).rename("asset_type"),
            ip.rename("ip_address"),
            cells("platform").rename("operating_system"),
            environment.rename("environment"),
            cells("zone").rename("location"),
            cells("state").rename("operational_status"),
            size["cores"].rename("cpu_cores"),
            size["memory"].rename("memory_gb"),
        ]
    )
    custom = json_object_of_present([("instance_type", pl.lit(cells("instance_type")))])
    asset = with_members(pl.struct(pl.all()).struct.json_encode(), [("custom_attributes", custom)])
    normalized = columns.select(
        pl.concat_str([pl.lit('{"asset":'), asset, pl.lit(',"dependencies":[]}')])
    ).to_series()
    return FrameOutcome(normalized=normalized, natural_key=keys)


def _ip_address(cells: FieldCells, findings: Findings) -> pl.Series:
    """Not identifying: a malformed address is a warning and the field stays empty."""
    raw = cells("ip_address")
    plain = raw.str.contains(PLAIN_IPV4).fill_null(False)
    warn = cells.issue(Code.CONSTRAINT_ERROR, Severity.WARNING)

    def exact(text: str) -> tuple[str | None, str | None]:
        try:
            return normalize_ip(text), None
        except ValueError as exc:
            return None, warn("ip_address", f"ip_address: {exc}; left empty")

    parsed = per_distinct(
        pl.DataFrame({"s": raw}),
        ["s"],
        exact,
        {"ip": pl.Utf8, "issue": pl.Utf8},
        raw.is_not_null() & ~plain,
    )
    findings.add(parsed["issue"], Severity.WARNING)
    return pl.select(
        pl.when(pl.lit(plain)).then(pl.lit(raw)).otherwise(pl.lit(parsed["ip"]))
    ).to_series()


def _size(cells: FieldCells, findings: Findings) -> pl.DataFrame:
    kind = cells("instance_type")
    warn = cells.issue(Code.UNKNOWN_VALUE, Severity.WARNING)

    def exact(text: str) -> tuple[int | None, float | None, str | None]:
        size = SIZES.get(text.lower())
        if size is None:
            return (
                None,
                None,
                warn("instance_type", f"instance_type: unknown type {quote_value(text)}"),
            )
        return size[0], size[1], None

    sized = per_distinct(
        pl.DataFrame({"s": kind}),
        ["s"],
        exact,
        {"cores": pl.Int64, "memory": pl.Float64, "issue": pl.Utf8},
        kind.is_not_null(),
    )
    findings.add(sized["issue"], Severity.WARNING)
    return sized


def _environment(cells: FieldCells, findings: Findings) -> pl.Series:
    raw = cells("environment")
    warn = cells.issue(Code.UNKNOWN_VALUE, Severity.WARNING)

    def exact(text: str) -> tuple[str | None, str | None]:
        try:
            return normalize_environment(text), None
        except ValueError as exc:
            return None, warn("environment", f"environment: {exc}")

    result = per_distinct(
        pl.DataFrame({"s": raw}),
        ["s"],
        exact,
        {"v": pl.Utf8, "issue": pl.Utf8},
        raw.is_not_null(),
    )
    findings.add(result["issue"], Severity.WARNING)
    return result["v"]
