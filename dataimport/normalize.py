"""Normalisers shared by the import categories: raw cell text in, canonical value out.

Every function is pure (no I/O). A value that cannot be normalised raises `ValueError` with a
short human message; the category turns that into an `Issue` with the right code and field.
Functions returning `str | None` give None for a blank cell or a null token such as "n/a".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache

# Null tokens: cells that mean "nobody knows" rather than a value. The one list every category
# reads as blank (compared in lower case, after strip; see dataimport/engine/policy.py).
NULL_TOKENS = frozenset(
    {
        "-",
        "--",
        "?",
        "n/a",
        "#n/a",
        "n.a.",
        "na",
        "none",
        "null",
        "nil",
        "tbd",
        "tbc",
        "unknown",
    }
)


# Exports repeat the same few values (OS names, environments, sizes): cache the parses.
CACHE_SIZE = 8192


def quote_value(text: str, limit: int = 80) -> str:
    """The offending value, quoted and shortened to `limit` characters, for messages."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


_NON_WORD = re.compile(r"[^0-9a-z]+")


def _word_key(text: str) -> str:
    """Comparable form of a vocabulary value: lower case, punctuation to single spaces."""
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def _is_placeholder(text: str) -> bool:
    stripped = text.strip()
    return not stripped or stripped.lower() in NULL_TOKENS


# --- numbers -----------------------------------------------------------------------------

_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


def _decimal(text: str) -> Decimal:
    """Parse a number written with comma thousands separators or a lone decimal comma.

    "1,024" and "1,024.5" use thousands separators; "12,5" (one comma, no dot, not three
    digits after it) is a decimal comma. Anything else with a comma is ambiguous: rejected.
    """
    cleaned = text.strip()
    if "," in cleaned:
        if _THOUSANDS.fullmatch(cleaned):
            cleaned = cleaned.replace(",", "")
        elif _DECIMAL_COMMA.fullmatch(cleaned):
            cleaned = cleaned.replace(",", ".")
        else:
            raise ValueError(f"{quote_value(text)} is not a number")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{quote_value(text)} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{quote_value(text)} is not a finite number")
    return value


@lru_cache(maxsize=CACHE_SIZE)
def parse_int(text: str) -> int:
    """Whole number: "16", " 8 ", "1,024", "8.0"; "8.5" or "abc" raise ValueError."""
    value = _decimal(text)
    if value != value.to_integral_value():
        raise ValueError(f"{quote_value(text)} is not a whole number")
    return int(value)


@lru_cache(maxsize=CACHE_SIZE)
def parse_float(text: str) -> float:
    """Number: "1,024.5", "12.5", "12,5" (decimal comma), "-3"; "abc" raises ValueError."""
    return float(_decimal(text))


# --- sizes -------------------------------------------------------------------------------

# Power of 1024 relative to a byte. Binary everywhere: CMDBs say "GB" and mean GiB.
_UNIT_POWER = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_SIZE = re.compile(r"(?P<number>[+-]?[\d.,]+)\s*(?P<unit>[a-z]+)?", re.IGNORECASE)
_UNIT = re.compile(r"(?P<prefix>[bkmgtp])(?:i?b(?:ytes?)?)?", re.IGNORECASE)


def _unit_power(unit: str, text: str) -> int:
    match = _UNIT.fullmatch(unit.strip())
    if not match:
        raise ValueError(f"{quote_value(text)} has an unknown size unit {quote_value(unit)}")
    return _UNIT_POWER[match["prefix"].lower()]


@lru_cache(maxsize=CACHE_SIZE)
def _parse_size_gb(text: str, default_unit: str) -> float:
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{quote_value(text)} is not a size (expected e.g. '16 GB')")
    number = _decimal(match["number"])
    power = _unit_power(match["unit"] or default_unit, text)
    gigabytes = number * Decimal(1024) ** (power - _UNIT_POWER["g"])
    return round(float(gigabytes), 6)


def parse_memory_gb(text: str, default_unit: str = "GB") -> float:
    """Memory size in GB: "16 GB", "16384MB", "512 MiB", "1 TB", "1,024" (in default_unit)."""
    return _parse_size_gb(text, default_unit)


