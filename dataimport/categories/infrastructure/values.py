"""Exact parsers of infrastructure cell values (power states, VM UUIDs, times, address lists)
that the columnar rules run once per distinct value."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from dataimport.normalize import normalize_ip, quote_value

_POWER_STATES: dict[str, str] = {
    **dict.fromkeys(
        ["poweredon", "on", "running", "started", "active", "up", "powered on"], "powered_on"
    ),
    **dict.fromkeys(
        [
            "poweredoff",
            "off",
            "stopped",
            "shutdown",
            "shut down",
            "deallocated",
            "down",
            "powered off",
        ],
        "powered_off",
    ),
    **dict.fromkeys(["suspended", "paused", "saved"], "suspended"),
}
_UUID_HEX = re.compile(r"[0-9a-f]{32}")
_TIMESTAMP_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d.%m.%Y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
)
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
_EXCEL_SERIAL = re.compile(r"\d{5}(\.\d+)?")  # a workbook date cell read as its serial number


def parse_timestamp(raw: str) -> datetime:
    """Timezone-aware time from ISO 8601, common US/EU layouts or an Excel serial; naive = UTC."""
    text_value = raw.strip()
    if _EXCEL_SERIAL.fullmatch(text_value):
        return _EXCEL_EPOCH + timedelta(days=float(text_value))
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text_value.replace("Z", "+00:00"))
    except ValueError:
        for layout in _TIMESTAMP_FORMATS:
            try:
                parsed = datetime.strptime(text_value, layout)
                break
            except ValueError:
                continue
    if parsed is None:
        raise ValueError(f"{quote_value(raw)} is not a date and time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalize_power_state(raw: str) -> str:
    """powered_on, powered_off or suspended from RVTools/Azure/StratoZone spellings."""
    key = " ".join(re.sub(r"[^a-z]+", " ", raw.lower()).split())
    found = _POWER_STATES.get(key) or _POWER_STATES.get(key.replace(" ", ""))
    if found is None:
        raise ValueError(f"unknown power state {quote_value(raw)}")
    return found


def normalize_vm_uuid(raw: str) -> str:
    """Canonical lower-case 8-4-4-4-12 form; RVTools and vCenter spell it several ways."""
    digits = re.sub(r"[\s{}\-]", "", raw.lower())
    if not _UUID_HEX.fullmatch(digits):
        raise ValueError(f"{quote_value(raw)} is not a UUID")
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def ip_addresses(text_value: str) -> list[str]:
    """Every valid address in a list cell ("10.0.0.1; 10.0.0.2", "a, b"), in order, once."""
    found: list[str] = []
    for token in re.split(r"[,;\s|]+", text_value):
        try:
            address = normalize_ip(token)
        except ValueError:
            continue
        if address not in found:
            found.append(address)
    return found


def is_performance_layout(mapped: frozenset[str]) -> bool:
    """perfInfo rows: a machine id and a time, no name column (vmInfo has MachineName)."""
    names = {"name", "hostname", "dns_name"}
    return "machine_id" in mapped and "observed_at" in mapped and not mapped & names
