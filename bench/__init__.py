"""onepass.bench: benchmarks."""
