"""`dependency_validator`: a named rule set over one app_discovery row's normalised dependency.

The category's `validate_row` already rejects what cannot be stored (bad ports, unparseable
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

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dataimport.agents.base import RowContext
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
