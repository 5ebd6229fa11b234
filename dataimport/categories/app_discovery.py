"""The `app_discovery` category: application-dependency data to endpoint assets and edges.

Two families of layouts share one alias table:

- topology rows (AppDynamics / Datadog style): application, tier/component/service, node/host,
  called tier/component (or called node), calls, latency, errors, port, protocol, first/last
  seen. The source end is the node (the tier when there is no node); the target end is the
  called node, else the called tier (an `application` asset).
- network-connection exports (Azure Migrate dependency export and the like): timeslot,
  source server/IP/application/process, destination server/IP/application/process/port.

The rules (`app_discovery_rules`) give per row
`{"source": endpoint, "target": endpoint | None, "dependency": {...}, "runs_on": [...]}`
where an endpoint holds the identity `asset_resolution` matches on (name, name_key, hostname,
hostname_key, ip_address, asset_type) and the dependency holds the edge key (port, protocol),
its figures (conn_count, bytes_total, first_seen, last_seen as ISO UTC), its details
(applications, processes, latency, error rate, ...), a base confidence and an
`observation_key`. `enrich` turns rows into assets (find or create) and `asset_dependencies`
whose figures are recomputed from `dependency_observations`: importing the same window twice
changes nothing, a new window adds to the counts and widens first/last seen.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dataimport import app_discovery_enrichment, asset_resolution
from dataimport.agents.base import ValidationAgent
from dataimport.agents.dependency_validator import DependencyValidator
from dataimport.categories.base import EnrichCounts, ImportScope
from dataimport.engine.findings import Findings
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.outcome import FrameOutcome
from dataimport.issues import Code, Issue, Severity
from dataimport.normalize import (
    NULL_TOKENS,
    hostname_key,
    name_key,
    parse_float,
    parse_int,
    quote_value,
)
from dataimport.readers.plan import SheetPlan
from dataimport.row_links import link_rows_sql

BIGINT_MAX = 2**63 - 1
N = TypeVar("N", int, float)

_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "source_name": (
        "source_server_name",
        "source_server",
        "source_host",
        "source_hostname",
        "source_host_name",
        "source_machine",
        "source_computer",
        "source_name",
        "source",
        "src_host",
        "src_server",
        "src",
        "host",
        "hostname",
        "host_name",
        "node",
        "node_name",
        "server",
        "server_name",
        "machine",
        "computer_name",
        "local_host",
        "client",
        "client_host",
        "calling_node",
        "source_node",
    ),
    "source_ip": (
        "source_ip",
        "source_ip_address",
        "source_address",
        "src_ip",
        "src_ip_address",
        "client_ip",
        "local_ip",
        "local_address",
        "ip",
        "ip_address",
        "host_ip",
        "node_ip",
    ),
    "source_port": ("source_port", "src_port", "client_port", "local_port"),
    "source_application": (
        "source_application",
        "source_application_name",
        "source_app",
        "src_application",
    ),
    "source_process": (
        "source_process",
        "source_process_name",
        "src_process",
        "client_process",
        "process",
        "process_name",
    ),
    "source_component": (
        "tier",
        "tier_name",
        "component",
        "component_name",
        "service",
        "service_name",
        "source_tier",
        "source_component",
        "source_service",
        "calling_tier",
        "calling_component",
        "calling_service",
        "from_tier",
        "from_service",
        "from_component",
        "caller",
    ),
    "target_name": (
        "destination_server_name",
        "destination_server",
        "destination_host",
        "destination_hostname",
        "destination_host_name",
        "destination_machine",
        "destination_computer",
        "destination_name",
        "destination",
        "dest_server",
        "dest_host",
        "dst_host",
        "dst_server",
        "target",
        "target_host",
        "target_hostname",
        "target_server",
        "target_server_name",
        "target_node",
        "called_node",
        "called_host",
        "remote_host",
        "remote_server",
        "peer_host",
    ),
    "target_ip": (
        "destination_ip",
        "destination_ip_address",
        "destination_address",
        "dest_ip",
        "dst_ip",
        "target_ip",
        "target_ip_address",
        "remote_ip",
        "remote_address",
        "server_ip",
        "peer_ip",
        "called_ip",
    ),
    "target_application": (
        "destination_application",
        "destination_application_name",
        "destination_app",
        "dest_application",
        "target_application",
        "target_app",
        "called_application",
    ),
    "target_process": (
        "destination_process",
        "destination_process_name",
        "dest_process",
        "dst_process",
        "target_process",
        "server_process",
        "called_process",
    ),
    "target_component": (
        "called_tier",
        "called_component",
        "called_service",
        "target_tier",
        "target_component",
        "target_service",
        "downstream",
        "downstream_service",
        "downstream_tier",
        "downstream_component",
        "to_tier",
        "to_service",
        "to_component",
        "callee",
        "backend",
        "backend_name",
        "remote_service",
        "dependency",
        "depends_on",
    ),
    "port": (
        "destination_port",
        "dest_port",
        "dst_port",
        "target_port",
        "port",
        "remote_port",
        "server_port",
        "listening_port",
        "service_port",
        "called_port",
    ),
    "protocol": (
        "protocol",
        "transport",
        "transport_protocol",
        "ip_protocol",
        "proto",
        "l7_protocol",
        "application_protocol",
        "exit_call_type",
    ),
    "dependency_type": (
        "dependency_type",
        "type",
        "call_type",
        "connection_type",
        "relationship",
        "relationship_type",
        "link_type",
        "flow_type",
        "edge_type",
    ),
    "conn_count": (
        "calls",
        "call_count",
        "calls_count",
        "number_of_calls",
        "total_calls",
        "count",
        "connections",
        "connection_count",
        "conn_count",
        "num_connections",
        "number_of_connections",
        "total_connections",
        "sessions",
        "session_count",
        "requests",
        "request_count",
        "hits",
        "flows",
        "flow_count",
    ),
    "bytes_total": (
        "bytes",
        "bytes_total",
        "total_bytes",
        "traffic_bytes",
        "volume_bytes",
        "bytes_transferred",
        "data_transferred",
    ),
    "bytes_sent": ("bytes_sent", "sent_bytes", "bytes_out", "tx_bytes", "outbound_bytes"),
    "bytes_received": (
        "bytes_received",
        "received_bytes",
        "bytes_recv",
        "bytes_in",
        "rx_bytes",
        "inbound_bytes",
    ),
    "latency_ms": (
        "avg_response_time_ms",
        "average_response_time_ms",
        "response_time_ms",
        "avg_response_time",
        "average_response_time",
        "response_time",
        "latency",
        "latency_ms",
        "avg_latency",
        "avg_latency_ms",
        "average_latency",
        "average_latency_ms",
        "art",
        "art_ms",
        "rtt",
        "rtt_ms",
        "avg_duration_ms",
    ),
    # "Errors %" and "% Errors" both become header key "errors": a percentage.
    "error_rate": (
        "errors",
        "error",
        "errors_pct",
        "error_pct",
        "errors_percent",
        "error_percent",
        "error_percentage",
        "error_rate",
        "error_rate_pct",
        "percent_errors",
        "pct_errors",
        "failure_rate",
    ),
    "error_count": ("error_count", "errors_count", "number_of_errors", "failed_calls", "failures"),
    "first_seen": (
        "first_seen",
        "first_seen_at",
        "first_seen_time",
        "first_seen_utc",
        "first_observed",
        "first_connection",
        "start_time",
        "window_start",
        "period_start",
    ),
    "last_seen": (
        "last_seen",
        "last_seen_at",
        "last_seen_time",
        "last_seen_utc",
        "last_observed",
        "last_connection",
        "end_time",
        "window_end",
        "period_end",
    ),
    "timeslot": (
        "timeslot",
        "time_slot",
        "timestamp",
        "time",
        "date",
        "datetime",
        "observed_at",
        "observation_time",
        "sample_time",
        "time_bucket",
    ),
    "application": (
        "application",
        "application_name",
        "app",
        "app_name",
        "business_application",
        "business_service",
    ),
}

_SIDES = ("source", "target")

# Canonical protocol by compact key (lower case, alphanumerics only).
PROTOCOLS: dict[str, str] = {
    **dict.fromkeys(["tcp", "tcpip", "6"], "TCP"),
    **dict.fromkeys(["udp", "17"], "UDP"),
    **dict.fromkeys(["icmp", "icmpv6", "1", "58"], "ICMP"),
    **dict.fromkeys(["sctp", "132"], "SCTP"),
    **dict.fromkeys(["http", "http1", "http11", "http2", "h2", "httpclient"], "HTTP"),
    **dict.fromkeys(["https", "httpssl", "httptls", "http3"], "HTTPS"),
    **dict.fromkeys(["tls", "ssl"], "TLS"),
    **dict.fromkeys(["grpc", "grpcs"], "GRPC"),
    **dict.fromkeys(["ws", "websocket"], "WS"),
    **dict.fromkeys(["wss", "websocketsecure"], "WSS"),
    **dict.fromkeys(["soap", "webservice", "webservices"], "SOAP"),
    "rest": "REST",
    "jdbc": "JDBC",
    "odbc": "ODBC",
    **dict.fromkeys(["adonet", "ado"], "ADO.NET"),
    **dict.fromkeys(["sql", "database", "db"], "SQL"),
    **dict.fromkeys(["tds", "mssql", "sqlserver"], "TDS"),
    "mysql": "MYSQL",
    **dict.fromkeys(["postgresql", "postgres", "pgsql"], "POSTGRESQL"),
    **dict.fromkeys(["oracle", "sqlnet", "tns", "oraclenet"], "ORACLE"),
    **dict.fromkeys(["mongodb", "mongo"], "MONGODB"),
    **dict.fromkeys(["cassandra", "cql"], "CASSANDRA"),
    "redis": "REDIS",
    "memcached": "MEMCACHED",
    "ldap": "LDAP",
    "ldaps": "LDAPS",
    **dict.fromkeys(["kerberos", "krb5"], "KERBEROS"),
    **dict.fromkeys(["smb", "cifs", "smb2", "smb3"], "SMB"),
    "nfs": "NFS",
    "rdp": "RDP",
    "ssh": "SSH",
    "sftp": "SFTP",
    "ftp": "FTP",
    "ftps": "FTPS",
    "dns": "DNS",
    **dict.fromkeys(["smtp", "smtps"], "SMTP"),
    "snmp": "SNMP",
    "ntp": "NTP",
    "syslog": "SYSLOG",
    **dict.fromkeys(["amqp", "amqps", "rabbitmq"], "AMQP"),
    "mqtt": "MQTT",
    "kafka": "KAFKA",
    **dict.fromkeys(["mq", "ibmmq", "webspheremq"], "MQ"),
    "jms": "JMS",
    "rmi": "RMI",
    **dict.fromkeys(["rpc", "msrpc", "dcerpc"], "RPC"),
    "dcom": "DCOM",
    **dict.fromkeys(["wcf", "nettcp"], "WCF"),
    "winrm": "WINRM",
    "cache": "CACHE",
}

_PROTOCOL_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9._+-]{0,23}")
_PORT_WITH_PROTOCOL = re.compile(
    r"(?P<port>\d[\d,]*)\s*/\s*(?P<proto>[a-z]+)|(?P<proto2>[a-z]+)\s*/\s*(?P<port2>\d[\d,]*)",
    re.IGNORECASE,
)
_PLACEHOLDERS = NULL_TOKENS

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

# Keys of normalized "dependency" that are edge columns; every other key is an edge detail.
_EDGE_COLUMNS = (
    "port",
    "protocol",
    "dependency_type",
    "conn_count",
    "bytes_total",
    "first_seen",
    "last_seen",
    "confidence",
    "observation_key",
)

# Base confidence of an edge by what the row is: an observed network connection, a traced
# call, or a dependency the file merely states (no count, no bytes, no time). Volume adds
# up to VOLUME_BONUS on top (see _RECOMPUTE_SQL).
CONFIDENCE = {"network": 0.85, "topology": 0.8, "stated": 0.6}
VOLUME_BONUS = 0.15
RUNS_ON_CONFIDENCE = 0.9  # the APM agent saw the tier's process on that node


# --- parsers (pure; raise ValueError with a short message) -------------------------------


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


# --- exact parsers of one cell set (run once per distinct value by app_discovery_rules) -----


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


_DISCRIMINATORS = (
    "application",
    "source_application",
    "source_process",
    "source_component",
    "target_application",
    "target_process",
    "target_component",
    "source_port",
)


# --- enrichment SQL ----------------------------------------------------------------------

_RANGE = """r.data_import_id = CAST(:id AS uuid) AND r.row_number BETWEEN :first AND :last
  AND r.is_valid AND NOT r.superseded"""
_RUNS_ON = "coalesce(r.normalized_data -> 'runs_on', '[]'::jsonb)"
# One asset per host name (so "web1" and "web1.corp.local" of one range become one), else
# per name: a tier never merges with a host by host name, only by an identical name.
_IDENTITY_KEY = (
    "CASE WHEN c.a ->> 'hostname_key' IS NOT NULL THEN 'h:' || (c.a ->> 'hostname_key') "
    "ELSE 'n:' || (c.a ->> 'name_key') END"
)
_TENANT = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"


def _create_endpoints_sql() -> str:
    """Create the range's unmatched endpoints, both ends in one statement.

    One statement ordered by name key (rather than one per end) keeps parallel ranges that
    create the same endpoints from deadlocking, and lets two spellings of one host
    ("web1", "web1.corp.local") in one range become one asset. Run once for named endpoints
    and then for IP-only ones, so that "10.0.0.2" finds the "app2-server" created with it.
    """
    return f"""
