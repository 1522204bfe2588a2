"""Evaluation throughput: samples/s of batched KV-cache decoding against one sample at a time.

    python -m chatpose_jax.benchmarks.eval [--batch_size 16] [--max_new_tokens 16] [--repeats 2]

Synthesises small PoseScript and HMR datasets in a temp folder, prepares them with the TFDS
builders, and runs the tiny config (configs/tiny.py, random-init weights, the synthetic
tokenizer) over the 3DPW test split (image-to-pose) and the PoseScript test split (text-to-pose)
through the code `chatpose-eval` runs (`eval.predictions.predict_benchmark` on a
`eval.mesh_decode.MeshDecoder`: prompts encoded, images cropped and preprocessed, greedy
decoding with the KV cache, poses read), first with `--batch_size` prompts per step, then one
prompt per step, in the same process. Every answer runs the full `--max_new_tokens` (random
weights never say `</s>`), so both sides do the same decoding work per sample. Each figure is
the best of `--repeats` timed passes, batched and one-at-a-time passes alternating, after a
warm-up pass that compiles every shape. Prints samples/s of both and their ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time

from chatpose_jax.config_files import repo_config


def tiny_model(tokenizer_dir: str):
    """A random-init ChatModel of configs/tiny.py on the synthetic tokenizer (LoRA merged away)."""
    import jax

    from chatpose_jax.experiment import load_experiment
    from chatpose_jax.inference.session import ChatModel, load_chat_tokenizer
    from chatpose_jax.model import chatpose
    from chatpose_jax.model.config import LoraConfig

    config = load_experiment(repo_config("tiny"), 1).model
    config = dataclasses.replace(config, lora=LoraConfig(rank=0))
    params, _ = chatpose.init_params(config, jax.random.key(0))
    return ChatModel(config, params, None, load_chat_tokenizer(tokenizer_dir, config))


def prepare_data(root: str, num_poses: int, num_images: int) -> dict:
    import data_pipelines  # noqa: F401  (registers the builders)
    from data_pipelines import prepared
    from data_pipelines.prepare import prepare
    from data_pipelines.synthetic.writers import synthesize

    data_dir = os.path.join(root, "tfds")
    done = os.path.join(root, "ready.json")
    if os.path.exists(done):  # a --workdir of an earlier run
        with open(done) as f:
            paths = json.load(f)
        stale = prepared.outdated(("posescript", "hmr_images"), paths["data_dir"])
        if not stale:
            return paths
        print("making the data again, older builders prepared it:\n  " + "\n  ".join(stale))
        shutil.rmtree(data_dir, ignore_errors=True)
    raw = synthesize(os.path.join(root, "raw"), num_poses=num_poses, num_hmr_images=num_images, num_vqa_images=4,
                     num_spg=4, num_rpe=4)  # fmt: skip
    for name in ("posescript", "hmr_images"):
        prepare(name, raw[name], data_dir)
    with open(done, "w") as f:
        json.dump({"raw": raw, "data_dir": data_dir}, f)
    return {"raw": raw, "data_dir": data_dir}


def timed_pass(decoder, data, mean, max_new_tokens: int) -> float:
    """Seconds of one `predict_benchmark` pass over `data`."""
    from chatpose_jax.eval.predictions import predict_benchmark

    start = time.perf_counter()
    predict_benchmark(decoder, data, mean, max_new_tokens=max_new_tokens, progress=False)
    return time.perf_counter() - start


def compare(decoders: dict, data, mean, max_new_tokens: int, repeats: int) -> dict:
    """{name: (samples/s of the best pass, warm-up seconds)}; passes alternate between the decoders, so a
    change of load on the machine falls on both alike."""
    warm = {name: timed_pass(d, data, mean, max_new_tokens) for name, d in decoders.items()}
    best = {name: float("inf") for name in decoders}
    for _ in range(repeats):
        for name, d in decoders.items():
            best[name] = min(best[name], timed_pass(d, data, mean, max_new_tokens))
    return {name: (len(data) / best[name], warm[name]) for name in decoders}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=16, help="prompts per decoding step (batched side)")
    parser.add_argument("--max_new_tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per figure (best kept)")
    parser.add_argument("--num_poses", type=int, default=320, help="synthetic PoseScript poses (test: a tenth)")
    parser.add_argument("--num_images", type=int, default=96, help="synthetic HMR images (3DPW test: a third)")
    parser.add_argument("--workdir", default=None, help="where to synthesise (default: a temp folder; reused)")
    args = parser.parse_args()

    import jax
    import numpy as np

    from chatpose_jax.eval import benchmarks
    from chatpose_jax.eval.mesh_decode import MeshDecoder
    from chatpose_jax.parallel.mesh import MeshConfig

    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or tmp
        start = time.perf_counter()
        data = prepare_data(root, args.num_poses, args.num_images)
        print(f"synthesised and prepared the data in {time.perf_counter() - start:.0f}s", flush=True)
        model = tiny_model(data["raw"]["tokenizer"])
        one_device = MeshConfig(data=1, fsdp=1, tensor=1)
        batched = MeshDecoder.create(model, args.batch_size, one_device, devices=jax.devices()[:1])
        single = MeshDecoder.create(model, 1, one_device, devices=jax.devices()[:1])
        mean = (np.zeros(3, np.float32), np.zeros(69, np.float32))
        results = {}
        for name in ("3dpw", "posescript"):
            bench = benchmarks.read_benchmark(name, data["data_dir"])
            rows = [batched.encode(q, bench.kind == "image") for q in bench.questions[: batched.rows_per_host]]
            pixels = None
            if bench.kind == "image":
                size = model.config.vision.image_size
                pixels = benchmarks.pixel_values(bench.images[: len(rows)], bench.crops[: len(rows)], size)
            lengths = batched.generate(rows, pixels, args.max_new_tokens)["lengths"]
            print(f"  {name}: answers of {lengths.min()}-{lengths.max()} tokens (of {args.max_new_tokens})")
            timed = compare({"batched": batched, "single": single}, bench, mean, args.max_new_tokens, args.repeats)
            (rate_b, warm_b), (rate_1, warm_1) = timed["batched"], timed["single"]
            results[name] = {
                "kind": bench.kind, "n": len(bench), "batched_samples_per_s": rate_b, "single_samples_per_s": rate_1,
                "ratio": rate_b / rate_1, "warmup_s": {"batched": warm_b, "single": warm_1},
            }  # fmt: skip
            print(f"  {name}: batched {rate_b:.1f} samples/s, one at a time {rate_1:.1f} samples/s", flush=True)
    print(json.dumps({"device": str(jax.devices()[0]), "batch_size": args.batch_size,
                      "max_new_tokens": args.max_new_tokens, "benchmarks": results}, indent=1))  # fmt: skip
    print(f"{'benchmark':<22}{'n':>5}{'batched':>14}{'one at a time':>16}{'ratio':>8}")
    for name, r in results.items():
        label = f"{name} ({r['kind']})"
        print(
            f"{label:<22}{r['n']:>5}{r['batched_samples_per_s']:>10.1f} /s{r['single_samples_per_s']:>12.1f} /s"
            f"{r['ratio']:>8.2f}"
        )
    print(f"batch {args.batch_size}, {args.max_new_tokens} new tokens per answer, tiny config, {jax.devices()[0]}")


if __name__ == "__main__":
    main()
