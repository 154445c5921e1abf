"""charrnn's benchmark suite: ``python -m benchmarks.run`` (see the README)."""