WITH ends AS (
  SELECT r.row_number, r.normalized_data -> 'source' AS a FROM raw_import_records r
  WHERE {_RANGE}
  UNION ALL
  SELECT r.row_number, r.normalized_data -> 'target' AS a FROM raw_import_records r
  WHERE {_RANGE}
  UNION ALL
  SELECT r.row_number, c.value AS a FROM raw_import_records r
  CROSS JOIN LATERAL jsonb_array_elements({_RUNS_ON}) c
  WHERE {_RANGE}
),
candidates AS (
  SELECT e.row_number, e.a FROM ends e
  WHERE e.a ->> 'name_key' IS NOT NULL
    AND coalesce(e.a ->> 'name' = e.a ->> 'ip_address', false) = :ip_only
),
keyed AS (
  -- any row's IP for the host, so the IP-only pass can match the asset created here
  SELECT c.row_number, c.a, {_IDENTITY_KEY} AS k,
    max(c.a ->> 'ip_address') OVER (PARTITION BY {_IDENTITY_KEY}) AS ip
  FROM candidates c
),
unmatched AS (
  SELECT DISTINCT ON (c.k) c.a, c.ip
  FROM keyed c {asset_resolution.match_lateral("c")}
  WHERE m.id IS NULL
  ORDER BY c.k, c.row_number DESC
)
INSERT INTO assets (client_account_id, engagement_id, name, name_key, hostname_key, hostname,
  ip_address, asset_type, source_import_id, created_by_import_id)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), u.a ->> 'name', u.a ->> 'name_key',
  u.a ->> 'hostname_key', u.a ->> 'hostname', coalesce(u.a ->> 'ip_address', u.ip),
  coalesce(u.a ->> 'asset_type', 'server'), CAST(:id AS uuid), CAST(:id AS uuid)
