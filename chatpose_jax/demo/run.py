"""`make demo`: the embedded end-to-end run on the tiny default config, on generated data.

1. synthesise PoseScript / HMR / LLaVA-Instruct data in their published raw formats, with a
   synthetic SMPL body model and tokenizer (`data_pipelines.synthetic`);
2. prepare them with the TFDS builders;
3. train `configs/tiny.py` on the mixture (progress bar, checkpoints in WORKDIR/train);
4. score held-out text-to-pose and image-to-pose sets against the mean-pose baseline (table,
   WORKDIR/results.json);
5. run `chatpose-eval`'s evaluation loop on the synthetic 3DPW / H36M / RPE / SPG / PoseScript test
   sets (a few samples each; a tiny retrieval model trained briefly for the text recalls), writing
   WORKDIR/eval/metrics.md (printed), predictions and galleries;
6. answer one text prompt and one image prompt through the chat path, writing npz / OBJ / PNG.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from absl import app, flags

from chatpose_jax.config_files import load_config_file, repo_config

_WORKDIR = flags.DEFINE_string("workdir", "demo_out", "Where the demo writes its outputs.")
_CONFIG = flags.DEFINE_string("config_file", None, "Experiment config file (default: configs/tiny.py).")
_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps.")
_NUM_POSES = flags.DEFINE_integer("num_poses", 2500, "Synthetic PoseScript poses.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 1500, "Synthetic HMR images.")
_HELD_OUT = flags.DEFINE_integer("held_out", 64, "Held-out samples scored per set.")

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DATASETS = ("posescript", "hmr_images", "llava_instruct")


def stage_data(workdir: Path, num_poses: int, num_images: int) -> dict:
    """Synthetic raw datasets + body model + tokenizer, prepared with the builders (reused when present)."""
    import data_pipelines  # noqa: F401  (registers the builders)
    from data_pipelines import prepared
    from data_pipelines.prepare import prepare
    from data_pipelines.synthetic.writers import synthesize

    done = workdir / "data" / "ready.json"
    if done.exists():
        paths = json.loads(done.read_text())
        if paths.get("sizes") == [num_poses, num_images]:
            stale = prepared.outdated(DATASETS, paths["tfds"])
            if not stale:
                print(f"  reusing the data in {workdir / 'data'}")
                return paths
            print(
                f"  making the data in {workdir / 'data'} again, older builders prepared it:\n    "
                + "\n    ".join(stale)
            )
    shutil.rmtree(workdir / "data", ignore_errors=True)
    paths = synthesize(
        str(workdir / "data" / "raw"),
        num_poses=num_poses,
        num_hmr_images=num_images,
        num_vqa_images=150,
        num_spg=20,
        num_rpe=10,
    )
    paths["tfds"] = str(workdir / "data" / "tfds")
    for name in DATASETS:
        prepare(name, paths[name], paths["tfds"])
    paths["sizes"] = [num_poses, num_images]
    done.write_text(json.dumps(paths, indent=1))
    return paths


def stage_train(workdir: Path, config_path: Path, data: dict, steps: int):
    import jax

    from chatpose_jax.experiment import load_experiment
    from chatpose_jax.train.chatpose_task import ChatPoseTask
    from chatpose_jax.train.loop import train_and_evaluate

    config = load_config_file(config_path)
    config.data.data_dir = data["tfds"]
    config.data.tokenizer = data["tokenizer"]
    config.train.body_model = data["body_model"]
    config.train.num_steps = steps
    config.train.checkpoint_every = steps
    config.train.eval_every = 0
    experiment = load_experiment(config, jax.device_count())
    train_dir = workdir / "train"
    shutil.rmtree(train_dir, ignore_errors=True)
    metrics = train_and_evaluate(experiment, str(train_dir), ChatPoseTask(), progress=True)
    print(f"  final loss {metrics['loss']:.3f}, held-out loss {metrics.get('eval_loss', float('nan')):.3f}")
    return train_dir


def heldout_sets(data: dict, image_size: int, limit: int):
    """(text HeldOut, image HeldOut, mean pose float[24, 3, 3]) from the prepared datasets."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from chatpose_jax.demo.heldout import HeldOut, chordal_mean_rotations, rotmat_from_axis_angle
    from data_pipelines import images, templates

    def read(name, split, n=None):
        ds = tfds.load(name, split=split, data_dir=data["tfds"])
        return list(tfds.as_numpy(ds.take(n) if n else ds))

    train_poses = read("posescript", "train") + read("hmr_images", "train")
    mean_pose = chordal_mean_rotations(
        rotmat_from_axis_angle(
            np.stack([p["global_orient"] for p in train_poses]), np.stack([p["body_pose"] for p in train_poses])
        )
    )
    texts = read("posescript", "test", limit)
    text_questions = []
    for ex in texts:
        description = next(t.decode() for t in list(ex["texts_human"]) + list(ex["texts_automatic"]) if t)
        text_questions.append(templates.text_to_pose_question(templates.TEXT_TO_POSE_QUESTIONS[0], description))
    text_set = HeldOut(
        text_questions,
        None,
        rotmat_from_axis_angle(
            np.stack([e["global_orient"] for e in texts]), np.stack([e["body_pose"] for e in texts])
        ),
    )
    shots = read("hmr_images", "3dpw_test", limit)
    pixels = []
    for ex in shots:
        crop = images.crop_person(tf.constant(ex["image"]), tf.constant(ex["center"]), tf.constant(ex["scale"]))
        pixels.append(images.clip_preprocess(crop, image_size).numpy())
    image_set = HeldOut(
        [templates.IMAGE_TO_POSE_QUESTIONS[0]] * len(shots),
        np.stack(pixels).astype(np.float32),
        rotmat_from_axis_angle(
            np.stack([e["global_orient"] for e in shots]), np.stack([e["body_pose"] for e in shots])
        ),
    )
    return text_set, image_set, mean_pose, shots[0]


