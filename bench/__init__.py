"""Benchmarks (not tests): `python -m bench.bench_import --rows 100000`."""
