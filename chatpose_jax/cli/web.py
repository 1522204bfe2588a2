"""`chatpose-web --checkpoint CKPT [--body_model FILE] [--host 127.0.0.1] [--port 7860]`.

The chat of `chatpose-chat` in a browser page (gradio, `pip install -e .[web]`): streamed answers,
an image upload, and for each answer holding `<POSE>` the posed body in a 3D viewer with its .npz and
.obj to download (chatpose_jax/web/app.py).
"""

import os
import tempfile

from absl import flags, logging

from chatpose_jax.cli import common

_CHECKPOINT = common.define_path(
    "checkpoint", None, "Training workdir or step, model checkpoint, or Hugging Face folder.", required=True
)
_BODY_MODEL = common.define_body_model_flag()
_TOKENIZER = common.define_path("tokenizer", None, "Tokenizer folder (default: the one saved with the checkpoint).")
_OUT = common.define_path("out", None, "Folder for the bodies' .npz / .obj / .png (default: a temporary folder).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to serve on (0.0.0.0: every interface).")
_PORT = flags.DEFINE_integer("port", 7860, "Port to serve on.", lower_bound=1, upper_bound=65535)
_SAMPLING = common.define_sampling_flags("Most tokens per answer (the page can change it).")
_EXAMPLES = flags.DEFINE_multi_string(
    "example", [], "A prompt offered under the chat (repeatable; default: from the checkpoint's training data)."
)


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    try:
        import gradio  # noqa: F401
    except ImportError:
        common.fail("chatpose-web needs gradio: pip install -e .[web]")
    from chatpose_jax.inference.session import ChatModel, CheckpointLoadError
    from chatpose_jax.web.app import DEFAULT_PROMPT, WebChat, build_app

    try:
        model = ChatModel.load(_CHECKPOINT.value, _TOKENIZER.value)
    except CheckpointLoadError as e:
        common.fail(str(e))
    common.warn_if_synthetic_body(_BODY_MODEL.value, model.trained_body_model)
    out = _OUT.value or tempfile.mkdtemp(prefix="chatpose_web_")
    chat = WebChat(model, out, _BODY_MODEL.value, **_SAMPLING.values())
    examples = [(prompt, None) for prompt in _EXAMPLES.value]
    if not examples and model.trained_data_dir and os.path.isdir(model.trained_data_dir):
        from chatpose_jax.web.examples import data_examples

        examples = data_examples(model.trained_data_dir, os.path.join(out, "examples"))
    app = build_app(chat, examples or [(DEFAULT_PROMPT, None)])
    print(f"chatpose-web: http://{_HOST.value}:{_PORT.value} (bodies written under {out})", flush=True)
    app.queue().launch(server_name=_HOST.value, server_port=_PORT.value, allowed_paths=[out], show_error=True)


def run():
    common.run_app(main)