FROM unmatched u ORDER BY u.a ->> 'name_key'
ON CONFLICT (client_account_id, engagement_id, name_key) DO NOTHING
"""


# Touch every endpoint and component asset (source_import_id) and fill host name / IP where
# unknown. Rows are locked in id order first: parallel ranges share assets and must not
# deadlock.
_TOUCH_ASSETS_SQL = f"""
WITH ends AS (
  SELECT r.normalized_data -> 'source' AS a FROM raw_import_records r WHERE {_RANGE}
  UNION ALL
  SELECT r.normalized_data -> 'target' AS a FROM raw_import_records r WHERE {_RANGE}
),
incoming AS (
  SELECT CAST(a ->> 'asset_id' AS uuid) AS id, max(a ->> 'ip_address') AS ip,
    max(a ->> 'hostname') AS hostname, max(a ->> 'hostname_key') AS hostname_key
  FROM ends WHERE a ->> 'asset_id' IS NOT NULL GROUP BY 1
),
components AS (
  SELECT DISTINCT t.id FROM raw_import_records r
  CROSS JOIN LATERAL jsonb_array_elements({_RUNS_ON}) c
  JOIN assets t ON {_TENANT} AND t.name_key = c.value ->> 'name_key'
  WHERE {_RANGE}
),
locked AS (
  SELECT t.id, i.ip, i.hostname, i.hostname_key
  FROM assets t LEFT JOIN incoming i ON i.id = t.id
  WHERE {_TENANT} AND (t.id IN (SELECT id FROM incoming) OR t.id IN (SELECT id FROM components))
  ORDER BY t.id FOR NO KEY UPDATE OF t
)
UPDATE assets t SET ip_address = coalesce(t.ip_address, l.ip),
  hostname = coalesce(t.hostname, l.hostname),
  hostname_key = coalesce(t.hostname_key, l.hostname_key),
  source_import_id = CAST(:id AS uuid), updated_at = now()
