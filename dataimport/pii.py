"""Personal data: detect it in cell values and column names; mask values that leave staging.

Pure and fast: `detect_value` runs on every cell of every row of every import (the
`privacy_analyzer` agent of every category, `pii_detector` for sensitive data). The common
cell (host names, IPs, OS names, sizes, owners) is turned away by a length check and one
pre-compiled search before any real work is done. Detection is conservative: identifiers are
validated with their check digits (python-stdnum, Luhn, ISO 7064 for IBAN), phone numbers
against the numbering plans of `phonenumbers`, not just matched by shape, and a bare date or a
bare run of digits is never reported unless the column name says what it holds (`hints`,
from `detect_column`).

Masking keeps the shape of a value (a reader still sees "an e-mail address", "a card ending
1234") and hides its content. Values of sensitive imports are masked wherever they leave
`raw_import_records`: flow state samples, workflow history, logs, error reports.

The classification vocabulary (`CLASSIFICATIONS`) and the classification a PII category
implies live here too, so the category and the agents share one definition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from functools import lru_cache
from types import ModuleType

import phonenumbers
from stdnum import iban, luhn
from stdnum.be import nn as be_nn
from stdnum.de import idnr as de_idnr
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.exceptions import ValidationError
from stdnum.fi import hetu as fi_hetu
from stdnum.fr import nir as fr_nir
from stdnum.it import codicefiscale as it_codicefiscale
from stdnum.nl import bsn as nl_bsn
from stdnum.pl import pesel as pl_pesel
from stdnum.se import personnummer as se_personnummer
from stdnum.us import ssn as us_ssn

from dataimport.normalize import quote_value

EMAIL = "email"
PHONE = "phone"
PAYMENT_CARD = "payment_card"
IBAN = "iban"
NATIONAL_ID = "national_id"
DATE_OF_BIRTH = "date_of_birth"
NAME = "name"
ADDRESS = "address"
HEALTH = "health"
FINANCIAL = "financial"
DEMOGRAPHIC = "demographic"  # gender, ethnicity, religion…: GDPR art. 9 special categories
BIOMETRIC = "biometric"
PERSONAL_DATA = "personal_data"  # declared as personal data without saying which kind

# What detect_value can find in a value; detect_column can name any of CATEGORIES.
VALUE_CATEGORIES = (EMAIL, PHONE, PAYMENT_CARD, IBAN, NATIONAL_ID, DATE_OF_BIRTH)
CATEGORIES = (
    *VALUE_CATEGORIES,
    NAME,
    ADDRESS,
    HEALTH,
    FINANCIAL,
    DEMOGRAPHIC,
    BIOMETRIC,
    PERSONAL_DATA,
)

_EMPTY: frozenset[str] = frozenset()
Check = Callable[[str], bool]

# --- classification vocabulary ----------------------------------------------------------

# Least to most restrictive: "most restrictive wins" is the maximum in this order.
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")

# The lowest classification data of a PII category may carry. Card data, national ids,
# health, biometric and special-category data are "restricted" in PCI-DSS / HIPAA / GDPR
# art. 9 terms; any other personal data is at least "confidential".
_IMPLIED_CLASSIFICATION = {
    PAYMENT_CARD: "restricted",
    NATIONAL_ID: "restricted",
    HEALTH: "restricted",
    BIOMETRIC: "restricted",
    DEMOGRAPHIC: "restricted",
}


def classification_rank(classification: str | None) -> int:
    """0 (public) … 3 (restricted); -1 for None or a value outside CLASSIFICATIONS."""
    if classification in CLASSIFICATIONS:
        return CLASSIFICATIONS.index(classification)
    return -1


def implied_classification(categories: Iterable[str]) -> str | None:
    """The lowest classification data of these PII categories may carry; None without PII."""
    found = [_IMPLIED_CLASSIFICATION.get(category, "confidential") for category in categories]
    return max(found, key=classification_rank) if found else None


# --- values: shapes ----------------------------------------------------------------------

MIN_LEN = 6  # "a@b.io", "1/2/85": nothing shorter is one of the value categories
MAX_LEN = 4096  # free text beyond this is a document, not a cell to scan
_MAX_NUMERIC_LEN = 64

# The one search most cells go through: an '@', or seven characters of digits and separators
# starting with a digit, or six digits and a letter (an unspaced UK NINO). Every value
# category has one of these, except the Italian codice fiscale (tested on its own) and a keyed
# birth date with a short date ("DOB 1/2/85"); host names such as "srv-000123" have none.
CANDIDATE = re.compile(r"@|\d(?:[\d .()/-]{6}|\d{5}[A-Da-d])")
# Inside free text: runs of digits and separators, and IBANs written in groups of four.
_EMBEDDED = re.compile(
    r"(?<![\w.+-])\+?\(?\d[\d ()./-]{4,}\d(?!\w)"
    r"|\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"
)
_LETTER = re.compile(r"[^\W\d_]")
# The commonest digit-led candidates of inventories, rejected before the shape alternation.
_IP_OR_ISO_DATE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|\d{4}-\d{2}-\d{2}")

_EMAIL = re.compile(
    r"(?<![\w.%+'-])[\w.%+'-]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,24}(?![\w-])",
    re.IGNORECASE,
)

_CARD = re.compile(r"\d(?:[ -]?\d){11,18}")
# Issuer prefixes and lengths of the card networks (ISO/IEC 7812 IIN ranges). With Luhn this
# keeps 16-digit serial numbers and IMEIs (15 digits, Luhn too) out.
_CARD_NETWORKS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = tuple(
    (re.compile(prefix), frozenset(lengths))
    for prefix, lengths in (
        (r"4", (13, 16, 19)),  # Visa
        (r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)", (16,)),  # Mastercard
        (r"3[47]", (15,)),  # American Express
        (r"6011|64[4-9]|65", (16, 17, 18, 19)),  # Discover
        (r"35(?:2[89]|[3-8]\d)", (16, 17, 18, 19)),  # JCB
        (r"30[0-5]|3[689]", (14, 16, 17, 18, 19)),  # Diners Club
        (r"62", (16, 17, 18, 19)),  # UnionPay
        (r"5[06-9]|6\d", (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    )
)

_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}", re.IGNORECASE)

# Phone numbers have no check digit, so only formatted numbers count (a bare digit run is far
# more often an id or a count). These shapes only pick the candidates; `phonenumbers` decides
# (`_is_phone`). International: "+49 89 1234 5678", "0049 89 123456"; North American:
# "(555) 123-4567", "555.123.4567", "1-800-555-0199"; national, with trunk 0 and at least one
# separator: "020 7946 0958", "06 12 34 56 78", "030/1234567".
_PHONE_INTERNATIONAL = re.compile(r"(?:\+|00)[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,6}")
_PHONE_NANP = re.compile(r"(?:1[ .-])?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}")
_PHONE_NATIONAL = re.compile(r"0\d{1,4}(?:[ /-]\d{2,8})+")
_PHONE_LOOSE = re.compile(r"\+?[\d ()./-]{7,24}")  # only where the column says "phone"

# A number without its country code is read in the numbering plan its shape implies: North
# American ones in NANP's; national ones (trunk 0) in the plans of the countries whose
# inventories we see most, all of which dial a trunk 0. Only "+" or "00" names the country.
NANP_REGION = "US"
NATIONAL_REGIONS = ("GB", "DE", "FR", "NL", "BE", "CH", "AT", "IE", "SE", "DK", "AU", "NZ")
_NATIONAL_CODES = tuple(
    (region, phonenumbers.country_code_for_region(region)) for region in NATIONAL_REGIONS
)
_NON_DIGIT = re.compile(r"\D")

_DATE = re.compile(r"(\d{1,4})[./-](\d{1,2})[./-](\d{1,4})")
_BIRTH_WORD = re.compile(r"dob|d\.o\.b|birth|born|geb", re.IGNORECASE)
_KEYED_BIRTH_DATE = re.compile(
    r"\b(?:dob|d\.o\.b\.?|date of birth|birth\s*date|born(?: on)?|geb\.?|geboren)\s*[:=]?\s*"
    r"(\d{1,4}[./-]\d{1,2}[./-]\d{1,4})\b",
    re.IGNORECASE,
)
_OLDEST_BIRTH_YEAR = 1900

# UK National Insurance number: HMRC's prefix rules are the whole validation (no check char).
_NINO = re.compile(
    r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]",
    re.IGNORECASE,
)
_CODICE_FISCALE = re.compile(
    r"[A-Z]{6}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]", re.IGNORECASE
)


def _stdnum(module: ModuleType) -> Check:
    """A module's is_valid, never raising (stdnum raises on some malformed input)."""
    is_valid: Callable[[str], bool] = module.is_valid

    def check(text: str) -> bool:
        try:
            return bool(is_valid(text))
        except (ValidationError, ValueError, KeyError, IndexError):
            return False

    return check


