"""Pure unit tests of dataimport.pii: value and column detection, masking, classification."""

from __future__ import annotations

import pytest

from dataimport import pii
from dataimport.pii import detect_column, detect_value, mask_record, mask_text, mask_value

# --- values: true positives ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "category"),
    [
        ("john.doe@example.com", "email"),
        ("  Jane.O'Neil+crm@mail.example.co.uk ", "email"),
        ("contact jane@corp.example.org for access", "email"),
        ("4111 1111 1111 1111", "payment_card"),  # Visa test number
        ("4111-1111-1111-1111", "payment_card"),
        ("5555555555554444", "payment_card"),  # Mastercard
        ("3782 822463 10005", "payment_card"),  # Amex, 15 digits
        ("DE89 3704 0044 0532 0130 00", "iban"),
        ("GB82WEST12345698765432", "iban"),
        ("fr1420041010050500013m02606", "iban"),
        ("536-90-4399", "national_id"),  # US SSN
        ("AB 12 34 56 C", "national_id"),  # UK NINO
        ("AB123456C", "national_id"),
        ("2 95 10 99 126 111 93", "national_id"),  # French NIR
        ("85.07.30-033.28", "national_id"),  # Belgian national number
        ("880320-0016", "national_id"),  # Swedish personnummer
        ("131052-308T", "national_id"),  # Finnish HETU
        ("54362315K", "national_id"),  # Spanish DNI
        ("X2482300W", "national_id"),  # Spanish NIE
        ("36 574 261 809", "national_id"),  # German Steuer-IdNr
        ("RCCMNL83S18D969H", "national_id"),  # Italian codice fiscale
        ("+49 89 1234 5678", "phone"),
        ("+1 (555) 234-5678", "phone"),
        ("(555) 123-4567", "phone"),
        ("555.234.5678", "phone"),
        ("1-800-555-0199", "phone"),
        ("020 7946 0958", "phone"),
        ("06 12 34 56 78", "phone"),
        ("0049 89 1234567", "phone"),
        ("DOB: 1985-07-30", "date_of_birth"),
        ("born 30.07.1985", "date_of_birth"),
    ],
)
def test_values_are_detected(value: str, category: str) -> None:
    assert detect_value(value) == {category}


# --- values: false positives ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "prod",
        "16 GB",
        "srv-000123",
        "SRV-000123",
        "10.0.4.210",
        "192.168.100.200",
        "Ubuntu 22.04",
        "Windows Server 2019 Datacenter",
        "oracle@db01",  # a service account, not an address with a domain
        "4111 1111 1111 1112",  # Luhn check fails
        "1234567890123456",  # no card network starts with 1
        "356938035643809",  # an IMEI: Luhn-valid, 15 digits, but no card network's length
        "DE88 3704 0044 0532 0130 00",  # IBAN checksum fails
        "XX89 3704 0044 0532 0130 00",  # no such country
        "000-12-3456",  # SSN area 000 is never issued
        "666-12-3456",
        "078-05-1120",  # the Woolworth wallet SSN, blacklisted
        "QQ123456C",  # HMRC's example prefix, never issued
        "123456789",  # a bare 9-digit number needs a column hint
        "1200000",
        "2024-01-15",  # a bare date is not personal data
        "30.07.1985",
        "01-02-2024",
        "2024-01-15 10:22:33",
        "10.0.14393",  # a Windows build
        "00:1A:2B:3C:4D:5E",  # a MAC address
        "555-123",
    ],
)
def test_common_and_invalid_values_are_not_pii(value: str) -> None:
    assert detect_value(value) == frozenset()


@pytest.mark.parametrize(
    ("text", "categories"),
    [
        ("e.g. 4111 1111 1111 1111; jane@example.com", {"payment_card", "email"}),
        ("call +49 89 1234 5678 today", {"phone"}),
        ("ssn 536-90-4399 on file", {"national_id"}),
        ("IBAN DE89 3704 0044 0532 0130 00 for refunds", {"iban"}),
        ("Server rebuilt 2024-01-15 10:22 by ops", set()),
        ("Patched to build 10.0.14393 on 2023-05-01", set()),
        ("Ticket 4111 1111 1111 1112 closed", set()),  # Luhn fails inside text too
    ],
)
def test_free_text_is_scanned_for_values_written_inside_it(text: str, categories: set[str]) -> None:
    assert detect_value(text) == categories


def test_column_hints_make_bare_dates_ids_and_numbers_believable() -> None:
    dob = detect_column("date_of_birth")
    assert detect_value("1985-07-30", dob) == {"date_of_birth"}
    assert detect_value("30/07/1985", dob) == {"date_of_birth"}
    assert detect_value("2099-01-01", dob) == frozenset()  # not born yet
    assert detect_value("1985-13-45", dob) == frozenset()  # no such day
    ids = detect_column("SSN")
    assert detect_value("536904399", ids) == {"national_id"}
    assert detect_value("000000001", ids) == frozenset()  # no check digit fits
    assert detect_value("123456782", detect_column("BSN")) == {"national_id"}  # 11-proof
    assert detect_value("5552345678", detect_column("mobile")) == {"phone"}
    # A hint never turns a value of another shape into that category.
    assert detect_value("srv-000123", ids) == frozenset()
    assert detect_value("john@example.com", dob) == {"email"}


# --- values: phone numbers against the numbering plans (phonenumbers) -----------------------


