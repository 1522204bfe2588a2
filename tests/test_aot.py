"""Ahead-of-time compilation for TPU slices on this CPU host (libtpu, compile-only devices)."""

import json
import math
import re
import subprocess
import sys

import jax
import pytest

pytest.importorskip("libtpu", reason="the [aot] extra (libtpu) is not installed")

from tests.tpu_compile import REPO, compile_cli, printed_bytes  # noqa: E402
from tests.tpu_compile import TPU_COMPILE_ENV as ENV


def test_topology_names():
    from chatpose_jax.parallel.topology import parse_slice

    assert parse_slice("v5p-128").topology_name == "v5p:4x4x4"  # 128 TensorCores = 64 chips
    assert parse_slice("v5e-256").topology_name == "v5e:16x16"
    assert parse_slice("v4-64").topology_name == "v4:2x4x4"
    assert parse_slice("v6e-64").topology_name == "v6e:8x8"
    assert parse_slice("v5e-4").topology_name == "v5e:2x2"
    with pytest.raises(ValueError, match="unknown TPU slice 'v9x-8'"):
        parse_slice("v9x-8")
    with pytest.raises(ValueError, match="power-of-two"):
        parse_slice("v5e-12")


# chatpose-compile run in a process that keeps the programs it compiles, so that the report it prints can be
# checked against XLA's own analysis of the same compiled program (one compile instead of two).
COMPILE_AND_KEEP = """
import json, sys
import jax
from chatpose_jax.cli import compile as cli
kept = []
compile_lowered = jax.stages.Lowered.compile
def keep(self, *args, **kwargs):
    kept.append(compile_lowered(self, *args, **kwargs))
    return kept[-1]
jax.stages.Lowered.compile = keep
sys.argv = ["chatpose-compile", *json.loads(sys.argv[1])]
try:
    cli.run()
except SystemExit as exit:
    assert not exit.code, exit.code
s = kept[0].memory_analysis()
print(json.dumps([s.argument_size_in_bytes, s.temp_size_in_bytes, s.generated_code_size_in_bytes]))
"""