def _shape_only(_text: str) -> bool:
    return True


# National identifiers as people write them: (shape, validator with the check digits),
# split by what they start with so that one alternation per leading character tests them all.
_DIGIT_LED_IDS: tuple[tuple[str, Check], ...] = (
    (r"\d{3}[- ]\d{2}[- ]\d{4}", _stdnum(us_ssn)),
    (r"[1-478] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}", _stdnum(fr_nir)),
    (r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}", _stdnum(be_nn)),
    (r"(?:\d{2})?\d{6}[-+]\d{4}", _stdnum(se_personnummer)),
    (r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]", _stdnum(fi_hetu)),
    (r"\d{8}-?[A-Z]", _stdnum(es_dni)),
    (r"\d{2} \d{3} \d{3} \d{3}", _stdnum(de_idnr)),  # Steuer-IdNr
    (r"\d{4}\.\d{2}\.\d{3}", _stdnum(nl_bsn)),
)
_LETTER_LED_IDS: tuple[tuple[str, Check], ...] = (
    (_NINO.pattern, _shape_only),
    (r"[XYZ]-?\d{7}-?[A-Z]", _stdnum(es_nie)),
    (_CODICE_FISCALE.pattern, _stdnum(it_codicefiscale)),
)
_NATIONAL_ID_SHAPES = (*_DIGIT_LED_IDS, *_LETTER_LED_IDS)
_NATIONAL_IDS: tuple[tuple[re.Pattern[str], Check], ...] = tuple(
    (re.compile(shape, re.IGNORECASE), check) for shape, check in _NATIONAL_ID_SHAPES
)
# Bare digit runs: a national id only where the column says so (a 9- or 11-digit number
# passes some check digit by chance far too often to be flagged on its own).
_BARE_NATIONAL_IDS: tuple[tuple[re.Pattern[str], Check], ...] = (
    (re.compile(r"\d{9}"), _stdnum(us_ssn)),
    (re.compile(r"\d{8,9}"), _stdnum(nl_bsn)),
    (re.compile(r"\d{11}"), _stdnum(de_idnr)),
    (re.compile(r"\d{11}"), _stdnum(pl_pesel)),
    (re.compile(r"\d{11}"), _stdnum(be_nn)),
)


