"""app_discovery vocabularies (data): protocols, the dependency's edge columns, confidences."""

from __future__ import annotations

BIGINT_MAX = 2**63 - 1

SIDES = ("source", "target")

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

# Keys of normalized "dependency" that are edge columns; every other key is an edge detail.
EDGE_COLUMNS = (
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
# up to VOLUME_BONUS on top (see `enrichment._recompute_sql`).
CONFIDENCE = {"network": 0.85, "topology": 0.8, "stated": 0.6}
VOLUME_BONUS = 0.15
RUNS_ON_CONFIDENCE = 0.9  # the APM agent saw the tier's process on that node

# The details that tell two observations of one edge in one window apart (the processes
# and applications behind them, the source port).
DISCRIMINATORS = (
    "application",
    "source_application",
    "source_process",
    "source_component",
    "target_application",
    "target_process",
    "target_component",
    "source_port",
)
