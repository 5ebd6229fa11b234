"""The worker's telemetry: its Temporal runtime and optional OpenTelemetry tracing.

- Metrics: with DATAIMPORT_METRICS_BIND the runtime serves Prometheus on
  http://<bind>/metrics: the SDK's temporal_* metrics and the import counters of
  observability.metrics, which activities record through the same meter.
- Core logs: the SDK's Rust core logs through Python logging (logger `temporalio.core`), so
  they share the worker's log format instead of writing their own lines to stderr.
- Tracing: with DATAIMPORT_OTEL_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT) spans go over
  OTLP/HTTP; the client gets temporalio's TracingInterceptor, which the worker inherits.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from dataimport.settings import Settings

SERVICE_NAME = "dataimport-worker"
TRACES_PATH = "/v1/traces"


@dataclass
class WorkerTelemetry:
    """What the worker's client is built with, and what must be flushed on the way out."""

    runtime: Runtime
    tracer_provider: TracerProvider | None = None
    interceptors: list[Interceptor] = field(default_factory=list)

    def shutdown(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()  # exports the spans still buffered


def build_runtime(metrics_bind: str | None) -> Runtime:
    metrics = PrometheusConfig(bind_address=metrics_bind) if metrics_bind else None
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    return Runtime(telemetry=TelemetryConfig(metrics=metrics, logging=logging_config))


def traces_url(endpoint: str) -> str:
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL; the exporter wants the signal's own URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def build_tracer_provider(processor: SpanProcessor) -> TracerProvider:
    service = os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(processor)
    return provider


def tracing_interceptor(provider: TracerProvider) -> TracingInterceptor:
    # Imports are mostly started without a traced client (CLI, API): still give each
    # workflow run its own span, so an import's activities form one trace.
    return TracingInterceptor(provider.get_tracer("dataimport"), always_create_workflow_spans=True)


def worker_telemetry(
    settings: Settings, span_exporter: SpanExporter | None = None
) -> WorkerTelemetry:
    """Runtime and interceptors from the settings; `span_exporter` overrides the OTLP one."""
    telemetry = WorkerTelemetry(runtime=build_runtime(settings.metrics_bind))
    if span_exporter is None and settings.otel_endpoint:
        span_exporter = OTLPSpanExporter(endpoint=traces_url(settings.otel_endpoint))
    if span_exporter is not None:
        provider = build_tracer_provider(BatchSpanProcessor(span_exporter))
        telemetry.tracer_provider = provider
        telemetry.interceptors.append(tracing_interceptor(provider))
    return telemetry