# One fullmatch per leading character class answers "could this be one of them?", so that
# the common candidates (IPs, ISO dates, host names such as "srv-000123") stop there and only
# a match pays for the check-digit validators.
def _alternation(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.IGNORECASE)


_LETTER_LED_SHAPE = _alternation([_IBAN.pattern, *(shape for shape, _check in _LETTER_LED_IDS)])
_DIGIT_LED_SHAPE = _alternation(
    [
        _CARD.pattern,
        _PHONE_NANP.pattern,
        _PHONE_NATIONAL.pattern,
        _PHONE_INTERNATIONAL.pattern,
        *(shape for shape, _check in _DIGIT_LED_IDS),
    ]
)


# For pre-filters elsewhere (the columnar privacy analyzer): the letter-led shapes, NINO's
# excluded prefixes (a lookahead), and the birth words a keyed birth date needs.
LETTER_LED_SHAPE = _LETTER_LED_SHAPE
DIGIT_LED_SHAPE = _DIGIT_LED_SHAPE
NINO_EXCLUDED = "(?!BG|GB|KN|NK|NT|TN|ZZ)"
BIRTH_WORD = _BIRTH_WORD
assert NINO_EXCLUDED in _NINO.pattern


# --- values: detection ---------------------------------------------------------------------


def detect_value(value: str, hints: frozenset[str] = _EMPTY) -> frozenset[str]:
    """PII categories (of VALUE_CATEGORIES) found in one cell value; empty for most cells.

    `hints` are the categories the column's name suggests (`detect_column(header)`): with
    them a bare date counts as a date of birth, a bare digit run as a national id (when its
    check digit fits) and a loosely written number as a phone number.
    """
    length = len(value)
    if length < MIN_LEN or length > MAX_LEN:
        return _EMPTY
    if CANDIDATE.search(value) is None:
        if length >= 16 and _CODICE_FISCALE.fullmatch(value.strip()):
            return _detect_national_id(value.strip())
        return _EMPTY
    text = value.strip()
    found = _detect(text)
    if " " in text and _LETTER.search(text):
        found |= _detect_in_free_text(text)  # a note or description quoting the data
    if hints and not found:
        return _detect_hinted(text, hints)
    return found


