"""app_discovery's exact parsers of one cell set, run by the rules once per distinct value.

An end, a port, a figure, a timestamp ...: what no vectorised expression of `rules.py`
settles is parsed here, with the issues it raises.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from dataimport.categories.app_discovery.values import normalize_protocol, parse_timestamp
from dataimport.issues import Code, Issue, Severity
from dataimport.normalize import (
    NULL_TOKENS,
    hostname_key,
    name_key,
    parse_float,
    parse_int,
    quote_value,
)

N = TypeVar("N", int, float)

_PORT_WITH_PROTOCOL = re.compile(
    r"(?P<port>\d[\d,]*)\s*/\s*(?P<proto>[a-z]+)|(?P<proto2>[a-z]+)\s*/\s*(?P<port2>\d[\d,]*)",
    re.IGNORECASE,
)
_PLACEHOLDERS = NULL_TOKENS


class _Row:
    """The cells one exact parse reads (non-empty, placeholders dropped) and its issues."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.cells = {
            field: value.strip()
            for field, value in fields.items()
            if value.strip() and value.strip().lower() not in _PLACEHOLDERS
        }
        self.issues: list[Issue] = []

    def text(self, field: str) -> str | None:
        return self.cells.get(field)

    def error(self, code: Code, field: str | None, message: str) -> None:
        self.issues.append(Issue(code.value, Severity.ERROR, message, field))

    def warn(self, code: Code, field: str | None, message: str) -> None:
        self.issues.append(Issue(code.value, Severity.WARNING, message, field))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return False
    return True


def _address(
    row: _Row, field: str, raw: str
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The first valid IP of the cell (exports list several), or None with an error."""
    for token in re.split(r"[,;\s]+", raw):
        candidate = token.split("/", 1)[0].strip("[]")
        if not candidate:
            continue
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    row.error(
        Code.CONSTRAINT_ERROR, field, f"{field}: {quote_value(raw)} is not a valid IP address"
    )
    return None


def _host_ip(row: _Row, side: str, named: bool) -> tuple[str | None, bool]:
    """(IP to store, the only identity is a loopback address) for one end.

    A loopback or non-unicast address identifies no machine: stored, it would make every
    endpoint written as 127.0.0.1 match one asset. Next to a name it is dropped (loopback
    silently, the others with a warning); alone, loopback means "this same machine" and any
    other non-host address is an error.
    """
    field = f"{side}_ip"
    raw = row.text(field)
    if raw is None and not named and row.text(f"{side}_name"):
        field, raw = f"{side}_name", row.text(f"{side}_name")  # an address in the name column
    if raw is None:
        return None, False
    address = _address(row, field, raw)
    if address is None:
        return None, False
    if address.is_loopback:
        return None, not named
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        message = f"{field}: {address} is not a host address"
        if named:
            row.warn(Code.CONSTRAINT_ERROR, field, message + "; ignored")
        else:
            row.error(Code.CONSTRAINT_ERROR, field, message)
        return None, False
    return str(address), False


def _identity(
    name: str, *, hostname: str | None, ip: str | None, asset_type: str
) -> dict[str, Any]:
    key = hostname_key(hostname) if hostname else None
    return {
        "name": name,
        "name_key": name_key(name),
        "hostname": hostname if key else None,
        "hostname_key": key,
        "ip_address": ip,
        "asset_type": asset_type,
    }


def _endpoint(row: _Row, side: str) -> tuple[dict[str, Any] | None, bool]:
    """(identity of one end, that end is only a loopback address).

    Host (server, node) first, else IP (the asset is then named after it), else the
    component/tier, which becomes an `application` asset with no host identity: a tier called
    "orders" must not match a server whose host name happens to be "orders".
    """
    host = row.text(f"{side}_name")
    if host is not None and _is_ip(host):
        host = None  # an address in the name column: identity by IP
    ip, loopback_only = _host_ip(row, side, named=host is not None)
    component = row.text(f"{side}_component")
    if host is not None:
        return _identity(host, hostname=host, ip=ip, asset_type="server"), False
    if ip is not None:
        return _identity(ip, hostname=None, ip=ip, asset_type="server"), False
    if component is not None:  # a tier is a thing of its own, whatever its loopback IP
        return _identity(component, hostname=None, ip=None, asset_type="application"), False
    return None, loopback_only


def _port(row: _Row, field: str) -> tuple[int | None, str | None]:
    """(port, protocol written next to it as in "443/tcp") with range and type checks."""
    raw = row.text(field)
    if raw is None:
        return None, None
    number, protocol = raw, None
    combined = _PORT_WITH_PROTOCOL.fullmatch(raw)
    if combined:
        number = combined["port"] or combined["port2"]
        protocol = combined["proto"] or combined["proto2"]
    try:
        port = parse_int(number)
    except ValueError:
        row.error(Code.TYPE_ERROR, field, f"{field}: {quote_value(raw)} is not a port number")
        return None, None
    if not 1 <= port <= 65535:
        row.error(Code.CONSTRAINT_ERROR, field, f"{field}: {port} is outside 1-65535")
        return None, None
    return port, protocol


def _protocol(row: _Row, hint: str | None) -> str | None:
    raw = row.text("protocol") or hint
    if raw is None:
        return None
    try:
        protocol, known = normalize_protocol(raw)
    except ValueError as exc:
        row.error(Code.CONSTRAINT_ERROR, "protocol", f"protocol: {exc}")
        return None
    if not known:
        row.warn(
            Code.UNKNOWN_VALUE,
            "protocol",
            f"protocol: unknown protocol {quote_value(raw)}; kept as {protocol}",
        )
    return protocol


def _number(
    row: _Row, field: str, parse: Callable[[str], N], maximum: float, what: str
) -> N | None:
    """A non-negative figure no larger than maximum, or None (with an issue when malformed)."""
    raw = row.text(field)
    if raw is None:
        return None
    try:
        value = parse(raw)
    except ValueError as exc:
        row.error(Code.TYPE_ERROR, field, f"{field}: {exc}")
        return None
    if value < 0 or value > maximum:
        row.error(
            Code.CONSTRAINT_ERROR,
            field,
            f"{field}: {quote_value(raw)} is outside 0-{maximum:g} {what}".rstrip(),
        )
        return None
    return value


def _percent(raw: str) -> float:
    return parse_float(raw.strip().rstrip("%"))


def _timestamp(row: _Row, field: str) -> datetime | None:
    raw = row.text(field)
    if raw is None:
        return None
    try:
        return parse_timestamp(raw)
    except ValueError as exc:
        row.error(Code.TYPE_ERROR, field, f"{field}: {exc}")
        return None


def _dependency_type(row: _Row, kind: str) -> str:
    raw = row.text("dependency_type")
    if raw is None:
        return "network_connection" if kind == "network" else "application_call"
    return re.sub(r"[^0-9a-z]+", "_", raw.lower()).strip("_")[:64] or "application_call"


def _digest(value: Any, length: int) -> str:
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:length]
