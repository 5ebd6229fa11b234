"""Inputs and outputs that cross the Temporal boundary: ids, counts and small summaries only.

No row data ever travels in these models (DESIGN invariant 1), so history size does not
depend on the number of rows. Each signal/query payload is its own model so fields can be
added later without breaking running workflows.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator


class ImportState(StrEnum):
    """An import's status: data_imports.status CHECK, the status query, CLI help, OpenAPI.

    Members compare equal to plain strings (statuses read from the database or decoded from a
    payload are str; the workflow sets members); their order is the CHECK constraint's, so the
    schema does not change."""

    PENDING = "pending"
    INGESTING = "ingesting"
    VALIDATING = "validating"
    ENRICHING = "enriching"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    NEEDS_ATTENTION = "needs_attention"
    AWAITING_APPROVAL = "awaiting_approval"  # waits for approve/reject of its plan
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class Phase(StrEnum):
    """The workflow's phases, in order."""

    UPLOAD = "upload"
    VALIDATION = "validation"
    ENRICHMENT = "enrichment"
    COMPLETE = "complete"


TERMINAL_STATUSES = frozenset(
    {
        ImportState.COMPLETED,
        ImportState.COMPLETED_WITH_ERRORS,
        ImportState.FAILED,
        ImportState.CANCELLED,
        ImportState.REJECTED,
    }
)
# Waiting for a person: a failed phase (retry / fail) or a plan to approve (approve / reject).
WAITING_STATUSES = frozenset({ImportState.NEEDS_ATTENTION, ImportState.AWAITING_APPROVAL})

PHASES = tuple(Phase)


# Bounds of the knobs below. A config is workflow input (anyone who can start a workflow
# writes it), so every value has one; the model refuses the rest before a workflow starts.
MAX_ATTENTION_TIMEOUT_SECONDS = 90 * 24 * 3600  # 90 days
MAX_FIELD_SIZE = 16 * 1024 * 1024  # 16 MiB characters per field
MAX_MAPPED_COLUMNS = 1024  # column_mapping entries (readers refuse wider files anyway)
MAX_NAME_LENGTH = 1024  # a header or field name in column_mapping, a file name


class ProcessingConfig(BaseModel):
    """Per-import knobs; `retry` may replace them. Every value is bounded."""

    column_mapping: dict[str, str] = Field(default_factory=dict, max_length=MAX_MAPPED_COLUMNS)
    max_invalid_ratio: float = Field(0.5, ge=0.0, le=1.0)
    # Rows per validation/enrichment work unit: the columnar engine wants them large.
    chunk_size: int = Field(25_000, ge=100, le=200_000)
    max_parallel_chunks: int = Field(4, ge=1, le=64)
    # How long an import waits in needs_attention for a decision (a timedelta in the workflow:
    # unbounded, 1e15 s would fail every workflow task).
    attention_timeout_seconds: float = Field(7 * 24 * 3600, gt=0, le=MAX_ATTENTION_TIMEOUT_SECONDS)
    # Characters per field, applied by each reader to its own file (never process-wide).
    max_field_size: int = Field(1_000_000, ge=1024, le=MAX_FIELD_SIZE)
    # How soon a crashed worker's activity is handed to another worker.
    heartbeat_timeout_seconds: float = Field(30, ge=1, le=3600)
    # Ask the worker's model-backed agents for advice (docs/model-agents.md); advisory only.
    model_agents: bool = False
    # Stop after validation with a plan of what enrichment would change, and enrich only
    # once someone approves it (reject ends the import as rejected, the inventory untouched).
    require_approval: bool = False

    @field_validator("column_mapping")
    @classmethod
    def _no_blank_targets(cls, value: dict[str, str]) -> dict[str, str]:
        too_long = next(
            (k for k, v in value.items() if max(len(k), len(v)) > MAX_NAME_LENGTH), None
        )
        if too_long is not None:
            raise ValueError(
                f"column_mapping names are at most {MAX_NAME_LENGTH} characters "
                f"(one starts {too_long[:40]!r})"
            )
        return {k: v.strip() for k, v in value.items() if k and v and v.strip()}


class ImportRequest(BaseModel):
    """Everything the workflow needs to run one import (the file travels by URI)."""

    data_import_id: uuid.UUID
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID
    category: str = Field(max_length=64)
    file_uri: str = Field(max_length=4096)
    filename: str = Field(max_length=MAX_NAME_LENGTH)
    file_size: int = Field(0, ge=0)
    sha256: str | None = Field(None, max_length=64)
    request_id: str | None = Field(None, max_length=200)
    processing_config: ProcessingConfig = Field(default_factory=ProcessingConfig)


