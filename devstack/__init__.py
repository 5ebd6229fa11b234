"""The embedded development stack: PostgreSQL and the Temporal dev server, run by the project."""