FROM locked l WHERE t.id = l.id
"""

# A tier runs on the node the row names with it: component -> host, no port, no figures.
_UPSERT_RUNS_ON_SQL = f"""
WITH k AS (
  SELECT CAST(r.normalized_data -> (c.value ->> 'side') ->> 'asset_id' AS uuid) AS host,
    c.value ->> 'name_key' AS component_key
  FROM raw_import_records r CROSS JOIN LATERAL jsonb_array_elements({_RUNS_ON}) c
  WHERE {_RANGE}
),
e AS (
  SELECT DISTINCT t.id AS src, k.host AS tgt FROM k
  JOIN assets t ON {_TENANT} AND t.name_key = k.component_key
  WHERE k.host IS NOT NULL AND t.id <> k.host
)
INSERT INTO asset_dependencies (client_account_id, engagement_id, source_asset_id,
  target_asset_id, dependency_type, confidence, details, source_import_id, created_by_import_id)
SELECT CAST(:c AS uuid), CAST(:e AS uuid), src, tgt, 'runs_on', {RUNS_ON_CONFIDENCE},
  '{{"kind": "topology"}}'::jsonb, CAST(:id AS uuid), CAST(:id AS uuid)
FROM e ORDER BY src, tgt
ON CONFLICT (client_account_id, engagement_id, source_asset_id, target_asset_id, port, protocol)
DO UPDATE SET source_import_id = EXCLUDED.source_import_id,
  confidence = greatest(asset_dependencies.confidence, EXCLUDED.confidence), updated_at = now()
