"""Unit tests: no services, no subprocesses."""
