"""Benchmarks, run by `just bench` (`python -m bench`)."""
