"""compliance_checker: gaps between what a data store holds and how it is classified and protected.

Runs after `pii_detector` on the row's `normalized["store"]` and applies named rules, each a
small pure function. A finding is a warning (`compliance-gap`): the row is kept, and the gap
is for the migration team to close (encrypt the target, add the scope, re-classify). Messages
use only the canonical vocabulary (classifications, scopes, PII categories), never cell text.

Rules:
- `encryption-at-rest`: confidential or restricted data on a store not encrypted at rest.
- `encryption-in-transit`: personal, confidential or restricted data sent unencrypted.
- `pci-scope`: payment card data without PCI-DSS in scope.
- `hipaa-scope`: health data without HIPAA in scope.
- `gdpr-scope`: personal data stored in the EU/EEA (or the UK) without GDPR (or UK GDPR).
- `under-classified`: a classification lower than the PII found implies (or none at all).

An unknown encryption status (empty cell) is not a finding: only an explicit "no" is.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from dataimport import pii
from dataimport.agents.base import RowContext
from dataimport.engine.findings import Findings, issue_json
from dataimport.engine.frame import ChunkFrame
from dataimport.engine.text import per_distinct
from dataimport.issues import Code, Issue, Severity


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """The parts of a normalised store the rules look at."""

    classification: str | None
    scopes: frozenset[str]
    pii: frozenset[str]
    encryption_at_rest: bool | None
    encryption_in_transit: bool | None
    location: str | None

    @classmethod
    def of(cls, store: Mapping[str, Any]) -> StoreFacts:
        return cls(
            classification=store.get("classification"),
            scopes=frozenset(store.get("compliance_scopes") or ()),
            pii=frozenset(store.get("pii_categories") or ()),
            encryption_at_rest=store.get("encryption_at_rest"),
            encryption_in_transit=store.get("encryption_in_transit"),
            location=store.get("location"),
        )

    @property
    def sensitive(self) -> bool:
        return pii.classification_rank(self.classification) >= pii.classification_rank(
            "confidential"
        )


# A rule returns (field, message) for a gap, None when the store is fine.
Finding = tuple[str | None, str]
Rule = Callable[[StoreFacts], Finding | None]


def encryption_at_rest(store: StoreFacts) -> Finding | None:
    if store.sensitive and store.encryption_at_rest is False:
        return "encryption_at_rest", f"{store.classification} data is not encrypted at rest"
    return None


def encryption_in_transit(store: StoreFacts) -> Finding | None:
    if (store.sensitive or store.pii) and store.encryption_in_transit is False:
        what = store.classification if store.sensitive else "personal"
        return "encryption_in_transit", f"{what} data is not encrypted in transit"
    return None


def pci_scope(store: StoreFacts) -> Finding | None:
    if pii.PAYMENT_CARD in store.pii and "PCI-DSS" not in store.scopes:
        return "compliance_scopes", "payment card data without PCI-DSS in the compliance scopes"
    return None


def hipaa_scope(store: StoreFacts) -> Finding | None:
    if pii.HEALTH in store.pii and "HIPAA" not in store.scopes:
        return "compliance_scopes", "health data without HIPAA in the compliance scopes"
    return None


def gdpr_scope(store: StoreFacts) -> Finding | None:
    if not store.pii or not store.location:
        return None
    region = privacy_region(store.location)
    if region == "EU" and "GDPR" not in store.scopes:
        return "compliance_scopes", "personal data stored in the EU/EEA without GDPR in scope"
    if region == "UK" and not {"GDPR", "UK GDPR"} & store.scopes:
        return "compliance_scopes", "personal data stored in the UK without UK GDPR in scope"
    return None


def under_classified(store: StoreFacts) -> Finding | None:
    implied = pii.implied_classification(store.pii)
    if implied is None:
        return None
    if pii.classification_rank(store.classification) >= pii.classification_rank(implied):
        return None
    kinds = ", ".join(sorted(store.pii))
    if store.classification is None:
        return "classification", f"no classification, but {kinds} data implies at least {implied}"
    return (
        "classification",
        f"classified {store.classification}, but {kinds} data implies at least {implied}",
    )


RULES: tuple[tuple[str, Rule], ...] = (
    ("encryption-at-rest", encryption_at_rest),
    ("encryption-in-transit", encryption_in_transit),
    ("pci-scope", pci_scope),
    ("hipaa-scope", hipaa_scope),
    ("gdpr-scope", gdpr_scope),
    ("under-classified", under_classified),
)


class ComplianceChecker:
    """Named rule set `compliance_checker` (see RULES); runs after pii_detector."""

    name = "compliance_checker"

    def examine(self, row: RowContext) -> list[Issue]:
        store = row.normalized.get("store")
        if not isinstance(store, Mapping):
            return []
        facts = StoreFacts.of(store)
        issues: list[Issue] = []
        for rule_name, rule in RULES:
            found = rule(facts)
            if found is not None:
                field, message = found
                issues.append(
                    Issue(
                        Code.COMPLIANCE_GAP.value,
                        Severity.WARNING,
                        f"{rule_name}: {message}",
                        field,
                        self.name,
                    )
                )
        return issues

    def examine_frame(self, frame: ChunkFrame, findings: Findings) -> None:
        examine_frame(frame, findings)


# --- the columnar form -------------------------------------------------------------------

# The store facts of each row, as the category's columnar rules computed them (after the
# pii detector's additions): what `row.normalized["store"]` is to the row form.
FACT_COLUMNS = (
    "classification",
    "compliance_scopes",
    "pii_categories",
    "encryption_at_rest",
    "encryption_in_transit",
    "location",
)
_FACTS: weakref.WeakKeyDictionary[Findings, pl.DataFrame] = weakref.WeakKeyDictionary()


def publish_facts(findings: Findings, facts: pl.DataFrame) -> None:
    """Called by the category's rules: per row FACT_COLUMNS (the two lists as List(Utf8))."""
    _FACTS[findings] = facts.select(FACT_COLUMNS)


