"""The paper's ablation tables, one training + evaluation per row, aggregated beside the paper's figures.

    python launch/ablate.py --table 6 --scale tiny --workdir /tmp/ablate
    python launch/ablate.py --table 7 --scale full --workdir gs://B/ablate --target tpu-vm \\
        --accelerator v5p-128 --init_root gs://B/ckpt --data_dir gs://B/tfds --dry_run
    python launch/ablate.py --table 7 --scale full --workdir gs://B/ablate --collect

Rows are named sets of config overrides (configs/ablations/table6.py, table7.py).
  tiny: synthetic data in DIR/data (made once), then per row `chatpose-train` of its tiny analogue
        and `chatpose-eval` into DIR/<table>/<row>/; a row whose eval/metrics.json exists is
        skipped, so an interrupted run picks up where it stopped (training itself resumes from its
        checkpoints). The text benchmark is scored by a retrieval model trained once in DIR/retrieval.
  full: one `launch/launch.py TARGET` training job and one `--program eval` job per row
        (`--dry_run` prints these commands); `--collect` fills the table from the rows' metrics.json.
At the end DIR/table<N>.md puts our figures beside the paper's and DIR/table<N>.png plots them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY_DATA = dict(num_poses=400, num_hmr_images=240, num_vqa_images=40, num_spg=10, num_rpe=40)


TABLES = ("6", "7", "representation")  # the paper's Tables 6 and 7; the supplement's pose representations


def table_stem(table: str) -> str:
    """Folder and file stem of a table: 'table6' for a numbered one, else its name ('representation')."""
    return f"table{table}" if str(table).isdigit() else str(table)


def load_table(table: str):
    """The configs/ablations/<stem>.py module (TITLE, COLUMNS, ROWS, ...)."""
    path = REPO / "configs" / "ablations" / f"{table_stem(table)}.py"
    if not path.exists():
        raise SystemExit(f"no ablation table {table}: {path} does not exist")
    spec = importlib.util.spec_from_file_location(table_stem(table), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def override_flags(overrides: dict) -> list[str]:
    """{"data.ratios": (1.0, 2.0)} -> ["--config.data.ratios=(1.0, 2.0)"] (values as Python literals)."""
    out = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else repr(value)
        out.append(f"--config.{key}={text}")
    return out


def _program(name: str) -> str:
    """The console script next to this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


# ---------------------------------------------------------------------------------------------
# tiny scale


def stage_data(root: Path, sizes: dict) -> dict:
    """Synthetic raw data, body models and tokenizer, prepared with the builders; reused when present."""
    import data_pipelines  # noqa: F401  (registers the builders)
    from data_pipelines import prepared
    from data_pipelines.prepare import prepare
    from data_pipelines.synthetic.writers import synthesize

    names = ("posescript", "hmr_images", "llava_instruct", "rpe")
    done = root / "data" / "ready.json"
    if done.exists():
        paths = json.loads(done.read_text())
        if paths.get("sizes") == sizes:
            stale = prepared.outdated(names, paths["tfds"])
            if not stale:
                return paths
            print(
                f"  making the data in {root / 'data'} again, older builders prepared it:\n    " + "\n    ".join(stale)
            )
    shutil.rmtree(root / "data" / "tfds", ignore_errors=True)
    paths = synthesize(str(root / "data" / "raw"), seed=0, **sizes)
    paths["tfds"] = str(root / "data" / "tfds")
    for name in names:
        prepare(name, paths[name], paths["tfds"])
    paths["sizes"] = sizes
    done.write_text(json.dumps(paths, indent=1))
    return paths


def _execute(cmd: list[str], log) -> int:
    """Runs `cmd` in a new process, its stdout and stderr appended to the open file `log`; its exit status."""
    return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO).returncode


def _run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    print("  $ " + shlex.join(cmd), flush=True)
    with open(log, "a") as f:
        returncode = _execute(cmd, f)
    if returncode:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"failed ({returncode}): {shlex.join(cmd)}\n--- {log} ---\n{tail}")


