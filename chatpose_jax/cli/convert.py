"""`chatpose-convert SUBCOMMAND ...`: import-hf, export-hf, import-chatpose-torch."""

from chatpose_jax.cli import common

SUBCOMMANDS = ("import-hf", "export-hf", "import-chatpose-torch")


def main(argv):
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        common.fail(f"usage: chatpose-convert {{{','.join(SUBCOMMANDS)}}} [flags]")
    common.not_built(f"chatpose-convert {argv[1]}", "Export to PyTorch and Hugging Face / model import")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
