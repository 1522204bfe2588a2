"""`chatpose-chat --checkpoint CKPT [--image IMG] [--prompt TEXT] [--out DIR]`.

Without --prompt: a conversation in the terminal (or through a pipe), `/image PATH`, `/reset`,
`/quit`. With --prompt: one answer, then exit. Answers holding `<POSE>` write turn_K.npz / .obj /
.png under --out (see chatpose_jax/inference/outputs.py).
"""

import sys

from absl import flags, logging

from chatpose_jax.cli import common

_CHECKPOINT = common.define_path(
    "checkpoint", None, "Training workdir or step, model checkpoint, or Hugging Face folder.", required=True
)
_IMAGE = common.define_path("image", None, "Image to attach to the first turn.")
_PROMPT = flags.DEFINE_string("prompt", None, "Answer this prompt once and exit.")
_OUT = common.define_path("out", "chat_outputs", "Folder for turn_K.npz / .obj / .png when the answer holds <POSE>.")
_BODY_MODEL = common.define_path(
    "body_model",
    "synthetic",
    "SMPL / SMPL-H / SMPL-X file or smplx-style folder; 'synthetic' = a generated SMPL.",
    keywords=("synthetic",),
)
_TOKENIZER = common.define_path("tokenizer", None, "Tokenizer folder (default: the one saved with the checkpoint).")
_IMAGE_ASPECT = flags.DEFINE_enum(
    "image_aspect",
    None,
    ["none", "pad"],
    "Image preprocessing: 'pad' = LLaVA-1.5's pad-to-square (default: as trained).",
)
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 256, "Most tokens per answer.", lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", 0.0, "Sampling temperature; 0 = greedy.", lower_bound=0.0)
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass.", lower_bound=0.0, upper_bound=1.0)
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # checkpoint restore logs would bury the conversation
    from chatpose_jax.inference.images import ImageError, load_image
    from chatpose_jax.inference.session import ChatModel, ChatSession, CheckpointLoadError, PromptTooLongError
    from chatpose_jax.inference.terminal import PoseFileWriter, answer_turn, run_terminal

    try:
        if _IMAGE.value:
            load_image(_IMAGE.value)  # a bad path fails before the model loads
        model = ChatModel.load(_CHECKPOINT.value, _TOKENIZER.value, _IMAGE_ASPECT.value)
    except (CheckpointLoadError, ImageError) as e:
        common.fail(str(e))
    session = ChatSession(
        model,
        max_new_tokens=_MAX_NEW_TOKENS.value,
        temperature=_TEMPERATURE.value,
        top_p=_TOP_P.value,
        seed=_SEED.value,
    )
    if _IMAGE.value:
        try:
            session.attach_image(_IMAGE.value)
        except ImageError as e:
            common.fail(str(e))
    if _BODY_MODEL.value == "synthetic" and model.trained_body_model != "synthetic":
        print(
            "warning: --body_model=synthetic poses a generated stand-in body, not SMPL: the OBJ / PNG of this "
            "checkpoint (not one of the demo's) need --body_model=PATH (an SMPL file or smplx-style folder)",
            file=sys.stderr,
        )
    writer = PoseFileWriter(_OUT.value, _BODY_MODEL.value)
    try:
        if _PROMPT.value is not None:
            answer_turn(session, _PROMPT.value, writer, sys.stdout)
        else:
            run_terminal(session, writer, sys.stdin, sys.stdout, sys.stderr)
    except PromptTooLongError as e:
        common.fail(str(e))
    except ValueError as e:  # a body-model file that cannot be read
        common.fail(str(e))


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
