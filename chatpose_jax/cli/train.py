"""`chatpose-train --config configs/X.py --workdir DIR [--config.field=value ...]`."""

from absl import flags

from chatpose_jax.cli import common

_CONFIG = common.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and logs go (local path or gs://).", required=True)


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    experiment = common.validated_experiment(_CONFIG.value)
    print(f"config {experiment.name!r} is valid for this mesh; workdir {_WORKDIR.value}")
    common.not_built("Training", "Training at scale: sharded train step, optimizer, losses, orbax checkpoints")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
