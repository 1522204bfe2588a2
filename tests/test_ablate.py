"""launch/ablate.py: the tiny runner end to end on one row of Table 6 and the representation table, resumption, full-scale commands, collection."""

import contextlib
import io
import json
import os
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from launch import ablate  # noqa: E402
from tests.cli_in_process import run_tool  # noqa: E402

SNAPSHOTS = REPO / "tests" / "snapshots"
TINY = ["--rows", "vqa_image2pose", "--benchmarks", "3dpw", "--steps", "2"]
TINY += ["--data_sizes", "num_poses=40,num_hmr_images=24,num_vqa_images=8,num_rpe=6"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One row of Table 6 trained and evaluated at the smallest size, then the runner run again.

    Every row goes through the same code (its overrides, train, eval, its cells); the representation
    table below trains two more rows in the same folder. The runner runs in this process, and so do
    the rows' commands: each `chatpose-train` / `chatpose-eval` command line goes through its tool's
    `main` (tests/cli_in_process.py) instead of a new Python process; `_execute`, which starts that
    process, is tested on its own below.
    """
    root = tmp_path_factory.mktemp("ablate")
    argv = ["--table", "6", "--scale", "tiny", "--workdir", str(root), *TINY]
    printed = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ablate, "_execute", run_tool)
        for _ in range(2):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert ablate.main(argv) == 0
            printed.append(out.getvalue())
    return root, *printed


@pytest.mark.slow
def test_tiny_run_trains_evaluates_and_tables_the_row(tiny_run):
    root, first, _ = tiny_run
    name = "vqa_image2pose"
    assert f"chatpose-train --config={REPO / 'configs' / 'tiny.py'} --workdir={root}/table6/{name}/train" in first
    assert f"chatpose-eval --checkpoint={root}/table6/{name}/train" in first
    # The row's overrides reach training.
    assert shlex.quote("--config.data.datasets=('llava_instruct', 'hmr_images')") in first
    assert "--config.data.ratios=(1.0, 2.0)" in first
    metrics = json.loads((root / "table6" / name / "eval" / "metrics.json").read_text())
    ours_3dpw = metrics["benchmarks"]["3dpw"]["ours"]["pa_mpjpe_mm"]
    assert ours_3dpw > 0
    table = (root / "table6.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| VQA")}
    assert set(rows) == {"VQA + Image2Pose (w/o Text2Pose)"}
    cells = [c.strip() for c in rows["VQA + Image2Pose (w/o Text2Pose)"].split("|")[2:-1]]
    assert cells[0] == f"{ours_3dpw:.1f} (87.8)"
    assert cells[1] == "- (89.2)"  # not evaluated in this run: the paper's figure alone
    assert (root / "table6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_second_run_skips_finished_rows(tiny_run):
    _, _, second = tiny_run
    assert "[vqa_image2pose] done, skipped" in second
    assert "chatpose-train" not in second and "chatpose-eval" not in second


def test_each_command_runs_in_a_new_process_from_the_repository_with_its_output_in_the_row_log(tmp_path):
    log = tmp_path / "row" / "log.txt"
    ablate._run([sys.executable, "-c", "import os; print('pid', os.getpid(), 'in', os.getcwd())"], log)
    first = log.read_text()
    assert first.startswith("pid ") and f"pid {os.getpid()} " not in first and first.endswith(f" in {REPO}\n"), first
    with pytest.raises(SystemExit, match=r"(?s)failed \(3\): .*log\.txt ---\npid .*\nboom\n"):
        ablate._run([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], log)
    assert log.read_text().startswith(first)  # appended


@pytest.mark.parametrize(
    "argv, snapshot",
    [
        (
            "--table 7 --scale full --workdir gs://bucket/ablate --target tpu-vm --accelerator v5p-128 "
            "--init_root gs://bucket/ckpt --data_dir gs://bucket/tfds --body_model_dir gs://bucket/body_models "
            "--retrieval gs://bucket/retrieval --dry_run",
            "ablate_table7_full_dry_run.txt",
        ),
        (
            "--table 6 --scale full --workdir /scratch/ablate --target slurm --accelerator h100-80gb-8 "
            "--init_root /ckpt --data_dir /data/tfds --body_model_dir /data/body_models "
            "--retrieval /scratch/retrieval --dry_run",
            "ablate_table6_full_dry_run.txt",
        ),
    ],
    ids=["table7_tpu", "table6_slurm"],
)
def test_full_dry_run_equals_the_reviewed_snapshot(argv, snapshot, capsys):
    assert ablate.main(argv.split()) == 0
    assert capsys.readouterr().out == (SNAPSHOTS / snapshot).read_text()


def test_collect_fills_finished_rows_and_names_the_rest(tmp_path, capsys):
    row = tmp_path / "table7" / "bakllava" / "eval"
    row.mkdir(parents=True)
    metrics = {"benchmarks": {"h36m": {"ours": {"pa_mpjpe_mm": 91.25}}, "posescript": {"ours": {"mrecall": 12.5}}}}
    (row / "metrics.json").write_text(json.dumps(metrics))
    assert ablate.main(["--table", "7", "--scale", "full", "--workdir", str(tmp_path), "--collect"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in (tmp_path / "table7.md").read_text().splitlines() if x.startswith("| bakLlava"))
    assert [c.strip() for c in line.split("|")[2:-1]] == ["-", "91.2", "-", "12.5"]
    assert "not finished yet: llava15_7b, llava15_13b, interleave_qwen_7b" in out
    assert os.path.exists(tmp_path / "table7.png")


def test_unknown_row_is_refused():
    with pytest.raises(SystemExit, match="no row"):
        ablate.main(["--table", "6", "--scale", "tiny", "--workdir", "/nonexistent", "--rows", "vqa_only,nope"])


@pytest.mark.slow
def test_representation_table_trains_both_representations_and_lifts_the_keypoint_answers(tiny_run):
    """The supplement's pose representations at the smallest size: the <POSE> row and the keypoint row
    (configs/tiny.py:keypoints, evaluated with --pose_from keypoints and the GMM prior the runner fits),
    in the Table 6 run's folder, whose synthetic data (same sizes) it reuses."""
    tmp_path = tiny_run[0]
    argv = ["--table", "representation", "--scale", "tiny", "--workdir", str(tmp_path), *TINY]
    argv[argv.index("--rows") : argv.index("--rows") + 2] = []
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(ablate, "_execute", run_tool)
        assert ablate.main(argv) == 0
    printed = out.getvalue()
    assert f"--config={REPO / 'configs' / 'tiny.py:keypoints'}" in printed
    assert "--pose_from=keypoints" in printed and f"--smplify_prior={tmp_path}/data/gmm_08.pkl" in printed
    with open(tmp_path / "data" / "gmm_08.pkl", "rb") as f:
        import pickle

        gmm = pickle.load(f, encoding="latin1")
    assert gmm["means"].shape == (8, 69) and gmm["covars"].shape == (8, 69, 69)
    for name in ("pose_token", "keypoints"):
        metrics = json.loads((tmp_path / "representation" / name / "eval" / "metrics.json").read_text())
        assert metrics["options"]["pose_from"] == ("keypoints" if name == "keypoints" else "pose_token")
        ours = metrics["benchmarks"]["3dpw"]["ours"]
        assert ours["pa_mpjpe_mm"] > 0 and 0.0 <= ours["no_pose_rate"] <= 1.0
    table = (tmp_path / "representation.md").read_text()
    assert "| <POSE> token (VQA + Image2Pose) |" in table and "| keypoints as text + SMPLify (LLaVA*) |" in table


def test_full_representation_rows_need_the_smplify_prior(capsys):
    argv = ["--table", "representation", "--scale", "full", "--workdir", "gs://b/a", "--dry_run"]
    with pytest.raises(SystemExit, match="give --smplify_prior gmm_08.pkl"):
        ablate.main(argv)
    assert ablate.main([*argv, "--smplify_prior", "gs://b/gmm_08.pkl"]) == 0
    printed = capsys.readouterr().out
    assert "--config=configs/backbones/llava15_13b_hf.py:keypoints" in printed
    assert "--pose_from=keypoints --smplify_prior=gs://b/gmm_08.pkl --max_new_tokens=320" in printed
