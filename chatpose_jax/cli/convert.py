"""`chatpose-convert SUBCOMMAND ...`: import-hf, export-hf, import-chatpose-torch, export-chatpose-torch.

    chatpose-convert import-hf --hf_dir /ckpt/llava-1.5-7b-hf --out /ckpt/chatpose-7b-init
    chatpose-convert import-hf --hf_dir /ckpt/llava-v1.5-7b --vision_tower_dir /ckpt/clip-vit-large-patch14-336 \
        --out /ckpt/chatpose-7b-init
    chatpose-convert export-hf --checkpoint /runs/chatpose-13b --out /export/chatpose-13b-hf
    chatpose-convert import-chatpose-torch --ckpt /ckpt/ChatPose-13b --vision_tower_dir /ckpt/clip-vit-large-patch14 \
        --tokenizer_dir /ckpt/ChatPose-13b --out /ckpt/chatpose-13b-released
    chatpose-convert export-chatpose-torch --checkpoint /runs/chatpose-13b --out /export/chatpose-13b-released-layout
"""

from absl import flags

from chatpose_jax.cli import common

SUBCOMMANDS = ("import-hf", "export-hf", "import-chatpose-torch", "export-chatpose-torch")

_HF_DIR = common.define_path("hf_dir", None, "import-hf: LLaVA folder, llava-hf layout or original LLaVA layout")
_OUT = common.define_path("out", None, "Folder to write (a model checkpoint, or the HF folder for export-hf)")
_VISION_DIR = common.define_path(
    "vision_tower_dir", None, "CLIP folder (original layout / released weights without the tower)"
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out folder")
_CHECKPOINT = common.define_path(
    "checkpoint",
    None,
    "export-hf / export-chatpose-torch: training workdir, step folder, model checkpoint or HF folder",
)
_TOKENIZER_DIR = common.define_path(
    "tokenizer_dir", None, "Tokenizer folder (export-hf: default the checkpoint's; import-chatpose-torch: with [SEG])"
)
_MAX_SHARD_BYTES = flags.DEFINE_integer("max_shard_bytes", 5 * 10**9, "export-hf: largest safetensors shard")
_CKPT = common.define_path("ckpt", None, "import-chatpose-torch: released weights (a file or a folder)")
_BASE_CONFIG = common.define_path(
    "base_config", None, "import-chatpose-torch: LlavaLlama config.json (default: the one next to --ckpt)"
)
_POSE_TOKEN_ID = flags.DEFINE_integer("pose_token_id", None, "import-chatpose-torch: id of [SEG] (default: tokenizer)")
_LORA_ALPHA = flags.DEFINE_float("lora_alpha", None, "import-chatpose-torch: LoRA alpha (default adapter_config.json)")
_NUM_HEADS = flags.DEFINE_integer("num_heads", None, "import-chatpose-torch without config.json: decoder heads")
_VISION_NUM_HEADS = flags.DEFINE_integer(
    "vision_num_heads", None, "import-chatpose-torch, tower in the weights and no CLIP folder: its heads (width / 64)"
)


def _export_hf():
    if not _CHECKPOINT.value or not _OUT.value:
        common.fail("export-hf needs --checkpoint and --out")
    from chatpose_jax.convert.hf import CheckpointError
    from chatpose_jax.export.hf_export import ExportError, export_checkpoint

    try:
        weight_map = export_checkpoint(
            _CHECKPOINT.value,
            _OUT.value,
            _TOKENIZER_DIR.value,
            overwrite=_OVERWRITE.value,
            max_shard_bytes=_MAX_SHARD_BYTES.value,
        )
    except (CheckpointError, ExportError, FileExistsError, FileNotFoundError) as e:
        common.fail(str(e))
    print(f"wrote {_OUT.value}: {len(weight_map)} tensors in {len(set(weight_map.values()))} shards + pose head")


def _export_chatpose_torch():
    if not _CHECKPOINT.value or not _OUT.value:
        common.fail("export-chatpose-torch needs --checkpoint and --out")
    import os

    from chatpose_jax.export.chatpose_layout import WEIGHTS_FILE, export_chatpose_torch
    from chatpose_jax.train.trained_model import load_trained

    if os.path.exists(os.path.join(_OUT.value, WEIGHTS_FILE)) and not _OVERWRITE.value:
        common.fail(f"{os.path.join(_OUT.value, WEIGHTS_FILE)} exists (pass --overwrite to replace it)")
    try:
        model = load_trained(_CHECKPOINT.value)
        path = export_chatpose_torch(model.config, model.params, _OUT.value, lora=model.lora)
    except (ValueError, FileNotFoundError) as e:
        common.fail(str(e))
    print(f"wrote {path} (the released ChatPose layout; roots in the OpenCV camera frame)")


def _import_chatpose_torch():
    if not _CKPT.value or not _OUT.value:
        common.fail("import-chatpose-torch needs --ckpt and --out")
    from chatpose_jax.convert.chatpose_torch import import_chatpose_torch
    from chatpose_jax.convert.hf import CheckpointError

    try:
        config = import_chatpose_torch(
            _CKPT.value,
            _OUT.value,
            config_json=_BASE_CONFIG.value,
            vision_tower_dir=_VISION_DIR.value,
            tokenizer_dir=_TOKENIZER_DIR.value,
            pose_token_id=_POSE_TOKEN_ID.value,
            lora_alpha=_LORA_ALPHA.value,
            num_heads=_NUM_HEADS.value,
            vision_num_heads=_VISION_NUM_HEADS.value,
            overwrite=_OVERWRITE.value,
        )
    except (CheckpointError, FileExistsError, FileNotFoundError) as e:
        common.fail(str(e))
    print(f"wrote {_OUT.value}: vocab {config.text.vocab_size}, <POSE> id {config.pose_token_id}")


def _import_hf():
    if not _HF_DIR.value or not _OUT.value:
        common.fail("import-hf needs --hf_dir and --out")
    from chatpose_jax.convert.checkpoint_io import import_hf
    from chatpose_jax.convert.hf import CheckpointError

    try:
        config = import_hf(_HF_DIR.value, _OUT.value, _VISION_DIR.value, overwrite=_OVERWRITE.value)
    except (CheckpointError, FileExistsError, FileNotFoundError) as e:
        common.fail(str(e))
    print(f"wrote {_OUT.value}: vocab {config.text.vocab_size}, <POSE> id {config.pose_token_id}")


def main(argv):
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        common.fail(f"usage: chatpose-convert {{{','.join(SUBCOMMANDS)}}} [flags]")
    commands = {
        "import-hf": _import_hf,
        "export-hf": _export_hf,
        "import-chatpose-torch": _import_chatpose_torch,
        "export-chatpose-torch": _export_chatpose_torch,
    }
    commands[argv[1]]()


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