"""

_EDGE_COLUMN_ARRAY = "ARRAY[" + ", ".join(f"'{c}'" for c in _EDGE_COLUMNS) + "]"

# One statement: upsert one edge per (source, target, port, protocol) of the range (grouped
# first: ON CONFLICT DO UPDATE may not meet one key twice; ordered: no deadlocks between
# ranges), record each row's observation once, and return the edges with their base
# confidence for the recompute.
_UPSERT_EDGES_SQL = f"""
WITH k AS (
  SELECT r.row_number, CAST(r.normalized_data -> 'source' ->> 'asset_id' AS uuid) AS src,
    CAST(r.normalized_data -> 'target' ->> 'asset_id' AS uuid) AS tgt,
    CAST(r.normalized_data -> 'dependency' ->> 'port' AS integer) AS port,
    r.normalized_data -> 'dependency' ->> 'protocol' AS protocol,
    r.normalized_data -> 'dependency' AS d
  FROM raw_import_records r
  WHERE {_RANGE} AND r.normalized_data -> 'source' ->> 'asset_id' IS NOT NULL
    AND r.normalized_data -> 'target' ->> 'asset_id' IS NOT NULL
),
e AS (
  SELECT src, tgt, port, protocol, min(d ->> 'dependency_type') AS dependency_type,
    max(CAST(d ->> 'confidence' AS double precision)) AS base,
    (array_agg(jsonb_strip_nulls(d - {_EDGE_COLUMN_ARRAY}) ORDER BY row_number DESC))[1]
      AS details
  FROM k WHERE src <> tgt GROUP BY src, tgt, port, protocol
),
up AS (
  INSERT INTO asset_dependencies (client_account_id, engagement_id, source_asset_id,
    target_asset_id, port, protocol, dependency_type, confidence, details, source_import_id,
    created_by_import_id)
  SELECT CAST(:c AS uuid), CAST(:e AS uuid), src, tgt, port, protocol, dependency_type, base,
    details, CAST(:id AS uuid), CAST(:id AS uuid)
  FROM e ORDER BY src, tgt, port, protocol
  ON CONFLICT (client_account_id, engagement_id, source_asset_id, target_asset_id, port, protocol)
  DO UPDATE SET source_import_id = EXCLUDED.source_import_id,
    dependency_type = CASE WHEN asset_dependencies.dependency_type = 'declared'
      THEN EXCLUDED.dependency_type ELSE asset_dependencies.dependency_type END,
    details = asset_dependencies.details || EXCLUDED.details,
    confidence = greatest(asset_dependencies.confidence, EXCLUDED.confidence),
    updated_at = now()
  RETURNING id, source_asset_id, target_asset_id, port, protocol
),
obs AS (
  INSERT INTO dependency_observations (client_account_id, engagement_id, dependency_id,
    observation_key, conn_count, bytes_total, first_seen, last_seen, data_import_id)
  SELECT DISTINCT ON (up.id, k.d ->> 'observation_key') CAST(:c AS uuid), CAST(:e AS uuid),
    up.id, k.d ->> 'observation_key', CAST(k.d ->> 'conn_count' AS bigint),
    CAST(k.d ->> 'bytes_total' AS bigint), CAST(k.d ->> 'first_seen' AS timestamptz),
    CAST(k.d ->> 'last_seen' AS timestamptz), CAST(:id AS uuid)
  FROM k JOIN up ON up.source_asset_id = k.src AND up.target_asset_id = k.tgt
    AND up.port IS NOT DISTINCT FROM k.port AND up.protocol IS NOT DISTINCT FROM k.protocol
  ORDER BY up.id, k.d ->> 'observation_key', k.row_number DESC
  ON CONFLICT (dependency_id, observation_key) DO NOTHING
)
SELECT up.id, e.base FROM up JOIN e ON up.source_asset_id = e.src AND up.target_asset_id = e.tgt
  AND up.port IS NOT DISTINCT FROM e.port AND up.protocol IS NOT DISTINCT FROM e.protocol
