"""Decisions on an import that needs attention, on the time-skipping test server with stub
activities: retry (Update and signal, with a new config), fail, an unanswered wait, a cancel
(while waiting, or while an activity runs), and decisions the workflow refuses. What the real
activities do on a retry is tests/integration/test_workflow_paths.py's."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import CancelledError

from dataimport.contracts import FailInput, RetryInput
from tests.workflow_stubs import Run, reached, run, time_skipping
from workflows.data_import import ATTENTION_TIMEOUT_CODE, DataImportWorkflow

__all__ = ["run", "time_skipping"]  # the fixtures this module uses

TOO_FEW_VALID = 4  # of 10 rows: 60 % invalid, above the default max_invalid_ratio 50 %


async def test_retry_update_with_a_new_config_revalidates_and_completes(run: Run) -> None:
    run.stubs.valid_rows = TOO_FEW_VALID
    handle = await run.start()
    waiting = await reached(handle, "needs_attention")
    assert (waiting.phase, waiting.error_code) == ("validation", "too-many-invalid-rows")
    assert "6 of 10 rows are invalid" in (waiting.error_message or "")
    assert "validate_chunk" not in run.stubs.called  # validated at ingest the first time

    run.stubs.valid_rows = 10  # what the new mapping would make of the staged rows
    answer = await handle.execute_update(
        DataImportWorkflow.retry_import,
        RetryInput(processing_config={"column_mapping": {"Server": "name"}}),
    )
    assert answer.status == "needs_attention"  # as the workflow saw it when it accepted
    final = await handle.result()
    assert final.status == "completed" and final.error_code is None
    assert run.stubs.called.count("save_processing_config") == 1  # the config, with its generation
    assert "validate_chunk" in run.stubs.called  # a retry validates from staging
    names = run.stubs.status_names()
    assert names[names.index("needs_attention") :] == [
        "needs_attention",
        "validating",
        "enriching",
        "completed",
    ]


async def test_retry_signal_works_like_the_update(run: Run) -> None:
    run.stubs.valid_rows = TOO_FEW_VALID
    handle = await run.start()
    await reached(handle, "needs_attention")
    run.stubs.valid_rows = 10
    await handle.signal(DataImportWorkflow.retry, RetryInput())
    assert (await handle.result()).status == "completed"


async def test_fail_update_ends_failed_with_the_reason(run: Run) -> None:
    run.stubs.valid_rows = TOO_FEW_VALID
    handle = await run.start()
    await reached(handle, "needs_attention")
    with pytest.raises(WorkflowUpdateFailedError) as blank:  # refused, the import waits on
        await handle.execute_update(DataImportWorkflow.fail_import, FailInput(reason="  "))
    assert "a reason is required" in str(blank.value.cause)
    assert (await handle.query(DataImportWorkflow.status)).status == "needs_attention"
    answer = await handle.execute_update(
        DataImportWorkflow.fail_import, FailInput(reason="wrong file")
    )
    assert answer.status == "needs_attention"  # accepted at once; the workflow then finishes
    final = await handle.result()
    assert (final.status, final.error_code, final.error_message) == (
        "failed",
        "failed-by-user",
        "wrong file",
    )
    assert "enrich_chunk" not in run.stubs.called


async def test_an_unanswered_wait_fails_after_the_attention_timeout(run: Run) -> None:
    run.stubs.valid_rows = TOO_FEW_VALID
    handle = await run.start(attention_timeout_seconds=5 * 24 * 3600)
    final = await handle.result()  # the test server skips the five days
    assert (final.status, final.error_code) == ("failed", ATTENTION_TIMEOUT_CODE)
    assert run.stubs.status_names()[-2:] == ["needs_attention", "failed"]
    recorded = run.stubs.statuses[-1]  # what the three records are given
    assert (recorded.phase, recorded.error_code) == ("validation", ATTENTION_TIMEOUT_CODE)
    assert recorded.error_message == "no decision within 432000s"


async def test_cancel_while_needing_attention_ends_cancelled(run: Run) -> None:
    run.stubs.valid_rows = TOO_FEW_VALID
    handle = await run.start()
    await reached(handle, "needs_attention")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert run.stubs.status_names()[-2:] == ["needs_attention", "cancelled"]


async def test_a_cancel_while_an_activity_runs_ends_cancelled_not_needs_attention(
    run: Run,
) -> None:
    run.stubs.ingest_runs_until_cancelled = True
    handle = await run.start(heartbeat_timeout_seconds=1)  # the stub learns of the cancel soon
    await reached(handle, "ingesting")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert run.stubs.status_names() == ["ingesting", "cancelled"]
    cancelled = run.stubs.statuses[-1]
    assert (cancelled.phase, cancelled.error_code) == ("upload", "cancelled")
    for _ in range(200):  # the activity learns it with its next heartbeat
        if "ingest_file cancelled" in run.stubs.called:
            break
        await asyncio.sleep(0.02)
    assert "ingest_file cancelled" in run.stubs.called


async def test_a_retry_signal_with_a_refused_config_is_ignored_and_says_why(run: Run) -> None:
    run.stubs.valid_rows = TOO_FEW_VALID
    handle = await run.start()
    await reached(handle, "needs_attention")
    await handle.signal(
        DataImportWorkflow.retry, RetryInput(processing_config={"max_invalid_ratio": 7})
    )
    status = await handle.query(DataImportWorkflow.status)
    for _ in range(200):  # the signal is handled in the next workflow task
        if status.decision_refused:
            break
        status = await handle.query(DataImportWorkflow.status)
    assert status.status == "needs_attention"
    assert (status.decision_refused or "").startswith("retry ignored: ")
    assert "max_invalid_ratio" in (status.decision_refused or "")
    with pytest.raises(WorkflowUpdateFailedError) as refused:  # the Update answers outright
        await handle.execute_update(
            DataImportWorkflow.retry_import, RetryInput(processing_config={"max_invalid_ratio": 7})
        )
    assert "max_invalid_ratio" in str(refused.value.cause)
    await handle.execute_update(DataImportWorkflow.fail_import, FailInput(reason="given up"))
    assert (await handle.result()).status == "failed"