class ImportRef(BaseModel):
    """The small handle activities receive: which import, which tenant."""

    data_import_id: uuid.UUID
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID
    category: str


class ChunkReport(BaseModel):
    """What one validation chunk reports back: rows examined and each agent's time."""

    rows: int = 0
    agent_ms: dict[str, float] = Field(default_factory=dict)

    def plus(self, other: ChunkReport) -> ChunkReport:
        timings = dict(self.agent_ms)
        for name, ms in other.agent_ms.items():
            timings[name] = round(timings.get(name, 0.0) + ms, 3)
        return ChunkReport(rows=self.rows + other.rows, agent_ms=timings)


class IngestResult(BaseModel):
    total_rows: int
    blank_rows: int
    detected_format: dict[str, str]
    column_count: int
    # Staged rows without validation results (0 when every row was validated while staged).
    unvalidated_rows: int | None = None
    # Set when the rows were validated as they were staged: the first validation pass is done.
    validation: ChunkReport | None = None


class FlowIds(BaseModel):
    master_flow_id: uuid.UUID
    discovery_flow_id: uuid.UUID


class RowRange(BaseModel):
    first_row: int
    last_row: int


class ChunkInput(BaseModel):
    ref: ImportRef
    rows: RowRange
    processing_config: ProcessingConfig
    # The config generation the chunk runs under (None from workflows before generations):
    # its writes are refused once a retry has moved the import on.
    generation: int | None = None


# A header row may be 1,024 columns wide: payloads name the first unmapped ones and count them
# all (the database keeps the full list in the validation summary).
MAX_UNMAPPED_IN_PAYLOAD = 50


class ValidationCounts(BaseModel):
    valid_rows: int = 0
    invalid_rows: int = 0
    blank_rows: int = 0
    warning_rows: int = 0
    unmapped_headers: list[str] = Field(default_factory=list)  # the first ones only
    unmapped_header_count: int = 0  # all of them


class EnrichmentResult(BaseModel):
    assets_created: int = 0
    assets_updated: int = 0
    dependencies_created: int = 0
    dependencies_unresolved: int = 0
    dependency_groups: int = 0
    processed_rows: int = 0


# Inputs of the flow, validation, enrichment and completion activities.


class CreateFlowsInput(BaseModel):
    ref: ImportRef
    filename: str


class RegisterInput(BaseModel):
    request: ImportRequest
    workflow_id: str


class PrepareInput(BaseModel):
    ref: ImportRef
    processing_config: ProcessingConfig


class FinalizeValidationInput(BaseModel):
    ref: ImportRef
    unmapped_headers: list[str]
    started_at: datetime
    report: ChunkReport


class FinalizeEnrichmentInput(BaseModel):
    ref: ImportRef
    started_at: datetime


class EnrichmentPlan(BaseModel):
    """What prepare_enrichment leaves for the ranges: whether a link pass is needed."""

    link_chunks: bool = True


class SaveConfigInput(BaseModel):
    ref: ImportRef
    processing_config: ProcessingConfig
    # Set by workflows since patch chunk-generation: every retry's new generation.
    generation: int | None = None


# The staging-retention workflow and its activities.

DEFAULT_RETENTION_DAYS = 30
DEFAULT_BATCH_SIZE = 5000
MAX_PAGE_SIZE = 500  # a page of candidates stays well under 64 KB of workflow history


class RetentionPolicy(BaseModel):
    """How long staged rows are kept and how the job removes them (bounded: trust no input)."""

    retention_days: int = Field(DEFAULT_RETENTION_DAYS, ge=1, le=3650)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=100_000)
    max_parallel: int = Field(2, ge=1, le=16)
    page_size: int = Field(100, ge=1, le=MAX_PAGE_SIZE)


class PurgeCandidate(BaseModel):
    """A finished import whose staged rows are due (ids only)."""

    data_import_id: uuid.UUID
    client_account_id: uuid.UUID
    engagement_id: uuid.UUID
    completed_at: datetime


class ListPurgeableInput(BaseModel):
    cutoff: datetime
    limit: int = Field(100, ge=1, le=MAX_PAGE_SIZE)
    # Keyset cursor: candidates strictly after (completed_at, id), oldest first.
    after_completed_at: datetime | None = None
    after_id: uuid.UUID | None = None


class PurgeableImports(BaseModel):
    items: list[PurgeCandidate] = Field(default_factory=list)


class PurgeInput(BaseModel):
    candidate: PurgeCandidate
    cutoff: datetime
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=100_000)


