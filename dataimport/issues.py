"""The one vocabulary of validation findings: stable codes, severities, row-level issues."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"  # the row is rejected
    WARNING = "warning"  # the row is kept


class Code(StrEnum):
    """Stable error codes (frictionless-style). Never rename one: reports and users rely on them."""

    MISSING_REQUIRED = "missing-required"
    TYPE_ERROR = "type-error"
    CONSTRAINT_ERROR = "constraint-error"
    UNKNOWN_VALUE = "unknown-value"
    NULL_TOKEN = "null-token"  # "N/A", "-", "unknown", ... in a field: read as blank
    DUPLICATE_KEY = "duplicate-key"
    DUPLICATE_EXTERNAL_ID = "duplicate-external-id"  # one CMDB sys_id on two rows of a file
    ASSET_NAME_TAKEN = "asset-name-taken"  # a rename onto a name another asset has
    EXTRA_CELL = "extra-cell"
    MISSING_CELL = "missing-cell"
    BLANK_ROW = "blank-row"
    FORMULA_INJECTION = "formula-injection"
    ENCODING_ERROR = "encoding-error"
    END_OF_SUPPORT = "end-of-support"
    UNRESOLVED_DEPENDENCY = "unresolved-dependency"
    SELF_DEPENDENCY = "self-dependency"
    SCRIPT_CONTENT = "script-content"
    OVERSIZED_CELL = "oversized-cell"
    UNEXPECTED_PII = "unexpected-pii"
    INCOMPLETE_ROW = "incomplete-row"
    # app_discovery: dependency_validator findings
    PORT_PROTOCOL_MISMATCH = "port-protocol-mismatch"
    EPHEMERAL_PORT = "ephemeral-port"
    IMPLAUSIBLE_TIMESTAMP = "implausible-timestamp"
    WEAK_ENDPOINT_IDENTITY = "weak-endpoint-identity"
    # infrastructure: category and infrastructure_validator findings
    TEMPLATE_SKIPPED = "template-skipped"
    UNMATCHED_ASSET = "unmatched-asset"
    INCONSISTENT_VALUE = "inconsistent-value"
    ZERO_CAPACITY = "zero-capacity"
    DUPLICATE_VM_UUID = "duplicate-vm-uuid"
    UNKNOWN_OS = "unknown-os"
    # sensitive_data: pii_detector and compliance_checker findings
    UNDECLARED_PII = "undeclared-pii"
    COMPLIANCE_GAP = "compliance-gap"


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding about one row (and, where it applies, one field)."""

    code: str
    severity: Severity
    message: str
    field: str | None = None
    agent: str | None = None  # the validation agent that found it (None: the reader/category)

    def to_json(self) -> dict[str, Any]:
        # Built by hand, not dataclasses.asdict (a deep copy per field): once per finding.
        data: dict[str, Any] = {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "field": self.field,
        }
        if self.agent is not None:
            data["agent"] = self.agent
        return data

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


class ImportFailure(Exception):
    """A classified failure of a whole import (bad file, bad config): code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# Whole-file failure codes (data_imports.error_code).
FILE_EMPTY = "empty-file"
FILE_NO_ROWS = "no-data-rows"
FILE_BINARY = "unsupported-format"
FILE_ENCODING = "encoding-error"
FILE_UNCLOSED_QUOTE = "unclosed-quote"
FILE_FIELD_TOO_LARGE = "field-too-large"
FILE_BAD_HEADER = "invalid-header"
FILE_NOT_FOUND = "file-not-found"
FILE_TOO_LARGE_UNCOMPRESSED = "archive-too-large"  # XLSX zip over the cap, or a zip bomb
FILE_TOO_MANY_SHEETS = "too-many-sheets"
FILE_INVALID_XLSX = "invalid-xlsx"
FILE_INVALID_JSON = "invalid-json"  # malformed JSON text
FILE_JSON_STRUCTURE = "invalid-json-structure"  # valid JSON, but not a table of objects
FILE_NESTING_TOO_DEEP = "nesting-too-deep"
NO_VALID_ROWS = "no-valid-rows"
TOO_MANY_INVALID = "too-many-invalid-rows"
NO_MAPPED_COLUMNS = "no-mapped-columns"


# --- whole-import failures defined once, with their words --------------------------------------


@dataclass(frozen=True, slots=True)
class FailureCode:
    """A whole-import failure code (data_imports.error_code) with its title and message template.

    `template` is a str.format template; `failure(**fields)` fills it in. Codes are never
    renamed: reports, the API and users rely on them.
    """

    code: str
    title: str
    template: str

    def failure(self, **fields: object) -> ImportFailure:
        return ImportFailure(self.code, self.template.format(**fields))


FAILURE_CODES: dict[str, FailureCode] = {}


def _define(code: str, title: str, template: str) -> FailureCode:
    if code in FAILURE_CODES:
        raise ValueError(f"failure code {code!r} is defined twice")
    FAILURE_CODES[code] = defined = FailureCode(code, title, template)
    return defined


# Workers trust no workflow input (docs/untrusted-input.md).
OUTSIDE_STORAGE = _define(
    "file-outside-storage",
    "File outside the storage area",
    "The file {name!r} is not inside the storage area this worker reads from; a worker only "
    "reads files the service stored there. Upload the file through the CLI or the API.",
)
IMPORT_ID_TAKEN = _define(
    "import-id-taken",
    "Import id already in use",
    "The import id {data_import_id} is already registered and does not belong to this tenant; "
    "start the import with a new id.",
)
REQUEST_ID_TAKEN = _define(
    "request-id-taken",
    "Request id already in use",
    "Another import of this tenant already has this request id; a request id names one "
    "import. Start the import through the CLI or the API to be answered with that import.",
)
UNKNOWN_CATEGORY = _define(
    "unknown-category",
    "Unknown import category",
    "{category!r} is not an import category (known: {known}).",
)
# Parsers that cannot take the worker down: each cap is named in the message.
TOO_MANY_COLUMNS = _define(
    "too-many-columns",
    "Too many columns",
    "{where} has {count:,} columns, more than the limit of {cap:,} columns per row. Remove the "
    "columns you do not need (or split the file) and upload it again.",
)
TOO_MANY_KEYS = _define(
    "too-many-keys",
    "Too many JSON keys",
    "{where} has more than {cap:,} distinct keys (after flattening nested objects), the limit "
    "for a JSON file. Export only the fields you need and upload it again.",
)
TOO_MANY_ZIP_ENTRIES = _define(
    "too-many-zip-entries",
    "Too many entries in the workbook archive",
    "The workbook's ZIP directory {what}, more than the limit of {cap:,} entries; real "
    "workbooks have far fewer. Open it in Excel, save it again as .xlsx and upload it again.",
)
SHEET_TOO_LARGE = _define(
    "sheet-too-large",
    "Sheet area too large",
    "Sheet {sheet!r} spans {rows:,} rows x {columns:,} columns ({cells:,} cells, from A1 to its "
    "{source}), more than the limit of {cap:,} cells per sheet. Delete the empty rows and "
    "columns beyond the data (or export the sheet as CSV) and upload it again.",
)
UNREADABLE_FILE = _define(
    "unreadable-file",
    "File could not be read safely",
    "The file could not be read within the reader's limits ({reason}); it is not retried. "
    "Export it again as CSV, or split it, and upload it again.",
)
