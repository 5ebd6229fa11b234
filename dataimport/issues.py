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
    DUPLICATE_KEY = "duplicate-key"
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
