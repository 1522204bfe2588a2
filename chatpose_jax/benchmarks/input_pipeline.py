"""Input pipeline throughput: text-to-pose and image-to-pose examples per second, against training.

    python -m chatpose_jax.benchmarks.input_pipeline [--workdir DIR] [--seconds 10]

Synthesises the raw datasets (PoseScript + AMASS, SPIN npz + images), prepares them with the
TFDS builders, then times `data_pipelines.pipeline.BatchIterator` after a warm-up:
  - text-to-pose: posescript only, the tiny config's lengths (max_text_length 96);
  - image-to-pose: hmr_images only (person crops from center / scale), images at 336 px;
  - the tiny config's mixture (1:1:2) at its own 112 px.
and the tiny config's jitted training step on batches of its size, so the ratio says how many
times faster the pipeline produces examples than training consumes them (> 1: never the bottleneck).
Targets on the 2-core dev machine: >= 1500 text and >= 150 image examples/s.

Then the padding share of the `chatpose` recipe's mixture (posescript || vqa || hmr at 1:1:2,
1024 positions counting a 576-token image, <im_start>/<im_end>) over `--padding_batches` batches of
`--padding_rows` rows, padded (one conversation a row, cut to the batch's bucket) against packed
(`data.pack`, up to 8 <POSE> a row): the share of positions that hold padding, both of the batches
as cut and of the full 1024-position rows a compiled step is shaped for, and the real tokens a
1024-position row then holds (tokens per step at the same memory = rows x that).
"""

from __future__ import annotations

import os
import tempfile
import time

from absl import app, flags

from chatpose_jax.config_files import repo_config

