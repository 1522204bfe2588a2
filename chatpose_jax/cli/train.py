"""`chatpose-train --config configs/X.py --workdir DIR [--config.field=value ...]`.

On TPU pods, SLURM and under `launch/local.py` the processes find each other first; every
process runs the same command.
"""

from absl import flags

from chatpose_jax.cli import common

_CONFIG = common.define_config_flag()
_WORKDIR = common.define_path("workdir", None, "Where checkpoints and logs go (local path or gs://).", required=True)
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar (process 0 only).")


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    from chatpose_jax.parallel.distributed import initialize_distributed

    initialize_distributed()
    experiment = common.validated_experiment(_CONFIG.value)
    from chatpose_jax.train import checkpoint
    from chatpose_jax.train.loop import TrainingDivergedError, train_and_evaluate
    from chatpose_jax.train.tasks import task_for

    try:
        metrics = train_and_evaluate(experiment, _WORKDIR.value, task_for(experiment), progress=_PROGRESS.value)
    except (checkpoint.CheckpointMismatchError, TrainingDivergedError, FileNotFoundError) as e:
        common.fail(str(e))
    summary = ", ".join(
        f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if k in ("loss", "pose_l1", "eval_loss", "eval_mpjpe_mm")
    )
    print(f"training finished: {summary}")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
