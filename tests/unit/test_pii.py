"""Pure unit tests of dataimport.pii: value and column detection, masking, classification."""

from __future__ import annotations

import pytest

from dataimport import pii
from dataimport.pii import detect_column, detect_value, mask_record, mask_text, mask_value
from tests.factories import (
    FREE_TEXT_PII,
    INVENTORY_COLUMN_NAMES,
    MASKED_VALUES,
    NOT_PII_VALUES,
    PII_COLUMN_NAMES,
    PII_VALUES,
)

# --- values: true positives ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "category"),
    PII_VALUES,
)
def test_values_are_detected(value: str, category: str) -> None:
    assert detect_value(value) == {category}


# --- values: false positives ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    NOT_PII_VALUES,
)
def test_common_and_invalid_values_are_not_pii(value: str) -> None:
    assert detect_value(value) == frozenset()


@pytest.mark.parametrize(
    ("text", "categories"),
    FREE_TEXT_PII,
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
    PII_COLUMN_NAMES,
)
def test_column_names_are_detected(header: str, categories: set[str]) -> None:
    assert detect_column(header) == categories


@pytest.mark.parametrize(
    "header",
    INVENTORY_COLUMN_NAMES,
)
def test_inventory_column_names_are_not_pii(header: str) -> None:
    assert detect_column(header) == frozenset()


# --- masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    MASKED_VALUES,
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
