"""`chatpose-eval --checkpoint CKPT --benchmarks 3dpw,h36m,rpe,spg,posescript --data_dir DIR --out OUT`.

    chatpose-eval --checkpoint /tmp/tiny --benchmarks 3dpw,h36m,rpe --data_dir /tmp/tfds \\
        --body_model_dir /tmp/raw/body_models --out /tmp/eval
    chatpose-eval --checkpoint /tmp/tiny --benchmarks posescript,spg --retrieval /tmp/retrieval ...
    chatpose-eval --predictions 3dpw=other.npz --benchmarks 3dpw ...      # another method's poses
    chatpose-eval --protocol hmr2 --benchmarks 3dpw,h36m ...   # 4D-Humans' protocol and files

Writes OUT/metrics.json, OUT/metrics.md, OUT/predictions_<benchmark>.npz, OUT/gallery_<benchmark>.png.
Decoding runs as one batch sharded over the mesh's data axes (`--mesh data,fsdp,tensor`, default
every device on data); under `launch/local.py` (or any multi-process start) each process builds
only its own rows and process 0 scores. See chatpose_jax/eval/loop.py.
"""

from absl import flags, logging

from chatpose_jax import paths
from chatpose_jax.cli import common

_CHECKPOINT = common.define_path("checkpoint", None, "Training workdir or step, model checkpoint, or HF folder.")
_BENCHMARKS = flags.DEFINE_list("benchmarks", ["3dpw", "h36m", "rpe", "spg", "posescript"], "Benchmarks to run.")
_DATA_DIR = common.define_path("data_dir", None, "TFDS data_dir with the prepared benchmarks.", required=True)
_OUT = common.define_path("out", None, "Folder for metrics.json, metrics.md, predictions and galleries.", required=True)
_BODY_MODEL_DIR = common.define_path(
    "body_model_dir", None, "Folder with smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl and J_regressor_h36m.npy."
)
_RETRIEVAL = common.define_path(
    "retrieval", None, "Retrieval-model workdir (configs/retrieval.py) for text benchmarks."
)
_PREDICTIONS = flags.DEFINE_list(
    "predictions",
    [],
    "Another method's poses: FILE.npz (one benchmark) or BENCHMARK=FILE.npz, ... (scored, not decoded).",
)
_LABEL = flags.DEFINE_string("label", "ours", "Name of our row in metrics.md.")
_FORCE = flags.DEFINE_boolean("force_pose_answer", False, 'Teacher-force "Sure, it is <POSE>." (the pose head alone).')
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Prompts decoded together per process.", lower_bound=1)
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 32, "Most tokens per answer.", lower_bound=1)
_GALLERY = flags.DEFINE_integer("gallery_size", 6, "Samples per gallery PNG (0: none).", lower_bound=0)
_TOKENIZER = common.define_path("tokenizer", None, "Tokenizer folder (default: the checkpoint's).")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar (process 0).")
_PROTOCOL = flags.DEFINE_enum(
    "protocol", "spin", ["spin", "hmr2"], "Image protocol: SPIN's, or 4D-Humans' (needs SMPL_to_J19.pkl)."
)
_J19 = common.define_path("j19_regressor", None, "4D-Humans' SMPL_to_J19.pkl (default: in --body_model_dir).")
_MESH = flags.DEFINE_list("mesh", ["-1", "1", "1"], "Decoding mesh data,fsdp,tensor (-1: every device left).")
_LIMIT = flags.DEFINE_integer("limit", 0, "Score only the first N samples of each benchmark (0: all).", lower_bound=0)
_POSE_FROM = flags.DEFINE_enum(
    "pose_from",
    "pose_token",
    ["pose_token", "keypoints"],
    "pose_token: the <POSE> head; keypoints: ask for keypoints as text (the supplement's LLaVA*), lift them "
    "with SMPLify (image benchmarks; needs --smplify_prior and a larger --max_new_tokens, e.g. 320).",
)
_SMPLIFY_PRIOR = common.define_path("smplify_prior", None, "SMPLify's gmm_08.pkl (--pose_from=keypoints).")


def parse_predictions(items: list[str], benchmarks: list[str]) -> dict[str, str]:
    """['3dpw=a.npz', ...] or ['a.npz'] (with one benchmark) -> {benchmark: path}, paths through `paths.absolute`."""
    out = {}
    for item in items:
        if "=" in item:
            name, path = item.split("=", 1)
        elif len(benchmarks) == 1:
            name, path = benchmarks[0], item
        else:
            raise ValueError(f"--predictions {item}: name its benchmark (BENCHMARK=FILE.npz) when several run")
        if name not in benchmarks:
            raise ValueError(f"--predictions {item}: benchmark {name!r} is not in --benchmarks")
        out[name] = paths.absolute(path)
    return out


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from chatpose_jax.parallel.distributed import initialize_distributed

    initialize_distributed()
    import jax

    from chatpose_jax.eval import loop
    from chatpose_jax.eval.benchmarks import BenchmarkError
    from chatpose_jax.eval.predictions import PredictionsFileError
    from chatpose_jax.inference.session import ChatModel, CheckpointLoadError

    names = [n.strip() for n in _BENCHMARKS.value if n.strip()]
    try:
        predictions = parse_predictions(_PREDICTIONS.value, names)
        model = None
        if _CHECKPOINT.value and any(n not in predictions for n in names):
            model = ChatModel.load(_CHECKPOINT.value, _TOKENIZER.value)
        mesh = tuple(int(v) for v in _MESH.value)
        if len(mesh) != 3:
            raise ValueError(f"--mesh {','.join(_MESH.value)}: expected three sizes data,fsdp,tensor")
        options = loop.EvalOptions(
            _BATCH_SIZE.value, _MAX_NEW_TOKENS.value, _FORCE.value, _GALLERY.value, _PROGRESS.value, mesh,
            _PROTOCOL.value, _LIMIT.value, _POSE_FROM.value, _SMPLIFY_PRIOR.value or "",
        )  # fmt: skip
        loop.evaluate(
            _OUT.value, names, _DATA_DIR.value, model=model, predictions=predictions,
            body_model_dir=_BODY_MODEL_DIR.value, retrieval_dir=_RETRIEVAL.value, options=options, label=_LABEL.value,
            j19_regressor=_J19.value,
        )  # fmt: skip
    except (loop.EvalError, BenchmarkError, PredictionsFileError, CheckpointLoadError, FileNotFoundError,
            ValueError) as e:  # fmt: skip
        common.fail(str(e))
    if jax.process_index() == 0:
        print(paths.path(paths.join(_OUT.value, "metrics.md")).read_text())  # local or gs://


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
