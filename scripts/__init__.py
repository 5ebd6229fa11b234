"""Maintenance scripts (run with `.venv/bin/python -m scripts.<name>`)."""
