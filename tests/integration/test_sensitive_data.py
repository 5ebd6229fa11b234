"""The sensitive_data category: row validation, its two agents, and imports end to end."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.agents.base import RowContext
from dataimport.agents.compliance_checker import ComplianceChecker, privacy_region
from dataimport.agents.pii_detector import PiiDetector
from dataimport.categories import get_category
from dataimport.categories.base import ImportScope, map_headers
from dataimport.categories.sensitive_data import (
    CATEGORY,
    normalize_classification,
    normalize_scope,
    parse_flag,
    parse_record_count,
)
from dataimport.contracts import ImportStatus
from dataimport.field_sources import decode
from service.imports import ImportService
from tests.factories import (
    CLASSIFICATION_LABELS,
    CMDB_HEADERS,
    COMPLIANCE_SCOPES,
    CRM,
    ENCRYPTION_FLAGS,
    PAYMENTS,
    RECORD_COUNTS,
    STORE_HEADERS,
    TERMINAL_OR_WAITING,
    cmdb_row,
    wait_for,
    write_csv,
)
from tests.one_row import RowOutcome, codes, validate_fields


def validate(**fields: str) -> RowOutcome:
    return validate_fields(CATEGORY, {"hostname": "db-01", **fields})


# --- headers and vocabularies --------------------------------------------------------------


def test_category_is_registered_masked_and_runs_its_agents_in_order() -> None:
    assert get_category("sensitive_data") is CATEGORY
    assert CATEGORY.masks_values is True
    assert [agent.name for agent in CATEGORY.agents] == ["pii_detector", "compliance_checker"]


def test_data_store_inventory_headers_map() -> None:
    headers = [
        "Server*",
        "Data Store",
        "Database Name",
        "Schema",
        "Table Name",
        "Column Names",
        "Data Categories",
        "Sensitivity Level",
        "Compliance Frameworks",
        "Encrypted at Rest",
        "TLS Enabled",
        "Row Count",
        "Data Owner",
        "Region",
        "Sample Values",
        "Last Scan",
    ]
    mapping = map_headers(headers, CATEGORY.aliases, {})
    assert mapping.field_by_header == {
        "Server*": "hostname",
        "Data Store": "store",
        "Database Name": "database",
        "Schema": "schema",
        "Table Name": "table",
        "Column Names": "columns",
        "Data Categories": "data_categories",
        "Sensitivity Level": "classification",
        "Compliance Frameworks": "compliance_scopes",
        "Encrypted at Rest": "encryption_at_rest",
        "TLS Enabled": "encryption_in_transit",
        "Row Count": "record_count",
        "Data Owner": "owner",
        "Region": "location",
        "Sample Values": "sample_values",
    }
    assert mapping.unmapped_headers == ["Last Scan"]


@pytest.mark.parametrize(
    ("label", "level"),
    CLASSIFICATION_LABELS,
)
def test_classification_labels(label: str, level: str | None) -> None:
    assert normalize_classification(label) == level


@pytest.mark.parametrize(
    ("raw", "scope"),
    COMPLIANCE_SCOPES,
)
def test_compliance_scopes(raw: str, scope: str | None) -> None:
    assert normalize_scope(raw) == scope


@pytest.mark.parametrize(
    ("raw", "flag"),
    ENCRYPTION_FLAGS,
)
def test_encryption_flags(raw: str, flag: bool | None) -> None:
    assert parse_flag(raw) is flag


@pytest.mark.parametrize(
    ("raw", "count"),
    RECORD_COUNTS,
)
def test_record_counts(raw: str, count: int) -> None:
    assert parse_record_count(raw) == count


# --- validate_row --------------------------------------------------------------------------


def test_a_full_row_normalises_host_and_store() -> None:
    outcome = validate_fields(
        CATEGORY,
        {
            "hostname": "DB-01.corp.local",
            "ip_address": "10.0.0.5",
            "store": "Payments",
            "store_type": "PostgreSQL",
            "database": "payments",
            "schema": "public",
            "table": "cards",
            "columns": "email, card_number; holder_name",
            "data_categories": "Cardholder data, PII",
            "classification": "Highly Confidential",
            "compliance_scopes": "PCI DSS v4.0; GDPR, gdpr",
            "encryption_at_rest": "AES-256",
            "encryption_in_transit": "TLS 1.2",
            "record_count": "1.2M",
            "owner": "jane@corp.example.com",
            "location": "eu-central-1",
            "sample_values": "+49 89 1234 5678",
        },
    )
    assert outcome.is_valid and outcome.issues == []
    assert outcome.normalized["asset"] == {
        "name": "DB-01.corp.local",
        "name_key": "db-01.corp.local",
        "hostname": "DB-01.corp.local",
        "hostname_key": "db-01",
        "ip_address": "10.0.0.5",
    }
    assert outcome.normalized["store"] == {
        "key": "payments|payments|public|cards",
        "store": "Payments",
        "store_type": "PostgreSQL",
        "database": "payments",
        "schema": "public",
        "table": "cards",
        "columns": ["email", "card_number", "holder_name"],
        "data_categories": ["Cardholder data", "PII"],
        "classification": "restricted",
        "compliance_scopes": ["GDPR", "PCI-DSS"],
        "pii_categories": ["email", "name", "payment_card", "personal_data", "phone"],
        "encryption_at_rest": True,
        "encryption_in_transit": True,
        "record_count": 1_200_000,
        "owner": "jane@corp.example.com",
        "location": "eu-central-1",
    }
    assert CATEGORY.natural_key(outcome.normalized) == (
        "db-01.corp.local|payments|payments|public|cards|card_number,email,holder_name"
    )


def test_host_forms() -> None:
    by_ip = validate_fields(CATEGORY, {"ip_address": "10.0.0.7", "store": "s"})
    assert by_ip.is_valid
    assert by_ip.normalized["asset"]["name"] == by_ip.normalized["asset"]["ip_address"]
    ip_in_host = validate(hostname="10.0.0.8")
    assert ip_in_host.normalized["asset"]["ip_address"] == "10.0.0.8"
    assert ip_in_host.normalized["asset"]["hostname"] is None
    instance = validate(hostname="SQLPROD01\\FINANCE", database="ledger")
    assert instance.normalized["asset"]["name"] == "SQLPROD01"
    assert instance.normalized["store"]["store"] == "FINANCE"
    port = validate(hostname="pg-01.corp.local:5432", store="pg")
    assert port.normalized["asset"]["hostname_key"] == "pg-01"


def test_missing_host_is_an_error_and_a_bad_ip_beside_a_host_only_a_warning() -> None:
    missing = validate_fields(CATEGORY, {"hostname": "", "store": "crm"})
    assert codes(missing) == [("missing-required", "error", "hostname")]
    assert CATEGORY.natural_key(missing.normalized) is None
    bad_only_ip = validate_fields(CATEGORY, {"ip_address": "999.1.1.1", "store": "crm"})
    assert codes(bad_only_ip) == [("constraint-error", "error", "ip_address")]
    bad_ip = validate(ip_address="999.1.1.1", store="crm")
    assert codes(bad_ip) == [("constraint-error", "warning", "ip_address")]
    assert bad_ip.is_valid


def test_unknown_values_warn_bad_counts_reject_and_no_message_quotes_a_cell() -> None:
    cells = {
        "store": "crm",
        "classification": "Purple-Level-9",
        "compliance_scopes": "GDPR, House Rule 12",
        "encryption_at_rest": "maybe-later",
        "record_count": "lots-of-rows",
    }
    outcome = validate(**cells)
    assert codes(outcome) == [
        ("unknown-value", "warning", "classification"),
        ("unknown-value", "warning", "compliance_scopes"),
        ("unknown-value", "warning", "encryption_at_rest"),
        ("type-error", "warning", "record_count"),
    ]
    assert outcome.is_valid and outcome.normalized["store"].get("record_count") is None
    assert outcome.normalized["store"]["compliance_scopes"] == ["GDPR", "House Rule 12"]
    for issue in outcome.issues:
        for value in ("Purple", "House Rule", "maybe", "lots"):
            assert value not in issue.message
    negative = validate(store="crm", record_count="-5")
    assert codes(negative) == [("constraint-error", "warning", "record_count")]
    none = validate(store="crm", encryption_at_rest="None", owner="N/A")
    assert codes(none) == [("null-token", "warning", "owner")]
    assert none.normalized["store"]["encryption_at_rest"] is False


def test_a_row_without_store_applies_to_the_host() -> None:
    outcome = validate(classification="restricted")
    assert codes(outcome) == [("incomplete-row", "warning", "store")]
    assert outcome.is_valid and outcome.normalized["store"]["key"] == "|||"


# --- agents --------------------------------------------------------------------------------


def context(raw: Mapping[str, str], mapping: Mapping[str, str]) -> RowContext:
    """The RowContext the pipeline builds: raw cells, mapped fields, the category's output."""
    fields = {field: raw.get(header, "").strip() for header, field in mapping.items()}
    outcome = validate_fields(CATEGORY, fields)
    return RowContext(2, raw, fields, dict(outcome.normalized), CATEGORY.name, list(outcome.issues))


