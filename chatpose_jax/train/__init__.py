"""Training: state, optimizer, losses, the sharded step, checkpoints and the loop."""