def tiny_train_command(table, row: dict, data: dict, workdir: Path, steps: int) -> list[str]:
    """chatpose-train of one row: the row's `tiny_config` (default the table's TINY_CONFIG) and overrides."""
    common = {
        "data.data_dir": data["tfds"],
        "data.tokenizer": data["tokenizer"],
        "train.body_model": data["body_model"],
        "train.num_steps": steps,
        "train.checkpoint_every": steps,
        "train.eval_every": 0,
        "train.eval_batches": 0,  # the held-out loss is not a column; VQA-only data has no held-out split
    }
    return [
        _program("chatpose-train"),
        f"--config={REPO / row.get('tiny_config', table.TINY_CONFIG)}",
        f"--workdir={workdir}",
        "--noprogress",
        *override_flags({**common, **row["overrides"]}),
    ]


def tiny_eval_command(
    table, benchmarks: list[str], data: dict, train_dir: Path, out: Path, retrieval, row: dict | None = None
) -> list[str]:
    """chatpose-eval of one row; the row's `eval_flags` ({flag: value}) join, `smplify_prior` resolved to the
    GMM prior the data stage wrote."""
    cmd = [
        _program("chatpose-eval"),
        f"--checkpoint={train_dir}",
        f"--benchmarks={','.join(benchmarks)}",
        f"--data_dir={data['tfds']}",
        f"--body_model_dir={data['body_model_dir']}",
        f"--out={out}",
        "--gallery_size=0",
        "--noprogress",
    ]
    if retrieval:
        cmd.append(f"--retrieval={retrieval}")
    for flag, value in (row or {}).get("eval_flags", {}).items():
        cmd.append(f"--{flag}={data['gmm_prior'] if flag == 'smplify_prior' else value}")
    return cmd


def write_tiny_gmm_prior(root: Path) -> str:
    """SMPLify's GMM pose prior for the synthetic data, in gmm_08.pkl's format: 8 Gaussians fitted to
    4000 poses of the synthetic pose sampler (the published file is fitted to CMU motion capture)."""
    path = root / "data" / "gmm_08.pkl"
    if not path.exists():
        from chatpose_jax.fitting.gmm_file import write_gmm_pkl
        from data_pipelines.synthetic.poses import sample_poses

        _, body_pose = sample_poses(4000, seed=7)
        write_gmm_pkl(str(path), body_pose)
    return str(path)


def train_retrieval(root: Path, data: dict, steps: int) -> Path:
    """The tiny text-pose retrieval model that scores the text benchmarks (trained once for every table)."""
    workdir = root / "retrieval"
    if (workdir / "done").exists():
        return workdir
    cmd = [
        _program("chatpose-train"),
        f"--config={REPO / 'configs' / 'retrieval.py'}:tiny",
        f"--workdir={workdir}",
        "--noprogress",
        *override_flags({"data.data_dir": data["tfds"], "data.tokenizer": data["tokenizer"], "train.num_steps": steps}),
    ]
    _run(cmd, root / "logs" / "retrieval.log")
    (workdir / "done").write_text("ok\n")
    return workdir


def run_tiny(table, stem: str, root: Path, rows: list[dict], benchmarks: list[str], steps: int, sizes: dict) -> dict:
    """Trains and evaluates every row not finished yet; returns {row name: metrics.json dict}."""
    data = stage_data(root, sizes)
    if any("smplify_prior" in row.get("eval_flags", {}) for row in rows):
        data = {**data, "gmm_prior": write_tiny_gmm_prior(root)}
    text = [b for b in benchmarks if b in ("posescript", "spg")]
    retrieval = train_retrieval(root, data, max(steps, 100)) if text else None
    results = {}
    for row in rows:
        row_dir = root / stem / row["name"]
        metrics = row_dir / "eval" / "metrics.json"
        if metrics.exists():
            print(f"[{row['name']}] done, skipped", flush=True)
        else:
            print(f"[{row['name']}] {row['label']}", flush=True)
            log = row_dir / "log.txt"
            _run(tiny_train_command(table, row, data, row_dir / "train", steps), log)
            _run(tiny_eval_command(table, benchmarks, data, row_dir / "train", row_dir / "eval", retrieval, row), log)
        results[row["name"]] = json.loads(metrics.read_text())
    return results


# ---------------------------------------------------------------------------------------------
# full scale