_WORKDIR = flags.DEFINE_string("workdir", None, "Where to synthesise and prepare (default: a temp folder).")
_SECONDS = flags.DEFINE_float("seconds", 8.0, "Seconds timed per pipeline.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 10, "Timed tiny training steps (0 skips).")
_PADDING_BATCHES = flags.DEFINE_integer("padding_batches", 40, "Batches read to measure the padding share (0 skips).")
_PADDING_ROWS = flags.DEFINE_integer("padding_rows", 16, "Rows per batch when measuring the padding share.")


def padding_share(iterator, batches: int, full_length: int) -> dict[str, float]:
    """Padding of `batches` batches: {'cut': share of the batches' positions (as cut to their bucket),
    'full': share of `full_length`-position rows, 'tokens_per_row': real tokens a row, 'conversations_per_row'}."""
    real = cut = rows = conversations = 0
    for _ in range(batches):
        batch = next(iterator)
        mask = batch["attention_mask"]
        real += int(mask.sum())
        cut += mask.size
        rows += mask.shape[0]
        segments = batch.get("segment_ids")
        conversations += int(segments.max(axis=1).sum()) if segments is not None else mask.shape[0]
    return {
        "cut": 1 - real / cut,
        "full": 1 - real / (rows * full_length),
        "tokens_per_row": real / rows,
        "conversations_per_row": conversations / rows,
    }


def _examples_per_second(iterator, seconds: float, warmup_batches: int = 3) -> tuple[float, int]:
    for _ in range(warmup_batches):
        next(iterator)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += next(iterator)["input_ids"].shape[0]
    return n / (time.perf_counter() - start), n


def tiny_train_examples_per_second(steps: int) -> float:
    """The tiny config's training step on random batches of its shape (examples / s, after compile)."""

    import jax

    from chatpose_jax.experiment import load_experiment
    from chatpose_jax.parallel.mesh import make_mesh
    from chatpose_jax.train.random_batches import random_batch
    from chatpose_jax.train.setup import build_trainer, global_batch

    experiment = load_experiment(repo_config("tiny"), jax.device_count())
    mesh = make_mesh(experiment.mesh)
    trainer = build_trainer(experiment, mesh)
    b = experiment.train.batch_size
    batch = global_batch(random_batch(experiment.model, b, experiment.train.max_text_length, 0), trainer.batch_sharding)
    jax.block_until_ready(trainer.step(batch))
    start = time.perf_counter()
    for _ in range(steps):
        metrics = trainer.step(batch)
    jax.block_until_ready(metrics)
    return steps * b / (time.perf_counter() - start)


def main(argv):
    del argv
    import data_pipelines  # noqa: F401
    from data_pipelines.pipeline import BatchIterator, PipelineConfig
    from data_pipelines.prepare import prepare
    from data_pipelines.synthetic.writers import synthesize
    from data_pipelines.tokenizer import load_tokenizer

    root = _WORKDIR.value or tempfile.mkdtemp(prefix="input_pipeline_bench_")
    raw = os.path.join(root, "raw")
    data_dir = os.path.join(root, "tfds")
    start = time.perf_counter()
    paths = synthesize(raw, num_poses=400, num_hmr_images=240, num_vqa_images=60, num_spg=10, num_rpe=6)
    for name in ("posescript", "hmr_images", "llava_instruct"):
        prepare(name, paths[name], data_dir)
    print(f"synthesised and prepared in {time.perf_counter() - start:.1f}s under {root}")
    tokenizer = load_tokenizer(paths["tokenizer"])
    common = dict(data_dir=data_dir, max_text_length=96, shuffle_buffer=256, seed=0)
    runs = {
        "text-to-pose (posescript, batch 64)": PipelineConfig(
            datasets=("posescript",), ratios=(1.0,), batch_size=64, image_size=112, num_image_tokens=64, **common
        ),
        "image-to-pose (hmr crops, 336 px, batch 16)": PipelineConfig(
            datasets=("hmr_images",), ratios=(1.0,), batch_size=16, image_size=336, num_image_tokens=576, **common
        ),
        "tiny mixture 1:1:2 (112 px, batch 8)": PipelineConfig(
            datasets=("posescript", "llava_instruct", "hmr_images"),
            ratios=(1.0, 1.0, 2.0),
            batch_size=8,
            image_size=112,
            num_image_tokens=64,
            **common,
        ),  # fmt: skip
    }
    rates = {}
    for name, cfg in runs.items():
        rate, n = _examples_per_second(BatchIterator(cfg, tokenizer, 0, 1), _SECONDS.value)
        rates[name] = rate
        print(f"{name}: {rate:.0f} examples/s ({n} examples)")
    if _TRAIN_STEPS.value:
        train = tiny_train_examples_per_second(_TRAIN_STEPS.value)
        print(f"tiny training step consumes {train:.1f} examples/s")
        for name, rate in rates.items():
            print(f"  ratio pipeline / training, {name}: {rate / train:.1f}")
    if _PADDING_BATCHES.value:
        recipe = dict(
            data_dir=data_dir, datasets=("posescript", "llava_instruct", "hmr_images"), ratios=(1.0, 1.0, 2.0),
            batch_size=_PADDING_ROWS.value, image_size=336, num_image_tokens=576, max_text_length=1024,
            length_counts_image=True, image_start_end=True, shuffle_buffer=256, seed=0, max_poses=8,
        )  # fmt: skip
        chat_tokenizer = load_tokenizer(paths["tokenizer"], image_start_end=True)
        shares = {}
        for name, pack in (("padded", False), ("packed", True)):
            cfg = PipelineConfig(**recipe, pack=pack)
            shares[name] = padding_share(BatchIterator(cfg, chat_tokenizer, 0, 1), _PADDING_BATCHES.value, 1024)
        print(
            f"chatpose recipe mixture, {_PADDING_BATCHES.value} batches of {_PADDING_ROWS.value} rows, 1024 positions:"
        )
        for name, share in shares.items():
            print(
                f"  {name}: padding {share['cut']:.1%} of the batches as cut, {share['full']:.1%} of 1024-position rows; "
                f"{share['tokens_per_row']:.0f} real tokens and {share['conversations_per_row']:.2f} conversations a row"
            )
        gain = shares["packed"]["tokens_per_row"] / shares["padded"]["tokens_per_row"]
        print(f"  ratio packed / padded, real tokens per 1024-position row (same step memory): {gain:.2f}")


if __name__ == "__main__":
    app.run(main)
