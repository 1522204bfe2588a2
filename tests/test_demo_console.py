"""`make demo`'s console keeps to its stage lines: no TFDS status lines or progress bars, no absl INFO logs.

The stages run in a subprocess under `absl.app.run`, as the demo runs (in pytest absl's logs go to
pytest's log capture, never to the console). The smallest stages that make the noise: preparing a
dataset with a TFDS builder ("Downloading and preparing dataset ...", "Generating splits...", the
builders' INFO logs) and saving an orbax checkpoint (the checkpoint manager's INFO logs).
"""

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # make test-fast leaves this file out (make test runs it)

STAGES = r"""
import os, sys
from absl import app, logging

def main(argv):
    import numpy as np
    from chatpose_jax.demo import run
    from chatpose_jax.train import checkpoint as ckpt
    from data_pipelines.prepare import prepare

    root = argv[1]

    def data():
        prepare("spg", os.path.join(root, "raw"), os.path.join(root, "tfds"))

    def checkpoint():
        manager = ckpt.make_manager(os.path.join(root, "w"), keep=1, async_save=False)
        ckpt.save(manager, 1, {"w": np.zeros(3)}, {"position": 0}, {"model": {}})
        manager.wait_until_finished()
        manager.close()

    def warn():
        logging.warning("a warning that matters")

    run.run_stages([("prepare a dataset", data), ("save a checkpoint", checkpoint), ("warn", warn)])

app.run(main)
"""


def test_demo_stages_print_their_own_lines_and_warnings_only(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    records = [
        {"id": i, "description": "arms up", "global_orient": [0.0] * 3, "body_pose": [0.0] * 69} for i in range(3)
    ]
    (raw / "spg.json").write_text(json.dumps(records))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    result = subprocess.run(
        [sys.executable, "-c", STAGES, str(tmp_path)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "tfds" / "spg").is_dir() and (tmp_path / "w" / "checkpoints" / "1").is_dir()
    console = result.stdout + result.stderr
    for i, name in enumerate(("prepare a dataset", "save a checkpoint", "warn"), 1):
        assert f"[{i}/3] {name}" in result.stdout
    assert result.stdout.count("done in") == 3
    for noise in ("Downloading and preparing", "downloaded and prepared", "Generating splits", "Shuffling"):
        assert noise not in console, console[-3000:]
    info = re.findall(r"^I\d{4} .*$", console, re.M)  # absl's INFO prefix: I, month and day
    assert not info, info[:5]
    assert "a warning that matters" in result.stderr
