"""Benchmarks (make bench, make bench-scale) and the contest-shaped data they measure on: the
project's own tools, never shipped. Scripts: bench.py, scale.py, rejects.py."""