@pytest.mark.slow
def test_tiny_config_compiles_for_v5e_4_and_prints_xla_memory(tmp_path):
    hlo_file = tmp_path / "step.hlo"
    args = ["--config=configs/tiny.py", "--topology=v5e-4", "--nodecode", f"--hlo_out={hlo_file}"]
    result = subprocess.run(
        [sys.executable, "-c", COMPILE_AND_KEEP, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    train = result.stdout.split("train_step:")[1]
    # The partitioned program is written; data-parallel on 4 chips, its all-reduces carry every
    # trained parameter's gradient once (the tiny model trains all of them, float32), except the
    # tower's last layer and post-layernorm, which LLaVA's penultimate-layer features never reach.
    assert re.search(r"^ENTRY %?main[\w.]*_spmd", hlo_file.read_text(), re.MULTILINE)
    shapes = tiny_shapes()
    tower_layers = sum(name.startswith("layers_") for name in shapes["params"]["vision_tower"])
    unused = ("post_layernorm", f"layers_{tower_layers - 1}")
    params = sum(
        math.prod(x.shape)
        for path, x in jax.tree_util.tree_leaves_with_path(shapes)
        if not ("vision_tower" in jax.tree_util.keystr(path) and any(u in jax.tree_util.keystr(path) for u in unused))
    )
    reduced = printed_bytes(train, "all-reduce")
    assert abs(reduced - 4 * params) <= 0.005 * 4 * params, (reduced, 4 * params)
    assert "MFU" in train and "roofline per step" in train
    # The printed figures are XLA's analysis of the program it compiled.
    argument, temp, code_bytes = json.loads(result.stdout.strip().splitlines()[-1])
    for name, want in (("arguments", argument), ("temporaries", temp), ("code", code_bytes)):
        got = printed_bytes(train, name)
        assert abs(got - want) <= 0.006 * want + 1, (name, got, want)
    assert "fits" in train


# The tiny model at two decoder layers and the two tower layers its penultimate-layer features need: what
# these compiles check (collectives, FSDP gathers, a step that cannot fit) does not depend on the depth, and
# each layer less is a few seconds less of TPU compiling.
FEW_LAYERS = ("--config.model.text.num_layers=2", "--config.model.vision.num_layers=2")


def tiny_shapes():
    from chatpose_jax.config_files import repo_config
    from chatpose_jax.experiment import load_experiment
    from chatpose_jax.model import chatpose

    return chatpose.abstract_variables(load_experiment(repo_config("tiny"), 4).model)[0]


@pytest.mark.slow
def test_fsdp_gathers_each_weight_about_once_forward_and_once_for_the_rematerialised_backward():
    """The LoRA recipe in bf16 with fsdp=4: the step's all-gathers against the FSDP ideal the report computes
    from the parameter shapes (the decoder's weights twice under full remat, every other weight once)."""
    result = compile_cli(
        "--config=configs/tiny.py",
        "--topology=v5e-4",
        "--nodecode",
        "--config.mesh.fsdp=4",
        "--config.mesh.data=1",
        "--config.model.scan_layers=True",
        "--config.model.remat_policy=full",
        "--config.model.dtype=bfloat16",
        "--config.train.trainable=lora_and_full_embeddings",
        *FEW_LAYERS,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r"all-gathered ([\d.]+ \w+) against ([\d.]+ \w+) for the FSDP ideal", result.stdout)
    assert match, result.stdout
    gathered = printed_bytes("x " + match.group(1), "x")
    ideal = printed_bytes("x " + match.group(2), "x")
    assert 0.95 * ideal <= gathered <= 1.25 * ideal, (gathered, ideal)


@pytest.mark.slow
def test_a_step_that_cannot_fit_fails_and_names_buffers():
    result = compile_cli(
        "--config=configs/tiny.py",
        "--topology=v5e-4",
        "--nodecode",
        "--config.train.batch_size=65536",
        "--config.model.text.vocab_size=65536",
        *FEW_LAYERS,
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "DOES NOT FIT" in result.stdout and "largest per-device buffers" in result.stdout
    assert "does not fit in HBM" in result.stderr


def test_two_slices_lay_the_data_axis_across_slices_and_a_wrong_dcn_shape_is_named():
    code = (
        "import os; os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')\n"
        "import numpy as np\n"
        "from chatpose_jax.parallel.mesh import MeshConfig, make_mesh\n"
        "from chatpose_jax.parallel.topology import compile_only_devices\n"
        "_, devices = compile_only_devices('v5e-4', 2)\n"
        "mesh = make_mesh(MeshConfig(data=-1, fsdp=2, dcn_data=2), devices)\n"
        "print(dict(mesh.shape), np.vectorize(lambda d: d.slice_index)(mesh.devices)[:, :, 0].tolist())\n"
    )
    direct = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=ENV, cwd=REPO
    )
    assert direct.returncode == 0, direct.stderr[-3000:]
    assert direct.stdout.strip().splitlines()[-1] == (
        "{'data': 4, 'fsdp': 2, 'tensor': 1} [[0, 0], [0, 0], [1, 1], [1, 1]]"
    ), direct.stdout
    # chatpose-compile builds the same mesh: a dcn shape that does not match the slices fails before compiling.
    result = compile_cli("--config=configs/tiny.py", "--topology=v5e-4", "--num_slices=2", "--config.mesh.dcn_data=4")
    assert result.returncode != 0
    assert (
        "config.mesh: dcn_data=4 x dcn_fsdp=1 x dcn_tensor=1 = 4, but the 8 devices span 2 slices" in result.stderr
    ), result.stderr[-3000:]


@pytest.mark.slow
def test_two_slices_reduce_gradients_over_dcn_and_gather_weights_inside_each_slice():
    result = compile_cli(
        "--config=configs/tiny.py",
        "--topology=v5e-4",
        "--num_slices=2",
        "--nodecode",
        "--config.mesh.fsdp=2",
        "--config.mesh.data=-1",
        *FEW_LAYERS,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ici = re.search(r"ICI: (.*)", result.stdout).group(1)
    dcn = re.search(r"DCN: (.*)", result.stdout)
    assert dcn and "all-reduce" in dcn.group(1) and "all-gather" not in dcn.group(1), result.stdout
    assert "all-gather" in ici, result.stdout
    assert re.search(r"DCN [\d.]+ ms", result.stdout), result.stdout
