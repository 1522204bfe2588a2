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
_BODY_MODEL = common.define_body_model_flag()
_TOKENIZER = common.define_path("tokenizer", None, "Tokenizer folder (default: the one saved with the checkpoint).")
_IMAGE_ASPECT = flags.DEFINE_enum(
    "image_aspect",
    None,
    ["none", "pad"],
    "Image preprocessing: 'pad' = LLaVA-1.5's pad-to-square (default: as trained).",
)
_SAMPLING = common.define_sampling_flags()


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
    session = ChatSession(model, **_SAMPLING.values())
    if _IMAGE.value:
        try:
            session.attach_image(_IMAGE.value)
        except ImageError as e:
            common.fail(str(e))
    common.warn_if_synthetic_body(_BODY_MODEL.value, model.trained_body_model)
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
