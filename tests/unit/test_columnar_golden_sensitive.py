"""Golden files for sensitive_data: the columnar engine finds what tests/golden records
(validity, findings in order, normalised data, and the masking of every message; recorded
while the row engine still existed and agreed, re-record with `python -m tests.golden.record`).

The corpus: the bundled data-store inventory, the rows and values of the category's, the
masking and the pii tests, and a generated 100,000-row inventory full of the values that make
the rules, the pii detector and the compliance checker branch.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataimport import pii
from dataimport.categories.sensitive_data import CATEGORY
from dataimport.contracts import ProcessingConfig
from dataimport.engine import masking
from dataimport.engine.frame import BLANK, frame_from_rows
from dataimport.validation import header_mapping
from tests import factories
from tests.factories import CRM, PAYMENTS, SECRETS, STORE_HEADERS
from tests.golden.listing import GoldenCase, check, golden_codes, sample


def _inputs(cases: list[Any]) -> list[Any]:
    """The inputs of a test's cases (the first item of each case)."""
    return [case[0] if isinstance(case, tuple) else case for case in cases]


LABELS = [*_inputs(factories.CLASSIFICATION_LABELS), "Top Secret", "banana", ""]
SCOPES = _inputs(factories.COMPLIANCE_SCOPES)
FLAGS = [*_inputs(factories.ENCRYPTION_FLAGS), "maybe", "", "partial", "HTTP"]
COUNTS = [*_inputs(factories.RECORD_COUNTS), "lots", "-5", "2e3", "N/A", ""]
PII_VALUES = [
    *_inputs(factories.PII_VALUES),
    *_inputs(factories.NOT_PII_VALUES),
    *_inputs(factories.FREE_TEXT_PII),
    *_inputs(factories.MASKED_VALUES),
    *SECRETS,
]
COLUMN_NAMES = [
    *_inputs(factories.PII_COLUMN_NAMES),
    *_inputs(factories.INVENTORY_COLUMN_NAMES),
]


