"""Benchmarks, each runnable as `python -m chatpose_jax.benchmarks.<name>`."""