def full_commands(table, rows: list[dict], args) -> list[list[str]]:
    """Per row: the launch/launch.py training job, then its evaluation job."""
    commands = []
    for row in rows:
        config = row.get("full_config", getattr(table, "FULL_CONFIG", ""))
        row_dir = f"{args.workdir.rstrip('/')}/{table_stem(args.table)}/{row['name']}"
        overrides = dict(row.get("full_overrides", row["overrides"] if "full_config" not in row else {}))
        if args.init_root and row.get("checkpoint"):
            overrides["init_checkpoint"] = f"{args.init_root.rstrip('/')}/{row['checkpoint']}"
        elif args.init_root and getattr(table, "FULL_CHECKPOINT", ""):
            overrides["init_checkpoint"] = f"{args.init_root.rstrip('/')}/{table.FULL_CHECKPOINT}"
        if args.data_dir:
            overrides["data.data_dir"] = args.data_dir
        launch = ["python", "launch/launch.py", args.target]  # run with this interpreter (main)
        if args.accelerator:
            launch.append(f"--accelerator={args.accelerator}")
        short = f"t{args.table}" if args.table.isdigit() else args.table
        name = f"ablate-{short}-{row['name'].replace('_', '-')}"
        commands.append(
            [*launch, f"--config={config}", f"--workdir={row_dir}/train", f"--name={name}", *override_flags(overrides)]
        )
        eval_flags = [f"--checkpoint={row_dir}/train", f"--out={row_dir}/eval", f"--benchmarks={','.join(args.bench)}"]
        for flag in ("data_dir", "body_model_dir", "retrieval"):
            if getattr(args, flag):
                eval_flags.append(f"--{flag}={getattr(args, flag)}")
        for flag, value in row.get("eval_flags", {}).items():
            if flag == "smplify_prior" and not args.smplify_prior:
                raise SystemExit(f"row {row['name']} lifts keypoints with SMPLify: give --smplify_prior gmm_08.pkl")
            eval_flags.append(f"--{flag}={args.smplify_prior if flag == 'smplify_prior' else value}")
        commands.append([*launch, "--program=eval", f"--config={config}", f"--name={name}-eval", "--", *eval_flags])
    return commands


def collect(stem: str, root: str, rows: list[dict]) -> dict:
    """{row name: metrics.json dict} of the rows whose evaluation has finished (local paths or gs:// via tf.io)."""
    results = {}
    for row in rows:
        path = f"{root.rstrip('/')}/{stem}/{row['name']}/eval/metrics.json"
        if path.startswith("gs://"):
            import tensorflow as tf

            if tf.io.gfile.exists(path):
                with tf.io.gfile.GFile(path) as f:
                    results[row["name"]] = json.load(f)
        elif os.path.exists(path):
            with open(path) as f:
                results[row["name"]] = json.load(f)
    return results


# ---------------------------------------------------------------------------------------------
# the table


def figure(metrics: dict | None, benchmark: str, metric: str) -> float | None:
    """One number of a row's metrics.json (None when the row or benchmark is missing)."""
    if not metrics:
        return None
    value = metrics.get("benchmarks", {}).get(benchmark, {}).get("ours", {}).get(metric)
    return None if value is None else float(value)