def parse_storage_gb(text: str, default_unit: str = "GB") -> float:
    """Storage size in GB, same rules as memory: "500 GB", "2 TiB", "1,024" (in default_unit)."""
    return _parse_size_gb(text, default_unit)


# --- network -----------------------------------------------------------------------------

# A plain dotted-quad IPv4 address is already canonical (ipaddress rejects leading zeros, so
# this pattern does too): addresses are unique per row, so the cache rarely helps them.
_PLAIN_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)
_IP_SEPARATORS = re.compile(r"[,;\s]+")


def normalize_ip(text: str) -> str:
    """First valid IPv4/IPv6 address in the cell, canonical form, prefix length dropped.

    Exports list several addresses ("10.0.0.1, 10.0.0.2") and CIDR forms ("10.0.0.1/24");
    an asset's primary address is the first one that parses.
    """
    if _PLAIN_IPV4.fullmatch(text):
        return text
    return _normalize_ip(text)


@lru_cache(maxsize=CACHE_SIZE)
def _normalize_ip(text: str) -> str:
    for token in _IP_SEPARATORS.split(text.strip()):
        candidate = token.split("/", 1)[0].strip("[]")
        if not candidate:
            continue
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    raise ValueError(f"{quote_value(text)} is not a valid IP address")


_LIST_SEPARATORS = re.compile(r"[,;|\r\n]+")


def split_list(text: str) -> list[str]:
    """Split "a,b", "a;b", "a | b" or one item per line; stripped, non-empty, first spelling kept.

    Duplicates are detected case-insensitively because assets are matched by name key.
    """
    items: list[str] = []
    seen: set[str] = set()
    for part in _LIST_SEPARATORS.split(text):
        item = part.strip()
        key = name_key(item)
        if item and key not in seen:
            seen.add(key)
            items.append(item)
    return items


def name_key(name: str) -> str:
    """Natural key of a name: lower case, trimmed, inner whitespace collapsed."""
    return " ".join(name.split()).lower()


_HOST_LABEL = re.compile(r"[a-z0-9][a-z0-9_-]*")
_IPV4_CHARS = frozenset("0123456789./")


def _could_be_ip(text: str) -> bool:
    """False when ipaddress would surely refuse text: IPv6 needs a ':', IPv4 only digits and
    dots (and the '/' of a prefix). Saves a raised ValueError per ordinary host name."""
    return ":" in text or _IPV4_CHARS.issuperset(text)


@lru_cache(maxsize=CACHE_SIZE)
def hostname_key(hostname_or_fqdn: str) -> str | None:
    """Short host name, lower case: "WEB01.corp.local" -> "web01"; "CORP\\web01" -> "web01".

    None for an IP address or for text that cannot be a host name (e.g. "Payroll App"),
    so that hosts are never matched on a display name by accident.
    """
    text = hostname_or_fqdn.strip().lower().rstrip(".")
    text = text.rsplit("\\", 1)[-1]  # NetBIOS DOMAIN\host
    if not text:
        return None
    if _could_be_ip(text):
        try:
            ipaddress.ip_address(text.split("/", 1)[0])
            return None
        except ValueError:
            pass
    short = text.split(".", 1)[0]
    return short if _HOST_LABEL.fullmatch(short) else None


# --- vocabularies ------------------------------------------------------------------------


def _lookup(text: str, table: Mapping[str, str], what: str) -> str | None:
    if _is_placeholder(text):
        return None
    key = _word_key(text)
    found = table.get(key) or table.get(key.replace(" ", ""))
    if found is None:
        raise ValueError(f"unknown {what} {quote_value(text)}")
    return found


_ENVIRONMENTS: dict[str, str] = {
    **dict.fromkeys(
        ["production", "prod", "prd", "live", "prod env", "production environment"],
        "production",
    ),
    **dict.fromkeys(
        ["staging", "stg", "stage", "preprod", "pre prod", "pre production", "preproduction"],
        "staging",
    ),
    **dict.fromkeys(
        ["test", "tst", "testing", "qa", "qas", "quality assurance", "sit", "system test"],
        "test",
    ),
    **dict.fromkeys(["uat", "user acceptance", "user acceptance testing", "acceptance"], "uat"),
    # A demo or lab box is migrated like a development one: no production SLA.
    **dict.fromkeys(
        ["development", "dev", "devel", "sandbox", "sbx", "lab", "poc", "demo", "demonstration"],
        "development",
    ),
    **dict.fromkeys(
        ["disaster recovery", "dr", "disasterrecovery", "bcp", "business continuity", "dr site"],
        "disaster_recovery",
    ),
    **dict.fromkeys(["training", "train", "trn", "education"], "training"),
}


