"""One line per event, with the import id and tenant when known: readable text or JSON.

DATAIMPORT_LOG_FORMAT=json writes one JSON object per line (ts, level, logger, message and
the context fields below), ready for a log shipper. The context comes from the activity
interceptor (observability.log_context) and, for workflow.logger / activity.logger lines, from
the `temporal_workflow` / `temporal_activity` extras the SDK attaches.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow

from observability import log_context

CONTEXT_FIELDS = (
    "data_import_id",
    "client_account_id",
    "engagement_id",
    "category",
    "workflow_id",
    "activity",
)


def context_of(record: logging.LogRecord) -> dict[str, str]:
    """The context fields known for a record, in CONTEXT_FIELDS order, unknown ones left out."""
    found: dict[str, str] = dict(log_context.current())
    workflow_info = getattr(record, "temporal_workflow", None)
    if isinstance(workflow_info, dict):
        found.setdefault("workflow_id", str(workflow_info.get("workflow_id", "")))
    activity_info = getattr(record, "temporal_activity", None)
    if isinstance(activity_info, dict):
        found.setdefault("workflow_id", str(activity_info.get("workflow_id") or ""))
        found.setdefault("activity", str(activity_info.get("activity_type", "")))
    import_id = log_context.import_id_of_workflow(found.get("workflow_id", ""))
    if import_id:
        found.setdefault("data_import_id", import_id)
    return {name: found[name] for name in CONTEXT_FIELDS if found.get(name)}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context_of(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = context_of(record)
        if not context:
            return line
        return line + " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]"


def configure_logging(level: str | None = None, log_format: str | None = None) -> None:
    """Root logging for a worker or CLI process; `log_format` is "text" (default) or "json"."""
    log_format = (log_format or os.environ.get("DATAIMPORT_LOG_FORMAT", "text")).lower()
    level = (level or os.environ.get("DATAIMPORT_LOG_LEVEL", "INFO")).upper()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    # The SDK's internals only when they warn; workflow.logger and activity.logger are ours.
    logging.getLogger("temporalio").setLevel(logging.WARNING)
    logging.getLogger("temporalio.workflow").setLevel(level)
    logging.getLogger("temporalio.activity").setLevel(level)
    logging.captureWarnings(True)  # Python warnings become log lines too (JSON stays JSON)
    # Our formatters add the ids; the SDK's own dict suffix on the message would repeat them.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