def stage_evaluate(workdir: Path, train_dir: Path, data: dict, limit: int):
    from chatpose_jax.body import load_body_model
    from chatpose_jax.demo.heldout import score
    from chatpose_jax.inference.session import ChatModel

    model = ChatModel.load(str(train_dir))
    body = load_body_model(data["body_model"])
    text_set, image_set, mean_pose, example = heldout_sets(data, model.config.vision.image_size, limit)
    results = {
        "text2pose": score(model, body, text_set, mean_pose),
        "image2pose": score(model, body, image_set, mean_pose),
    }
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    print(
        f"  {'set':<12}{'n':>5}{'MPJPE':>10}{'PA-MPJPE':>10}{'mean-pose MPJPE':>17}{'mean-pose PA':>14}{'no <POSE>':>11}"
    )
    for name, r in results.items():
        print(
            f"  {name:<12}{r['n']:>5}{r['mpjpe_mm']:>10.1f}{r['pa_mpjpe_mm']:>10.1f}{r['baseline_mpjpe_mm']:>17.1f}"
            f"{r['baseline_pa_mpjpe_mm']:>14.1f}{100 * r['no_pose_rate']:>10.0f}%"
        )
    print(f"  (mm, 24 SMPL joints, pelvis-aligned; results in {workdir / 'results.json'})")
    return model, body, example, results


BENCHMARK_NAMES = ("3dpw", "h36m", "rpe", "spg", "posescript")


def train_demo_retrieval(workdir: Path, data: dict, steps: int) -> Path:
    """A tiny text-pose retrieval model (configs/retrieval.py:tiny) trained briefly on the demo's PoseScript data."""
    import jax

    from chatpose_jax.experiment import load_experiment
    from chatpose_jax.retrieval.task import RetrievalTask
    from chatpose_jax.retrieval.train import BEST_DIR
    from chatpose_jax.train.loop import train_and_evaluate

    if (workdir / BEST_DIR / "info.json").exists():
        print(f"  reusing the retrieval model in {workdir}")
        return workdir
    shutil.rmtree(workdir, ignore_errors=True)
    c = repo_config("retrieval", "tiny")
    c.data.data_dir, c.data.tokenizer = data["tfds"], data["tokenizer"]
    c.train.num_steps, c.train.checkpoint_every, c.train.eval_every = steps, steps, 0
    c.mesh.data = -1
    train_and_evaluate(load_experiment(c, jax.device_count()), str(workdir), RetrievalTask(), progress=False)
    return workdir