@lru_cache(maxsize=CACHE_SIZE)
def normalize_environment(text: str) -> str | None:
    """production, staging, test, uat, development, disaster_recovery or training.

    Aliases: prod/prd/live, stg/stage/preprod, qa/sit, dev/sandbox/lab/demo, dr/bcp, trn.
    UAT stays its own value: migration waves often treat it apart from plain test.
    """
    return _lookup(text, _ENVIRONMENTS, "environment")


# Ranking follows the common tiering "mission critical > business critical > business
# operational > administrative", and ServiceNow's "1 - most critical" … "4 - not critical".
_CRITICALITIES: dict[str, str] = {
    **dict.fromkeys(
        ["critical", "crit", "mission critical", "most critical", "very high", "highest"],
        "critical",
    ),
    **dict.fromkeys(["high", "business critical", "somewhat critical", "important"], "high"),
    **dict.fromkeys(
        ["medium", "med", "moderate", "normal", "standard", "business operational"], "medium"
    ),
    **dict.fromkeys(
        ["low", "less critical", "not critical", "non critical", "noncritical", "administrative"],
        "low",
    ),
}
# Ranked forms: "1", "1 - Critical", "Tier 1", "tier1", "P1". Tier 0 is the top tier too.
_RANKED = re.compile(r"(?:tier|t|p|priority|level)?\s*([0-4])(?:\s.*)?")
_RANK_TO_CRITICALITY = {"0": "critical", "1": "critical", "2": "high", "3": "medium", "4": "low"}


@lru_cache(maxsize=CACHE_SIZE)
def normalize_criticality(text: str) -> str | None:
    """critical, high, medium or low, from words ("Mission Critical") or ranks ("2 - High")."""
    if _is_placeholder(text):
        return None
    key = _word_key(text)
    if key in _CRITICALITIES:
        return _CRITICALITIES[key]
    ranked = _RANKED.fullmatch(key)
    if ranked:
        return _RANK_TO_CRITICALITY[ranked[1]]
    raise ValueError(f"unknown criticality {quote_value(text)}")


ASSET_TYPES = (
    "server",
    "virtual_machine",
    "database",
    "application",
    "network_device",
    "load_balancer",
    "storage",
    "container",
    "other",
)

_ASSET_TYPE_WORDS: dict[str, str] = {
    **{value.replace("_", " "): value for value in ASSET_TYPES},
    **dict.fromkeys(
        ["physical", "physical server", "host", "bare metal", "baremetal", "hypervisor"],
        "server",
    ),
    **dict.fromkeys(
        ["vm", "virtual", "virtual server", "vsi", "instance", "cloud instance", "ec2 instance"],
        "virtual_machine",
    ),
    **dict.fromkeys(
        ["db", "database instance", "db instance", "dbms", "rdbms", "db server"], "database"
    ),
    **dict.fromkeys(["app", "business application", "software", "service"], "application"),
    **dict.fromkeys(["lb", "loadbalancer", "load balancer", "vip", "adc"], "load_balancer"),
    **dict.fromkeys(
        ["network", "network device", "network gear", "firewall", "switch", "router", "fw"],
        "network_device",
    ),
    **dict.fromkeys(["san", "nas", "storage array", "storage device", "array"], "storage"),
    **dict.fromkeys(["docker", "pod", "k8s pod", "container instance"], "container"),
}