def _detect(text: str) -> frozenset[str]:
    """The categories of a value that is one thing (an address, a number, an identifier)."""
    if "@" in text:
        return frozenset({EMAIL}) if _EMAIL.search(text) else _EMPTY
    if len(text) > _MAX_NUMERIC_LEN:
        return _keyed_birth_date(text)
    first = text[0]
    if first.isalpha():
        return _detect_letter_led(text)
    if first.isdigit():
        if text.isdigit():
            return _detect_bare_digits(text)
        if _IP_OR_ISO_DATE.fullmatch(text) or _DIGIT_LED_SHAPE.fullmatch(text) is None:
            return _EMPTY
        # Identifiers with check digits first; phone numbers (no checksum) only if none fits.
        if _is_card(text):
            return frozenset({PAYMENT_CARD})
        return _detect_national_id(text) or _detect_phone(text)
    return _detect_phone(text)  # "+49 …", "(555) …"


def _detect_in_free_text(text: str) -> frozenset[str]:
    """Numbers and IBANs written inside a sentence, each checked as a value of its own."""
    found: set[str] = set()
    for match in _EMBEDDED.finditer(text):
        found |= _detect(match[0].strip(" .-/"))
    return frozenset(found)


def _detect_letter_led(text: str) -> frozenset[str]:
    """IBAN, NINO, NIE, codice fiscale, or a keyed birth date ("DOB: 1985-07-30")."""
    if _LETTER_LED_SHAPE.fullmatch(text) is None:
        return _keyed_birth_date(text)
    if _IBAN.fullmatch(text) and iban.is_valid(text):
        return frozenset({IBAN})
    return _detect_national_id(text)


def _detect_bare_digits(text: str) -> frozenset[str]:
    """A bare digit run is a card (network prefix, length and Luhn fit) or a French NIR
    (15 digits, mod-97 key); any other bare number needs a column hint."""
    if 12 <= len(text) <= 19 and _is_card(text):
        return frozenset({PAYMENT_CARD})
    return _detect_national_id(text) if len(text) == 15 else _EMPTY


def _detect_phone(text: str) -> frozenset[str]:
    return frozenset({PHONE}) if _is_phone(text) else _EMPTY


def _detect_national_id(text: str) -> frozenset[str]:
    for shape, valid in _NATIONAL_IDS:
        if shape.fullmatch(text) and valid(text):
            return frozenset({NATIONAL_ID})
    return _EMPTY


def _detect_hinted(text: str, hints: frozenset[str]) -> frozenset[str]:
    """What only the column name makes believable: bare dates, bare ids, loose phones."""
    if DATE_OF_BIRTH in hints and _birth_date(text):
        return frozenset({DATE_OF_BIRTH})
    if NATIONAL_ID in hints and any(
        shape.fullmatch(text) and valid(text) for shape, valid in _BARE_NATIONAL_IDS
    ):
        return frozenset({NATIONAL_ID})
    if PHONE in hints and _is_loose_phone(text):
        return frozenset({PHONE})
    return _EMPTY


