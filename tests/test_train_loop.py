"""The training loop: exact resume after SIGKILL, refusal of a mismatched checkpoint, divergence stop."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatpose_jax.experiment import load_experiment
from chatpose_jax.train.metric_writer import read_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_random_run  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "train_random_run.py"
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def run(workdir, steps, *overrides, timeout=600):
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(workdir), str(steps), *overrides],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def losses(workdir):
    return {row["step"]: row["loss"] for row in read_metrics(str(workdir))}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    result = run(workdir, 20, "train.checkpoint_every=4")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_is_exact(uninterrupted, tmp_path):
    workdir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(workdir), "20", "train.checkpoint_every=4"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Orbax writes into a temporary folder and renames it to the step when complete.
    committed = workdir / "checkpoints" / "4"
    deadline = time.monotonic() + 300
    while not committed.exists():
        assert proc.poll() is None, "the run ended before its step-4 checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert resumed_from < 20, "the run finished before it was killed"
    resumed = run(workdir, 20, "train.checkpoint_every=4")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want, got = losses(uninterrupted), losses(workdir)
    after = [s for s in range(resumed_from + 1, 21)]
    assert [got[s] for s in after] == [want[s] for s in after], (resumed_from, got, want)


@pytest.mark.slow
def test_resume_with_a_changed_model_shape_fails_and_keeps_the_checkpoint(tmp_path, tmp_path_factory):
    import shutil

    from chatpose_jax.train.chatpose_task import ChatPoseTask
    from chatpose_jax.train.checkpoint import CheckpointMismatchError
    from chatpose_jax.train.loop import train_and_evaluate
    from tests import chat_fixtures

    # The session's tiny run (small_tiny_config, batch 8, 4 steps), resumed with a wider MLP.
    workdir = tmp_path / "changed"
    shutil.copytree(chat_fixtures.tiny_workdir(tmp_path_factory), workdir)
    before = sorted(p.name for p in (workdir / "checkpoints").iterdir())
    config = train_random_run.small_tiny_config(
        chat_fixtures.STEPS + 2, ["train.batch_size=8", "model.text.intermediate_size=256"]
    )

    class NoWeightsTask(ChatPoseTask):  # the mismatch is found before any weights are built
        def build_trainer(self, *args, **kwargs):
            raise AssertionError("build_trainer ran before the checkpoint's config was checked")

    with pytest.raises(CheckpointMismatchError) as error:
        # In this process: no signal or process boundary under test.
        train_and_evaluate(
            load_experiment(config), str(workdir), NoWeightsTask(), make_source=train_random_run.make_source,
            progress=False,
        )  # fmt: skip
    assert "config.model.text.intermediate_size=344" in str(error.value) and "=256" in str(error.value), error.value
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == before


@pytest.mark.slow
def test_sigterm_checkpoints_and_stops(tmp_path):
    workdir = tmp_path / "preempted"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(workdir), "500", "train.checkpoint_every=1000"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not losses(workdir).get(3):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(steps) == 1 and 3 <= steps[0] < 500


def test_config_json_round_trips():
    experiment = load_experiment(train_random_run.small_tiny_config(3, []))
    from chatpose_jax.train.checkpoint import check_config, experiment_to_json

    saved = experiment_to_json(experiment)
    check_config(saved, experiment_to_json(experiment))


@pytest.mark.slow  # builds the session's trained tiny checkpoints
def test_a_resumed_lora_run_keeps_its_pretrained_base(tmp_path_factory):
    # A LoRA run's checkpoint holds only what it trains: on resume the task must rebuild the frozen
    # base from the run's init_checkpoint, not from the seed's random init.
    import jax
    import numpy as np

    from chatpose_jax.convert import checkpoint_io
    from chatpose_jax.parallel.mesh import make_mesh
    from chatpose_jax.train.chatpose_task import ChatPoseTask
    from tests import chat_fixtures

    base = chat_fixtures.pose_checkpoint(tmp_path_factory)
    config = train_random_run.small_tiny_config(2, ["train.batch_size=8", "train.trainable=lora_and_new_rows"])
    config.init_checkpoint = base
    experiment = load_experiment(config)
    mesh = make_mesh(experiment.mesh)
    _, want = checkpoint_io.load_model_checkpoint(base)
    for resuming in (False, True):
        trainer = ChatPoseTask().build_trainer(experiment, mesh, str(tmp_path_factory.mktemp("run")), resuming)
        frozen = jax.tree.map(np.asarray, trainer.frozen)
        assert set(frozen) == set(want) - {"pose_head"}, (resuming, sorted(frozen))
        jax.tree.map(np.testing.assert_array_equal, frozen, {name: want[name] for name in frozen})

    # Loaded for chat or export, the run's checkpoint joins the same base to what it trained.
    from chatpose_jax.train import checkpoint as ckpt
    from chatpose_jax.train.trained_model import load_trained

    workdir = tmp_path_factory.mktemp("saved")
    manager = ckpt.make_manager(str(workdir), keep=None, async_save=False)
    ckpt.save(manager, 1, trainer.state, {}, ckpt.experiment_to_json(experiment))
    manager.close()
    loaded = jax.tree.map(np.asarray, load_trained(str(workdir)).params)
    jax.tree.map(np.testing.assert_array_equal, {name: loaded[name] for name in frozen}, frozen)
    np.testing.assert_array_equal(
        loaded["pose_head"]["fc1"]["kernel"], trainer.state.trainable["params"]["pose_head"]["fc1"]["kernel"]
    )


def test_samples_the_pipeline_dropped_are_logged_and_warned_once(caplog):
    from chatpose_jax.train.loop import _report_dropped

    class Source:
        counts = {"pose_truncated": 3}

        def dropped(self):
            return dict(self.counts)

    source, warned = Source(), set()
    first, later = {}, {}
    with caplog.at_level("WARNING"):
        _report_dropped(source, first, warned, 168)
        source.counts = {"pose_truncated": 7, "too_many_poses": 1}
        _report_dropped(source, later, warned, 168)
    assert first == {"dropped_pose_truncated": 3.0}
    assert later == {"dropped_pose_truncated": 7.0, "dropped_too_many_poses": 1.0}
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "the input pipeline dropped 3 samples so far (pose_truncated): raise train.max_text_length (now 168)",
        "the input pipeline dropped 1 samples so far (too_many_poses)",
    ], messages
    plain = {}
    _report_dropped(object(), plain, set(), 168)  # a source without dropped(): nothing added
    assert plain == {}