# ServiceNow sys_class_name without its "cmdb_ci_" prefix, most specific rule first.
_SERVICENOW_CLASSES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), asset_type)
    for pattern, asset_type in (
        (
            r"(vmware|vm|hyper_v|kvm|xen|ec2|azure|gcp|cloud)_?instance.*|.*_vm|vm",
            "virtual_machine",
        ),
        (r"db_.*|database.*|.*_database", "database"),
        (r"appl.*|app_server.*|business_app.*|service.*", "application"),
        (r"lb.*|.*load_?balancer.*", "load_balancer"),
        (
            r"netgear|network.*|ip_(router|switch|firewall)|firewall.*|.*router|.*switch",
            "network_device",
        ),
        (r"storage.*|san.*|nas.*|.*_storage_.*", "storage"),
        (r".*container.*|kubernetes_pod|docker.*", "container"),
        (r"server|.*_server|computer|mainframe.*|esx.*", "server"),
    )
)


_SERVICENOW_PREFIX = re.compile(r"^(u_)?cmdb_ci_?")


def _servicenow_asset_type(class_name: str) -> str | None:
    short = _SERVICENOW_PREFIX.sub("", class_name)
    for pattern, asset_type in _SERVICENOW_CLASSES:
        if pattern.fullmatch(short):
            return asset_type
    return None


@lru_cache(maxsize=CACHE_SIZE)
def normalize_asset_type(text: str) -> str | None:
    """One of ASSET_TYPES from a ServiceNow sys_class_name or a home-grown type word.

    "cmdb_ci_linux_server" -> server, "cmdb_ci_vmware_instance" -> virtual_machine,
    "DB" -> database, "Firewall" -> network_device. Plurals ("Servers") are accepted.
    """
    if _is_placeholder(text):
        return None
    raw = text.strip().lower()
    if raw.startswith(("cmdb_ci", "u_cmdb_ci")):
        found = _servicenow_asset_type(raw)
    else:
        key = _word_key(raw)
        found = _ASSET_TYPE_WORDS.get(key) or _ASSET_TYPE_WORDS.get(key.removesuffix("s"))
    if found is None:
        raise ValueError(f"unknown asset type {quote_value(text)}")
    return found


# --- operating systems -------------------------------------------------------------------

# (pattern on the lower-cased OS name, canonical family). Order matters: specific first.
_OS_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), family)
    for pattern, family in (
        (r"\bcentos\s*stream\b", "CentOS Stream"),
        (r"\bcentos\b", "CentOS"),
        (r"red\s*hat|\brhel\b", "Red Hat Enterprise Linux"),
        (r"oracle\s*linux|\boel\b", "Oracle Linux"),
        (r"\brocky\b", "Rocky Linux"),
        (r"\balma\s*linux\b", "AlmaLinux"),
        (r"\bubuntu\b", "Ubuntu"),
        (r"\bsuse\b|\bsles\b", "SUSE Linux Enterprise Server"),
        (r"\bdebian\b", "Debian"),
        (r"\besxi?\b", "VMware ESXi"),
        (r"\baix\b", "AIX"),
        (r"solaris|sunos", "Solaris"),
        (r"hp-?ux", "HP-UX"),
    )
)
# "Windows", "Win", and run-together forms such as "Win2008R2".
_WINDOWS = re.compile(r"\bwin(dows)?(\b|(?=\d))")
_WINDOWS_SERVER_RELEASE = re.compile(
    r"(?<!\d)(2000|2003|2008|2012|2016|2019|2022|2025)(?!\d)(\s*r2)?"
)
_WINDOWS_CLIENT_RELEASE = re.compile(r"\b(xp|vista|7|8\.1|8|10|11)\b")
_WINDOWS_CLIENT_NAMES = {"xp": "XP", "vista": "Vista"}
# NT kernel version as reported by discovery tools -> Windows Server release.
_WINDOWS_SERVER_BUILDS: tuple[tuple[str, str], ...] = (
    ("5.0", "2000"),
    ("5.2", "2003"),
    ("6.0", "2008"),
    ("6.1", "2008 R2"),
    ("6.2", "2012"),
    ("6.3", "2012 R2"),
    ("10.0.14393", "2016"),
    ("10.0.17763", "2019"),
    ("10.0.20348", "2022"),
    ("10.0.26100", "2025"),
)
# Bitness and architecture words carry numbers that are not versions.
_ARCH_NOISE = re.compile(r"\(?\b(32|64)[- ]?bits?\b\)?|\bx86_64\b|\bx64\b|\bamd64\b|\bi[36]86\b")
_VERSION = re.compile(r"\d+(?:\.\d+)*")
_VERSION_LIST = re.compile(r"\d\s*/\s*\d")

