"""Per-chip memory, network and roofline of the 7B / 13B train step on TPU slices, beside MaxText's.

    python -m chatpose_jax.benchmarks.compile_memory --cases 7b:v5p-128:4:full,13b:v5p-128:4:full \
        [--maxtext_python /opt/maxtext-venv/bin/python] [--largest] [--out results.jsonl]

Each case `MODEL:SLICE:SEQUENCES_PER_CHIP:REMAT[:ATTENTION[:ROWS]]` (ATTENTION: the recipe's "auto",
which is splash on TPU, or "xla"; ROWS: "packed", the recipe's, or "padded") compiles our LLaVA-1.5 ChatPose train step (LoRA,
576 image + 448 text tokens, pure FSDP over the slice, `chatpose_jax.train.aot`) for compile-only
TPU devices on this host, and, with `--maxtext_python` (a Python whose environment has MaxText:
it needs its own, newer JAX), MaxText's `train_compile` of LLaMA-2 of the same size with the
same sequences of 1024 tokens per chip and remat policy, full fine-tuning with Adam. It prints
both per-chip memories (arguments + temporaries, as MaxText prints them) and the ratio ours /
MaxText, with our collective bytes, executed FLOPs and roofline MFU. `--largest` then finds
the largest sequences per chip our step fits in HBM (a second compile at twice the sequences gives
memory's slope in the batch; compiles confirm the predicted largest and that one more does not fit).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import time
from pathlib import Path

from chatpose_jax.config_files import load_config_file

os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

REPO = Path(__file__).resolve().parent.parent.parent
CONFIGS = {"7b": "configs/llava15_7b.py", "13b": "configs/llava15_13b.py"}
MAXTEXT_MODELS = {"7b": "llama2-7b", "13b": "llama2-13b"}
TEXT_LENGTH = 448  # + 576 image tokens = 1024 per sequence
GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class Case:
    model: str  # "7b" | "13b"
    slice_name: str  # e.g. v5p-128
    per_chip: int  # sequences per chip
    remat: str
    attention: str = "auto"  # model.attention_impl: "auto" (the recipes': splash on TPU), "xla" or "splash"
    rows: str = "packed"  # "packed" (data.pack, the recipes') or "padded"

    @classmethod
    def parse(cls, text: str) -> Case:
        parts = text.split(":")
        if not 4 <= len(parts) <= 6 or not parts[2].isdigit():
            raise ValueError(
                f"case {text!r}: expected MODEL:SLICE:SEQUENCES_PER_CHIP:REMAT[:ATTENTION[:ROWS]], e.g. 7b:v5p-128:4:full"
                " or 7b:v5p-128:4:full:xla:padded"
            )
        model, slice_name, per_chip, remat, *rest = parts
        if model not in CONFIGS:
            raise ValueError(f"case {text!r}: model {model!r} is not one of {sorted(CONFIGS)}")
        case = cls(model, slice_name, int(per_chip), remat, *rest)
        if case.attention not in ("auto", "xla", "splash"):
            raise ValueError(f"case {text!r}: attention {case.attention!r} is not auto, xla or splash")
        if case.rows not in ("packed", "padded"):
            raise ValueError(f"case {text!r}: rows {case.rows!r} is not packed or padded")
        return case


def load_config(case: Case, batch_size: int):
    config = load_config_file(REPO / CONFIGS[case.model])
    config.train.grad_accum_steps = 1
    config.train.batch_size = batch_size
    config.mesh.fsdp = -1
    config.mesh.data = 1
    config.model.remat_policy = case.remat
    config.model.attention_impl = case.attention
    config.data.pack = case.rows == "packed"
    return config


def ours(case: Case, per_chip: int | None = None) -> dict:
    """Our step compiled for the case's slice: memory, network, FLOPs and roofline per chip."""
    from chatpose_jax.experiment import load_experiment
    from chatpose_jax.parallel.topology import compile_only_devices
    from chatpose_jax.train import aot

    per_chip = per_chip or case.per_chip
    tpu, devices = compile_only_devices(case.slice_name)
    experiment = load_experiment(load_config(case, per_chip * len(devices)), len(devices))
    try:
        report = aot.compile_train_step(experiment, devices, tpu.generation, TEXT_LENGTH)
    except aot.DoesNotFitError as e:
        return {"per_chip": per_chip, "fits": False, "error": str(e).splitlines()[0]}
    m, net, roof = report.memory, report.network, report.roofline
    return {
        "per_chip": per_chip,
        "fits": report.fits,
        "arguments_gib": m.argument / GIB,
        "temporaries_gib": m.temp / GIB,
        "total_gib": m.total / GIB,
        "compile_s": report.compile_seconds,
        "model_tflops_per_chip": report.our_flops / report.num_devices / 1e12,
        "executed_tflops_per_chip": (report.executed_flops or 0) / 1e12,
        "all_gather_gib": (net.ici["all-gather"] + net.dcn["all-gather"]) / GIB,
        "all_reduce_gib": (net.ici["all-reduce"] + net.dcn["all-reduce"]) / GIB,
        "reduce_scatter_gib": (net.ici["reduce-scatter"] + net.dcn["reduce-scatter"]) / GIB,
        "all_to_all_gib": (net.ici["all-to-all"] + net.dcn["all-to-all"]) / GIB,
        "gather_ideal_gib": (report.weight_gather_ideal or 0) / GIB,
        "ici_traffic_gib": net.ici_traffic / GIB,
        "hbm_traffic_gib": report.memory_traffic / GIB,
        "roofline_ms": 1000 * roof.step_s,
        "roofline_bound": roof.bound,
        "mfu": roof.mfu,
        "serial_mfu": roof.serial_mfu,
    }


