"""`chatpose-eval --checkpoint CKPT --benchmarks 3dpw,h36m,... --data_dir DIR --out OUT`."""

from absl import flags

from chatpose_jax.cli import common

_CONFIG = common.define_config_flag(required=False)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Orbax checkpoint or exported Hugging Face folder.")
_BENCHMARKS = flags.DEFINE_list("benchmarks", ["3dpw", "h36m", "rpe", "spg", "posescript"], "Benchmarks to run.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir with the prepared benchmarks.")
_OUT = flags.DEFINE_string("out", None, "Folder for metrics.json, metrics.md, predictions and galleries.")


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    common.not_built("Evaluation", "Evaluation: the paper's benchmarks with their protocols")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
