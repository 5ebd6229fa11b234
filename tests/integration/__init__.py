"""Integration tests: real PostgreSQL and/or a real Temporal server, in-process workers."""