def maxtext(case: Case, python: str, workdir: str) -> dict:
    """MaxText's train_compile of the same-size LLaMA-2 in its own environment: per-chip memory."""
    locate = subprocess.run(
        [python, "-c", "import maxtext, os; print(os.path.dirname(maxtext.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    )
    base = Path(locate.stdout.strip()) / "configs" / "base.yml"
    command = [
        python, "-m", "maxtext.trainers.pre_train.train_compile", str(base),
        f"compile_topology={case.slice_name}", "compile_topology_num_slices=1",
        f"model_name={MAXTEXT_MODELS[case.model]}", f"per_device_batch_size={case.per_chip}",
        "max_target_length=1024", f"remat_policy={case.remat}", "dataset_type=synthetic",
        "run_name=chatpose_compare", f"base_output_directory={workdir}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
    env["ALLOW_MULTIPLE_LIBTPU_LOAD"] = "1"
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    text = run.stdout + run.stderr
    sizes = parse_maxtext_memory(text)
    if len(sizes) < 2:
        return {"error": f"no memory analysis in MaxText's output (exit {run.returncode}): {text[-500:]}"}
    return {**sizes, "total_gib": sum(sizes.values()), "compile_s": time.perf_counter() - start}


def parse_maxtext_memory(text: str) -> dict:
    """Arguments and temporaries (GiB) from the `Memory analysis: CompiledMemoryStats(...)` line MaxText prints."""
    sizes = {}
    for key, field in (("arguments_gib", "argument_size_in_bytes"), ("temporaries_gib", "temp_size_in_bytes")):
        match = re.search(rf"Memory analysis:.*?\b{field}=(\d+)", text)
        if match:
            sizes[key] = int(match.group(1)) / GIB
    return sizes


def largest(case: Case, first: dict, hbm_gib: float) -> dict:
    """The largest sequences per chip our step fits: memory is linear in the batch, so a second compile at
    twice the sequences gives the slope, the line predicts the largest, and compiles confirm it (and that
    one more does not fit)."""
    if not first.get("fits"):
        return first
    second = ours(case, 2 * first["per_chip"])
    print(f"  {case.model} {case.slice_name} {second['per_chip']}/chip: {fmt_fit(second)}", flush=True)
    if "total_gib" not in second:
        return first
    slope = (second["total_gib"] - first["total_gib"]) / first["per_chip"]
    guess = max(first["per_chip"], int(first["per_chip"] + (hbm_gib - first["total_gib"]) / max(slope, 1e-9)))
    good, bad = (second, None) if second.get("fits") else (first, second)
    for _ in range(4):
        if bad is not None and bad["per_chip"] - good["per_chip"] <= 1:
            break
        target = guess if guess > good["per_chip"] and (bad is None or guess < bad["per_chip"]) else None
        if target is None:
            target = good["per_chip"] + 1 if bad is None else (good["per_chip"] + bad["per_chip"]) // 2
        trial = ours(case, target)
        print(f"  {case.model} {case.slice_name} {trial['per_chip']}/chip: {fmt_fit(trial)}", flush=True)
        if trial.get("fits"):
            good = trial
            guess = target + 1
        else:
            bad = trial
            guess = target - 1
    return {
        **good,
        "slope_gib_per_sequence": slope,
        "confirmed": bad is not None and bad["per_chip"] == good["per_chip"] + 1,
    }


def fmt_fit(result: dict) -> str:
    if "total_gib" not in result:
        return f"does not fit ({result.get('error', '')[:80]})"
    return f"{result['total_gib']:.2f} GiB" + ("" if result["fits"] else " (does not fit)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="7b:v5p-128:4:full", help="MODEL:SLICE:PER_CHIP:REMAT, comma-separated")
    parser.add_argument("--maxtext_python", default=None, help="a Python with MaxText installed (its own venv)")
    parser.add_argument("--largest", action="store_true", help="also find the largest sequences per chip that fit")
    parser.add_argument("--out", default=None, help="append one JSON line per case here")
    parser.add_argument("--maxtext_workdir", default="/tmp/chatpose_maxtext_compile")
    parser.add_argument("--previous", default=None, help="JSON lines of an earlier run: reuse its results per case")
    args = parser.parse_args()
    previous = {}
    if args.previous and Path(args.previous).exists():
        for line in Path(args.previous).read_text().splitlines():
            entry = json.loads(line)
            previous.setdefault(entry["case"], {}).update(entry)
    rows = []
    for text in args.cases.split(","):
        case = Case.parse(text)
        row = dict(previous.get(text, {}))
        row["case"] = text
        if "ours" not in row:
            row["ours"] = ours(case)
        print(f"{text}: ours {fmt_fit(row['ours'])}", flush=True)
        if args.maxtext_python and "maxtext" not in row:
            row["maxtext"] = maxtext(case, args.maxtext_python, args.maxtext_workdir)
            print(f"{text}: MaxText {json.dumps(row['maxtext'])[:300]}", flush=True)
        if args.largest and "largest" not in row:
            from chatpose_jax.parallel.topology import parse_slice

            row["largest"] = largest(case, row["ours"], parse_slice(case.slice_name).generation.hbm_bytes / GIB)
        rows.append(row)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    print(
        "\n| case | ours args + temps | MaxText args + temps | ours / MaxText | all-gather (ideal) | all-reduce "
        "| executed / model FLOPs | roofline | MFU | largest per chip |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        o, mt = row["ours"], row.get("maxtext", {})
        if "total_gib" not in o:
            print(f"| {row['case']} | does not fit | | | | | | | | |")
            continue
        ours_mem = o["arguments_gib"] + o["temporaries_gib"]
        mt_mem = mt.get("total_gib")
        ratio = f"{ours_mem / mt_mem:.2f}" if mt_mem else "-"
        mt_text = f"{mt['arguments_gib']:.2f} + {mt['temporaries_gib']:.2f} = {mt_mem:.2f} GiB" if mt_mem else "-"
        big = row.get("largest", {})
        print(
            f"| {row['case']} | {o['arguments_gib']:.2f} + {o['temporaries_gib']:.2f} = {ours_mem:.2f} GiB | {mt_text} "
            f"| {ratio} | {o['all_gather_gib']:.1f} GiB ({o['gather_ideal_gib']:.1f}) | {o['all_reduce_gib']:.2f} GiB "
            f"| {o['executed_tflops_per_chip'] / o['model_tflops_per_chip']:.2f} | {o['roofline_ms']:.0f} ms "
            f"({o['roofline_bound']}) | {100 * o['mfu']:.0f}% ({100 * o['serial_mfu']:.0f}% serial) "
            f"| {big.get('per_chip', '-')}{' (' + format(big['total_gib'], '.1f') + ' GiB)' if big.get('total_gib') else ''} |"
        )


if __name__ == "__main__":
    main()
