"""Small shared utilities, one idea per module."""
