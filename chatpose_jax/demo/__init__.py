"""`make demo`: the embedded end-to-end run on generated data (see `run.py`)."""
