"""`dependency_validator`: a named rule set over one app_discovery row's normalised dependency.

The category's rules already reject what cannot be stored (bad ports, unparseable
timestamps, last seen before first seen, missing endpoints, self-dependencies by name). This
agent looks for what is storable but suspicious, and only ever warns (the row is kept):

Rules (rule name: code — what it finds):

- `same-machine`: self-dependency — two differently named ends sharing an IP or host name.
- `port-protocol`: port-protocol-mismatch — ICMP with a port; UDP on a TCP-only service port
  or the reverse; an application protocol on another service's well-known port (HTTP on 1433).
- `ephemeral-destination`: ephemeral-port — a destination port in the IANA dynamic range
  (49152-65535), usually the client side: the export has the direction reversed.
- `endpoint-identity`: weak-endpoint-identity — an end known only by an IP (a public IP: an
  external service) or by a display name that is no host name, so other imports cannot match it.
- `timestamps`: implausible-timestamp — first/last seen in the future or before 1995.

Duplicate edges within one file are not a per-row rule: the category's natural key (edge +
observation) makes the validation pipeline flag them file-wide as duplicate-key, which a
per-row agent running in parallel chunks could not do without shared state.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from dataimport.agents.base import RowContext
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.text import per_distinct
from dataimport.issues import Code, Issue, Severity

AGENT_NAME = "dependency_validator"

# IANA dynamic/private range: clients pick their source ports here.
EPHEMERAL_PORTS = range(49152, 65536)
# Clock skew between collectors and us is tolerated up to this much "future".
FUTURE_TOLERANCE = timedelta(days=1)
OLDEST_PLAUSIBLE = datetime(1995, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Service:
    """What usually listens on a well-known port, and over which transports."""

    name: str
    transports: frozenset[str]


def _service(name: str, transports: str = "TCP") -> Service:
    return Service(name, frozenset(transports.split("/")))


WELL_KNOWN_PORTS: dict[int, Service] = {
    20: _service("ftp-data"),
    21: _service("ftp"),
    22: _service("ssh"),
    23: _service("telnet"),
    25: _service("smtp"),
    53: _service("dns", "TCP/UDP"),
    67: _service("dhcp", "UDP"),
    68: _service("dhcp", "UDP"),
    69: _service("tftp", "UDP"),
    80: _service("http"),
    88: _service("kerberos", "TCP/UDP"),
    110: _service("pop3"),
    111: _service("rpcbind", "TCP/UDP"),
    123: _service("ntp", "UDP"),
    135: _service("msrpc", "TCP/UDP"),
    137: _service("netbios-ns", "UDP"),
    138: _service("netbios-dgm", "UDP"),
    139: _service("netbios-ssn"),
    143: _service("imap"),
    161: _service("snmp", "UDP"),
    162: _service("snmp-trap", "UDP"),
    389: _service("ldap", "TCP/UDP"),
    443: _service("https", "TCP/UDP"),  # UDP: HTTP/3 (QUIC)
    445: _service("smb"),
    464: _service("kpasswd", "TCP/UDP"),
    465: _service("smtps"),
    500: _service("ike", "UDP"),
    514: _service("syslog", "TCP/UDP"),
    587: _service("smtp-submission"),
    636: _service("ldaps"),
    993: _service("imaps"),
    995: _service("pop3s"),
    1414: _service("ibm-mq"),
    1433: _service("mssql"),
    1434: _service("mssql-browser", "UDP"),
    1521: _service("oracle"),
    1883: _service("mqtt"),
    2049: _service("nfs", "TCP/UDP"),
    3268: _service("ldap-gc"),
    3269: _service("ldaps-gc"),
    3306: _service("mysql"),
    3389: _service("rdp", "TCP/UDP"),
    4500: _service("ipsec-nat-t", "UDP"),
    5432: _service("postgresql"),
    5671: _service("amqps"),
    5672: _service("amqp"),
    5985: _service("winrm"),
    5986: _service("winrm-https"),
    6379: _service("redis"),
    8080: _service("http-alt"),
    8443: _service("https-alt"),
    8883: _service("mqtt-tls"),
    9042: _service("cassandra"),
    9092: _service("kafka"),
    9200: _service("elasticsearch"),
    11211: _service("memcached", "TCP/UDP"),
    27017: _service("mongodb"),
    50000: _service("db2"),
    50051: _service("grpc"),
}

_DATABASE_PORTS = frozenset({1433, 1521, 1522, 1526, 3306, 5432, 50000, 27017, 9042})

# Ports an application-level protocol normally runs on. A protocol absent here, or a port
# absent from WELL_KNOWN_PORTS, is never reported: custom ports are common and legitimate.
PROTOCOL_PORTS: dict[str, frozenset[int]] = {
    # APM tools label TLS calls "HTTP" as often as "HTTPS".
    "HTTP": frozenset({80, 443, 8080, 8443, 8000, 8008, 8081, 9200}),
    "HTTPS": frozenset({443, 8443, 9443, 4443, 9200}),
    "GRPC": frozenset({443, 80, 8080, 8443, 50051}),
    "WS": frozenset({80, 443, 8080, 8443}),
    "WSS": frozenset({443, 8443}),
    "JDBC": _DATABASE_PORTS,
    "ODBC": _DATABASE_PORTS,
    "ADO.NET": _DATABASE_PORTS,
    "SQL": _DATABASE_PORTS,
    "TDS": frozenset({1433}),
    "MYSQL": frozenset({3306}),
    "POSTGRESQL": frozenset({5432}),
    "ORACLE": frozenset({1521, 1522, 1526}),
    "MONGODB": frozenset({27017}),
    "CASSANDRA": frozenset({9042}),
    "REDIS": frozenset({6379}),
    "MEMCACHED": frozenset({11211}),
    "LDAP": frozenset({389, 3268}),
    "LDAPS": frozenset({636, 3269}),
    "KERBEROS": frozenset({88, 464}),
    "SMB": frozenset({445, 139}),
    "NFS": frozenset({2049, 111}),
    "RDP": frozenset({3389}),
    "SSH": frozenset({22}),
    "SFTP": frozenset({22}),
    "FTP": frozenset({20, 21}),
    "DNS": frozenset({53}),
    "SMTP": frozenset({25, 465, 587}),
    "SNMP": frozenset({161, 162}),
    "NTP": frozenset({123}),
    "SYSLOG": frozenset({514}),
    "AMQP": frozenset({5671, 5672}),
    "MQTT": frozenset({1883, 8883}),
    "KAFKA": frozenset({9092}),
    "MQ": frozenset({1414}),
    "WINRM": frozenset({5985, 5986}),
}

TRANSPORTS = frozenset({"TCP", "UDP", "SCTP"})
# RPC endpoint mappers hand out ports from the dynamic range: there they are expected.
_DYNAMIC_PORT_PROTOCOLS = frozenset({"RPC", "MSRPC", "DCOM", "WCF"})


def service_name(port: int | None) -> str | None:
    """Name of the service usually found on port ("https" for 443), or None."""
    service = WELL_KNOWN_PORTS.get(port) if port is not None else None
    return service.name if service else None


RULES: dict[str, str] = {
    "same-machine": "source and target are different names for one machine (same IP/host)",
    "port-protocol": "port and protocol do not go together",
    "ephemeral-destination": "destination port is a client-side ephemeral port",
    "endpoint-identity": "an endpoint other imports cannot match (IP only, or no host name)",
    "timestamps": "first/last seen in the future or implausibly old",
}


def _warn(code: Code, field: str | None, message: str) -> Issue:
    return Issue(code.value, Severity.WARNING, message, field, AGENT_NAME)


def _same_machine(source: Mapping[str, Any], target: Mapping[str, Any]) -> list[Issue]:
    for key, label in (("ip_address", "IP address"), ("hostname_key", "host name")):
        value = source.get(key)
        if value and value == target.get(key):
            return [
                _warn(
                    Code.SELF_DEPENDENCY,
                    "target_name",
                    f"{source.get('name')!r} and {target.get('name')!r} share the {label} "
                    f"{value!r}: probably one machine talking to itself; no edge if they "
                    "resolve to the same asset",
                )
            ]
    return []


def _port_protocol(port: int | None, protocol: str | None) -> list[Issue]:
    if protocol is None:
        return []
    if protocol == "ICMP":
        if port is None:
            return []
        return [_warn(Code.PORT_PROTOCOL_MISMATCH, "port", f"ICMP has no ports, got {port}")]
    service = WELL_KNOWN_PORTS.get(port) if port is not None else None
    if service is None:
        return []
    if protocol in TRANSPORTS:
        if protocol in service.transports or protocol == "SCTP":
            return []
        expected = "/".join(sorted(service.transports))
        return [
            _warn(
                Code.PORT_PROTOCOL_MISMATCH,
                "protocol",
                f"{protocol} on port {port}, where {service.name} runs over {expected}",
            )
        ]
    usual = PROTOCOL_PORTS.get(protocol)
    if usual is None or port in usual:
        return []
    return [
        _warn(
            Code.PORT_PROTOCOL_MISMATCH,
            "protocol",
            f"{protocol} on port {port}, the well-known port of {service.name} "
            f"({protocol} usually uses {', '.join(map(str, sorted(usual)))})",
        )
    ]


def _ephemeral(dependency: Mapping[str, Any]) -> list[Issue]:
    port = dependency.get("port")
    protocol = dependency.get("protocol")
    if not isinstance(port, int) or port not in EPHEMERAL_PORTS or port in WELL_KNOWN_PORTS:
        return []
    if protocol in _DYNAMIC_PORT_PROTOCOLS:
        return []
    source_port = dependency.get("source_port")
    if isinstance(source_port, int) and source_port in WELL_KNOWN_PORTS:
        hint = (
            f"and the source port {source_port} ({WELL_KNOWN_PORTS[source_port].name}) is a "
            "service port: source and destination look swapped"
        )
    else:
        hint = "clients use it as their source port: the direction may be reversed"
    return [
        _warn(
            Code.EPHEMERAL_PORT,
            "port",
            f"destination port {port} is in the ephemeral range 49152-65535 {hint} "
            "(unless it is a dynamic RPC port)",
        )
    ]


def _endpoint_identity(side: str, endpoint: Mapping[str, Any], kind: str) -> list[Issue]:
    field = f"{side}_name"
    if endpoint.get("asset_type") == "application":
        return []  # a topology component is named by the tool; no host is expected
    ip = endpoint.get("ip_address")
    if endpoint.get("hostname_key") is None and ip and endpoint.get("name") == ip:
        if ipaddress.ip_address(ip).is_global:
            message = (
                f"{side} is only the public IP {ip}: probably an external (internet/SaaS) "
                "service; it becomes an asset named after the IP and joins its move group"
            )
        else:
            message = (
                f"{side} is known only by its IP {ip}: it becomes an asset named after the "
                "IP until an inventory import names it"
            )
        return [_warn(Code.WEAK_ENDPOINT_IDENTITY, field, message)]
    if kind == "network" and endpoint.get("hostname_key") is None and not ip:
        return [
            _warn(
                Code.WEAK_ENDPOINT_IDENTITY,
                field,
                f"{side} {endpoint.get('name')!r} is neither a host name nor an IP: it can only "
                "be matched by that exact name",
            )
        ]
    return []


def _timestamps(dependency: Mapping[str, Any], now: datetime) -> list[Issue]:
    issues: list[Issue] = []
    for field in ("first_seen", "last_seen"):
        text = dependency.get(field)
        if not isinstance(text, str):
            continue
        when = datetime.fromisoformat(text)
        if when > now + FUTURE_TOLERANCE:
            issues.append(
                _warn(
                    Code.IMPLAUSIBLE_TIMESTAMP,
                    field,
                    f"{field} {text} is in the future (now {now.isoformat(timespec='seconds')})",
                )
            )
        elif when < OLDEST_PLAUSIBLE:
            issues.append(
                _warn(
                    Code.IMPLAUSIBLE_TIMESTAMP,
                    field,
                    f"{field} {text} is before {OLDEST_PLAUSIBLE.year}: a default or epoch value?",
                )
            )
        if dependency.get("first_seen") == dependency.get("last_seen"):
            break  # one timeslot: report it once
    return issues


class DependencyValidator:
    """Warns about storable but suspicious dependencies; see the module docstring for rules."""

    name = AGENT_NAME
    rules = RULES

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))  # injectable for tests

    def examine(self, row: RowContext) -> list[Issue]:
        normalized = row.normalized
        source = normalized.get("source")
        target = normalized.get("target")
        dependency = normalized.get("dependency")
        if not isinstance(source, Mapping) or not isinstance(dependency, Mapping):
            return []  # the category rejected the row before it had two ends
        kind = str(dependency.get("kind") or "network")
        issues = _endpoint_identity("source", source, kind)
        if isinstance(target, Mapping):
            issues += _same_machine(source, target)
            issues += _endpoint_identity("target", target, kind)
        issues += _port_protocol(dependency.get("port"), dependency.get("protocol"))
        issues += _ephemeral(dependency)
        issues += _timestamps(dependency, self._now())
        return issues

    def examine_frame(self, frame: ChunkFrame, findings: Findings) -> None:
        """The columnar form, over what the category's columnar rules published on the frame
        (`publish`): each rule's candidates picked by expressions, the rule itself (the very
        functions `examine` calls) run once per distinct candidate."""
        data = published(frame)
        now = self._now()
        source = pl.col("source.present")
        target = source & pl.col("target.present")

        def add(where: pl.Expr, keys: list[str], rule: Callable[..., list[Issue]]) -> None:
            candidates = data.select(where.fill_null(False)).to_series()
            if not candidates.any():
                return  # no issue on any row: nothing to add

            def exact(*values: Any) -> tuple[list[str]]:
                return ([_issue_text(frame, issue) for issue in rule(*values)],)

            found = per_distinct(data, keys, exact, {"i": pl.List(pl.Utf8)}, candidates)
            findings.add(found["i"], WARNING)

        for side, present in (("source", source), ("target", target)):
            ip, name = pl.col(f"{side}.ip_address"), pl.col(f"{side}.name")
            weak = (ip.is_not_null() & (name == ip)) | (
                (pl.col("d.kind") == "network") & ip.is_null()
            )
            add(
                present
                & (pl.col(f"{side}.asset_type") != "application")
                & pl.col(f"{side}.hostname_key").is_null()
                & weak,
                [f"{side}.{key}" for key in _IDENTITY_KEYS] + ["d.kind"],
                functools.partial(_identity_rule, side),
            )
            if side == "source":
                same = [
                    pl.col(f"source.{key}").is_not_null()
                    & (pl.col(f"source.{key}") == pl.col(f"target.{key}"))
                    for key in ("ip_address", "hostname_key")
                ]
                add(
                    target & (same[0] | same[1]),
                    [f"{end}.{key}" for end in ("source", "target") for key in _IDENTITY_KEYS],
                    _same_machine_rule,
                )
        port, protocol = pl.col("d.port"), pl.col("d.protocol")
        well_known = port.is_in(list(WELL_KNOWN_PORTS))
        add(
            source
            & protocol.is_not_null()
            & (((protocol == "ICMP") & port.is_not_null()) | well_known),
            ["d.port", "d.protocol"],
            _port_protocol,
        )
        add(
            source
            & port.is_between(EPHEMERAL_PORTS.start, EPHEMERAL_PORTS.stop - 1)
            & ~well_known
            & ~protocol.is_in(list(_DYNAMIC_PORT_PROTOCOLS)).fill_null(False),
            ["d.port", "d.protocol", "d.source_port"],
            _ephemeral_rule,
        )
        future = epoch_us(now + FUTURE_TOLERANCE)
        oldest = epoch_us(OLDEST_PLAUSIBLE)
        odd = [
            (pl.col(f"{end}.us") > future) | (pl.col(f"{end}.us") < oldest)
            for end in ("first", "last")
        ]
        add(
            source & pl.col("d.first_seen").is_not_null() & (odd[0] | odd[1]),
            ["d.first_seen", "d.last_seen"],
            lambda first, last: _timestamps({"first_seen": first, "last_seen": last}, now),
        )


# --- the columnar form's inputs ----------------------------------------------------------

WARNING = Severity.WARNING
_IDENTITY_KEYS = ("name", "hostname_key", "ip_address", "asset_type")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What the category's columnar rules normalised, as columns of the frame's rows (the agent
# runs after them on the same frame): `{side}.present` and `{side}.<identity key>` for both
# ends (target absent where the row has none), `d.<dependency key>`, `first.us`/`last.us`.
_PUBLISHED = "dependency_validator:"
_PUBLISHED_COLUMNS = (
    *(f"{side}.{key}" for side in ("source", "target") for key in ("present", *_IDENTITY_KEYS)),
    "d.kind",
    "d.port",
    "d.protocol",
    "d.source_port",
    "d.first_seen",
    "d.last_seen",
    "first.us",
    "last.us",
)


def epoch_us(when: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact, any year)."""
    return (when - _EPOCH) // timedelta(microseconds=1)


