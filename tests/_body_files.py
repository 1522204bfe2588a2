"""Full-size synthetic body-model files, written once per test process and shared by the body tests."""

import functools
import os
import tempfile

from chatpose_jax.body import synthetic


@functools.cache
def model_folder() -> str:
    """An smplx-style folder: smpl/SMPL_NEUTRAL.pkl, smplh/SMPLH_NEUTRAL.npz, smplx/SMPLX_NEUTRAL.npz."""
    root = tempfile.mkdtemp(prefix="chatpose_body_")
    return synthetic.write_model_folder(root)


def model_file(model_type: str) -> str:
    ext = "pkl" if model_type == "smpl" else "npz"
    prefix = {"smpl": "SMPL", "smplh": "SMPLH", "smplx": "SMPLX"}[model_type]
    return os.path.join(model_folder(), model_type, f"{prefix}_NEUTRAL.{ext}")
