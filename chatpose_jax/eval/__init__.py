"""Evaluation: pose metrics (MPJPE, PA-MPJPE, PVE, SPIN's 14 LSP joints)."""