# What each rule reads of the facts: a rule runs once per distinct combination of these.
RULE_INPUTS: dict[str, tuple[str, ...]] = {
    "encryption-at-rest": ("classification", "encryption_at_rest"),
    "encryption-in-transit": ("classification", "pii_categories", "encryption_in_transit"),
    "pci-scope": ("pii_categories", "compliance_scopes"),
    "hipaa-scope": ("pii_categories", "compliance_scopes"),
    "gdpr-scope": ("pii_categories", "location", "compliance_scopes"),
    "under-classified": ("classification", "pii_categories"),
}
_SEPARATOR = "\x00"  # never in staged text (JSONB refuses NUL)


def examine_frame(frame: ChunkFrame, findings: Findings) -> None:
    """The columnar form of `ComplianceChecker.examine`: each rule once per distinct
    combination of the facts it reads, broadcast back; one issue column per rule, in RULES
    order (a row's findings keep their order)."""
    facts = _FACTS.pop(findings, None)
    if facts is None:
        raise TypeError("compliance_checker needs the store facts of the category's rules")
    keyed = facts.with_columns(
        pl.col("compliance_scopes").list.join(_SEPARATOR),
        pl.col("pii_categories").list.join(_SEPARATOR),
    )
    for rule_name, rule in RULES:
        inputs = RULE_INPUTS[rule_name]

        def exact(*values: Any, rule_name: str = rule_name, rule: Rule = rule) -> tuple[str | None]:
            given = dict(zip(RULE_INPUTS[rule_name], values, strict=True))
            store = StoreFacts(
                given.get("classification"),
                _set(given.get("compliance_scopes")),
                _set(given.get("pii_categories")),
                given.get("encryption_at_rest"),
                given.get("encryption_in_transit"),
                given.get("location"),
            )
            found = rule(store)
            if found is None:
                return (None,)
            field, message = found
            return (
                issue_json(
                    Code.COMPLIANCE_GAP,
                    Severity.WARNING,
                    f"{rule_name}: {message}",
                    frame.display_field(field),
                    ComplianceChecker.name,
                ),
            )

        found = per_distinct(keyed, list(inputs), exact, {"i": pl.Utf8})
        findings.add(found["i"], Severity.WARNING)


def _set(joined: str | None) -> frozenset[str]:
    return frozenset(filter(None, (joined or "").split(_SEPARATOR)))


# --- where personal data lives -----------------------------------------------------------

# EU/EEA member states (GDPR applies in the EEA) as names, as run-together cloud region words
# ("germanywestcentral", "francecentral") match them as substrings too.
_EU_COUNTRIES = (
    "austria",
    "belgium",
    "bulgaria",
    "croatia",
    "cyprus",
    "czech",
    "denmark",
    "estonia",
    "finland",
    "france",
    "germany",
    "greece",
    "hungary",
    "ireland",
    "italy",
    "latvia",
    "lithuania",
    "luxembourg",
    "malta",
    "netherlands",
    "holland",
    "poland",
    "portugal",
    "romania",
    "slovakia",
    "slovenia",
    "spain",
    "sweden",
    "norway",
    "iceland",
    "liechtenstein",
    "deutschland",
    "europe",
)
# Data-centre cities of the big providers, for locations given as a site.
_EU_CITIES = (
    "frankfurt",
    "amsterdam",
    "dublin",
    "paris",
    "marseille",
    "milan",
    "madrid",
    "stockholm",
    "warsaw",
    "vienna",
    "brussels",
    "munich",
    "berlin",
    "helsinki",
    "copenhagen",
    "lisbon",
    "prague",
    "oslo",
)
_EU_CODES = frozenset(
    [
        "at",
        "be",
        "bg",
        "hr",
        "cy",
        "cz",
        "dk",
        "ee",
        "fi",
        "fr",
        "de",
        "gr",
        "hu",
        "ie",
        "it",
        "lv",
        "lt",
        "lu",
        "mt",
        "nl",
        "pl",
        "pt",
        "ro",
        "sk",
        "si",
        "es",
        "se",
        "no",
        "is",
        "li",
        "eu",
        "eea",
    ]
)
_UK_WORDS = ("united kingdom", "england", "scotland", "wales", "london", "uksouth", "ukwest")
_UK_CODES = frozenset({"uk", "gb", "gbr"})
_WORDS = re.compile(r"[a-z]+")


def privacy_region(location: str) -> str | None:
    """ "EU" (EU/EEA), "UK", or None, from a location, region or cloud region name.

    "eu-west-1", "westeurope", "europe-west3", "Frankfurt", "DE", "Germany West Central" -> EU;
    "uksouth", "London", "eu-west-2" (AWS London) -> UK; "us-east-1", "Singapore" -> None.
    """
    text = location.strip().lower()
    words = _WORDS.findall(text)
    if text in ("eu-west-2", "europe-west2"):  # the cloud providers' London regions
        return "UK"
    if any(word in _UK_CODES for word in words) or any(uk in text for uk in _UK_WORDS):
        return "UK"
    if any(word in _EU_CODES for word in words if len(words) <= 2 or word in ("eu", "eea")):
        return "EU"
    if any(name in text for name in (*_EU_COUNTRIES, *_EU_CITIES)):
        return "EU"
    return None
