"""Benchmarks: `python -m bench <name>` (or `make bench`). Figures go to BENCHMARKS.md.

Every figure is reported beside a baseline measured in the same run, as a ratio: the
development machines are small and noisy, so absolute numbers travel badly.
"""
