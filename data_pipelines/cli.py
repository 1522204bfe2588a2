"""`chatpose-data prepare NAME --manual_dir RAW --data_dir OUT` and `chatpose-data synth --out DIR`."""

from absl import flags

from chatpose_jax.cli import common

SUBCOMMANDS = ("prepare", "synth")

_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder holding the raw release files.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir to write prepared datasets to.")
_OUT = flags.DEFINE_string("out", None, "Folder for synthetic raw datasets (synth).")


def main(argv):
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        common.fail(f"usage: chatpose-data {{{','.join(SUBCOMMANDS)}}} [NAME] [flags]")
    common.not_built(f"chatpose-data {argv[1]}", "Data pipelines: TFDS builders, synthetic data, mixed streams")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