MAPPING = {
    "Host": "hostname",
    "Table": "table",
    "Columns": "columns",
    "Data Categories": "data_categories",
    "Classification": "classification",
    "Compliance": "compliance_scopes",
    "Encrypted": "encryption_at_rest",
    "TLS": "encryption_in_transit",
    "Owner": "owner",
    "Region": "location",
}


def test_pii_detector_adds_value_findings_and_flags_undeclared_ones() -> None:
    row = context(
        {
            "Host": "db-01",
            "Table": "customers",
            "Columns": "email, first_name",
            "Owner": "owner@corp.example.com",  # the owner's address is not stored data
            "Notes": "e.g. 4111 1111 1111 1111; jane@example.com",
            "Birthday sample": "1985-07-30",
        },
        MAPPING,
    )
    found = PiiDetector().examine(row)
    assert [(i.code, i.field, i.agent) for i in found] == [
        ("undeclared-pii", "Notes", "pii_detector"),
        ("undeclared-pii", "Birthday sample", "pii_detector"),
    ]
    assert "payment_card" in found[0].message and "email" not in found[0].message
    assert "4111" not in found[0].message and "1985" not in found[1].message
    assert row.normalized["store"]["pii_categories"] == [
        "date_of_birth",
        "email",
        "name",
        "payment_card",
    ]


