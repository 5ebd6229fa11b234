"""sensitive_data vocabularies and their exact value parsers.

Classification labels, compliance scopes, encryption words and record counts: each parser is
the one definition, which the columnar rules run once per distinct value.
"""

from __future__ import annotations

import re
from decimal import Decimal

from dataimport.normalize import NULL_TOKENS, name_key, parse_float

# --- vocabularies ------------------------------------------------------------------------

# The null tokens as word keys ("n/a" -> "n a"), for items of list cells ("GDPR; n/a").
_PLACEHOLDERS = frozenset(
    " ".join(re.sub(r"[^0-9a-z]+", " ", token).split()) for token in {"", *NULL_TOKENS}
)

# Word keys (lower case, punctuation to spaces) -> classification. Sub-labels such as
# Microsoft Purview's "Highly Confidential\All Employees" match on their leading words.
_CLASSIFICATION_WORDS: dict[str, str] = {
    **dict.fromkeys(
        [
            "public",
            "unclassified",
            "open",
            "unrestricted",
            "non sensitive",
            "not sensitive",
            "nonsensitive",
            "tlp clear",
            "tlp white",
            "c0",
        ],
        "public",
    ),
    **dict.fromkeys(
        [
            "internal",
            "internal use",
            "internal only",
            "internal use only",
            "general",
            "company internal",
            "official",
            "limited",
            "tlp green",
            "business use",
        ],
        "internal",
    ),
    **dict.fromkeys(
        [
            "confidential",
            "sensitive",
            "private",
            "company confidential",
            "business confidential",
            "official sensitive",
            "protected",
            "tlp amber",
        ],
        "confidential",
    ),
    **dict.fromkeys(
        [
            "restricted",
            "highly confidential",
            "strictly confidential",
            "highly restricted",
            "highly sensitive",
            "very sensitive",
            "secret",
            "top secret",
            "tlp red",
        ],
        "restricted",
    ),
}

# (pattern over the word key, canonical scope). Versions and sub-parts are accepted after
# the name ("PCI DSS v4.0", "SOC 2 Type II", "ISO/IEC 27001:2022", "FedRAMP Moderate").
_SCOPES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"(?:{pattern})(?: .*)?"), scope)
    for pattern, scope in (
        (r"uk gdpr", "UK GDPR"),
        (r"(?:eu )?gdpr|dsgvo|rgpd|general data protection regulation", "GDPR"),
        (r"hipaa|hitech|hipaa hitech", "HIPAA"),
        (r"pci|pci ?dss|pcidss|payment card industry", "PCI-DSS"),
        (r"sox|sox ?404|sarbanes ?oxley", "SOX"),
        (r"ccpa|cpra|california consumer privacy act", "CCPA"),
        (r"iso(?: iec)? ?27001", "ISO 27001"),
        (r"soc ?(?:2|ii)", "SOC 2"),
        (r"soc ?(?:1|i)", "SOC 1"),
        (r"fedramp", "FedRAMP"),
        (r"nis ?(?:2|ii)", "NIS2"),
        (r"dora|digital operational resilience act", "DORA"),
        (r"glba|gramm leach bliley", "GLBA"),
        (r"ferpa", "FERPA"),
        (r"pipeda", "PIPEDA"),
        (r"lgpd", "LGPD"),
        (r"popia", "POPIA"),
        (r"fisma", "FISMA"),
        (r"nist(?: sp)? ?800 ?53", "NIST 800-53"),
        (r"cjis", "CJIS"),
        (r"itar", "ITAR"),
        (r"tisax", "TISAX"),
        (r"bsi ?c5|c5", "C5"),
    )
)
_SCOPE_SEPARATORS = re.compile(r"[,;|\r\n&+]+|\s+and\s+", re.IGNORECASE)

