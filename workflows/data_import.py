"""DataImportWorkflow: upload -> validation -> enrichment -> complete, with a human in the loop.

The workflow only decides what runs next. Rows never pass through it: activities receive ids
and row ranges and return counts, so history stays small for any file size.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.approval import ApprovalActivities
    from activities.completion import CompletionActivities
    from activities.enrichment import EnrichmentActivities
    from activities.flows import FlowActivities
    from activities.ingest import IngestActivities
    from activities.model_agents import ModelAgentActivities
    from activities.validation import ValidationActivities
    from dataimport.contracts import (
        ApproveInput,
        ChunkInput,
        ChunkReport,
        CreateFlowsInput,
        FailInput,
        FinalizeEnrichmentInput,
        FinalizeValidationInput,
        ImportRef,
        ImportRequest,
        ImportState,
        ImportStatus,
        ModelAgentsInput,
        ModelAgentsResult,
        Phase,
        PhaseFailure,
        PlanCounts,
        PrepareInput,
        ProcessingConfig,
        RegisterInput,
        RejectInput,
        RetryInput,
        RowRange,
        SaveConfigInput,
        StatusUpdate,
        ValidationCounts,
    )
    from dataimport.issues import NO_MAPPED_COLUMNS, NO_VALID_ROWS, TOO_MANY_INVALID

A = TypeVar("A")  # an activity's one argument
R = TypeVar("R")  # what it returns

MAX_CHUNKS_PER_PHASE = 200  # bounds history: chunk size grows with the file instead
# Since this patch a phase has at most FEWER_CHUNKS ranges: columnar chunks are cheap per row
# and dear per chunk, and a 10M-row import stays well under 1,000 history events.
FEWER_CHUNKS_PATCH = "fewer-chunks"
FEWER_CHUNKS = 64
# Since this patch the first validation pass may have happened while staging (the ingest
# result says so): no validate_chunk activities then, only the import-wide finalize.
VALIDATED_AT_INGEST_PATCH = "validated-at-ingest"
ATTENTION_TIMEOUT_CODE = "attention-timeout"
CANCELLED_CODE = "cancelled"
FAILED_BY_USER_CODE = "failed-by-user"
STATUS_KEY = SearchAttributeKey.for_keyword("ImportStatus")
IMPORT_ID_KEY = SearchAttributeKey.for_keyword("DataImportId")
PHASE_WEIGHTS = {
    Phase.UPLOAD: (0.0, 0.25),
    Phase.VALIDATION: (0.25, 0.3),
    Phase.ENRICHMENT: (0.55, 0.45),
}

SHORT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
LONG = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=10)

# Model-backed agents are advisory: two attempts at most, and a failure never fails the import.
MODEL_AGENTS_PATCH = "model-agents"
# A cancel that reaches a single running activity surfaces as its ActivityError; since this
# patch it ends the import as cancelled (before, it looked like a failed phase).
CANCEL_IN_ACTIVITY_PATCH = "cancel-in-activity"
# Enrichment prepared once per import (shared endpoints/assets/edges written before the
# parallel ranges), no whole-table ANALYZE, link ranges only where the category has them.
ENRICHMENT_PREPARE_PATCH = "enrichment-prepare"
# A failing chunk cancels its siblings and waits until they have stopped before the import
# waits for a decision; every retry starts a new config generation (saved, and carried by
# each chunk, whose writes PostgreSQL refuses once the import has moved on).
CHUNK_GENERATION_PATCH = "chunk-generation"
# Workflow input that fails the model ends the workflow as a classified failure (before, its
# first workflow task failed again and again).
INVALID_INPUT_PATCH = "invalid-input"
INVALID_INPUT_CODE = "invalid-workflow-input"
# An import with require_approval computes a plan after validation and waits in
# awaiting_approval for approve (enrichment runs) or reject (rejected). The flag is checked
# first: imports without it, and every history recorded before it, never meet the marker.
APPROVAL_GATE_PATCH = "approval-gate"
APPROVAL_TIMEOUT_CODE = "approval-timed-out"
REJECTED_CODE = "rejected-by-user"
PLAN_TIMEOUT = timedelta(hours=2)  # a dry run of the whole enrichment, in one transaction
# The bump waits for a chunk of the old generation that is still writing (a zombie whose
# cancellation never arrived): as long as a chunk may run.
GENERATION_BUMP_TIMEOUT = timedelta(minutes=35)
MODEL_AGENTS_TIMEOUT = timedelta(minutes=5)  # one model call (capped at 120 s) plus its DB work
# Since this patch a status change is recorded by a local activity (no round trip through the
# task queue), and an import of one row range enriches and links it in one activity: a 100-row
# import ran 13 activities in sequence, a round trip each.
LEAN_STEPS_PATCH = "lean-steps"
STATUS_TIMEOUT = timedelta(seconds=30)
ADVISORY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2)


def row_ranges(
    total_rows: int, chunk_size: int, max_chunks: int = MAX_CHUNKS_PER_PHASE
) -> list[RowRange]:
    """Contiguous 1-based ranges covering every staged row, at most max_chunks of them."""
    size = max(chunk_size, math.ceil(total_rows / max_chunks))
    return [
        RowRange(first_row=start, last_row=min(start + size - 1, total_rows))
        for start in range(1, total_rows + 1, size)
    ]


class NotApproved(Exception):
    """The plan was rejected or never answered: the import has finished without enrichment."""


class PhaseFailed(Exception):
    def __init__(self, failure: PhaseFailure) -> None:
        super().__init__(failure.error_message)
        self.failure = failure


@workflow.defn
class DataImportWorkflow:
    # The input is typed for every caller (an ImportRequest); a payload that fails the model
    # decodes as a dict instead (pydantic tries the model first) and is refused by run, as a
    # classified failure, instead of failing the decoder in every workflow task.
    @workflow.init
    def __init__(self, request: ImportRequest | dict[str, Any]) -> None:
        request, self._input_error = _parsed(request)
        self._request = request
        self._config = request.processing_config
        self._ref = ImportRef(
            data_import_id=request.data_import_id,
            client_account_id=request.client_account_id,
            engagement_id=request.engagement_id,
            category=request.category,
        )
        self._status = ImportStatus(
            data_import_id=request.data_import_id,
            workflow_id=workflow.info().workflow_id,
            category=request.category,
            filename=request.filename,
        )
        self._decision: RetryInput | FailInput | None = None
        # What the ingest validated while staging, until a retry asks for validation anew.
        self._validated_at_ingest: ChunkReport | None = None
        self._retried = False
        self._total_chunks = 0
        self._done_chunks = 0
        self._generation = 0  # config generation (patch chunk-generation)
        # The approval gate (patch approval-gate): the plan's counts, the decision on it.
        self._plan: PlanCounts | None = None
        self._approval: ApproveInput | RejectInput | None = None
        self._approved = False

    # ----- the process -------------------------------------------------------------------

    @workflow.run
    async def run(self, request: ImportRequest | dict[str, Any]) -> ImportStatus:
        # Only an invalid input meets the patch marker: valid ones replay unchanged.
        if self._input_error is not None and workflow.patched(INVALID_INPUT_PATCH):
            raise ApplicationError(
                f"invalid workflow input: {self._input_error}",
                type=INVALID_INPUT_CODE,
                non_retryable=True,
            )
        if self._input_error is not None:
            raise RuntimeError(self._input_error)  # (as before the patch: the task fails)
        try:
            await self._activity(
                FlowActivities.register_import,
                RegisterInput(request=self._request, workflow_id=self._status.workflow_id),
                retry=LONG,
            )
            phase = Phase.UPLOAD
            while True:
                try:
                    failure = await self._run_phases_from(phase)
                except NotApproved:
                    break
                if failure is None:
                    await self._complete()
                    break
                next_phase = await self._await_decision(failure)
                if next_phase is None:
                    break
                phase = next_phase
        except asyncio.CancelledError:
            await self._finish(ImportState.CANCELLED, CANCELLED_CODE, "import cancelled")
            raise
        except ActivityError as error:
            if not _cancelled_by_user(error):
                raise
            await self._finish(ImportState.CANCELLED, CANCELLED_CODE, "import cancelled")
            raise asyncio.CancelledError() from error
        return self._status

    async def _run_phases_from(self, phase: Phase) -> PhaseFailure | None:
        steps: list[tuple[Phase, Callable[[], Awaitable[None]]]] = [
            (Phase.UPLOAD, self._upload),
            (Phase.VALIDATION, self._validate),
            (Phase.ENRICHMENT, self._enrich),
        ]
        names = [name for name, _ in steps]
        for name, step in steps[names.index(phase) :]:
            try:
                await step()
            except PhaseFailed as failed:
                return failed.failure
            except ActivityError as error:
                if _cancelled_by_user(error):
                    raise asyncio.CancelledError() from error
                return _failure_from(name, error)
        return None

    async def _upload(self) -> None:
        await self._set_status(ImportState.INGESTING, Phase.UPLOAD)
        ingest = await self._activity(
            IngestActivities.ingest_file,
            self._request.model_copy(update={"processing_config": self._config}),
            timeout=timedelta(hours=6),
            heartbeat=self._heartbeat_timeout(),
            retry=LONG,
        )
        self._status.total_rows = ingest.total_rows
        self._status.blank_rows = ingest.blank_rows
        # Only an import never retried: a retry may bring a mapping the staged results predate.
        self._validated_at_ingest = None if self._retried else ingest.validation
        self._set_progress(Phase.UPLOAD, 1.0)
        flow_ids = await self._activity(
            FlowActivities.create_flows,
            CreateFlowsInput(ref=self._ref, filename=self._request.filename),
        )
        workflow.logger.info("flows created: master %s", flow_ids.master_flow_id)

    async def _validate(self) -> None:
        await self._set_status(ImportState.VALIDATING, Phase.VALIDATION)
        started = workflow.now()
        unmapped = await self._prepare_validation()
        # The flag first: imports whose ingest did not validate never meet the patch marker,
        # so histories recorded before it replay unchanged.
        staged = self._validated_at_ingest
        if staged is not None and workflow.patched(VALIDATED_AT_INGEST_PATCH):
            report = staged
        else:
            report = ChunkReport()
            chunk_reports = await self._over_chunks(
                ValidationActivities.validate_chunk, Phase.VALIDATION
            )
            for chunk_report in chunk_reports:
                report = report.plus(chunk_report)
        counts = await self._activity(
            ValidationActivities.finalize_validation,
            FinalizeValidationInput(
                ref=self._ref, unmapped_headers=unmapped, started_at=started, report=report
            ),
            timeout=timedelta(hours=1),
            heartbeat=self._heartbeat_timeout(),
        )
        self._apply_counts(counts)
        self._check_invalid_share(counts)

    async def _prepare_validation(self) -> list[str]:
        """Check the mapping. With model agents wanted, their advice comes before the chunks
        run, and before needs_attention when no column maps at all (where it helps most)."""
        try:
            unmapped = await self._activity(
                ValidationActivities.prepare_validation,
                PrepareInput(ref=self._ref, processing_config=self._config),
            )
        except ActivityError as error:
            if _error_code(error) == NO_MAPPED_COLUMNS and self._model_agents_wanted():
                advice = await self._ask_model_agents()
                raise PhaseFailed(
                    _with_advice(_failure_from(Phase.VALIDATION, error), advice)
                ) from None
            raise
        if unmapped and self._model_agents_wanted():
            await self._ask_model_agents()
        return unmapped

    def _model_agents_wanted(self) -> bool:
        # The flag first: an import without it never reaches the patch marker, so histories
        # recorded before model agents existed replay unchanged.
        return self._config.model_agents and workflow.patched(MODEL_AGENTS_PATCH)

    async def _ask_model_agents(self) -> ModelAgentsResult | None:
        """Advice only: the activity records each job as a step; its failure is just logged."""
        try:
            result = await self._activity(
                ModelAgentActivities.run_model_agents,
                ModelAgentsInput(ref=self._ref, processing_config=self._config),
                timeout=MODEL_AGENTS_TIMEOUT,
                heartbeat=self._heartbeat_timeout(),
                retry=ADVISORY,
            )
        except ActivityError as error:
            workflow.logger.warning("model agents failed, import goes on: %s", error.cause)
            return None
        workflow.logger.info("model agents: %s", result.outcomes)
        return result

    async def _enrich(self) -> None:
        await self._approval_gate()
        await self._set_status(ImportState.ENRICHING, Phase.ENRICHMENT)
        started = workflow.now()
        if workflow.patched(ENRICHMENT_PREPARE_PATCH):
            await self._enrich_prepared()
        else:
            await self._enrich_with_statistics()
        result = await self._activity(
            EnrichmentActivities.finalize_enrichment,
            FinalizeEnrichmentInput(ref=self._ref, started_at=started),
            timeout=timedelta(hours=1),
            heartbeat=self._heartbeat_timeout(),
        )
        self._status.assets_created = result.assets_created
        self._status.assets_updated = result.assets_updated
        self._status.dependencies_created = result.dependencies_created
        self._status.dependency_groups = result.dependency_groups
        self._status.processed_rows = result.processed_rows

    async def _enrich_prepared(self) -> None:
        plan = await self._activity(
            EnrichmentActivities.prepare_enrichment,
            self._ref,
            timeout=timedelta(hours=2),
            heartbeat=self._heartbeat_timeout(),
            retry=LONG,
        )
        if plan.link_chunks and workflow.patched(LEAN_STEPS_PATCH) and len(self._ranges()) == 1:
            await self._over_chunks(EnrichmentActivities.enrich_and_link_chunk, Phase.ENRICHMENT)
        elif plan.link_chunks:
            await self._over_chunks(
                EnrichmentActivities.enrich_chunk, Phase.ENRICHMENT, share=(0.0, 0.7)
            )
            # The link lookups need statistics that know the assets just written (only
            # where they are a large share of the table: cheap and rare for small imports).
            await self._activity(
                EnrichmentActivities.analyze_inventory,
                self._ref,
                timeout=timedelta(minutes=30),
                heartbeat=self._heartbeat_timeout(),
            )
            await self._over_chunks(
                EnrichmentActivities.link_chunk, Phase.ENRICHMENT, share=(0.7, 0.3)
            )
        else:
            await self._over_chunks(EnrichmentActivities.enrich_chunk, Phase.ENRICHMENT)

    async def _enrich_with_statistics(self) -> None:
        """The command sequence of imports recorded before ENRICHMENT_PREPARE_PATCH."""
        await self._activity(
            EnrichmentActivities.refresh_statistics,
            self._ref,
            timeout=timedelta(minutes=30),
            heartbeat=self._heartbeat_timeout(),
        )
        await self._over_chunks(
            EnrichmentActivities.enrich_chunk, Phase.ENRICHMENT, share=(0.0, 0.7)
        )
        await self._activity(
            EnrichmentActivities.refresh_statistics,
            self._ref,
            timeout=timedelta(minutes=30),
            heartbeat=self._heartbeat_timeout(),
        )
        await self._over_chunks(EnrichmentActivities.link_chunk, Phase.ENRICHMENT, share=(0.7, 0.3))

    async def _complete(self) -> None:
        rejected_some = bool(self._status.invalid_rows)
        status = ImportState.COMPLETED_WITH_ERRORS if rejected_some else ImportState.COMPLETED
        self._status.progress = 1.0
        await self._finish(status, None, None)

    # ----- decisions: awaiting_approval, approve, reject ----------------------------------

    async def _approval_gate(self) -> None:
        """With require_approval, before enrichment's first write: plan, then wait for a
        decision. Returns once approved; raises NotApproved after finishing rejected or failed.
        A retry of a failed enrichment does not ask again: the plan was approved."""
        if self._approved or not (
            self._config.require_approval and workflow.patched(APPROVAL_GATE_PATCH)
        ):
            return
        self._plan = await self._activity(
            ApprovalActivities.plan_enrichment,
            self._ref,
            timeout=PLAN_TIMEOUT,
            heartbeat=self._heartbeat_timeout(),
            retry=LONG,
        )
        self._approval = None
        await self._set_status(ImportState.AWAITING_APPROVAL, Phase.VALIDATION)
        try:
            await workflow.wait_condition(
                lambda: self._approval is not None,
                timeout=timedelta(seconds=self._config.attention_timeout_seconds),
            )
        except TimeoutError:
            message = f"no approval within {self._config.attention_timeout_seconds:.0f}s"
            await self._finish(ImportState.FAILED, APPROVAL_TIMEOUT_CODE, message)
            raise NotApproved() from None
        decision = self._approval
        if isinstance(decision, RejectInput):
            await self._finish(ImportState.REJECTED, REJECTED_CODE, decision.reason)
            raise NotApproved()
        self._approved = True

    @workflow.signal
    def approve(self, data: ApproveInput) -> None:
        if self._approval_refusal("approved") is None:
            self._approval = data

    @workflow.signal
    def reject(self, data: RejectInput) -> None:
        if self._approval_refusal("rejected") is None:
            self._approval = data

    @workflow.update
    def approve_import(self, data: ApproveInput) -> ImportStatus:
        self._approval = data
        return self._status

    @approve_import.validator
    def _accept_approve(self, data: ApproveInput) -> None:
        refused = self._approval_refusal("approved")
        if refused is not None:
            raise ValueError(refused)

    @workflow.update
    def reject_import(self, data: RejectInput) -> ImportStatus:
        self._approval = data
        return self._status

    @reject_import.validator
    def _accept_reject(self, data: RejectInput) -> None:
        refused = self._approval_refusal("rejected")
        if refused is not None:
            raise ValueError(refused)
        if not data.reason.strip():
            raise ValueError("a reason is required")

    def _approval_refusal(self, action: str) -> str | None:
        if self._status.status != ImportState.AWAITING_APPROVAL or self._approval is not None:
            return (
                f"import is {self._status.status}; only an import awaiting approval can be {action}"
            )
        return None

    # ----- decisions: needs_attention, retry, fail ---------------------------------------

    async def _await_decision(self, failure: PhaseFailure) -> Phase | None:
        """Park in needs_attention; return the phase to re-run, or None after finishing failed."""
        self._status.error_code = failure.error_code
        self._status.error_message = failure.error_message
        await self._set_status(ImportState.NEEDS_ATTENTION, Phase(failure.phase))
        self._decision = None
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None,
                timeout=timedelta(seconds=self._config.attention_timeout_seconds),
            )
        except TimeoutError:
            message = f"no decision within {self._config.attention_timeout_seconds:.0f}s"
            await self._finish(ImportState.FAILED, ATTENTION_TIMEOUT_CODE, message)
            return None
        decision = self._decision
        if isinstance(decision, FailInput):
            await self._finish(ImportState.FAILED, FAILED_BY_USER_CODE, decision.reason)
            return None
        assert isinstance(decision, RetryInput)
        self._retried = True
        self._validated_at_ingest = None  # a retry validates from staging, whatever changed
        self._status.decision_refused = None
        if decision.processing_config is not None:
            merged = {**self._config.model_dump(), **decision.processing_config}
            self._config = ProcessingConfig.model_validate(merged)  # checked on arrival
        if workflow.patched(CHUNK_GENERATION_PATCH):
            # Every retry (new config or not): chunks of the old run must not write any more.
            self._generation += 1
            await self._activity(
                CompletionActivities.save_processing_config,
                SaveConfigInput(
                    ref=self._ref, processing_config=self._config, generation=self._generation
                ),
                timeout=GENERATION_BUMP_TIMEOUT,
                retry=LONG,
            )
        elif decision.processing_config is not None:
            await self._activity(
                CompletionActivities.save_processing_config,
                SaveConfigInput(ref=self._ref, processing_config=self._config),
            )
        self._status.error_code = None
        self._status.error_message = None
        return Phase(failure.phase)

    @workflow.signal
    def retry(self, data: RetryInput) -> None:
        if self._status.status != ImportState.NEEDS_ATTENTION:
            return
        refused = self._config_refusal(data)
        if refused is not None:
            # A signal cannot answer: the reason goes to the status, the details and the log,
            # and the import keeps waiting (raising here would fail every workflow task).
            self._status.decision_refused = f"retry ignored: {refused}"
            workflow.logger.warning("retry signal ignored: %s", refused)
            self._show_details()
            return
        self._decision = data

    @workflow.signal
    def fail(self, data: FailInput) -> None:
        if self._status.status == ImportState.NEEDS_ATTENTION:
            self._decision = data

    # Updates: the same decisions, but the caller learns at once whether they were accepted.

    @workflow.update
    def retry_import(self, data: RetryInput) -> ImportStatus:
        self._decision = data
        return self._status

    @retry_import.validator
    def _accept_retry(self, data: RetryInput) -> None:
        self._require_waiting("retried")
        refused = self._config_refusal(data)
        if refused is not None:
            raise ValueError(refused)  # a bad config is refused, not stored

    def _config_refusal(self, data: RetryInput) -> str | None:
        """Why the retry's processing_config is refused (merged over the current one)."""
        if data.processing_config is None:
            return None
        try:
            ProcessingConfig.model_validate({**self._config.model_dump(), **data.processing_config})
        except ValidationError as error:
            return f"invalid processing config: {_brief(error)}"
        return None

    @workflow.update
    def fail_import(self, data: FailInput) -> ImportStatus:
        self._decision = data
        return self._status

    @fail_import.validator
    def _accept_fail(self, data: FailInput) -> None:
        self._require_waiting("failed")
        if not data.reason.strip():
            raise ValueError("a reason is required")

    def _require_waiting(self, action: str) -> None:
        if self._status.status != ImportState.NEEDS_ATTENTION or self._decision is not None:
            raise ValueError(
                f"import is {self._status.status}; only an import that needs attention "
                f"can be {action}"
            )

    @workflow.query
    def status(self) -> ImportStatus:
        return self._status

    # ----- helpers ------------------------------------------------------------------------

    async def _over_chunks(
        self,
        method: Callable[[Any, ChunkInput], Awaitable[R]],
        phase: Phase,
        share: tuple[float, float] = (0.0, 1.0),
    ) -> list[R]:
        """Run one activity per row range with bounded parallelism, tracking progress."""
        ranges = self._ranges()
        limit = asyncio.Semaphore(self._config.max_parallel_chunks)
        guarded = workflow.patched(CHUNK_GENERATION_PATCH)
        done = 0

        async def one(rows: RowRange) -> R:
            nonlocal done
            async with limit:
                result = await self._activity(
                    method,
                    ChunkInput(
                        ref=self._ref,
                        rows=rows,
                        processing_config=self._config,
                        generation=self._generation if guarded else None,
                    ),
                    timeout=timedelta(minutes=30),
                    heartbeat=self._heartbeat_timeout(),
                    retry=LONG,
                    cancellation=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                    if guarded
                    else ActivityCancellationType.TRY_CANCEL,
                )
            done += 1
            self._set_progress(phase, share[0] + share[1] * done / max(len(ranges), 1))
            return result

        if not guarded:
            return list(await asyncio.gather(*(one(rows) for rows in ranges)))
        chunks = [asyncio.ensure_future(one(rows)) for rows in ranges]
        try:
            return list(await asyncio.gather(*chunks))
        except BaseException:
            # gather leaves the other chunks running: stop them, and wait until each has
            # stopped (or finished), so nothing of this run is still writing afterwards.
            for chunk in chunks:
                chunk.cancel()
            await asyncio.gather(*chunks, return_exceptions=True)
            raise

    def _ranges(self) -> list[RowRange]:
        cap = FEWER_CHUNKS if workflow.patched(FEWER_CHUNKS_PATCH) else MAX_CHUNKS_PER_PHASE
        return row_ranges(self._status.total_rows, self._config.chunk_size, cap)

    async def _activity(
        self,
        method: Callable[[Any, A], Awaitable[R]],
        arg: A,
        *,
        timeout: timedelta = timedelta(minutes=2),
        heartbeat: timedelta | None = None,
        retry: RetryPolicy = SHORT,
        cancellation: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    ) -> R:
        """One activity by method reference: its type name and result type come from the
        method's definition; the Web UI summary names it and the file."""
        return await workflow.execute_activity_method(
            method,
            arg,
            start_to_close_timeout=timeout,
            heartbeat_timeout=heartbeat,
            retry_policy=retry,
            cancellation_type=cancellation,
            summary=f"{method.__name__} · {self._request.filename}",
        )

    def _heartbeat_timeout(self) -> timedelta:
        return timedelta(seconds=self._config.heartbeat_timeout_seconds)

    def _apply_counts(self, counts: ValidationCounts) -> None:
        self._status.valid_rows = counts.valid_rows
        self._status.invalid_rows = counts.invalid_rows
        self._status.blank_rows = counts.blank_rows
        self._status.warning_rows = counts.warning_rows

    def _check_invalid_share(self, counts: ValidationCounts) -> None:
        checked = counts.valid_rows + counts.invalid_rows
        if counts.valid_rows == 0:
            raise PhaseFailed(
                PhaseFailure(
                    phase=Phase.VALIDATION,
                    error_code=NO_VALID_ROWS,
                    error_message=f"none of the {checked} data rows is valid; see the error report",
                )
            )
        share = counts.invalid_rows / checked
        if share > self._config.max_invalid_ratio:
            raise PhaseFailed(
                PhaseFailure(
                    phase=Phase.VALIDATION,
                    error_code=TOO_MANY_INVALID,
                    error_message=(
                        f"{counts.invalid_rows} of {checked} rows are invalid ({share:.0%}), "
                        f"above max_invalid_ratio {self._config.max_invalid_ratio:.0%}"
                    ),
                )
            )

    def _set_progress(self, phase: Phase, fraction: float) -> None:
        start, weight = PHASE_WEIGHTS[phase]
        self._status.progress = round(start + weight * min(fraction, 1.0), 4)
        self._show_details()

    async def _set_status(self, status: ImportState, phase: Phase) -> None:
        """Record first, then show: a query never reports a status the database lacks."""
        changed = self._status.model_copy(update={"status": status, "phase": phase})
        update = self._status_update(changed)
        if workflow.patched(LEAN_STEPS_PATCH):
            await workflow.execute_local_activity_method(
                CompletionActivities.record_status,
                update,
                start_to_close_timeout=STATUS_TIMEOUT,
                retry_policy=SHORT,
                summary=f"record_status · {self._request.filename}",
            )
        else:
            await self._activity(CompletionActivities.record_status, update)
        self._status.status, self._status.phase = status, phase
        self._upsert_status_attribute()
        self._show_details()

    async def _finish(self, status: ImportState, code: str | None, message: str | None) -> None:
        if code is not None:
            self._status.error_code = code
            self._status.error_message = message
        finished = status in (ImportState.COMPLETED, ImportState.COMPLETED_WITH_ERRORS)
        await self._set_status(status, Phase.COMPLETE if finished else Phase(self._status.phase))

    def _status_update(self, s: ImportStatus) -> StatusUpdate:
        return StatusUpdate(
            ref=self._ref,
            status=s.status,
            phase=s.phase,
            error_code=s.error_code,
            error_message=s.error_message,
            counters={"processed_rows": s.processed_rows} if s.phase == Phase.COMPLETE else {},
            summary={
                "outcome": {
                    "assets_created": s.assets_created,
                    "assets_updated": s.assets_updated,
                    "dependencies_created": s.dependencies_created,
                    "dependency_groups": s.dependency_groups,
                }
            }
            if s.phase == Phase.COMPLETE
            else {},
        )

    def _upsert_status_attribute(self) -> None:
        # Only imports started with our search attributes have them registered to update.
        if IMPORT_ID_KEY in workflow.info().typed_search_attributes:
            workflow.upsert_search_attributes([STATUS_KEY.value_set(self._status.status)])

    def _show_details(self) -> None:
        s = self._status
        lines = [
            f"**{s.status}** · phase {s.phase} · {s.progress:.0%}",
            f"rows {s.total_rows} · valid {s.valid_rows} · invalid {s.invalid_rows}",
        ]
        if s.assets_created or s.assets_updated:
            lines.append(f"assets +{s.assets_created} / ~{s.assets_updated}")
        if self._plan is not None and s.status == ImportState.AWAITING_APPROVAL:
            p = self._plan
            lines.append(
                f"plan: assets +{p.assets_to_create} / ~{p.assets_to_update} · "
                f"dependencies +{p.dependencies_to_add} · approve or reject"
            )
        if s.error_code:
            lines.append(f"error {s.error_code}: {s.error_message}")
        if s.decision_refused:
            lines.append(s.decision_refused)
        workflow.set_current_details("\n\n".join(lines))


