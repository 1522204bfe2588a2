"""gs:// paths: what training, retrieval and prediction write and read goes through etils.epath.

`fake_bucket` redirects every `gs://bucket/...` that epath touches to a folder here
(`etils.epath.testing.mock_epath`, with TensorFlow's GCS backend turned off so the mock is the one
used); code that bypassed epath (os, open, shutil) would fail on the URI or write a stray `gs:`
folder in the working directory, which the tests check for. Orbax's array data goes to GCS through
TensorStore's own driver, which no epath mock reaches: the training test keeps checkpoints in a
local folder and says so.
"""

import contextlib
import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest
from etils import epath
from etils.epath import gpath
from etils.epath import testing as epath_testing

from chatpose_jax import paths
from chatpose_jax.experiment import load_experiment
from chatpose_jax.train import checkpoint as ckpt
from chatpose_jax.train import loop
from chatpose_jax.train.chatpose_task import ChatPoseTask
from chatpose_jax.train.metric_writer import read_metrics

REPO = Path(__file__).resolve().parent.parent
BUCKET = "gs://bucket"


def _no_tf() -> bool:
    return False


@contextlib.contextmanager
def fake_bucket(root: Path, monkeypatch):
    """Every epath call on gs://bucket/X acts on root/X (results listed back as gs:// names)."""
    root.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("EPATH_USE_TF", "false")  # else epath sends gs:// to tf.io.gfile, past the mock
    # epath caches whether it may use TensorFlow the first time it meets a URI (an earlier test in the
    # same process may have): forget that answer here and again on leaving.
    gpath._is_tf_installed.cache_clear()
    monkeypatch.setattr(gpath, "_is_tf_installed", _no_tf)

    def local(p):
        text = os.fspath(p)
        return str(root) + text[len(BUCKET) :] if text.startswith(BUCKET) else text

    def remote(p):
        text = os.fspath(p)
        return BUCKET + text[len(str(root)) :] if text.startswith(str(root)) else text

    def one(original, path, *args, **kwargs):
        return original(local(path), *args, **kwargs)

    def two(original, path, dst, *args, **kwargs):
        return original(local(path), local(dst), *args, **kwargs)

    def glob(original, pattern):
        return [remote(p) for p in original(local(pattern))]

    def walk(original, top, **kwargs):
        for folder, dirs, files in original(local(top), **kwargs):
            yield remote(folder), dirs, files

    with epath_testing.mock_epath(
        open=one, exists=one, isdir=one, listdir=one, makedirs=one, mkdir=one, remove=one, rmtree=one, stat=one,
        copy=two, rename=two, replace=two, glob=glob, walk=walk,
    ):  # fmt: skip
        yield root


def assert_no_stray_local_writes(cwd: Path):
    """A gs:// string handed to os or open() lands in a local `gs:` folder."""
    assert not (cwd / "gs:").exists(), f"something wrote {cwd / 'gs:'} instead of going through epath"


def test_fake_bucket_is_what_epath_uses_for_gs_paths(tmp_path, monkeypatch):
    with fake_bucket(tmp_path / "bucket", monkeypatch):
        epath.Path(f"{BUCKET}/a/b.txt").parent.mkdir(parents=True)
        epath.Path(f"{BUCKET}/a/b.txt").write_text("hello")
        assert [p.name for p in epath.Path(f"{BUCKET}/a").iterdir()] == ["b.txt"]
    assert (tmp_path / "bucket" / "a" / "b.txt").read_text() == "hello"