_TRUE_WORDS = frozenset(
    [
        "yes",
        "y",
        "true",
        "t",
        "1",
        "on",
        "enabled",
        "enable",
        "encrypted",
        "full",
        "fully",
        "encrypted",
        "required",
        "enforced",
    ]
)
_FALSE_WORDS = frozenset(
    [
        "no",
        "n",
        "false",
        "f",
        "0",
        "off",
        "disabled",
        "disable",
        "none",
        "unencrypted",
        "plaintext",
        "cleartext",
        "partial",
    ]
) | {"not encrypted", "plain text", "clear text", "partially encrypted", "not enabled"}
# Naming the mechanism says it is on: "AES-256", "TDE", "TLS 1.2", "BitLocker", "SSE-KMS".
_ENCRYPTION_MECHANISM = re.compile(
    r"(?:aes|tde|tls|ssl|https|bitlocker|luks|dm crypt|kms|sse|cmk|byok|hsm|ipsec|mtls|ssh"
    r"|sftp|pgp|gpg|rsa|chacha|filevault|always encrypted|column encryption|encrypted)\b.*"
)
_NEGATION = re.compile(r"(?:no|not|un|non|without)\b.*|http|ftp|telnet")

_COUNT = re.compile(
    r"(?P<number>-?\d[\d.,' ]*)\s*(?P<unit>k|thousand|m|mn|mio|million|b|bn|billion)?s?\+?",
    re.IGNORECASE,
)
_COUNT_UNITS = {
    "k": 10**3,
    "thousand": 10**3,
    "m": 10**6,
    "mn": 10**6,
    "mio": 10**6,
    "million": 10**6,
    "b": 10**9,
    "bn": 10**9,
    "billion": 10**9,
}
_COUNT_PREFIX = re.compile(r"^(?:~|≈|<|>|approx\.?|approximately|about|ca\.?|circa)\s*", re.I)
_DOTTED_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3}){2,}")
MAX_RECORD_COUNT = 10**15  # beyond this the cell is a typo or an id, not a record count

# SQL Server style "HOST\INSTANCE" and "host:1433" / "host,1433" name the host plus more.
_HOST_PORT = re.compile(r"[:,]\d{1,5}$")


def _word_key(raw: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", raw.lower()).split())


def normalize_classification(raw: str) -> str | None:
    """public, internal, confidential or restricted; ValueError for an unknown label."""
    key = _word_key(raw)
    if key in _PLACEHOLDERS:
        return None
    words = key.split()
    for size in range(len(words), 0, -1):  # longest leading phrase first
        found = _CLASSIFICATION_WORDS.get(" ".join(words[:size]))
        if found:
            return found
    raise ValueError("unknown classification")


def normalize_scope(raw: str) -> str | None:
    """Canonical compliance scope ("PCI DSS v4" -> "PCI-DSS"), None when not recognised."""
    key = _word_key(raw)
    for pattern, scope in _SCOPES:
        if pattern.fullmatch(key):
            return scope
    return None


def parse_flag(raw: str) -> bool | None:
    """Encryption status: yes/no/true/false, or a mechanism ("AES-256", "TLS 1.2") for yes."""
    key = _word_key(raw)
    if key in _FALSE_WORDS or _NEGATION.fullmatch(key):
        return False
    if key in _TRUE_WORDS or _ENCRYPTION_MECHANISM.fullmatch(key):
        return True
    if key in _PLACEHOLDERS:
        return None
    raise ValueError("not a yes/no value")


def parse_record_count(raw: str) -> int:
    """Whole record count: "1200000", "1,200,000", "1.2M", "12k", "~3.5 billion", "1M+"."""
    cleaned = _COUNT_PREFIX.sub("", raw.strip())
    match = _COUNT.fullmatch(cleaned)
    if match is None:
        raise ValueError("not a record count")
    number = match["number"].strip().replace("'", "").replace(" ", "")
    if _DOTTED_THOUSANDS.fullmatch(number):
        number = number.replace(".", "")  # "1.200.000": European thousands separators
    unit = _COUNT_UNITS[match["unit"].lower()] if match["unit"] else 1
    value = Decimal(str(parse_float(number))) * unit
    return int(value.to_integral_value())


def store_key(*parts: str | None) -> str:
    """Comparable key of a store entry: store|database|schema|table, case-insensitive."""
    return "|".join(name_key(part) if part else "" for part in parts)