def test_pii_detector_is_quiet_when_values_match_the_declaration() -> None:
    row = context({"Host": "db-01", "Columns": "email", "Notes": "jane@example.com"}, MAPPING)
    assert PiiDetector().examine(row) == []
    assert row.normalized["store"]["pii_categories"] == ["email"]


def compliance(**cells: str) -> list[str]:
    raw = {"Host": "db-01", "Table": "t", **cells}
    return [
        issue.message.split(":")[0] for issue in ComplianceChecker().examine(context(raw, MAPPING))
    ]


def test_compliance_checker_rules() -> None:
    assert compliance(Classification="public") == []
    assert compliance(Classification="restricted", Encrypted="no") == ["encryption-at-rest"]
    assert compliance(Classification="confidential", Encrypted="") == []  # unknown: no finding
    assert compliance(Classification="restricted", TLS="no") == ["encryption-in-transit"]
    assert compliance(Columns="card_number", Classification="restricted") == ["pci-scope"]
    assert compliance(Columns="card_number", Classification="restricted", Compliance="PCI") == []
    assert compliance(Columns="diagnosis", Classification="restricted") == ["hipaa-scope"]
    eu = {"Columns": "email", "Classification": "confidential", "Region": "Frankfurt"}
    assert compliance(**eu) == ["gdpr-scope"]
    assert compliance(**eu, Compliance="GDPR") == []
    assert compliance(**{**eu, "Region": "us-east-1"}) == []
    assert compliance(Columns="email", Classification="internal") == ["under-classified"]
    assert compliance(Columns="ssn", Classification="confidential") == ["under-classified"]
    assert compliance(Columns="email") == ["under-classified"]  # no classification at all


def test_compliance_findings_name_no_cell_values() -> None:
    row = context(
        {
            "Host": "db-01",
            "Columns": "card_number, diagnosis",
            "Classification": "Internal",
            "Encrypted": "no",
            "TLS": "no",
            "Region": "Paris",
        },
        MAPPING,
    )
    PiiDetector().examine(row)
    found = ComplianceChecker().examine(row)
    assert {issue.code for issue in found} == {"compliance-gap"}
    assert {issue.agent for issue in found} == {"compliance_checker"}
    assert [issue.message.split(":")[0] for issue in found] == [
        "encryption-in-transit",
        "pci-scope",
        "hipaa-scope",
        "gdpr-scope",
        "under-classified",
    ]
    assert not any("Paris" in issue.message or "db-01" in issue.message for issue in found)


