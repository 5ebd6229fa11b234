"""The columnar validation engine: a chunk of staged rows as one polars frame.

A category's rules and the agents are vectorised over whole columns; exact Python checks run
only on the distinct values a cheap vectorised pre-filter could not settle ("candidates"), so
a chunk costs a handful of native passes plus Python work proportional to its distinct odd
values, not to its rows. Findings are the same as the row engine's (codes, rows, fields,
severities, messages): `tests/unit/test_columnar_golden.py` compares the two.
"""