def _digit_count(text: str) -> int:
    return sum(char.isdigit() for char in text)


def _is_card(text: str) -> bool:
    if _CARD.fullmatch(text) is None:
        return False
    digits = text.replace(" ", "").replace("-", "")
    return any(
        prefix.match(digits) and len(digits) in lengths for prefix, lengths in _CARD_NETWORKS
    ) and luhn.is_valid(digits)


@lru_cache(maxsize=65_536)
def _is_phone(text: str) -> bool:
    """A formatted number of a plausible length that fits a numbering plan: one with its
    country code a length that country dials, a national one (trunk 0, easily a date or an
    id) a valid number of one of NATIONAL_REGIONS. A North American shape is NANP's plan
    already (area code, ten digits); its validity is not asked, as it would turn away the
    fictional 555 numbers that stand in for real ones in exports."""
    if not (
        _PHONE_INTERNATIONAL.fullmatch(text)
        or _PHONE_NANP.fullmatch(text)
        or _PHONE_NATIONAL.fullmatch(text)
    ):
        return False
    digits = _NON_DIGIT.sub("", text)
    count = len(digits)
    if text.startswith("+"):
        return 8 <= count <= 15 and _possible_number(text, None)  # E.164 allows 15 digits
    if text.startswith("00"):  # the 00 exit code in front of E.164
        return 10 <= count <= 17 and _possible_number(_international(text), None)
    if text.startswith("0"):  # fewer digits is a date such as "01-02-2024" or an SSN
        return 10 <= count <= 12 and _valid_national(int(digits[1:]))
    return 10 <= count <= 11


def _valid_national(significant: int) -> bool:
    """Whether the digits after a trunk 0 are a valid number in one of NATIONAL_REGIONS (all
    dial a trunk 0, so the number is the same in each: built once per region, not parsed)."""
    return any(
        phonenumbers.is_valid_number_for_region(
            phonenumbers.PhoneNumber(country_code=code, national_number=significant), region
        )
        for region, code in _NATIONAL_CODES
    )


@lru_cache(maxsize=65_536)
def _is_loose_phone(text: str) -> bool:
    """In a column named for phone numbers: 7 to 15 digits that make a possible number, of
    the country it names, else of NANP or one of NATIONAL_REGIONS (local numbers included)."""
    if _PHONE_LOOSE.fullmatch(text) is None or not 7 <= _digit_count(text) <= 15:
        return False
    if text.startswith(("+", "00")):
        return _possible_number(_international(text), None)
    return any(_possible_number(text, region) for region in (NANP_REGION, *NATIONAL_REGIONS))


def _international(text: str) -> str:
    """ "0049 89 …" as "+49 89 …": the 00 exit code is what "+" stands for."""
    return "+" + text[2:] if text.startswith("00") else text