@pytest.mark.parametrize(
    ("location", "region"),
    [
        ("eu-west-1", "EU"),
        ("westeurope", "EU"),
        ("europe-west3", "EU"),
        ("Germany West Central", "EU"),
        ("DE", "EU"),
        ("Frankfurt DC2", "EU"),
        ("uksouth", "UK"),
        ("London", "UK"),
        ("eu-west-2", "UK"),
        ("us-east-1", None),
        ("Singapore", None),
    ],
)
def test_privacy_region(location: str, region: str | None) -> None:
    assert privacy_region(location) == region


# --- through the workflow ------------------------------------------------------------------


ASSET_SQL = """
SELECT a.*, (SELECT count(*) FROM assets x WHERE x.client_account_id = a.client_account_id
  AND x.engagement_id = a.engagement_id) AS tenant_assets
FROM assets a
WHERE a.client_account_id = :c AND a.engagement_id = :e AND a.hostname_key = :host
"""


async def run(
    service: ImportService,
    path: Path,
    category: str = "sensitive_data",
    config: dict[str, Any] | None = None,
) -> ImportStatus:
    started = await service.start_import(path, category, config)
    return await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)


async def asset(engine: AsyncEngine, service: ImportService, host: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        result = await conn.execute(text(ASSET_SQL), {**service.tenant.params(), "host": host})
        return dict(result.mappings().one())


async def messages(engine: AsyncEngine, data_import_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.scalars(
            text(
                "SELECT e ->> 'message' FROM raw_import_records r, "
                "jsonb_array_elements(r.validation_errors) e WHERE r.data_import_id = :id"
            ),
            {"id": data_import_id},
        )
        return list(rows)


def without_provenance(stores: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k != "import_id"} for entry in stores]


@pytest.mark.usefixtures("worker")
async def test_two_stores_on_one_host_merge_most_restrictive_and_unions(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "stores.csv", STORE_HEADERS, [PAYMENTS, CRM])
    status = await run(service, path)

    assert status.status == "completed", status
    assert (status.valid_rows, status.assets_created, status.processed_rows) == (2, 1, 2)
    db = await asset(engine, service, "db-01")
    assert db["tenant_assets"] == 1 and db["asset_type"] == "server"
    assert db["data_classification"] == "restricted"
    assert db["compliance_scopes"] == ["GDPR", "PCI-DSS"]
    assert db["pii_categories"] == ["email", "name", "payment_card", "phone"]
    # Encrypted only if every store is: CRM is not encrypted at rest.
    assert (db["encryption_at_rest"], db["encryption_in_transit"]) == (False, True)
    stores = {entry["store"]: entry for entry in db["data_stores"]}
    assert sorted(stores) == ["CRM", "Payments"]
    payments = stores["Payments"]
    assert (payments["table"], payments["record_count"], payments["classification"]) == (
        "cards",
        1_200_000,
        "restricted",
    )
    assert payments["pii_categories"] == ["email", "payment_card"]
    assert payments["import_id"] == str(status.data_import_id)
    assert stores["CRM"]["encryption_at_rest"] is False

    # No message in staging quotes a cell of the file; the agents ran and reported.
    found = await messages(engine, status.data_import_id)
    assert any(message.startswith("under-classified") for message in found)
    vocabulary = {"GDPR", "PCI-DSS"}  # canonical names a message may use
    cells = {cell for row in (PAYMENTS, CRM) for cell in row if len(cell) >= 4} - vocabulary
    assert not [message for message in found if any(cell in message for cell in cells)]
    async with engine.connect() as conn:
        steps = await conn.execute(
            text("SELECT agent, findings FROM import_processing_steps WHERE data_import_id = :id"),
            {"id": status.data_import_id},
        )
        findings = {row.agent: row.findings for row in steps}
    assert findings["compliance_checker"] == {"compliance-gap": 2}  # gdpr-scope, under-classified
    assert findings["pii_detector"] == {}  # every value matches what the rows declare

    # Enrichment retried for the same import (a crashed activity, a retry signal) is a no-op.
    scope = ImportScope(
        str(status.data_import_id),
        str(service.tenant.client_account_id),
        str(service.tenant.engagement_id),
        1,
        2,
    )
    async with engine.begin() as conn:
        await CATEGORY.enrich(conn, scope)
    again = await asset(engine, service, "db-01")
    assert {k: v for k, v in again.items() if k != "updated_at"} == {
        k: v for k, v in db.items() if k != "updated_at"
    }


@pytest.mark.usefixtures("worker")
async def test_reimporting_the_same_inventory_changes_nothing(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "stores.csv", STORE_HEADERS, [PAYMENTS, CRM])
    first = await run(service, path)
    before = await asset(engine, service, "db-01")
    second = await run(service, path)
    after = await asset(engine, service, "db-01")

    assert (first.assets_created, second.assets_created, second.assets_updated) == (1, 0, 1)
    assert after["tenant_assets"] == 1 and len(after["data_stores"]) == 2
    assert without_provenance(after["data_stores"]) == without_provenance(before["data_stores"])
    volatile = {"updated_at", "source_import_id", "data_stores", "field_sources"}
    assert {k: v for k, v in after.items() if k not in volatile} == {
        k: v for k, v in before.items() if k not in volatile
    }
    assert decode(after["field_sources"]).keys() == decode(before["field_sources"]).keys()
    # A newer inventory replaces the store's entry: CRM is now encrypted.
    fixed = [*CRM[:8], "yes", *CRM[9:]]
    third = await run(service, write_csv(tmp_path / "fixed.csv", STORE_HEADERS, [fixed]))
    latest = await asset(engine, service, "db-01")
    assert third.status == "completed" and len(latest["data_stores"]) == 2
    assert (latest["encryption_at_rest"], latest["data_classification"]) == (True, "restricted")


@pytest.mark.usefixtures("worker")
async def test_cmdb_asset_keeps_its_fields_and_gains_sensitivity(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    cmdb = await run(
        service, write_csv(tmp_path / "cmdb.csv", CMDB_HEADERS, [cmdb_row(1)]), "cmdb_export"
    )
    before = await asset(engine, service, "srv-000001")
    row = [*PAYMENTS]
    row[0] = "SRV-000001.corp.local"
    status = await run(service, write_csv(tmp_path / "stores.csv", STORE_HEADERS, [row]))

    assert (status.status, status.assets_created, status.assets_updated) == ("completed", 0, 1)
    after = await asset(engine, service, "srv-000001")
    assert after["tenant_assets"] == 1 and after["id"] == before["id"]
    cmdb_fields = ("name", "external_id", "ip_address", "operating_system", "cpu_cores", "owner")
    assert {k: after[k] for k in cmdb_fields} == {k: before[k] for k in cmdb_fields}
    assert (after["owner"], after["location"]) == ("Ops Team", "Frankfurt")
    assert after["created_by_import_id"] == cmdb.data_import_id
    assert after["source_import_id"] == status.data_import_id
    assert after["data_classification"] == "restricted"
    assert after["compliance_scopes"] == ["PCI-DSS"]
    assert after["pii_categories"] == ["email", "payment_card"]
    assert after["encryption_at_rest"] is True and len(after["data_stores"]) == 1


@pytest.mark.usefixtures("worker")
async def test_a_column_level_inventory_split_over_parallel_ranges_merges_per_table(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    """One row per column; ranges of 100 rows run in parallel and share both hosts."""
    kinds = ["Email", "Phone", "Date of birth", "Salary", "Diagnosis"]
    headers = ["Host", "Database", "Table", "Column", "Data Category", "Classification", "Rows"]
    rows = [
        [
            f"db-{n % 2 + 1:02d}",
            "crm",
            "people",
            f"col_{n:03d}",
            kinds[n % 5],
            "Confidential",
            "900",
        ]
        for n in range(250)
    ]
    rows[7][5] = "Restricted"
    rows[8][6] = "1k"
    config = {"chunk_size": 100, "max_parallel_chunks": 3}
    status = await run(service, write_csv(tmp_path / "columns.csv", headers, rows), config=config)

    assert status.status == "completed", status
    assert (status.valid_rows, status.assets_created, status.processed_rows) == (250, 2, 250)
    for host, classification, count in (
        ("db-01", "confidential", 1000),
        ("db-02", "restricted", 900),
    ):
        db = await asset(engine, service, host)
        assert db["tenant_assets"] == 2 and len(db["data_stores"]) == 1
        (people,) = db["data_stores"]
        assert len(people["columns"]) == 125
        assert (people["classification"], people["record_count"]) == (classification, count)
        assert db["data_classification"] == classification
        assert (
            db["pii_categories"]
            == people["pii_categories"]
            == [
                "date_of_birth",
                "email",
                "financial",
                "health",
                "phone",
            ]
        )
