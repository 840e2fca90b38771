"""Benchmark code (``scripts/bench_*.py`` are its entry points): the GRPO step against TRL's, its
parts, the scaling slopes and the FLOP counts. Speed is measured here, never in tests."""
