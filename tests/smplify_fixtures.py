"""SMPLify's test inputs: moderate poses of upright people facing the camera, a synthetic SMPL file and a
GMM prior in the published gmm_08.pkl format fitted to those poses (made once per test session)."""

import numpy as np
from scipy.spatial.transform import Rotation

from chatpose_jax.body import synthetic
from chatpose_jax.fitting import gmm_file
from tests.session_cache import once


def moderate_poses(rng: np.random.Generator, num: int) -> tuple[np.ndarray, np.ndarray]:
    """(global_orient float[N, 3], body_pose float[N, 69]) radians, camera frame: upright people facing
    the camera turned by up to 0.6 rad, every joint jittered by 0.12 rad, elbows and knees bent the
    natural way by up to 1.5 / 1.2 rad, hips flexed, arms lowered from the T-pose by 0.3-1.2 rad."""
    pose = rng.normal(0.0, 0.12, size=(num, 23, 3))
    pose[:, 17, 1], pose[:, 18, 1] = -rng.uniform(0, 1.5, num), rng.uniform(0, 1.5, num)  # elbows
    pose[:, 3, 0], pose[:, 4, 0] = rng.uniform(0, 1.2, num), rng.uniform(0, 1.2, num)  # knees
    pose[:, 0, 0], pose[:, 1, 0] = -rng.uniform(0, 0.8, num), -rng.uniform(0, 0.8, num)  # hips
    pose[:, 15, 2], pose[:, 16, 2] = -rng.uniform(0.3, 1.2, num), rng.uniform(0.3, 1.2, num)  # shoulders
    yaw = Rotation.from_rotvec(np.outer(rng.uniform(-0.6, 0.6, num), [0.0, 1.0, 0.0]))
    global_orient = (Rotation.from_rotvec([np.pi, 0.0, 0.0]) * yaw).as_rotvec()
    return global_orient.astype(np.float32), pose.reshape(num, 69).astype(np.float32)


def smplify_files(tmp_path_factory) -> dict:
    """A synthetic SMPL file and a GMM prior fitted to 2000 poses of `moderate_poses`."""

    def build(folder):
        smpl = synthetic.write_smpl_pkl(str(folder / "SMPL_NEUTRAL.pkl"))
        _, poses = moderate_poses(np.random.default_rng(0), 2000)
        return {"smpl": smpl, "gmm": gmm_file.write_gmm_pkl(str(folder / "gmm_08.pkl"), poses)}

    return once(tmp_path_factory, "smplify_files", build)
