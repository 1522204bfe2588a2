"""Every command-line tool takes relative paths (and gs:// URLs) for every path argument.

Each tool runs in-process through its `main`, from a working directory where its path arguments
are relative. The tools share flag names (--out, --checkpoint, ...), so `fresh_cli`
(tests/cli_in_process.py) imports one tool's module at a time and forgets its flags afterwards.
Orbax refuses relative paths ("Checkpoint path should be absolute"): a path reaching it
unresolved fails these runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from absl import flags

from chatpose_jax.config_files import repo_config
from tests import chat_fixtures
from tests.cli_in_process import fresh_cli, parse, run_main
from tests.data_synth_cache import synthetic_data

REPO = Path(__file__).resolve().parent.parent

# Each tool's module and the flags it reads as paths.
PATH_FLAGS = {
    "chatpose_jax.cli.train": {"workdir"},
    "chatpose_jax.cli.eval": {"checkpoint", "data_dir", "out", "body_model_dir", "retrieval", "tokenizer",
                              "j19_regressor", "smplify_prior"},
    "chatpose_jax.cli.chat": {"checkpoint", "image", "out", "body_model", "tokenizer"},
    "chatpose_jax.cli.predict": {"checkpoint", "inputs", "out", "tokenizer"},
    "chatpose_jax.cli.convert": {"hf_dir", "out", "vision_tower_dir", "checkpoint", "tokenizer_dir", "ckpt",
                                 "base_config"},
    "data_pipelines.cli": {"manual_dir", "data_dir", "out", "amass_dir"},
    "chatpose_jax.cli.compile": {"hlo_out"},
}  # fmt: skip
# Other flags each tool requires, for parsing alone.
REQUIRED = {
    "chatpose_jax.cli.train": [f"--config={REPO / 'configs' / 'tiny.py'}"],
    "chatpose_jax.cli.compile": [f"--config={REPO / 'configs' / 'tiny.py'}", "--topology=v5e-4"],
}
PATH_LIKE = ("dir", "out", "checkpoint", "ckpt", "path", "file", "image", "inputs", "tokenizer", "regressor",
             "retrieval", "config", "body_model", "prior")  # fmt: skip
NOT_PATHS = {"builder_config"}  # chatpose-data prepare: a builder config's name


@pytest.mark.parametrize("module_name", sorted(PATH_FLAGS))
def test_every_path_flag_is_resolved_when_parsed(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with fresh_cli(module_name):
        own = {f.name: f for f in flags.FLAGS.get_flags_for_module(module_name)}
        path_flags = {name for name, f in own.items() if f.flag_type() == "path"}
        assert path_flags == PATH_FLAGS[module_name]
        # A string flag named like a path that does not go through the path parser would miss resolution.
        unresolved = [
            n
            for n, f in own.items()
            if f.flag_type() == "string" and any(w in n for w in PATH_LIKE) and n not in NOT_PATHS
        ]
        assert not unresolved, f"{module_name}: string flags that look like paths: {unresolved}"

        parse(*REQUIRED.get(module_name, []), *(f"--{name}=rel/{name}" for name in sorted(path_flags)))
        for name in path_flags:
            assert flags.FLAGS[name].value == str(tmp_path / "rel" / name), name
        parse(*REQUIRED.get(module_name, []), *(f"--{name}=gs://bucket/{name}" for name in sorted(path_flags)))
        for name in path_flags:
            assert flags.FLAGS[name].value == f"gs://bucket/{name}", name
        if "body_model" in path_flags:
            parse("--body_model=synthetic", "--checkpoint=x")
            assert flags.FLAGS["body_model"].value == "synthetic"  # a keyword, not a file


def test_eval_predictions_paths_are_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with fresh_cli("chatpose_jax.cli.eval") as tool:
        got = tool.parse_predictions(["3dpw=p/a.npz", "h36m=gs://b/h.npz"], ["3dpw", "h36m"])
        assert got == {"3dpw": str(tmp_path / "p" / "a.npz"), "h36m": "gs://b/h.npz"}


def test_experiment_paths_become_absolute(tmp_path, monkeypatch):
    from chatpose_jax.cli import common
    from chatpose_jax.experiment import load_experiment

    monkeypatch.chdir(tmp_path)
    config = repo_config("tiny")
    config.data.data_dir, config.data.tokenizer, config.init_checkpoint = "tfds", "tok", "gs://b/init"
    experiment = common.experiment_paths_absolute(load_experiment(config))
    assert experiment.data.data_dir == str(tmp_path / "tfds") and experiment.data.tokenizer == str(tmp_path / "tok")
    assert experiment.init_checkpoint == "gs://b/init" and experiment.train.body_model == "synthetic"
    assert experiment.retrieval.init_embeddings == ""


def test_checkpoint_manager_takes_a_relative_workdir(tmp_path, monkeypatch):
    """The library too (the demo, notebooks): orbax is handed the absolute folder."""
    import numpy as np

    from chatpose_jax.train import checkpoint as ckpt

    monkeypatch.chdir(tmp_path)
    manager = ckpt.make_manager("runs/w", keep=1, async_save=False)
    try:
        assert os.path.isabs(os.fspath(manager.directory))
        ckpt.save(manager, 1, {"w": np.arange(3.0)}, {"position": 1}, {"model": {}})
        manager.wait_until_finished()
    finally:
        manager.close()
    assert (tmp_path / "runs" / "w" / "checkpoints" / "1" / "state").is_dir()


def rel(path: str | os.PathLike) -> str:
    """`path` relative to the working directory."""
    relative = os.path.relpath(path)
    assert not os.path.isabs(relative)
    return relative


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny training workdir (checkpoints/2 and tokenizer/), restored through orbax's CheckpointManager."""
    return chat_fixtures.tiny_workdir(tmp_path_factory)