ORDER BY up.id
"""

# Edge figures are functions of the edge's distinct observations (sum, min, max): the same
# window imported twice counts once, a new window adds. Confidence never decreases.
_RECOMPUTE_SQL = f"""
WITH b AS (
  SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:bases AS double precision[])) AS b(id, base)
),
agg AS (
  SELECT o.dependency_id AS id, sum(o.conn_count) AS conn_count,
    sum(o.bytes_total) AS bytes_total, min(o.first_seen) AS first_seen,
    max(o.last_seen) AS last_seen
  FROM dependency_observations o JOIN b ON o.dependency_id = b.id
  GROUP BY o.dependency_id
)
UPDATE asset_dependencies d SET conn_count = agg.conn_count, bytes_total = agg.bytes_total,
  first_seen = agg.first_seen, last_seen = agg.last_seen,
  confidence = greatest(d.confidence, least(1.0, b.base + {VOLUME_BONUS} * least(1.0,
    CAST(log(1 + coalesce(agg.conn_count, 0)) AS double precision) / 4)))
FROM agg JOIN b ON b.id = agg.id
WHERE d.id = agg.id AND d.client_account_id = CAST(:c AS uuid)
  AND d.engagement_id = CAST(:e AS uuid)
"""

_MARK_PROCESSED_SQL = link_rows_sql(
    f"""
SELECT r.data_import_id, r.row_number,
  CAST(r.normalized_data -> 'source' ->> 'asset_id' AS uuid), CAST(:c AS uuid), CAST(:e AS uuid)
