"""The application service: what the CLI, the HTTP API and the console call (Temporal's client)."""
