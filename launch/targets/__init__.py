"""One module per target; each has `plan(spec) -> steps` and `teardown(spec) -> steps`."""