def stage_benchmarks(workdir: Path, model, data: dict, limit: int, retrieval_steps: int = 150) -> dict:
    """`chatpose-eval`'s loop on the synthetic 3DPW / H36M / RPE / SPG / PoseScript test sets (first `limit`
    samples each): WORKDIR/eval/metrics.{json,md}, predictions_*.npz, gallery_*.png; prints metrics.md."""
    import data_pipelines  # noqa: F401  (registers the builders)
    from chatpose_jax.eval import loop
    from data_pipelines.prepare import prepare

    out = workdir / "eval"
    for name in ("spg", "rpe"):  # benchmarks the data stage does not prepare (training does not read them)
        if not (Path(data["tfds"]) / name).is_dir():
            prepare(name, data[name], data["tfds"])
    retrieval = train_demo_retrieval(out / "retrieval", data, retrieval_steps)
    # One decoding step per benchmark (batch = limit), so each prompt length compiles once.
    options = loop.EvalOptions(batch_size=limit, max_new_tokens=24, gallery_size=3, progress=False, limit=limit)
    metrics = loop.evaluate(
        str(out), list(BENCHMARK_NAMES), data["tfds"], model=model, body_model_dir=data["body_model_dir"],
        retrieval_dir=str(retrieval), options=options, label="tiny (this demo)",
    )  # fmt: skip
    print("  " + (out / "metrics.md").read_text().replace("\n", "\n  "))
    print(f"  (first {limit} samples per benchmark, so R@k with k >= n is 100 by construction; recalls and FID")
    print(f"  use a retrieval model trained {retrieval_steps} steps here, far from the paper's; outputs in {out})")
    return metrics


def stage_chat(workdir: Path, model, body, example, text_prompt: str):
    from PIL import Image

    from chatpose_jax.inference import outputs

    chat_dir = workdir / "chat"
    chat_dir.mkdir(parents=True, exist_ok=True)
    image_path = chat_dir / "person.png"
    Image.fromarray(example["image"]).save(image_path)
    for name, question, image in (
        ("text", text_prompt, None),
        ("image", "Can you predict the SMPL pose of the person in this image?", str(image_path)),
    ):
        answer = model.answer(question, image=image, max_new_tokens=32)
        print(f"  USER: {question}{' [' + image + ']' if image else ''}\n  ASSISTANT: {answer.text}")
        for k, pose in enumerate(answer.poses):
            files = outputs.write_pose_files(str(chat_dir), f"{name}_{k + 1}", pose, body)
            print("  wrote " + ", ".join(files[kind] for kind in ("npz", "obj", "png")))
        if not answer.poses:
            print("  (the answer holds no <POSE>)")


def main(argv):
    del argv
    workdir = Path(_WORKDIR.value).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = Path(_CONFIG.value) if _CONFIG.value else REPO_ROOT / "configs" / "tiny.py"
    state: dict = {}

    def data():
        state["data"] = stage_data(workdir, _NUM_POSES.value, _NUM_IMAGES.value)

    def train():
        state["train_dir"] = stage_train(workdir, config_path, state["data"], _STEPS.value)

    def evaluate():
        model, body, example, _ = stage_evaluate(workdir, state["train_dir"], state["data"], _HELD_OUT.value)
        state.update(model=model, body=body, example=example)

    def benchmarks():
        stage_benchmarks(workdir, state["model"], state["data"], limit=16)

    def chat():
        prompt = "Generate the SMPL pose of a person with the left arm raised above the head and the knees bent."
        stage_chat(workdir, state["model"], state["body"], state["example"], prompt)

    stages = [
        ("synthesise and prepare the datasets", data),
        (f"train {config_path.name}", train),
        ("evaluate on held-out sets", evaluate),
        ("chatpose-eval's benchmarks (synthetic 3DPW, H36M, RPE, SPG, PoseScript)", benchmarks),
        ("chat", chat),
    ]
    seconds = run_stages(stages)
    print(f"demo finished in {seconds:.0f}s; outputs in {workdir}")
    print(f"talk to it in a browser: {web_command(workdir, state['data'])}")


def web_command(workdir: Path, data: dict) -> str:
    """The command that opens the web chat on the demo's checkpoint (its generated body model)."""
    return (
        f"chatpose-web --checkpoint={workdir / 'train'} --body_model={data['body_model']} "
        "--host=127.0.0.1 --port=7860  # then open http://127.0.0.1:7860"
    )


def run_stages(stages) -> float:
    """Runs each (name, fn) under an `[i/n] name` line and a `done in Ns` line; returns the seconds taken.

    The console keeps to these lines, what the stages print and their progress bars:
    `tf_setup.quiet_console` turns off absl's INFO logs (orbax, TFDS) and TFDS's own status lines and
    progress bars; warnings and errors still show.
    """
    from data_pipelines import tf_setup  # here, not at the top: importing the demo loads no TensorFlow

    tf_setup.quiet_console()
    start_all = time.perf_counter()
    for i, (name, fn) in enumerate(stages, 1):
        start = time.perf_counter()
        print(f"[{i}/{len(stages)}] {name}", flush=True)
        fn()
        print(f"  done in {time.perf_counter() - start:.0f}s", flush=True)
    return time.perf_counter() - start_all


def run():
    app.run(main)


if __name__ == "__main__":
    run()
