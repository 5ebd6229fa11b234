"""The approval gate's workflow logic on the time-skipping test server, with stub activities.

Approve, reject, an unanswered plan, a cancel while waiting and the Updates' refusals, in
milliseconds of wall time: the stubs only record what the workflow asks of them. What the
real activities do (the plan, the inventory) is tests/test_approval.py's.
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import CancelledError

from dataimport.contracts import ApproveInput, FailInput, RejectInput, RetryInput
from tests.workflow_stubs import Run, reached, run, time_skipping
from workflows.data_import import APPROVAL_TIMEOUT_CODE, REJECTED_CODE, DataImportWorkflow

__all__ = ["run", "time_skipping"]  # the fixtures this module uses


async def test_approved_plan_runs_enrichment_to_completed(run: Run) -> None:
    handle = await run.start(require_approval=True)
    waiting = await reached(handle, "awaiting_approval")
    assert waiting.phase == "validation" and waiting.assets_created == 0
    assert "plan_enrichment" in run.stubs.called
    assert "prepare_enrichment" not in run.stubs.called  # nothing written before the decision
    answer = await handle.execute_update(DataImportWorkflow.approve_import, ApproveInput())
    assert answer.status == "awaiting_approval"  # as the workflow saw it when it accepted
    final = await handle.result()
    assert final.status == "completed" and final.assets_created == 3
    assert run.stubs.status_names() == [
        "ingesting",
        "validating",
        "awaiting_approval",
        "enriching",
        "completed",
    ]
    assert run.stubs.called.index("plan_enrichment") < run.stubs.called.index("enrich_chunk")


async def test_approve_signal_works_like_the_update(run: Run) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    await handle.signal(DataImportWorkflow.approve, ApproveInput())
    assert (await handle.result()).status == "completed"


async def test_rejected_plan_ends_rejected_without_enrichment(run: Run) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    await handle.execute_update(
        DataImportWorkflow.reject_import, RejectInput(reason="wrong estate")
    )
    final = await handle.result()
    assert final.status == "rejected" and final.is_terminal
    assert (final.error_code, final.error_message) == (REJECTED_CODE, "wrong estate")
    assert "enrich_chunk" not in run.stubs.called
    assert "prepare_enrichment" not in run.stubs.called
    last = run.stubs.statuses[-1]
    assert (last.status, last.phase, last.error_code) == ("rejected", "validation", REJECTED_CODE)


async def test_reject_signal_ends_rejected(run: Run) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    await handle.signal(DataImportWorkflow.reject, RejectInput(reason="not now"))
    assert (await handle.result()).status == "rejected"
    assert "enrich_chunk" not in run.stubs.called


async def test_an_unanswered_plan_fails_after_the_attention_timeout(run: Run) -> None:
    handle = await run.start(require_approval=True, attention_timeout_seconds=3 * 24 * 3600)
    final = await handle.result()  # the test server skips the three days
    assert final.status == "failed" and final.error_code == APPROVAL_TIMEOUT_CODE
    assert "259200s" in (final.error_message or "")
    assert run.stubs.status_names()[-2:] == ["awaiting_approval", "failed"]
    assert "enrich_chunk" not in run.stubs.called


async def test_cancel_while_awaiting_approval_ends_cancelled(run: Run) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert run.stubs.status_names()[-2:] == ["awaiting_approval", "cancelled"]
    assert "enrich_chunk" not in run.stubs.called


async def test_updates_refuse_when_not_awaiting_approval(run: Run) -> None:
    run.stubs.valid_rows = 0  # no valid row: needs_attention, not a plan
    handle = await run.start(require_approval=True)
    await reached(handle, "needs_attention")
    with pytest.raises(WorkflowUpdateFailedError) as approve:
        await handle.execute_update(DataImportWorkflow.approve_import, ApproveInput())
    with pytest.raises(WorkflowUpdateFailedError) as reject:
        await handle.execute_update(DataImportWorkflow.reject_import, RejectInput(reason="no"))
    for refused in (approve, reject):
        assert "only an import awaiting approval" in str(refused.value.cause)
        assert "needs_attention" in str(refused.value.cause)
    # A signal that does not fit is ignored: the import still waits for retry or fail.
    await handle.signal(DataImportWorkflow.approve, ApproveInput())
    assert (await handle.query(DataImportWorkflow.status)).status == "needs_attention"
    await handle.execute_update(DataImportWorkflow.fail_import, FailInput(reason="bad file"))
    assert (await handle.result()).status == "failed"
    assert "plan_enrichment" not in run.stubs.called


async def test_awaiting_approval_refuses_retry_a_blank_reason_and_a_second_decision(
    run: Run,
) -> None:
    handle = await run.start(require_approval=True)
    await reached(handle, "awaiting_approval")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(DataImportWorkflow.retry_import, RetryInput())
    assert "only an import that needs attention" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as blank:
        await handle.execute_update(DataImportWorkflow.reject_import, RejectInput(reason="  "))
    assert "a reason is required" in str(blank.value.cause)
    await handle.execute_update(DataImportWorkflow.approve_import, ApproveInput())
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await handle.execute_update(
            DataImportWorkflow.reject_import, RejectInput(reason="changed my mind")
        )
    assert "only an import awaiting approval" in str(again.value.cause)
    assert (await handle.result()).status == "completed"


async def test_without_require_approval_no_plan_and_no_wait(run: Run) -> None:
    handle = await run.start()
    assert (await handle.result()).status == "completed"
    assert "plan_enrichment" not in run.stubs.called
    assert "awaiting_approval" not in run.stubs.status_names()
