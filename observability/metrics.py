"""Import counters, recorded by activities through the Temporal metric meter.

They are served on the worker's Prometheus endpoint (observability.telemetry) beside the SDK's
temporal_* metrics, and are no-ops when metrics are off. Besides the labels below, each
series carries the activity's namespace, task_queue and activity_type.

Semantics: a counter moves only after the database change it counts has committed, by the
worker that committed it. Counters live in the worker process, so a crashed worker's counts
go with it, and the attempt that redoes its work counts that work again. A retry of a
committed change can count twice only when the attempt's result never reached Temporal
(worker gone after the commit, or a timeout just then); imports_finished never does.
"""

from __future__ import annotations

from temporalio import activity

from dataimport.contracts import ValidationCounts

IMPORTS_FINISHED = "dataimport_imports_finished_total"
ROWS_STAGED = "dataimport_rows_staged_total"
ROWS_VALIDATED = "dataimport_rows_validated_total"
ASSETS_WRITTEN = "dataimport_assets_written_total"
DEPENDENCIES_WRITTEN = "dataimport_dependencies_written_total"

DESCRIPTIONS = {
    IMPORTS_FINISHED: "Imports that reached a terminal status (completed, "
    "completed_with_errors, failed, cancelled)",
    ROWS_STAGED: "Rows copied from uploaded files into the staging table",
    ROWS_VALIDATED: "Staged rows validated, by outcome (valid, invalid, blank)",
    ASSETS_WRITTEN: "Assets created or updated from valid rows",
    DEPENDENCIES_WRITTEN: "Asset dependencies created or updated",
}


def _add(name: str, value: int, **labels: str) -> None:
    # The meter keeps one instrument per name: creating it again is a cheap lookup.
    counter = activity.metric_meter().create_counter(name, DESCRIPTIONS[name])
    counter.add(max(value, 0), labels)


def rows_staged(category: str, rows: int) -> None:
    _add(ROWS_STAGED, rows, category=category)


def rows_validated(category: str, counts: ValidationCounts) -> None:
    _add(ROWS_VALIDATED, counts.valid_rows, category=category, outcome="valid")
    _add(ROWS_VALIDATED, counts.invalid_rows, category=category, outcome="invalid")
    _add(ROWS_VALIDATED, counts.blank_rows, category=category, outcome="blank")


def assets_written(category: str, assets: int) -> None:
    _add(ASSETS_WRITTEN, assets, category=category)


def dependencies_written(category: str, dependencies: int) -> None:
    _add(DEPENDENCIES_WRITTEN, dependencies, category=category)


def import_finished(category: str, status: str) -> None:
    _add(IMPORTS_FINISHED, 1, category=category, status=status)