def test_copy_tree_and_local_copy_move_folders_between_disk_and_bucket(tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.bin").write_bytes(b"\x00\x01")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with fake_bucket(tmp_path / "bucket", monkeypatch):
        paths.copy_tree(src, f"{BUCKET}/copy")
        local = paths.local_copy(f"{BUCKET}/copy")
        assert paths.local_copy(str(src)) == str(src)  # local paths are used in place
    assert (tmp_path / "bucket" / "copy" / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert local.startswith(str(tmp_path / "cache")) and Path(local, "a.txt").read_text() == "a"
    assert Path(local, "sub", "b.bin").read_bytes() == b"\x00\x01"


@pytest.mark.slow
def test_training_with_a_gs_workdir_writes_its_files_to_the_bucket(tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    import train_random_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = train_random_run.small_tiny_config(2, ["train.eval_batches=0", "train.batch_size=8"])
    config.train.body_model = "synthetic"  # written into the workdir, read back through a local copy
    experiment = load_experiment(config)
    local_checkpoints = tmp_path / "orbax"
    real_manager = ckpt.make_manager
    # Orbax's arrays go through TensorStore's GCS driver, which no epath mock reaches.
    monkeypatch.setattr(
        ckpt, "make_manager", lambda workdir, keep, **kw: real_manager(str(local_checkpoints), keep, **kw)
    )
    workdir = f"{BUCKET}/runs/tiny"
    with fake_bucket(tmp_path / "bucket", monkeypatch) as bucket:
        loop.train_and_evaluate(
            experiment, workdir, ChatPoseTask(), make_source=train_random_run.make_source, progress=False
        )
        rows = read_metrics(workdir)  # read back through epath too
    run = bucket / "runs" / "tiny"
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    assert [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [
        r["loss"] for r in rows
    ]
    saved = json.loads((run / "experiment.json").read_text())
    assert saved == ckpt.experiment_to_json(experiment)
    assert (run / "body_model" / "SMPL_NEUTRAL.pkl").stat().st_size > 100_000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([r["loss"] for r in rows])
    assert sorted(p.name for p in (local_checkpoints / "checkpoints").iterdir()) == ["2"]
    assert_no_stray_local_writes(tmp_path)


@pytest.mark.slow
def test_retrieval_best_model_round_trips_through_a_bucket(tmp_path, monkeypatch):
    from chatpose_jax.retrieval import train as rtrain
    from chatpose_jax.retrieval.config import RetrievalConfig
    from chatpose_jax.retrieval.model import init_variables

    config = RetrievalConfig(
        latent_dim=16, pose_hidden=16, vocab_size=64, embed_dim=16, text_layers=1, text_heads=2, text_ff=32
    )
    variables = jax.tree.map(np.asarray, init_variables(config))
    monkeypatch.chdir(tmp_path)
    with fake_bucket(tmp_path / "bucket", monkeypatch):
        rtrain.save_best(f"{BUCKET}/retrieval/{rtrain.BEST_DIR}", config, variables, 7, {"mrecall": 0.5})
        loaded_config, loaded, info = rtrain.load_retrieval(f"{BUCKET}/retrieval")
    assert loaded_config == config and info["step"] == 7
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "bucket" / "retrieval" / rtrain.BEST_DIR / "variables.msgpack").exists()
    assert_no_stray_local_writes(tmp_path)


@pytest.mark.slow
def test_prediction_inputs_images_and_results_live_in_a_bucket(tmp_path, monkeypatch):
    from PIL import Image

    from chatpose_jax.inference import images, predict

    monkeypatch.chdir(tmp_path)
    with fake_bucket(tmp_path / "bucket", monkeypatch) as bucket:
        (bucket / "in").mkdir()
        Image.new("RGB", (5, 3), (200, 10, 10)).save(bucket / "in" / "red.png")
        (bucket / "in" / "asks.jsonl").write_text(json.dumps({"prompt": "pose?", "image": "red.png"}) + "\n")
        records = predict.read_inputs(f"{BUCKET}/in")
        image = images.load_image(f"{BUCKET}/in/red.png")
        written = predict.write_results(f"{BUCKET}/out/predictions.jsonl", [{"id": "x", "answer": "ok"}])
        with pytest.raises(images.ImageError, match="does not exist"):
            images.load_image(f"{BUCKET}/in/missing.png")
    assert [(r.id, r.image) for r in records] == [
        ("asks:1", f"{BUCKET}/in/red.png"),
        ("red.png", f"{BUCKET}/in/red.png"),
    ]
    assert image.size == (5, 3) and image.getpixel((0, 0)) == (200, 10, 10)
    assert written == f"{BUCKET}/out/predictions.jsonl"
    assert json.loads((bucket / "out" / "predictions.jsonl").read_text()) == {"id": "x", "answer": "ok"}
    assert_no_stray_local_writes(tmp_path)


def test_prepare_refuses_raw_files_in_a_bucket_and_says_why():
    from data_pipelines.prepare import prepare

    with pytest.raises(FileNotFoundError, match=r"manual_dir gs://bucket/raw: the raw files must be local"):
        prepare("posescript", f"{BUCKET}/raw", f"{BUCKET}/tfds")


@pytest.mark.slow
def test_eval_report_predictions_and_gallery_live_in_a_bucket(tmp_path, monkeypatch):
    from PIL import Image

    from chatpose_jax.eval import gallery, report
    from chatpose_jax.eval import predictions as preds_lib
    from chatpose_jax.eval.metrics import load_h36m_regressor

    metrics = {
        "benchmarks": {"3dpw": {"ours": {"mpjpe_mm": 120.5, "pa_mpjpe_mm": 70.25, "no_pose_rate": 0.0, "n": 2}}},
        "notes": {"protocol": report.PROTOCOL_NOTES["spin"]},
    }
    rng = np.random.default_rng(0)
    preds = preds_lib.Predictions(
        np.array(["b", "a"]), rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 69)).astype(np.float32),
        np.array(["Sure, it is <POSE>.", "no"]), np.array([True, False]),
    )  # fmt: skip
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.1]], np.float32)
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    samples = [{"id": "a", "input_text": "arms up", "pred_vertices": vertices, "gt_vertices": vertices, "error": "x"}]
    out = f"{BUCKET}/eval/out"
    monkeypatch.chdir(tmp_path)
    with fake_bucket(tmp_path / "bucket", monkeypatch) as bucket:
        json_path, md_path = report.write(out, metrics, label="tiny")
        npz = preds_lib.save_predictions(f"{out}/predictions_3dpw.npz", preds)
        loaded = preds_lib.load_predictions(npz, np.array(["a", "b"]))  # the benchmark's order
        with pytest.raises(preds_lib.PredictionsFileError, match="not a readable npz file"):
            preds_lib.load_predictions(f"{out}/missing.npz", np.array(["a"]))
        png = gallery.render_gallery(f"{out}/gallery_3dpw.png", samples, faces, title="3dpw")
        np.save(bucket / "eval" / "J_regressor_h36m.npy", np.ones((17, 4), np.float32))
        regressor = load_h36m_regressor(f"{BUCKET}/eval/J_regressor_h36m.npy", 4)
    folder = bucket / "eval" / "out"
    assert (json_path, md_path) == (f"{out}/metrics.json", f"{out}/metrics.md")
    assert json.loads((folder / "metrics.json").read_text()) == metrics
    assert (folder / "metrics.md").read_text() == report.markdown(metrics, "tiny")
    assert npz == f"{out}/predictions_3dpw.npz" and png == f"{out}/gallery_3dpw.png"
    with np.load(folder / "predictions_3dpw.npz") as f:
        np.testing.assert_array_equal(f["body_pose"], preds.body_pose)
        np.testing.assert_array_equal(f["ids"], preds.ids)
    expected = preds.take(np.array([1, 0]))
    for field in ("ids", "global_orient", "body_pose", "answer", "has_pose"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(expected, field))
    with Image.open(folder / "gallery_3dpw.png") as image:
        assert image.format == "PNG" and image.size[0] > 100
    np.testing.assert_array_equal(regressor, np.ones((17, 4), np.float32))
    assert sorted(p.name for p in folder.iterdir()) == ["gallery_3dpw.png", "metrics.json", "metrics.md",
                                                        "predictions_3dpw.npz"]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bucket"]  # nothing written locally beside it
    assert_no_stray_local_writes(tmp_path)
