"""The Temporal client connection: the one place that knows the data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from dataimport.settings import Settings
from observability.telemetry import WorkerTelemetry


async def connect_client(settings: Settings, telemetry: WorkerTelemetry | None = None) -> Client:
    """A client; with `telemetry`, on its runtime (metrics) and with its tracing interceptor."""
    return await Client.connect(
        settings.resolved_temporal_address(),
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=telemetry.runtime if telemetry else None,
        interceptors=telemetry.interceptors if telemetry else [],
    )
