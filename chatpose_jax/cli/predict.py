"""`chatpose-predict --checkpoint CKPT --inputs FILE_OR_DIR --out DIR`: batched answers to many prompts.

--inputs is a JSONL file ({"id"?, "prompt"?, "image"?} per line) or a folder of images and JSONL
files; results go to DIR/predictions.jsonl (see chatpose_jax/inference/predict.py).
"""

from absl import flags, logging

from chatpose_jax import paths
from chatpose_jax.cli import common

_CHECKPOINT = common.define_path(
    "checkpoint", None, "Training workdir or step, model checkpoint, or Hugging Face folder.", required=True
)
_INPUTS = common.define_path("inputs", None, "JSONL file of prompts / images, or a folder of them.", required=True)
_OUT = common.define_path("out", None, "Folder for predictions.jsonl.", required=True)
_TOKENIZER = common.define_path("tokenizer", None, "Tokenizer folder (default: the one saved with the checkpoint).")
_IMAGE_ASPECT = flags.DEFINE_enum(
    "image_aspect",
    None,
    ["none", "pad"],
    "Image preprocessing: 'pad' = LLaVA-1.5's pad-to-square (default: as trained).",
)
_PROMPT = flags.DEFINE_string(
    "prompt", None, "Question for images given without one (default: an image-to-pose question)."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Prompts per batch.", lower_bound=1)
_SAMPLING = common.define_sampling_flags()
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar.")


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # checkpoint restore logs would bury the progress bar
    from chatpose_jax.inference import predict
    from chatpose_jax.inference.images import ImageError
    from chatpose_jax.inference.session import ChatModel, CheckpointLoadError, PromptTooLongError

    try:
        records = predict.read_inputs(_INPUTS.value, _PROMPT.value or predict.DEFAULT_IMAGE_PROMPT)
        model = ChatModel.load(_CHECKPOINT.value, _TOKENIZER.value, _IMAGE_ASPECT.value)
        results = predict.predict_records(
            model,
            records,
            batch_size=_BATCH_SIZE.value,
            progress=_PROGRESS.value,
            **_SAMPLING.values(),
        )
    except (predict.InputError, ImageError, CheckpointLoadError, PromptTooLongError) as e:
        common.fail(str(e))
    path = predict.write_results(paths.join(_OUT.value, "predictions.jsonl"), results)  # local or gs://
    with_pose = sum(bool(r["poses"]) for r in results)
    print(f"{len(results)} answers ({with_pose} with a pose) written to {path}")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