FROM raw_import_records r
WHERE {_RANGE}
ORDER BY r.row_number
"""
)


# --- enrichment prepared once per import --------------------------------------------------
# What every range shares (endpoint assets, their touch, the edges) is written once per
# import by `prepare`, before the parallel ranges; a range then only looks up those assets,
# inserts its own observations (distinct keys) and marks its rows: ranges never wait on each
# other's locks. `finish` recomputes the import's edge figures once at the end. The SQL is in
# `dataimport.app_discovery_enrichment` (typed temporary tables, hash joins, `= ANY` lookups).


# --- the category ------------------------------------------------------------------------


def _alias_table() -> dict[str, str]:
    return {alias: field for field, aliases in _FIELD_ALIASES.items() for alias in aliases}


class AppDiscoveryCategory:
    """Dependency data: one row per observed (or stated) connection between two endpoints."""

    name = "app_discovery"
    aliases: Mapping[str, str] = _alias_table()
    # Any column naming an end is enough to start; rows without both ends are rejected.
    required_fields = frozenset(
        {f"{side}_{part}" for side in _SIDES for part in ("name", "ip", "component")}
    )
    # An edge is its two ends, its port and protocol and its observation (time window and
    # source port); its figures (counts, bytes, latency, errors) are not.
    identifying_fields = frozenset(
        {
            *(f"{side}_{part}" for side in _SIDES for part in ("name", "ip", "component")),
            *("port", "protocol", "source_port", "timeslot", "first_seen", "last_seen"),
        }
    )
    literal_tokens: Mapping[str, frozenset[str]] = {}
    agents: Sequence[ValidationAgent] = (DependencyValidator(),)
    sheet_plan: SheetPlan | None = None
    masks_values = False
    unique_external_ids = False

    def validate_frame(self, frame: ChunkFrame, findings: Findings) -> FrameOutcome:
        """The columnar rules (`app_discovery_rules`)."""
        from dataimport.categories import app_discovery_rules  # it imports this module

        return app_discovery_rules.validate_frame(frame, findings)

    def natural_key(self, normalized: Mapping[str, Any]) -> str | None:
        # One edge seen in one observation: a second such line in the file is a duplicate.
        source, target = normalized.get("source"), normalized.get("target")
        dependency = normalized.get("dependency") or {}
        if not source or not target:
            return None
        return "|".join(
            str(part)
            for part in (
                source["name_key"],
                target["name_key"],
                dependency.get("port"),
                dependency.get("protocol"),
                dependency.get("observation_key"),
            )
        )

    async def prepare(self, conn: AsyncConnection, scope: ImportScope) -> bool:
        """Once per import, before the parallel ranges: every endpoint asset found or created,
        touched, and every edge upserted, set-based over the import (one scan of its rows).

        Returns False: there is no link pass to run.
        """
        await app_discovery_enrichment.prepare(
            conn,
            asset_resolution.scope_params(scope),
            edge_columns=_EDGE_COLUMNS,
            runs_on_confidence=RUNS_ON_CONFIDENCE,
        )
        return False

    async def enrich(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of a prepared import: look up its ends, record its observations."""
        return await app_discovery_enrichment.enrich_range(
            conn, asset_resolution.scope_params(scope)
        )

    async def finish(self, conn: AsyncConnection, scope: ImportScope) -> None:
        """Once per prepared import, after every range: its edges' figures recomputed."""
        await app_discovery_enrichment.finish(
            conn, asset_resolution.scope_params(scope), volume_bonus=VOLUME_BONUS
        )

    async def enrich_unprepared(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        """A range of an import whose enrichment began before `prepare` existed: every range
        creates and updates what it shares with the others (kept for imports in flight)."""
        params = asset_resolution.scope_params(scope)
        for ip_only in (False, True):
            await conn.execute(text(_create_endpoints_sql()), {**params, "ip_only": ip_only})
        # Matching and write-back are the resolver's; whatever the passes above left
        # unmatched (e.g. a tier and a host sharing a key) is created here.
        for side in _SIDES:
            await asset_resolution.resolve_assets(conn, scope, side)
        touched = await conn.execute(text(_TOUCH_ASSETS_SQL), params)
        edges = (await conn.execute(text(_UPSERT_EDGES_SQL), params)).all()
        if edges:
            await conn.execute(
                text(_RECOMPUTE_SQL),
                {**params, "ids": [e.id for e in edges], "bases": [e.base for e in edges]},
            )
        runs_on = await conn.execute(text(_UPSERT_RUNS_ON_SQL), params)
        await conn.execute(text(_MARK_PROCESSED_SQL), params)
        return EnrichCounts(
            assets_touched=touched.rowcount or 0,
            dependencies_touched=len(edges) + (runs_on.rowcount or 0),
        )

    async def link(self, conn: AsyncConnection, scope: ImportScope) -> EnrichCounts:
        # Both ends are found or created in enrich, so there is no second pass to make.
        return EnrichCounts()


CATEGORY = AppDiscoveryCategory()
