"""`chatpose-convert SUBCOMMAND ...`: import-hf (export-hf and import-chatpose-torch come later).

    chatpose-convert import-hf --hf_dir /ckpt/llava-1.5-7b-hf --out /ckpt/chatpose-7b-init
    chatpose-convert import-hf --hf_dir /ckpt/llava-v1.5-7b --vision_tower_dir /ckpt/clip-vit-large-patch14-336 \
        --out /ckpt/chatpose-7b-init
"""

from absl import app, flags

from chatpose_jax.cli import common

SUBCOMMANDS = ("import-hf", "export-hf", "import-chatpose-torch")

_HF_DIR = flags.DEFINE_string("hf_dir", None, "LLaVA folder: llava-hf layout or original LLaVA layout")
_OUT = flags.DEFINE_string("out", None, "Folder of the model checkpoint to write")
_VISION_DIR = flags.DEFINE_string("vision_tower_dir", None, "CLIP folder (original layout; default mm_vision_tower)")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out folder")


def main(argv):
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        common.fail(f"usage: chatpose-convert {{{','.join(SUBCOMMANDS)}}} [flags]")
    if argv[1] != "import-hf":
        common.not_built(f"chatpose-convert {argv[1]}", "Export to PyTorch and Hugging Face / model import")
    if not _HF_DIR.value or not _OUT.value:
        common.fail("import-hf needs --hf_dir and --out")
    from chatpose_jax.convert.checkpoint_io import import_hf
    from chatpose_jax.convert.hf import CheckpointError

    try:
        config = import_hf(_HF_DIR.value, _OUT.value, _VISION_DIR.value, overwrite=_OVERWRITE.value)
    except (CheckpointError, FileExistsError, FileNotFoundError) as e:
        common.fail(str(e))
    print(f"wrote {_OUT.value}: vocab {config.text.vocab_size}, <POSE> id {config.pose_token_id}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
