"""Launchers: `python launch/launch.py TARGET ...` renders and runs a job on TPU VMs, GKE, SLURM or locally."""