def table_markdown(table, rows: list[dict], results: dict, scale: str) -> str:
    """Rows x columns: our figure and the paper's (in parentheses) per column."""
    cols = table.COLUMNS
    lines = [f"# {table.TITLE}", "", f"Scale: {scale}. Each cell: ours (paper); - where a figure does not exist.", ""]
    lines.append("| row | " + " | ".join(title for _, _, title in cols) + " |")
    lines.append("|---" * (len(cols) + 1) + "|")
    for row in rows:
        cells = []
        for bench, metric, _ in cols:
            ours = figure(results.get(row["name"]), bench, metric)
            paper = row["paper"].get(bench) if metric == "pa_mpjpe_mm" else None
            cell = "-" if ours is None else f"{ours:.1f}"
            cells.append(cell + (f" ({paper:.1f})" if paper is not None else ""))
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def plot(table, rows: list[dict], results: dict, path: str) -> str:
    """Grouped bars per column: ours and, where it exists, the paper's figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = table.COLUMNS
    fig, axes = plt.subplots(1, len(cols), figsize=(4 * len(cols), 3.6), squeeze=False)
    x = np.arange(len(rows))
    for ax, (bench, metric, title) in zip(axes[0], cols, strict=True):
        ours = [figure(results.get(r["name"]), bench, metric) for r in rows]
        paper = [r["paper"].get(bench) if metric == "pa_mpjpe_mm" else None for r in rows]
        ax.bar(x - 0.2, [np.nan if v is None else v for v in ours], 0.4, label="ours")
        if any(p is not None for p in paper):
            ax.bar(x + 0.2, [np.nan if v is None else v for v in paper], 0.4, label="paper")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(x, [r["name"] for r in rows], rotation=30, ha="right", fontsize=7)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_table(table, stem: str, rows: list[dict], results: dict, root: str, scale: str) -> tuple[str, str]:
    md_path, png_path = os.path.join(root, f"{stem}.md"), os.path.join(root, f"{stem}.png")
    with open(md_path, "w") as f:
        f.write(table_markdown(table, rows, results, scale))
    plot(table, rows, results, png_path)
    return md_path, png_path


# ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True, choices=TABLES)
    p.add_argument("--scale", required=True, choices=("tiny", "full"))
    p.add_argument("--workdir", required=True)
    p.add_argument("--rows", default="", help="comma-separated row names (default: every row)")
    p.add_argument("--benchmarks", default="", help="comma-separated (default: the table's columns)")
    p.add_argument("--steps", type=int, default=300, help="tiny: training steps per row")
    p.add_argument("--data_sizes", default="", help="tiny: synthetic sizes, e.g. num_poses=400,num_hmr_images=240")
    p.add_argument("--target", default="tpu-vm", help="full: launch/launch.py target")
    p.add_argument("--accelerator", default="", help="full: TPU slice or GPU node type")
    p.add_argument("--init_root", default="", help="full: folder holding the public checkpoints by name")
    p.add_argument("--data_dir", default="", help="full: TFDS data_dir of the prepared datasets")
    p.add_argument("--body_model_dir", default="", help="full: SMPL models + H36M regressor for the image benchmarks")
    p.add_argument("--retrieval", default="", help="full: retrieval-model workdir for the text benchmarks")
    p.add_argument("--smplify_prior", default="", help="full: SMPLify's gmm_08.pkl for rows that lift keypoints")
    p.add_argument("--dry_run", action="store_true", help="full: print the launch commands, run nothing")
    p.add_argument("--collect", action="store_true", help="full: build the table from the rows' metrics.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    table, stem = load_table(args.table), table_stem(args.table)
    rows = list(table.ROWS)
    if args.rows:
        wanted = args.rows.split(",")
        unknown = sorted(set(wanted) - {r["name"] for r in rows})
        if unknown:
            raise SystemExit(f"table {args.table} has no row(s) {unknown}; rows: {[r['name'] for r in rows]}")
        rows = [r for r in rows if r["name"] in wanted]
    args.bench = args.benchmarks.split(",") if args.benchmarks else list(dict.fromkeys(b for b, _, _ in table.COLUMNS))
    if args.scale == "tiny":
        sizes = dict(TINY_DATA)
        for item in filter(None, args.data_sizes.split(",")):
            key, value = item.split("=")
            sizes[key] = int(value)
        root = Path(args.workdir).resolve()
        root.mkdir(parents=True, exist_ok=True)
        results = run_tiny(table, stem, root, rows, args.bench, args.steps, sizes)
        md, png = write_table(table, stem, rows, results, str(root), "tiny (synthetic data)")
        print(Path(md).read_text())
        print(f"wrote {md} and {png}")
        return 0
    if args.collect:
        results = collect(stem, args.workdir, rows)
        missing = [r["name"] for r in rows if r["name"] not in results]
        out = args.workdir if not args.workdir.startswith("gs://") else "."
        md, _ = write_table(table, stem, rows, results, out, "full")
        print(Path(md).read_text())
        if missing:
            print(f"not finished yet: {', '.join(missing)}")
        return 0
    for cmd in full_commands(table, rows, args):
        print(shlex.join(cmd))
        if not args.dry_run:
            subprocess.run([sys.executable, *cmd[1:]], cwd=REPO, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