class PurgeProgress(BaseModel):
    """Where a purge stands: rows up to `after_row` are gone; a retried attempt resumes there."""

    after_row: int = 0
    rows_deleted: int = 0
    batches: int = 0


class PurgeResult(BaseModel):
    data_import_id: uuid.UUID
    rows_deleted: int = 0
    batches: int = 0
    # False when the import was no longer due (purged already, or not finished/old enough).
    purged: bool = False


class RetentionTotals(BaseModel):
    """What one retention pass did (summed over its continued-as-new runs)."""

    imports_purged: int = 0
    rows_deleted: int = 0
    imports_failed: int = 0
    failed_import_ids: list[uuid.UUID] = Field(default_factory=list)  # first few, for the UI
    runs: int = 1


class StagingRetentionInput(BaseModel):
    """The retention workflow's input: the schedule starts it with the policy only."""

    policy: RetentionPolicy = Field(default_factory=RetentionPolicy)
    # Set on continue-as-new: the pass keeps the cutoff of its first run and its cursor.
    cutoff: datetime | None = None
    after_completed_at: datetime | None = None
    after_id: uuid.UUID | None = None
    totals: RetentionTotals = Field(default_factory=RetentionTotals)


class ModelAgentsInput(BaseModel):
    ref: ImportRef
    processing_config: ProcessingConfig


class ModelAgentsResult(BaseModel):
    """Per agent its outcome, and the mapping advice (headers and field names, never values)."""

    outcomes: dict[str, str] = Field(default_factory=dict)
    suggested_column_mapping: dict[str, str] = Field(default_factory=dict)


class PhaseFailure(BaseModel):
    """A failure the workflow parks in needs_attention (code + message, never a traceback)."""

    phase: str
    error_code: str
    error_message: str


class StatusUpdate(BaseModel):
    """A status change the workflow records on data_imports + master + child flow."""

    ref: ImportRef
    status: str
    phase: str
    error_code: str | None = None
    error_message: str | None = None
    counters: dict[str, int] = Field(default_factory=dict)
    summary: dict[str, Any] = Field(default_factory=dict)


class RetryInput(BaseModel):
    processing_config: dict[str, Any] | None = None


class FailInput(BaseModel):
    reason: str = "failed by user"


class ApproveInput(BaseModel):
    """Approve the plan of an import awaiting approval: enrichment runs."""

    comment: str | None = Field(None, max_length=2000)


class RejectInput(BaseModel):
    reason: str = Field("rejected by user", max_length=2000)


class PlanCounts(BaseModel):
    """What the approval plan counts (the plan itself, with its samples, is in the database)."""

    assets_to_create: int = 0
    assets_to_update: int = 0
    dependencies_to_add: int = 0


class ImportStatus(BaseModel):
    """What `status` returns (query, CLI --json): one shape everywhere."""

    data_import_id: uuid.UUID
    workflow_id: str
    category: str
    # str (the workflow assigns ImportState / Phase members, decoded payloads are plain
    # strings; both serialise to the value); the schema lists the values.
    status: str = Field(
        ImportState.PENDING.value,
        description="pending, ingesting, validating, enriching, needs_attention, "
        "awaiting_approval (waits for approve/reject of its plan), completed, "
        "completed_with_errors, failed, cancelled, rejected",
        json_schema_extra={"enum": [s.value for s in ImportState]},
    )
    phase: str = Field(
        Phase.UPLOAD.value,
        description="upload, validation, enrichment, complete",
        json_schema_extra={"enum": [p.value for p in Phase]},
    )
    total_rows: int = 0
    valid_rows: int = 0
    invalid_rows: int = 0
    blank_rows: int = 0
    warning_rows: int = 0
    processed_rows: int = 0
    assets_created: int = 0
    assets_updated: int = 0
    dependencies_created: int = 0
    dependency_groups: int = 0
    progress: float = 0.0
    error_code: str | None = None
    error_message: str | None = None
    filename: str | None = None
    # Why the last retry signal was ignored (a bad processing_config), until one is accepted.
    decision_refused: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


WORKFLOW_ID_PREFIX = "data-import-"


def workflow_id_for(data_import_id: uuid.UUID) -> str:
    return f"{WORKFLOW_ID_PREFIX}{data_import_id}"


class ProcessingStep(BaseModel):
    """One recorded agent or step run of an import (import_processing_steps)."""

    step: str
    agent: str
    status: str
    started_at: datetime
    duration_ms: int | None = None
    records_processed: int = 0
    findings: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: int | None = None