def publish(frame: ChunkFrame, normalized: pl.DataFrame) -> None:
    """Put the normalised columns the agent reads on the frame (category rules call this)."""
    frame.rows = frame.rows.with_columns(
        normalized.get_column(name).alias(_PUBLISHED + name) for name in _PUBLISHED_COLUMNS
    )


def published(frame: ChunkFrame) -> pl.DataFrame:
    names = [_PUBLISHED + name for name in _PUBLISHED_COLUMNS]
    missing = [name for name in names if name not in frame.rows.columns]
    if missing:
        raise TypeError("dependency_validator needs the app_discovery columnar rules first")
    return frame.rows.select(pl.col(_PUBLISHED + name).alias(name) for name in _PUBLISHED_COLUMNS)


def _issue_text(frame: ChunkFrame, issue: Issue) -> str:
    field = frame.display_field(issue.field)
    return issue_json(issue.code, issue.severity, issue.message, field, issue.agent)


def _end(values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_IDENTITY_KEYS, values, strict=True))


def _identity_rule(side: str, *values: Any) -> list[Issue]:
    *identity, kind = values
    return _endpoint_identity(side, _end(tuple(identity)), str(kind or "network"))


def _same_machine_rule(*values: Any) -> list[Issue]:
    half = len(_IDENTITY_KEYS)
    return _same_machine(_end(values[:half]), _end(values[half:]))


def _ephemeral_rule(port: int | None, protocol: str | None, source_port: int | None) -> list[Issue]:
    return _ephemeral({"port": port, "protocol": protocol, "source_port": source_port})
