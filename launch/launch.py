"""One launcher, several targets: render a job's commands or manifest from the same inputs and run them.

    python launch/launch.py TARGET --config configs/X.py --workdir URI [--config.field=value ...]
        [--accelerator v5p-128 | h100-80gb-8] [--num_slices N | --num_nodes N] [--dry_run] [--delete]
        [-- more flags of the program]

TARGET: tpu-vm, queued-resource, xpk, gke, slurm, local. `--dry_run` prints, as a bash script,
exactly what would run; without it the same steps run here (gcloud, xpk, kubectl, sbatch). Every
plan ends in the same `chatpose-train` invocation (`--program eval`: chatpose-eval; `check`: the
collective check). Code: TPU VMs and SLURM check out `--commit` of `--repo` (default: this
checkout's HEAD and origin; push it first) or install `--wheel`; GKE and xpk run `--docker_image`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `launch.*` importable
    sys.path.insert(0, str(REPO))

from launch import render, runner  # noqa: E402
from launch.spec import CodeSource, LaunchSpec, SpecError  # noqa: E402
from launch.targets import gke, local, queued_resource, slurm, tpu_vm, xpk  # noqa: E402

TARGETS = {
    "tpu-vm": tpu_vm,
    "queued-resource": queued_resource,
    "xpk": xpk,
    "gke": gke,
    "slurm": slurm,
    "local": local,
}
NEEDS_CODE = ("tpu-vm", "queued-resource", "slurm")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", choices=tuple(TARGETS))
    p.add_argument("--config", default="", help="configs/X.py[:recipe], passed to chatpose-train unchanged")
    p.add_argument("--workdir", default="", help="checkpoints and logs (gs://... on clouds)")
    p.add_argument("--program", default="train", choices=("train", "eval", "check"))
    p.add_argument("--name", default="", help="job / TPU / workload name (default: from the config)")
    p.add_argument("--accelerator", default="", help="TPU slice (v5p-128, v5e-256) or GPU node (h100-80gb-8)")
    p.add_argument("--num_slices", type=int, default=1, help="TPU slices (multislice when > 1)")
    p.add_argument("--num_nodes", type=int, default=1, help="GPU nodes")
    p.add_argument("--gpus_per_node", type=int, default=8)
    p.add_argument("--zone", default="")
    p.add_argument("--project", default="")
    p.add_argument("--spot", action="store_true")
    p.add_argument("--reserved", action="store_true")
    p.add_argument("--cluster", default="", help="GKE / xpk cluster")
    p.add_argument("--docker_image", default="", help="GKE / xpk: image with the code, working directory the repo")
    p.add_argument("--max_restarts", type=int, default=3)
    p.add_argument("--partition", default="", help="SLURM partition")
    p.add_argument("--time", default="", help="SLURM time limit, e.g. 2-00:00:00")
    p.add_argument("--repo", default="", help="git URL the workers clone (default: this checkout's origin)")
    p.add_argument("--commit", default="", help="commit the workers check out (default: this checkout's HEAD)")
    p.add_argument("--wheel", default="", help="a built wheel (gs:// or shared path) instead of a git checkout")
    p.add_argument("--init_timeout_s", type=int, default=1800, help="wait for the other processes at start")
    p.add_argument("--heartbeat_timeout_s", type=int, default=600, help="silence before a peer counts as dead")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="more variables for the program")
    p.add_argument("--num_processes", type=int, default=2, help="local: processes")
    p.add_argument("--devices_per_process", type=int, default=1, help="local: CPU devices per process")
    p.add_argument("--python", default="", help="interpreter for local runs and the check (default: this one)")
    p.add_argument("--dry_run", action="store_true", help="print what would run, run nothing")
    p.add_argument("--delete", action="store_true", help="tear down (TPU queued resource, workload, jobset, job)")
    p.add_argument("--poll_s", type=float, default=None, help="seconds between readiness polls")
    return p


def split_argv(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(launcher flags, --config.* overrides in order, program flags after `--`)."""
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    overrides = [a for a in argv if a.startswith("--config.")]
    for a in overrides:
        if "=" not in a:
            raise SpecError(f"{a!r}: write config overrides as --config.field=value")
    return [a for a in argv if not a.startswith("--config.")], overrides, extra


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def code_source(args: argparse.Namespace) -> CodeSource:
    if args.wheel:
        text = Path(args.config.split(":", 1)[0]).read_text(encoding="utf-8") if args.config else ""
        return CodeSource("wheel", args.wheel, config_text=text)
    try:
        repo = args.repo or _git("remote", "get-url", "origin")
        commit = args.commit or _git("rev-parse", "HEAD")
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        raise SpecError("give --repo and --commit (this checkout has no origin remote or no git)") from e
    return CodeSource("git", repo, commit)


def default_name(args: argparse.Namespace) -> str:
    stem = Path(args.config.split(":", 1)[0]).stem if args.config else args.program
    return re.sub(r"[^a-z0-9]+", "-", f"chatpose-{stem}".lower()).strip("-")[:40]


def build_spec(argv: list[str]) -> tuple[LaunchSpec, argparse.Namespace]:
    flags, overrides, extra = split_argv(argv)
    args = parser().parse_args(flags)
    env = []
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--env {item!r}: expected KEY=VALUE")
        env.append((key, value))
    accelerator = args.accelerator or {"xpk": "", "gke": "", "tpu-vm": "", "queued-resource": ""}.get(
        args.target, "h100-80gb-8" if args.target == "slurm" else "cpu"
    )
    if not accelerator:
        raise SpecError(f"{args.target}: --accelerator is required (e.g. v5p-128, v5e-256, h100-80gb-8)")
    spec = LaunchSpec(
        target=args.target,
        name=args.name or default_name(args),
        workdir=args.workdir,
        config=args.config,
        overrides=tuple(overrides),
        extra_args=tuple(extra),
        program=args.program,
        code=code_source(args) if args.target in NEEDS_CODE and not args.delete else None,
        accelerator=accelerator,
        num_slices=args.num_slices,
        num_nodes=args.num_nodes,
        gpus_per_node=args.gpus_per_node,
        zone=args.zone,
        project=args.project,
        spot=args.spot,
        reserved=args.reserved,
        cluster=args.cluster,
        docker_image=args.docker_image,
        max_restarts=args.max_restarts,
        partition=args.partition,
        time_limit=args.time,
        init_timeout_s=args.init_timeout_s,
        heartbeat_timeout_s=args.heartbeat_timeout_s,
        env=tuple(env),
        num_processes=args.num_processes,
        devices_per_process=args.devices_per_process,
        python=args.python or (sys.executable if args.target == "local" else "python3"),
    )
    return spec, args


def plan(spec: LaunchSpec, delete: bool = False) -> list:
    module = TARGETS[spec.target]
    return module.teardown(spec) if delete else module.plan(spec)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        spec, args = build_spec(argv)
        steps = plan(spec, args.delete)
    except SpecError as e:
        print(f"launch.py: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        sys.stdout.write(render.script(steps))
        return 0
    return runner.run(steps, args.poll_s)


if __name__ == "__main__":
    sys.exit(main())
