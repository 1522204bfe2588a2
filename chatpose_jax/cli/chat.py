"""`chatpose-chat --checkpoint CKPT [--image IMG] [--prompt TEXT] [--out DIR]`."""

from absl import flags

from chatpose_jax.cli import common

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Orbax checkpoint or exported Hugging Face folder.")
_IMAGE = flags.DEFINE_string("image", None, "Image to attach to the first turn.")
_PROMPT = flags.DEFINE_string("prompt", None, "Answer this prompt once and exit.")
_OUT = flags.DEFINE_string("out", None, "Folder for turn_K.npz / .obj / .png when the answer holds <POSE>.")


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    common.not_built("Chat", "Chat and predict from a checkpoint, and the embedded end-to-end demo")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
