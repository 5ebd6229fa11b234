"""app_discovery value parsers: timestamps, byte counts, durations, protocol names.

Pure functions; a value they cannot read raises ValueError with a short message.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dataimport.categories.app_discovery.vocabulary import PROTOCOLS
from dataimport.normalize import parse_float, parse_int, quote_value

_PROTOCOL_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9._+-]{0,23}")

# Timestamp layouts besides ISO 8601, tried in order: US month/day before day/month (the
# order Azure Migrate and most US-built tools write), so "06/07/2025" is June 7th.
_TIMESTAMP_FORMATS = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%b %d, %Y %I:%M:%S %p",
    "%b %d, %Y %H:%M:%S",
    "%b %d, %Y",
    "%d-%b-%Y %H:%M:%S",
    "%d-%b-%Y",
    "%d %b %Y %H:%M:%S",
    "%a %b %d %H:%M:%S %Y",
)
_TZ_SUFFIX = re.compile(r"\s*(utc|gmt|z)$", re.IGNORECASE)
_SIZE = re.compile(r"(?P<number>[+-]?[\d.,]+)\s*(?P<unit>[kmgtp]?i?b(?:ytes?)?)?", re.IGNORECASE)
_DURATION = re.compile(r"(?P<number>[\d.,]+)\s*(?P<unit>ms|msec|s|sec|secs|us|µs)?", re.IGNORECASE)
_DURATION_MS = {"ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0, "secs": 1000.0}


def parse_timestamp(raw: str) -> datetime:
    """A timezone-aware UTC datetime from ISO 8601, common export layouts or epoch seconds/ms.

    Naive values are taken as UTC (discovery tools export UTC unless they say otherwise).
    """
    value = raw.strip()
    if re.fullmatch(r"\d{9,10}(\.\d+)?|\d{12,13}", value):
        seconds = float(value) / (1000 if len(value) >= 12 and "." not in value else 1)
        return datetime.fromtimestamp(seconds, UTC)
    parsed = _parse_datetime(value)
    if parsed is None:
        raise ValueError(f"{quote_value(raw)} is not a date/time")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_datetime(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    bare = _TZ_SUFFIX.sub("", value)
    for layout in _TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(bare, layout)
        except ValueError:
            continue
    return None


def parse_bytes(raw: str) -> int:
    """Byte count: "5000000000", "1,024", "1.5 GB" (binary units, like the rest of the project)."""
    match = _SIZE.fullmatch(raw.strip())
    if not match:
        raise ValueError(f"{quote_value(raw)} is not a byte count")
    unit = (match["unit"] or "b").lower()
    if unit[0] == "b":
        return parse_int(match["number"])
    power = "bkmgtp".index(unit[0])
    return round(parse_float(match["number"]) * 1024**power)


def parse_duration_ms(raw: str) -> float:
    """Milliseconds from "12.5", "12 ms", "1.2 s" or "850 us"; a bare number is milliseconds."""
    match = _DURATION.fullmatch(raw.strip())
    if not match:
        raise ValueError(f"{quote_value(raw)} is not a duration")
    unit = (match["unit"] or "ms").lower()
    factor = _DURATION_MS.get(unit, 0.001)  # us / µs
    return parse_float(match["number"]) * factor


def normalize_protocol(raw: str) -> tuple[str, bool]:
    """(canonical protocol, known?) for a protocol cell; ValueError when it is no protocol name."""
    key = re.sub(r"[^0-9a-z]+", "", raw.lower())
    if key in PROTOCOLS:
        return PROTOCOLS[key], True
    if _PROTOCOL_TOKEN.fullmatch(raw.strip()):
        return raw.strip().upper(), False
    raise ValueError(f"{quote_value(raw)} is not a protocol name")
