"""The bench's speed figures (issue 13): ``python benchmarks/run.py [--quick]``; docs/BENCHMARKS.md."""
