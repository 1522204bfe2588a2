"""Thin absl entry points: they parse flags and call library functions, nothing else."""