def _write(path: Path, headers: list[str], rows: list[list[str]] | Iterator[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


def _category_tests_rows(folder: Path) -> Path:
    headers = STORE_HEADERS
    rows = [PAYMENTS, CRM]
    for n, value in enumerate(PII_VALUES):
        row = list(rows[n % 2])
        row[0] = f"db-{n}"
        row[-1] = value
        rows.append(row)
    for n, value in enumerate([*LABELS, *SCOPES, *FLAGS, *COUNTS]):
        row = list(rows[n % 2])
        row[0], row[6], row[7], row[8], row[10] = f"h{n}", value, value, value, value
        rows.append(row)
    for n, name in enumerate(COLUMN_NAMES):
        row = list(rows[n % 2])
        row[4], row[5] = name, name
        rows.append(row)
    return _write(folder / "tests.csv", headers, rows)


def _by_ip(folder: Path) -> Path:
    rows = [[f"10.0.0.{n % 300}", "x", "Restricted"] for n in range(500)]
    return _write(folder / "by_ip.csv", ["Addr", "Store", "Label"], rows)


# --- masking, on its own: every needle branch ----------------------------------------------

MASK_VALUES = [
    "jane@corp.example.com",
    "Bob",
    "no",
    "it's",
    'say "hi"',
    "both ' and \"",
    "CORP\\SQL01",
    "C\\x",
    "x" * 100,
    "y" * 79 + "z" * 5,
    "bell\x07ring",
    "nbsp\xa0here",
    "Zürich",
    "4111 1111 1111 1111",
    "  padded  ",
    "data",
    "1",
]


def _message_forms(value: str) -> list[str]:
    text = value.strip()
    return [
        f"cell {pii.quote_value(text)} is odd",
        f"again {text} here",
        f"repr {text!r}",
        "nothing to see",
    ]


def test_masking_masks_what_mask_text_masks() -> None:
    rng = random.Random(5)
    rows: list[tuple[int, dict[str, Any], str | None, bool]] = []
    expected: list[str] = []
    for n in range(3_000):
        cells = {f"c{i}": rng.choice([*MASK_VALUES, "", "", "plain"]) for i in range(4)}
        quoted = rng.choice(MASK_VALUES)
        messages = [rng.choice(_message_forms(quoted)), rng.choice(_message_forms("plain"))]
        issues: list[dict[str, str | None]] = [
            {"code": "x", "severity": "warning", "message": m, "field": None} for m in messages
        ]
        blank = n % 97 == 0
        rows.append((n, cells, json.dumps(issues), blank))
        values = [str(v) for v in cells.values() if v]
        masked = [{**i, "message": pii.mask_text(str(i["message"]), values)} for i in issues]
        expected.append(json.dumps(issues if blank else masked))
    mapping = header_mapping(CATEGORY, ["c0", "c1", "c2", "c3", "ip"], ProcessingConfig())
    frame = frame_from_rows(rows, mapping, keys=["c0", "c1", "c2", "c3"])
    errors = pl.Series([r[2] for r in rows], dtype=pl.Utf8)
    got = masking.mask_errors(frame, errors, frame.rows.get_column(BLANK)).to_list()
    assert [json.loads(g) for g in got] == [json.loads(e) for e in expected]
    sent = [str(r[2]) for r in rows]
    assert sum(json.loads(g) != json.loads(s) for g, s in zip(got, sent, strict=True)) > 500


# --- a generated inventory of everything the rules and agents branch on --------------------

HEADERS = [
    "Host",
    "IP",
    "Data Store",
    "DB Type",
    "Database",
    "Schema",
    "Table",
    "Columns",
    "Data Categories",
    "Classification",
    "Compliance",
    "Encrypted at rest",
    "TLS",
    "Record Count",
    "Owner",
    "Region",
    "Sample Values",
    "customer_email",
    "Notes",
]

HOSTS = [
    "db-{n}",
    "DB-{n}.corp.local",
    "SQL{n}\\INST{k}",
    "sql{n}:1433",
    "sql{n},1433",
    "10.0.{m}.{k}",
    "10.0.{m}.{k}:5432",
    "fe80::{k}",
    "Sérvér{n}",
    "",
    "",
    "\\inst{k}",
    ":1433",
    "host {n}",
    "a,b{k}",
    "10.0.0.1, 10.0.0.2",
    "[2001:db8::{k}]",
    "db-{n}\\",
    "N/A",
    "\u212a{n}",
    "db{n}\x1cx",
    "010.1.1.1",
    "srv/{k}",
]
IPS = ["", "", "", "10.{m}.{k}.1", "10.0.0.{k}/24", "256.1.1.1", "::1", "not an ip", "IP", "N/A"]
STORES = ["", "CRM", "ERP", "Payments", "Zürich DWH", "data", "  ", "Notes"]
TYPES = ["", "PostgreSQL", "SQL Server", "S3", "Oracle"]
COLUMNS = [
    "",
    "email, phone, iban",
    "first_name, last_name, email, date_of_birth",
    "customer_id, amount",
    "card_number; cvv",
    "diagnosis | patient_id",
    "Email, EMAIL, e-mail",
    "gender\nethnicity",
    "ip_address, mac_address",
    "nothing_personal",
    "Straße, PLZ",
]
CATEGORIES = [
    "",
    "Customer contact and bank data",
    "Financial records",
    "PII",
    "Health records",
    "Cardholder data",
    "email",
    "confidential",
    "biometric; fingerprints",
]
REGIONS = [
    "",
    "eu-west-1",
    "eu-west-2",
    "westeurope",
    "Frankfurt",
    "DE",
    "uksouth",
    "London",
    "us-east-1",
    "Singapore",
    "São Paulo",
    "germanywestcentral",
]
OWNERS = ["", "Finance Data Office", "jane.doe@corp.example.com", "HR IT", "José García", "data"]
EXTRAS = [
    "",
    "",
    "",
    "john@example.com",
    "+49 30 1234567",
    "4111 1111 1111 1111",
    "call 555-123-4567 now",
    "1985-07-30",
    "DE89 3704 0044 0532 0130 00",
    "=SUM(A1)",
    "+cmd|' /C calc'!A0",
    "<script>alert(1)</script>",
    "ctl\x07char",
    "a@b.io; c@d.org",
    "123-45-6789",
    "Compliance",
    "IP",
    "confidential",
    'it\'s "quoted"',
    "C:\\data\\x",
]


def _rows(count: int, rng: random.Random) -> Iterator[list[str]]:
    pick = rng.choice
    for n in range(1, count + 1):
        m, k = n // 256 % 256, n % 256
        row = [
            pick(HOSTS).format(n=n, m=m, k=k),
            pick(IPS).format(m=m, k=k),
            pick(STORES),
            pick(TYPES),
            pick(["", "erp_prod", "crm", f"db{k}"]),
            pick(["", "dbo", "public"]),
            pick(["", "customers", "invoices", f"t{k}", "\\\\fs\\hr"]),
            pick(COLUMNS),
            pick(CATEGORIES),
            pick(LABELS),
            pick([*SCOPES, "", "GDPR, SOX", "PCI DSS and HIPAA", "Policy 7; n/a", "GDPR & Policy"]),
            pick(FLAGS),
            pick(FLAGS),
            pick([*COUNTS, str(rng.randint(0, 10**7)), f"{rng.randint(1, 999)},000", "9" * 17]),
            pick(OWNERS),
            pick(REGIONS),
            pick([*PII_VALUES, "", "", ""]),
            pick(["", "", "x@y.com", "someone", "5555 5555 5555 4444"]),
            pick(EXTRAS),
        ]
        shape = rng.random()
        if shape < 0.01:
            yield []  # blank row
        elif shape < 0.02:
            yield [*row, "extra", "jane@corp.example.com"]
        elif shape < 0.03:
            yield row[: rng.randint(1, len(row) - 1)]
        elif shape < 0.035:
            yield ["", "", ""]
        else:
            yield row


CASES = [
    GoldenCase("sensitive_data/data_store_inventory", CATEGORY, sample("data_store_inventory.csv")),
    GoldenCase("sensitive_data/category_tests_rows", CATEGORY, _category_tests_rows),
    GoldenCase(
        "sensitive_data/mapping_to_an_ip_column",
        CATEGORY,
        _by_ip,
        ProcessingConfig(column_mapping={"Addr": "ip_address", "Label": "classification"}),
    ),
    GoldenCase(
        "sensitive_data/generated_100k",
        CATEGORY,
        lambda folder: _write(
            folder / "generated_inventory.csv", HEADERS, _rows(100_000, random.Random(8))
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_matches_golden(case: GoldenCase, tmp_path: Path) -> None:
    assert check(case, tmp_path)


def test_generated_inventory_covers_every_branch() -> None:
    codes = golden_codes(CASES[-1])
    for code in (
        "constraint-error",
        "missing-required",
        "incomplete-row",
        "unknown-value",
        "type-error",
        "undeclared-pii",
        "compliance-gap",
        "script-content",
        "formula-injection",
        "extra-cell",
        "missing-cell",
        "blank-row",
    ):
        assert codes[code] > 0, code