# End of the vendor's free support, by family and release. Windows: end of extended support
# (ESU is a paid add-on); RHEL/Oracle Linux: end of maintenance/premier support (ELS is paid);
# Ubuntu: end of standard support (ESM needs Ubuntu Pro); SLES: end of general support;
# Debian: end of LTS. Sources: vendor lifecycle pages; future dates may still move.
_SUPPORT_ENDS: dict[str, dict[str, date]] = {
    "Windows Server": {
        "2000": date(2010, 7, 13),
        "2003": date(2015, 7, 14),
        "2003 R2": date(2015, 7, 14),
        "2008": date(2020, 1, 14),
        "2008 R2": date(2020, 1, 14),
        "2012": date(2023, 10, 10),
        "2012 R2": date(2023, 10, 10),
        "2016": date(2027, 1, 12),
        "2019": date(2029, 1, 9),
        "2022": date(2031, 10, 14),
        "2025": date(2034, 10, 10),
    },
    "Windows": {
        "xp": date(2014, 4, 8),
        "vista": date(2017, 4, 11),
        "7": date(2020, 1, 14),
        "8": date(2016, 1, 12),
        "8.1": date(2023, 1, 10),
        "10": date(2025, 10, 14),
    },
    "Red Hat Enterprise Linux": {
        "4": date(2012, 2, 29),
        "5": date(2017, 3, 31),
        "6": date(2020, 11, 30),
        "7": date(2024, 6, 30),
        "8": date(2029, 5, 31),
        "9": date(2032, 5, 31),
    },
    "CentOS": {
        "5": date(2017, 3, 31),
        "6": date(2020, 11, 30),
        "7": date(2024, 6, 30),
        "8": date(2021, 12, 31),
    },
    "CentOS Stream": {"8": date(2024, 5, 31), "9": date(2027, 5, 31)},
    "Oracle Linux": {
        "5": date(2017, 6, 30),
        "6": date(2021, 3, 1),
        "7": date(2024, 12, 31),
        "8": date(2029, 7, 31),
        "9": date(2032, 6, 30),
    },
    "Rocky Linux": {"8": date(2029, 5, 31), "9": date(2032, 5, 31)},
    "AlmaLinux": {"8": date(2029, 3, 1), "9": date(2032, 5, 31)},
    "Ubuntu": {
        "12.04": date(2017, 4, 28),
        "14.04": date(2019, 4, 30),
        "16.04": date(2021, 4, 30),
        "18.04": date(2023, 5, 31),
        "20.04": date(2025, 5, 31),
        "22.04": date(2027, 6, 1),
        "24.04": date(2029, 6, 1),
    },
    "SUSE Linux Enterprise Server": {
        "10": date(2013, 7, 31),
        "11": date(2019, 3, 31),
        "12": date(2024, 10, 31),
        "15": date(2031, 7, 31),
    },
    "Debian": {
        "6": date(2016, 2, 29),
        "7": date(2018, 5, 31),
        "8": date(2020, 6, 30),
        "9": date(2022, 6, 30),
        "10": date(2024, 6, 30),
        "11": date(2026, 8, 31),
        "12": date(2028, 6, 30),
    },
    "VMware ESXi": {
        "5.5": date(2018, 9, 19),
        "6.0": date(2020, 3, 12),
        "6.5": date(2022, 10, 15),
        "6.7": date(2022, 10, 15),
        "7.0": date(2025, 10, 2),
        "8.0": date(2027, 10, 11),
    },
}


@lru_cache(maxsize=CACHE_SIZE)
def _os_family(name: str) -> str | None:
    lowered = name.lower()
    for pattern, family in _OS_FAMILIES:
        if pattern.search(lowered):
            return family
    if _WINDOWS.search(lowered):
        is_server = "server" in lowered or _WINDOWS_SERVER_RELEASE.search(lowered)
        return "Windows Server" if is_server else "Windows"
    return None


