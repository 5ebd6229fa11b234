"""The worker's observability: Prometheus metrics, OpenTelemetry tracing, structured logs."""