@pytest.fixture(scope="module")
def converted(workdir, tmp_path_factory):
    """`chatpose-convert export-hf` of the workdir, then `import-hf` of that folder, run from the folder
    that receives both with every path relative: {"hf": HF folder, "model": model checkpoint}."""
    root = tmp_path_factory.mktemp("relative_convert")
    with pytest.MonkeyPatch.context() as mp, fresh_cli("chatpose_jax.cli.convert") as convert:
        mp.chdir(root)
        run_main(convert, "export-hf", f"--checkpoint={rel(workdir)}", "--out=hf")
        run_main(convert, "import-hf", "--hf_dir=hf", "--out=model")
    return {"hf": str(root / "hf"), "model": str(root / "model")}


@pytest.mark.slow
def test_convert_reads_and_writes_relative_folders(converted, tmp_path, monkeypatch):
    assert os.path.exists(os.path.join(converted["hf"], "pose_head.safetensors"))
    assert os.path.exists(os.path.join(converted["model"], "model_config.json"))
    monkeypatch.chdir(tmp_path)
    with fresh_cli("chatpose_jax.cli.convert") as convert:
        run_main(convert, "export-chatpose-torch", f"--checkpoint={rel(converted['model'])}", "--out=released")
        assert (tmp_path / "released" / "chatpose.safetensors").exists()
        run_main(convert, "import-chatpose-torch", "--ckpt=released/chatpose.safetensors",
                 f"--tokenizer_dir={rel(converted['hf'])}", "--vision_num_heads=4", "--out=reimported")  # fmt: skip
        assert (tmp_path / "reimported" / "model_config.json").exists()


@pytest.mark.slow
def test_chat_and_predict_read_relative_checkpoints(workdir, converted, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # A training workdir, as in `chatpose-chat --checkpoint demo_out/train`.
    with fresh_cli("chatpose_jax.cli.chat") as chat:
        run_main(chat, f"--checkpoint={rel(workdir)}", "--prompt=hello there", "--max_new_tokens=2", "--out=chat")
    assert "ASSISTANT:" in capsys.readouterr().out

    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "prompt": "hello there"}) + "\n")
    with fresh_cli("chatpose_jax.cli.predict") as predict:
        run_main(predict, f"--checkpoint={rel(converted['model'])}", "--inputs=in.jsonl", "--out=pred",
                 "--max_new_tokens=2", "--progress=false")  # fmt: skip
    assert [json.loads(line)["id"] for line in (tmp_path / "pred" / "predictions.jsonl").open()] == ["a"]


@pytest.mark.slow
def test_eval_reads_relative_data_and_predictions(tmp_path, tmp_path_factory, monkeypatch):
    import numpy as np

    from chatpose_jax.eval.benchmarks import read_benchmark

    data = synthetic_data(tmp_path_factory)
    monkeypatch.chdir(tmp_path)
    ids = read_benchmark("3dpw", rel(data["data_dir"]), with_images=False).ids[:2]
    zeros = np.zeros((len(ids), 3), np.float32)
    np.savez("p.npz", ids=ids, global_orient=zeros, body_pose=np.zeros((len(ids), 69)), pose_frame="opencv_camera")
    with fresh_cli("chatpose_jax.cli.eval") as tool:
        run_main(tool, "--predictions=3dpw=p.npz", "--benchmarks=3dpw", f"--data_dir={rel(data['data_dir'])}",
                 f"--body_model_dir={rel(data['raw']['body_model_dir'])}", "--limit=2", "--out=eval",
                 "--gallery_size=0", "--progress=false")  # fmt: skip
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["benchmarks"]["3dpw"]["ours"]["n"] == 2


@pytest.mark.slow
def test_data_and_train_write_relative_folders(tmp_path, tmp_path_factory, monkeypatch):
    data = synthetic_data(tmp_path_factory)
    monkeypatch.chdir(tmp_path)
    with fresh_cli("data_pipelines.cli") as tool:
        run_main(tool, "prepare", "spg", f"--manual_dir={rel(data['raw']['spg'])}", "--data_dir=tfds")
    assert (tmp_path / "tfds" / "spg").is_dir()

    # The retrieval model: a two-step run whose workdir and data paths are all relative.
    overrides = [f"--config.data.data_dir={rel(data['data_dir'])}", f"--config.data.tokenizer={rel(data['raw']['tokenizer'])}",
                 "--config.train.num_steps=2", "--config.train.batch_size=8", "--config.train.eval_every=0",
                 "--config.train.eval_batches=0", "--config.train.checkpoint_every=2", "--config.mesh.data=-1"]  # fmt: skip
    with fresh_cli("chatpose_jax.cli.train") as tool:
        run_main(tool, f"--config={REPO / 'configs' / 'retrieval.py'}:tiny", "--workdir=runs/r", "--progress=false",
                 *overrides)  # fmt: skip
    assert (tmp_path / "runs" / "r" / "checkpoints" / "2").is_dir()
    saved = json.loads((tmp_path / "runs" / "r" / "experiment.json").read_text())
    assert saved["data"]["data_dir"] == data["data_dir"] and saved["data"]["tokenizer"] == data["raw"]["tokenizer"]