def _windows_release(family: str, text: str) -> str | None:
    """Release of a Windows family ("2008 R2", "10") named in text, if any."""
    lowered = _ARCH_NOISE.sub(" ", text.lower())
    if family == "Windows":
        match = _WINDOWS_CLIENT_RELEASE.search(lowered)
        return _WINDOWS_CLIENT_NAMES.get(match[1], match[1]) if match else None
    match = _WINDOWS_SERVER_RELEASE.search(lowered)
    if match:
        return match[1] + (" R2" if match[2] else "")
    build = _VERSION.search(lowered)
    for prefix, release in _WINDOWS_SERVER_BUILDS:
        if build and (build[0] == prefix or build[0].startswith(prefix + ".")):
            return release
    return None


def _version_in(text: str) -> str | None:
    """First version number in text, ignoring bitness; None for "4/5/6" or "or later" lists."""
    cleaned = _ARCH_NOISE.sub(" ", text)
    if "or later" in cleaned.lower() or _VERSION_LIST.search(cleaned):
        return None
    match = _VERSION.search(cleaned)
    return match[0] if match else None


def _release_parts(version: str) -> list[str] | None:
    """Numeric parts of the first version number in text: "18.04.6 LTS" -> ["18", "04", "6"]."""
    match = _VERSION.search(version)
    return match[0].split(".") if match else None


@lru_cache(maxsize=CACHE_SIZE)
def os_support_end(family: str, version: str | None) -> date | None:
    """Date the vendor's free support ends for family/version, or None when not known."""
    table = _SUPPORT_ENDS.get(family)
    if table is None or not version:
        return None
    if family.startswith("Windows"):
        by_release = {release.lower(): ends for release, ends in table.items()}
        return by_release.get(" ".join(version.lower().split()))
    parts = _release_parts(version)
    if parts is None:
        return None
    for candidate in (".".join(parts[:2]), parts[0], parts[0] + ".0"):
        if candidate in table:
            return table[candidate]
    return None


def _older_than_table(family: str, version: str | None) -> bool:
    """A numbered release older than the oldest one listed is long out of support."""
    table = _SUPPORT_ENDS.get(family)
    parts = _release_parts(version) if version else None
    if table is None or parts is None or family.startswith("Windows"):
        return False
    oldest = min(tuple(int(p) for p in release.split(".")) for release in table)
    return tuple(int(p) for p in parts[: len(oldest)]) < oldest


def normalize_os(
    name: str, version: str | None = None, as_of: date | None = None
) -> tuple[str | None, str | None, bool | None]:
    """(family, version, past end of support) from an OS name and an optional version column.

    The version may sit in the name ("Windows Server 2008 R2 Enterprise", "Ubuntu 18.04 LTS")
    or in its own column ("Red Hat Enterprise Linux" + "7.9"; "Windows Server" + "6.1.7601").
    Windows versions are given as the release ("2008 R2") so they group across sources; other
    families keep the most precise version given. An unknown family keeps the name as given;
    end of support is None whenever it is not known.
    """
    name = " ".join(name.split())
    version = " ".join((version or "").split()) or None
    if not name:
        return None, version, None
    family = _os_family(name)
    if family is None:
        return name, version or _version_in(name), None
    lookup, version = _os_versions(family, name, version)
    support_end = os_support_end(family, lookup)
    if support_end is not None:
        return family, version, (as_of or date.today()) > support_end
    return family, version, True if _older_than_table(family, lookup) else None


@lru_cache(maxsize=CACHE_SIZE)
def _os_versions(family: str, name: str, version: str | None) -> tuple[str | None, str | None]:
    """(release to look end of support up with, version to report) for a known family.

    The release in the product name wins the lookup: a version column sometimes holds the
    kernel ("3.10.0-1160" on RHEL 7) or an NT build that a client and a server share.
    """
    if family == "Windows Server":
        release = _windows_release(family, name) or _windows_release(family, version or "")
        return release, release or version
    if family == "Windows":
        release = _windows_release(family, name)
        return release, release or version
    named = _version_in(name)
    if named and version and _major(version) != _major(named):
        return named, named
    return named or version, version or named


def _major(version: str) -> str | None:
    parts = _release_parts(version)
    return parts[0] if parts else None
