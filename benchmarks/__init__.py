"""Reproducible benchmarks of runicorn-lite (issue #5). Entry point: ``python -m benchmarks``."""
