"""`chatpose-convert import-hf` writes an orbax checkpoint that loads back to the same params."""

import jax
import numpy as np
from llava_tiny import make_hf_llava, save_hf_llava

from chatpose_jax.convert.checkpoint_io import load_model_checkpoint
from chatpose_jax.convert.hf import load_llava
from tests.cli_in_process import run_console


def _convert(*args):
    """chatpose-convert ARGS through its `main` in this process (its output and exit status are under test)."""
    return run_console("chatpose-convert", *args)


def test_import_hf_writes_a_checkpoint_that_loads_back(tmp_path):
    folder = save_hf_llava(make_hf_llava(seed=2), tmp_path / "hf")
    out = tmp_path / "ckpt"
    result = _convert("import-hf", "--hf_dir", folder, "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    config, params = load_model_checkpoint(str(out))
    ref_config, ref = load_llava(folder)  # same default seed for the fresh pose head
    assert config == ref_config

    # The copied weights bit for bit; the fresh pose head, drawn from the same seed by two programs, up to
    # XLA:CPU's rounding (the suite compiles at the lowest optimisation level, tests/conftest.py).
    def same(path, a, b):
        if "pose_head" in jax.tree_util.keystr(path):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-9)
        else:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    jax.tree_util.tree_map_with_path(same, params, ref)
    again = _convert("import-hf", "--hf_dir", folder, "--out", str(out))
    assert again.returncode == 1 and "not empty" in again.stderr


def test_a_checkpoint_with_its_tower_layers_one_by_one_loads_scanned(tmp_path):
    # Model checkpoints imported with scan_layers before the tower was scanned too hold
    # vision_tower/layers_{i}; they load with those layers stacked, as the scanned tower holds them.
    from chatpose_jax.convert.checkpoint_io import save_model_checkpoint

    config, params = load_llava(save_hf_llava(make_hf_llava(seed=3), tmp_path / "hf"), scan_layers=True)
    tower = dict(params["vision_tower"])
    stacked = tower.pop("layers")
    assert jax.tree.leaves(stacked)[0].shape[0] == config.vision.num_layers
    for i in range(config.vision.num_layers):
        tower[f"layers_{i}"] = jax.tree.map(lambda a, i=i: np.asarray(a[i]), stacked)
    save_model_checkpoint(str(tmp_path / "old"), config, {**params, "vision_tower": tower})
    save_model_checkpoint(str(tmp_path / "new"), config, params)
    for name in ("old", "new"):
        loaded_config, loaded = load_model_checkpoint(str(tmp_path / name))
        assert loaded_config == config
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), loaded, params)


def test_subcommands_without_their_flags_say_what_is_missing():
    for sub, needed in (("export-hf", "--checkpoint and --out"), ("import-chatpose-torch", "--ckpt and --out")):
        result = _convert(sub)
        assert result.returncode == 1 and needed in result.stderr, result.stderr[-2000:]