@pytest.mark.parametrize(
    "value",
    [
        "+999 123 4567 89",  # no country dials +999
        "00999 123 456 789",
        "+45 3416 878 10 2",  # Danish numbers have 8 digits, not 11
        "+44 20 7946 09581",  # a London number one digit too long
        "+33 1 23 45 67 89 01",  # French numbers have 9 digits after +33
        "+90 212 123 45 678",
        "0000 000 0000",  # no area code of any plan is 000
    ],
)
def test_phone_shaped_values_no_numbering_plan_has_are_not_phones(value: str) -> None:
    """The regexes' digit counts took these for phone numbers; the plans do not."""
    assert detect_value(value) == frozenset()


@pytest.mark.parametrize(
    "value",
    [
        "+47 22 12 34 56",
        "+81 3-1234-5678",
        "+55 11 91234-5678",
        "+44 7911 123456",
        "+1 (212) 555-0100",
        "0171 1234567",  # a German mobile
        "044 668 18 00",  # Zurich
    ],
)
def test_phone_numbers_of_other_plans_are_still_phones(value: str) -> None:
    assert detect_value(value) == {"phone"}


def test_a_phone_column_still_needs_a_possible_number() -> None:
    phone = detect_column("phone")
    assert detect_value("555 1234", phone) == {"phone"}  # a local North American number
    assert detect_value("+1107043", phone) == frozenset()  # +1 needs 10 digits
    assert detect_value("+999 1234567", phone) == frozenset()
    assert detect_value("0000000000", phone) == frozenset()


# --- column names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "categories"),
    [
        ("email", {"email"}),
        ("E-Mail", {"email"}),
        ("customer_email_address", {"email"}),
        ("phone", {"phone"}),
        ("MobileNumber", {"phone"}),
        ("ssn", {"national_id"}),
        ("national_id", {"national_id"}),
        ("Passport Number", {"national_id"}),
        ("dob", {"date_of_birth"}),
        ("DateOfBirth", {"date_of_birth"}),
        ("birth_date", {"date_of_birth"}),
        ("card_number", {"payment_card"}),
        ("PAN", {"payment_card"}),
        ("iban", {"iban"}),
        ("account_number", {"financial"}),
        ("salary", {"financial"}),
        ("first_name", {"name"}),
        ("LastName", {"name"}),
        ("full_name", {"name"}),
        ("home_address", {"address"}),
        ("Postcode", {"address"}),
        ("diagnosis", {"health"}),
        ("medical_history", {"health"}),
        ("gender", {"demographic"}),
        # data categories as inventories declare them
        ("Email addresses", {"email"}),
        ("Credit card numbers", {"payment_card"}),
        ("Dates of birth", {"date_of_birth"}),
        ("Customer names", {"name"}),
        ("PHI", {"health"}),
        ("PII", {"personal_data"}),
    ],
)
def test_column_names_are_detected(header: str, categories: set[str]) -> None:
    assert detect_column(header) == categories


@pytest.mark.parametrize(
    "header",
    ["name", "hostname", "server_name", "ip_address", "MAC Address", "panel", "company", "status"],
)
def test_inventory_column_names_are_not_pii(header: str) -> None:
    assert detect_column(header) == frozenset()


# --- masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("john.doe@example.com", "j***@e***.com"),
        ("4111 1111 1111 1234", "**** **** **** 1234"),
        ("4111111111111234", "************1234"),
        ("123-45-6789", "***-**-6789"),
        ("+49 89 1234 5678", "+** ** **** 5678"),
        ("DE89 3704 0044 0532 0130 00", "DE** **** **** **** **30 00"),
        ("1985-07-30", "****-**-**"),  # short digit runs are hidden whole
        ("John Smith", "J***h"),
        ("Payroll", "P***l"),
        ("Bob", "***"),
        ("abcd", "***"),
        ("", ""),
    ],
)
def test_mask_value_keeps_the_shape_and_hides_the_content(value: str, masked: str) -> None:
    assert mask_value(value) == masked


def test_mask_record_masks_every_non_empty_value_and_keeps_headers() -> None:
    record = {"Host": "db01", "Owner": "jane@corp.example.com", "Notes": "", "Table": "customers"}
    assert mask_record(record) == {
        "Host": "***",
        "Owner": "j***@c***.com",
        "Notes": "",
        "Table": "c***s",
    }


def test_mask_text_replaces_quoted_shortened_and_bare_values() -> None:
    long_value = "x" * 100
    message = "cell 'jane@corp.example.com' in row 1; again jane@corp.example.com; 'Bob'; " + repr(
        long_value[:79] + "…"
    )
    masked = mask_text(message, ["jane@corp.example.com", "Bob", long_value, "", "1"])
    assert "jane@" not in masked and "Bob" not in masked and "xxxx" not in masked
    assert masked.count("'j***@c***.com'") == 1 and masked.count("j***@c***.com") == 2
    assert "row 1" in masked  # short values are only replaced where quoted
    assert mask_text("nothing to hide", []) == "nothing to hide"


# --- classification ------------------------------------------------------------------------


def test_classification_ranks_and_what_pii_implies() -> None:
    assert [pii.classification_rank(level) for level in pii.CLASSIFICATIONS] == [0, 1, 2, 3]
    assert pii.classification_rank(None) == pii.classification_rank("secret-ish") == -1
    assert pii.implied_classification([]) is None
    assert pii.implied_classification(["email"]) == "confidential"
    assert pii.implied_classification(["email", "payment_card"]) == "restricted"
    assert pii.implied_classification(["health"]) == "restricted"