def _parsed(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _possible_number(text: str, region: str | None) -> bool:
    number = _parsed(text, region)
    return number is not None and phonenumbers.is_possible_number(number)


def _keyed_birth_date(text: str) -> frozenset[str]:
    """A date introduced as a birth date ("DOB: 1985-07-30", "born 30.07.1985")."""
    if _BIRTH_WORD.search(text) is None:
        return _EMPTY
    match = _KEYED_BIRTH_DATE.search(text)
    return frozenset({DATE_OF_BIRTH}) if match and _birth_date(match[1]) else _EMPTY


def _birth_date(text: str) -> bool:
    """A real calendar date (Y-M-D, D.M.Y or M/D/Y) between 1900 and today."""
    match = _DATE.fullmatch(text.strip())
    if match is None:
        return False
    first, second, third = (int(part) for part in match.groups())
    if len(match[1]) == 4:
        candidates = [(first, second, third)]
    else:
        year = third if len(match[3]) == 4 else _two_digit_year(third)
        candidates = [(year, second, first), (year, first, second)]  # D.M.Y, M/D/Y
    return any(_plausible_birth_date(*candidate) for candidate in candidates)


def _two_digit_year(year: int) -> int:
    this_year = date.today().year % 100
    return 2000 + year if year <= this_year else 1900 + year


def _plausible_birth_date(year: int, month: int, day: int) -> bool:
    try:
        born = date(year, month, day)
    except ValueError:
        return False
    return date(_OLDEST_BIRTH_YEAR, 1, 1) <= born <= date.today()


# --- column names ------------------------------------------------------------------------

# Patterns over the column name in snake form ("CustomerEmail" -> "customer_email"), with
# plurals reduced ("addresses" -> "address"). Matched on whole words (underscore-separated).
_COLUMN_PATTERNS: tuple[tuple[str, str], ...] = (
    (EMAIL, r"e_?mail(_?address)?|mail_?address|mail"),
    (PHONE, r"(tele)?phone(_?(number|no|nr))?|tel|mobile(_?phone)?|cell_?phone|fax|msisdn"),
    (PHONE, r"telefon(nummer)?|handy"),
    (
        NATIONAL_ID,
        r"ssn|social_?security(_?(number|no))?|national_?(id|identifier|insurance(_number)?)"
        r"|nino|nin|sin|tax_?id|tin|taxpayer_?id|passport(_?(number|no))?"
        r"|drivers?_?licen[cs]e(_?(number|no))?|driving_?licen[cs]e|id_?card(_?number)?"
        r"|personnummer|bsn|nir|dni|nie|pesel|codice_?fiscale|aadhaar|steuer_?id|idnr"
        r"|identity_?(number|document)|government_?id|citizen_?id",
    ),
    (DATE_OF_BIRTH, r"dob|d_o_b|date_of_birth|birth_?date|birthday|born|geburtsdatum"),
    (
        PAYMENT_CARD,
        r"card_?(number|no|num|nr)|cc_?(number|no|num)|credit_?card(_?(number|no))?"
        r"|debit_?card|pan|primary_account_number|cvv2?|cvc2?|card_?holder(_?data)?|chd|pci(_?data)?",
    ),
    (IBAN, r"iban"),
    (
        FINANCIAL,
        r"(bank_?)?account_?(number|no|num|nr)|bank_?account|acct_?(number|no|num)"
        r"|routing_?(number|no)|sort_?code|salary|income|wage|compensation|bonus|payroll"
        r"|credit_?score|net_?worth|financial|bic|swift(_?code)?",
    ),
    (
        NAME,
        r"(first|last|full|given|family|middle|maiden|sur|fore|nick)_?name"
        r"|surname|forename|(customer|patient|employee|person|contact|member|card_?holder|holder"
        r"|applicant|student|subscriber|beneficiary|client|user)_name",
    ),
    (
        ADDRESS,
        r"((home|postal|mailing|billing|shipping|street|residential|physical|street)_)?address"
        r"|street|post_?code|postal_?code|zip(_?code)?|house_?number",
    ),
    (
        HEALTH,
        r"diagnos[ie]s?|medical(_\w+)?|health(_\w+)?|mrn|icd(_?10)?|prescription|medication"
        r"|treatment|allerg(y|ie)|blood_?type|disability|phi|clinical|lab_?result|patient_?id",
    ),
    (
        DEMOGRAPHIC,
        r"gender|sex|ethnicity|race|religion|sexual_orientation|marital_?status|nationality"
        r"|political_\w+|trade_union\w*",
    ),
    (BIOMETRIC, r"biometric\w*|fingerprint|face_?(id|image|template)|retina|iris_?scan"),
    (
        PERSONAL_DATA,
        r"pii|personal(_?(data|information|info))?|personally_identifiable\w*"
        r"|personenbezogene\w*",
    ),
)
_COLUMN_RULES = tuple(
    (category, re.compile(rf"(?:^|_)(?:{pattern})(?:_|$)"))
    for category, pattern in _COLUMN_PATTERNS
)
# "ip address", "mac address", "email address", "web address" are not where a person lives.
_NOT_AN_ADDRESS = re.compile(
    r"(?:^|_)(?:ip|ipv4|ipv6|mac|e_?mail|mail|web|url|server|hardware|wallet|host|network)"
    r"_address"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def _column_words(header: str) -> str:
    text = _NON_WORD.sub(" ", _CAMEL.sub(" ", header.strip()).lower())
    return "_".join(_singular(word) for word in text.split())


@lru_cache(maxsize=4096)
def detect_column(header: str) -> frozenset[str]:
    """PII categories a column's name (or a declared data category) says it holds.

    "customer_email" -> {email}; "DateOfBirth" -> {date_of_birth}; "Credit card numbers" ->
    {payment_card}; "ip_address" -> {} (not a postal address); "name" -> {} (an asset's name).
    """
    words = _column_words(header)
    if not words:
        return _EMPTY
    found = {category for category, rule in _COLUMN_RULES if rule.search(words)}
    if ADDRESS in found and _NOT_AN_ADDRESS.search(words) and not _postal_words(words):
        found.discard(ADDRESS)
    return frozenset(found)


def _postal_words(words: str) -> bool:
    return any(part in words for part in ("street", "post", "zip", "home", "billing", "mailing"))


# --- masking -----------------------------------------------------------------------------

_MASK = "***"
_KEEP_LAST_DIGITS_FROM = 9  # shorter digit runs (dates, counts) are masked whole
_DIGIT_SHAPED = re.compile(r"\+?[\d ()./-]+")
_MASKED_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9 ]+", re.IGNORECASE)
_BARE_QUOTE_MIN_LEN = 4  # shorter values are only replaced where a message quotes them


def mask_value(value: str) -> str:
    """The value's shape without its content.

    "john.doe@example.com" -> "j***@e***.com"; "4111 1111 1111 1234" -> "**** **** **** 1234";
    "123-45-6789" -> "***-**-6789"; "DE89 3704 0044 0532 0130 00" -> "DE** **** … **30 00";
    anything else: first character + "***" + last character, or "***" for 4 characters or less.
    """
    text = value.strip()
    if not text:
        return value
    if "@" in text and _EMAIL.fullmatch(text):
        return _mask_email(text)
    if _DIGIT_SHAPED.fullmatch(text) and _digit_count(text) >= 7:
        return _mask_digits(
            text, keep_last=4 if _digit_count(text) >= _KEEP_LAST_DIGITS_FROM else 0
        )
    if len(text) >= 15 and _MASKED_IBAN.fullmatch(text) and iban.is_valid(text):
        return text[:2] + _mask_digits(text[2:], keep_last=4, letters=True)
    if len(text) > 4:
        return f"{text[0]}{_MASK}{text[-1]}"
    return _MASK


def _mask_email(text: str) -> str:
    local, _, domain = text.rpartition("@")
    host, _, tld = domain.rpartition(".")
    return f"{local[:1]}{_MASK}@{host[:1]}{_MASK}.{tld}"


def _mask_digits(text: str, keep_last: int, letters: bool = False) -> str:
    """Every digit (and letter, for IBANs) but the last `keep_last` becomes '*'."""
    maskable = [i for i, char in enumerate(text) if char.isdigit() or (letters and char.isalpha())]
    hidden = set(maskable[: len(maskable) - keep_last] if keep_last else maskable)
    return "".join("*" if i in hidden else char for i, char in enumerate(text))


def mask_record(cells: Mapping[str, str]) -> dict[str, str]:
    """Every non-empty value masked, headers kept: for sensitive imports nothing is shown."""
    return {header: mask_value(value) if value else value for header, value in cells.items()}


def mask_text(message: str, values: Iterable[str]) -> str:
    """`message` with every occurrence of any of `values` masked.

    For messages that quote a cell (readers and agents quote with `normalize.quote_value`,
    which may shorten the value): the quoted and shortened forms are replaced first, then the
    bare value where it is at least 4 characters long (shorter ones would hit row numbers).
    """
    distinct = {value.strip() for value in values if value and value.strip()}
    for value in sorted(distinct, key=len, reverse=True):
        masked = mask_value(value)
        for quoted in (quote_value(value), repr(value)):
            message = message.replace(quoted, repr(masked))
        if len(value) >= _BARE_QUOTE_MIN_LEN:
            message = message.replace(value, masked)
    return message
