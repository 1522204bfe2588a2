"""Rows of the paper's ablation tables as named sets of config overrides (read by launch/ablate.py)."""
