"""The one vocabulary of validation findings: stable codes, severities, row-level issues."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dataimport.error_codes import ImportFailure, Level, register


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


__all__ = ["Code", "ImportFailure", "Issue", "Severity"]

_CELL, _ROW = Level.CELL, Level.ROW

# Row and cell codes, next to their enum: the engine, the categories' rules and the agents all
# raise them. Their messages are built where they are found; the templates say their shape.
for _code, _level, _title, _description, _template in (
    (
        Code.MISSING_REQUIRED,
        _CELL,
        "Missing required value",
        "A column the category needs for this row is empty (or holds a null token such as N/A). "
        "An identifying column missing rejects the row; any other is a warning.",
        "{field} is required",
    ),
    (
        Code.TYPE_ERROR,
        _CELL,
        "Value of the wrong type",
        "A value cannot be read as the column's type (a number, a date, an IP address). A "
        "non-identifying field is left empty and the row kept (warning).",
        "{field}: {value!r} is not a valid {type}",
    ),
    (
        Code.CONSTRAINT_ERROR,
        _CELL,
        "Value out of bounds",
        "A value has the right type but breaks a constraint (a range, a length, a pattern).",
        "{field}: {value!r} {constraint}",
    ),
    (
        Code.UNKNOWN_VALUE,
        _CELL,
        "Value outside the vocabulary",
        "A value matches none of the field's known values or aliases (an environment, an asset "
        "type, a classification); the field is left empty.",
        "{field}: {value!r} is not one of the known values",
    ),
    (
        Code.NULL_TOKEN,
        _CELL,
        "Null token",
        "A cell holds a null token (N/A, -, none, null, TBD, unknown, ...); it reads as blank "
        "and the row is kept (warning).",
        "{field}: {value!r} is a null token; read as blank",
    ),
    (
        Code.DUPLICATE_KEY,
        _ROW,
        "Duplicate key",
        "Another row of the same import has the same natural key (e.g. the asset name); the "
        "first one wins.",
        "duplicate of row {first_row} ({key})",
    ),
    (
        Code.DUPLICATE_EXTERNAL_ID,
        _ROW,
        "Duplicate external id",
        "One CMDB external id (sys_id) appears on two rows of the file.",
        "external id {external_id!r} is also on row {first_row}",
    ),
    (
        Code.ASSET_NAME_TAKEN,
        _ROW,
        "Asset name taken",
        "The row renames an asset onto a name another asset of the tenant already has; the name is "
        "not changed.",
        "name {name} belongs to another asset: the asset with external id {external_id} keeps "
        "its name",
    ),
    (
        Code.EXTRA_CELL,
        _ROW,
        "Extra cells",
        "The row has more cells than the header has columns; the extra cells are ignored.",
        "Row has {count} cells more than the {width} header columns",
    ),
    (
        Code.MISSING_CELL,
        _CELL,
        "Missing cells",
        "The row has fewer cells than the header has columns; the missing ones read as blank.",
        "Row has no cell for {columns}",
    ),
    (
        Code.BLANK_ROW,
        _ROW,
        "Blank row",
        "Every cell of the row is empty; the row is skipped.",
        "Blank row: every cell is empty.",
    ),
    (
        Code.FORMULA_INJECTION,
        _CELL,
        "Spreadsheet formula",
        "A cell starts like a spreadsheet formula (=, +, -, @); it is kept as text and flagged, "
        "so a report opened in a spreadsheet cannot run it.",
        "{field} starts with {prefix!r}: possible formula injection",
    ),
    (
        Code.ENCODING_ERROR,
        _CELL,
        "Undecodable bytes",
        "Some bytes of a cell were not valid in the file's encoding and were replaced by U+FFFD "
        "(or NUL bytes were removed); the row is kept.",
        "Some bytes are not valid {encoding} and were replaced by U+FFFD.",
    ),
    (
        Code.END_OF_SUPPORT,
        _CELL,
        "Operating system past end of support",
        "The operating system and version are past their vendor's end of support.",
        "{os} {version} is past end of support ({date})",
    ),
    (
        Code.UNRESOLVED_DEPENDENCY,
        _ROW,
        "Unresolved dependency",
        "A declared dependency names an asset that is neither in the import nor in the inventory.",
        "dependency {target!r} matches no asset",
    ),
    (
        Code.SELF_DEPENDENCY,
        _ROW,
        "Dependency on itself",
        "The source and the target of a dependency are the same asset; no edge is written.",
        "{source!r} and {target!r} share the {label} {value!r}: probably one machine talking "
        "to itself",
    ),
    (
        Code.SCRIPT_CONTENT,
        _CELL,
        "Script or control characters",
        "A cell holds script or markup content, or control characters.",
        "{field}: {what}",
    ),
    (
        Code.OVERSIZED_CELL,
        _CELL,
        "Oversized cell",
        "A cell is far longer than any real value of its kind.",
        "{field}: {length} characters",
    ),
    (
        Code.UNEXPECTED_PII,
        _CELL,
        "Unexpected personal data",
        "A column that should not hold personal data holds values that look like it (e-mail "
        "addresses, phone numbers, national ids).",
        "{field} looks like it holds {kinds}",
    ),
    (
        Code.INCOMPLETE_ROW,
        _ROW,
        "Incomplete row",
        "Too few of the row's useful fields are filled to make a good asset record.",
        "only {filled} of {wanted} fields are filled",
    ),
    (
        Code.PORT_PROTOCOL_MISMATCH,
        _CELL,
        "Port and protocol disagree",
        "The port does not fit the protocol (an ICMP port, a well-known port with another "
        "protocol).",
        "{detail}",
    ),
    (
        Code.EPHEMERAL_PORT,
        _CELL,
        "Ephemeral destination port",
        "The destination port is in the ephemeral range 49152-65535: probably the client side of "
        "a connection, not a service.",
        "destination port {port} is in the ephemeral range 49152-65535 {hint}",
    ),
    (
        Code.IMPLAUSIBLE_TIMESTAMP,
        _CELL,
        "Implausible timestamp",
        "A first/last-seen time lies in the future, or last seen comes before first seen.",
        "{field} {value} is in the future (now {now})",
    ),
    (
        Code.WEAK_ENDPOINT_IDENTITY,
        _CELL,
        "Weak endpoint identity",
        "An endpoint is known only by an address or a process name, which may match the wrong "
        "asset.",
        "{detail}",
    ),
    (
        Code.TEMPLATE_SKIPPED,
        _ROW,
        "Template skipped",
        "The row describes a VM template, not a machine; it is skipped.",
        "{name} is a template; skipped",
    ),
    (
        Code.UNMATCHED_ASSET,
        _ROW,
        "No matching asset",
        "The infrastructure row matched no asset of the inventory and created none.",
        "no asset matches {name}",
    ),
    (
        Code.INCONSISTENT_VALUE,
        _CELL,
        "Inconsistent value",
        "A derived figure (utilisation, used storage) contradicts its source columns.",
        "{field}: {value} is outside 0-100 %; its source columns disagree",
    ),
    (
        Code.ZERO_CAPACITY,
        _CELL,
        "Zero capacity",
        "A machine reports zero cores, memory or storage.",
        "{field} is 0",
    ),
    (
        Code.DUPLICATE_VM_UUID,
        _ROW,
        "Duplicate VM UUID",
        "Machine rows of different names share one VM UUID anywhere in the import.",
        "VM UUID {uuid} is also on {other}",
    ),
    (
        Code.UNKNOWN_OS,
        _CELL,
        "Unknown operating system",
        "The operating system could not be recognised.",
        "operating system {value!r} is not recognised",
    ),
    (
        Code.UNDECLARED_PII,
        _CELL,
        "Undeclared personal data",
        "A column holds personal data the store's declared data categories do not mention.",
        "{field} holds {kinds}, not declared for this store",
    ),
    (
        Code.COMPLIANCE_GAP,
        _CELL,
        "Compliance gap",
        "A data store in a compliance scope lacks what the scope requires (e.g. encryption).",
        "{rule}: {detail}",
    ),
):
    register(_code.value, _level, _title, _description, _template)


# Import-level codes the workflow decides (it imports them from here, inside its pass-through
# block, so they stay plain strings). The workflow's own literal codes are declared here too:
# the workflow module is orchestration only and declares nothing.
NO_MAPPED_COLUMNS = register(
    "no-mapped-columns",
    Level.IMPORT,
    "No column maps to the category",
    "None of the file's headers maps to a field of the category; the import waits for a retry "
    "with processing_config.column_mapping.",
    "no column maps to any of [{wanted}] for {category}; the {count} headers were: {headers}. "
    "Retry with processing_config.column_mapping, e.g. {example}.",
).code
NO_VALID_ROWS = register(
    "no-valid-rows",
    Level.IMPORT,
    "No valid rows",
    "Validation rejected every row; the import waits for a decision.",
    "none of the {checked} data rows is valid; see the error report",
).code
TOO_MANY_INVALID = register(
    "too-many-invalid-rows",
    Level.IMPORT,
    "Too many invalid rows",
    "The share of rejected rows is above processing_config.max_invalid_ratio; the import waits "
    "for a decision.",
    "{invalid} of {checked} rows are invalid ({share}), above max_invalid_ratio {limit}",
).code
for _literal, _title, _description, _template in (
    (
        "attention-timeout",
        "No decision in time",
        "The import waited for a retry or fail decision longer than its attention timeout and "
        "ended as failed.",
        "no decision within {seconds}s",
    ),
    (
        "failed-by-user",
        "Failed by a user",
        "A user sent the fail decision to an import that needed attention.",
        "{reason}",
    ),
    ("cancelled", "Cancelled", "The import's workflow was cancelled.", "import cancelled"),
    (
        "approval-timed-out",
        "No approval in time",
        "An import waiting for approval of its plan got no approve or reject decision within its "
        "attention timeout and ended as failed; the inventory is untouched.",
        "no approval within {seconds}s",
    ),
    (
        "rejected-by-user",
        "Plan rejected",
        "A user rejected the import's plan: it ends as rejected, the inventory untouched.",
        "{reason}",
    ),
    (
        "internal-error",
        "Internal error",
        "A phase failed for a reason that is not classified (after its retries); the import "
        "waits for a decision. The message names the phase and the kind of error only.",
        "{phase} failed after retries ({kind}): {detail}",
    ),
    (
        "invalid-workflow-input",
        "Invalid workflow input",
        "The workflow was started with an input that fails the ImportRequest model (a "
        "hand-started workflow); it ends at once.",
        "invalid workflow input: {errors}",
    ),
):
    register(_literal, Level.IMPORT, _title, _description, _template)
