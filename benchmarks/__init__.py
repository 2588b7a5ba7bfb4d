"""Benchmark suites: scripts, not tests. Run ``python -m benchmarks.run SUITE`` (see README.md)."""