def _parsed(request: ImportRequest | dict[str, Any]) -> tuple[ImportRequest, str | None]:
    """The request, or a stand-in and the reason when the input fails the model."""
    if isinstance(request, ImportRequest):
        return request, None
    try:
        return ImportRequest.model_validate(request), None
    except ValidationError as error:
        unknown = uuid.UUID(int=0)
        stand_in = ImportRequest(
            data_import_id=unknown,
            client_account_id=unknown,
            engagement_id=unknown,
            category="unknown",
            file_uri="",
            filename="",
        )
        return stand_in, _brief(error)


def _brief(error: ValidationError) -> str:
    """pydantic's reasons, one line each, without the input values (they may be anything)."""
    reasons = [
        f"{'.'.join(str(part) for part in item['loc']) or 'input'}: {item['msg']}"
        for item in error.errors(include_url=False, include_input=False)[:5]
    ]
    return "; ".join(reasons)[:1000]


def _cancelled_by_user(error: ActivityError) -> bool:
    # The cause is checked first: only a cancelled import meets the patch marker, so older
    # histories (where this fell through to needs_attention) replay unchanged.
    return isinstance(error.cause, CancelledError) and workflow.patched(CANCEL_IN_ACTIVITY_PATCH)


def _error_code(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _with_advice(failure: PhaseFailure, advice: ModelAgentsResult | None) -> PhaseFailure:
    """The failure message plus the model's column_mapping suggestion, if it made one."""
    if advice is None or not advice.suggested_column_mapping:
        return failure
    mapping = json.dumps(advice.suggested_column_mapping)
    message = f"{failure.error_message} A model suggests (advisory, check it first): {mapping}"
    return failure.model_copy(update={"error_message": message})


def _failure_from(phase: Phase, error: ActivityError) -> PhaseFailure:
    """Classified failures keep their code; anything else is an internal error, briefly put."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable and cause.type:
        return PhaseFailure(phase=phase, error_code=cause.type, error_message=cause.message)
    kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
    detail = (str(cause.message if isinstance(cause, ApplicationError) else cause) or "").strip()
    first_line = detail.splitlines()[0][:300] if detail else "no detail"
    return PhaseFailure(
        phase=phase,
        error_code="internal-error",
        error_message=f"{phase} failed after retries ({kind}): {first_line}",
    )


__all__: Sequence[str] = ["DataImportWorkflow", "row_ranges"]
