"""Pose files of an answer: `STEM.npz` (axis-angle and rotation matrices), `STEM.obj` and `STEM.png`.

The npz holds, for one body, in the frame the model predicts (the released ChatPose's: the OpenCV
camera frame, x right, y down, z away; chatpose_jax.body.frames):
  global_orient  float32[3]        axis-angle (radians) of joint 0
  body_pose      float32[69]       axis-angle of joints 1..23, flattened as smplx takes it
  rotmat         float32[24, 3, 3] rotation matrices, joint 0 global orientation, 1..23 body pose
  rot6d          float32[24, 6]    the pose head's output (HMR2.0 6D layout)
  pose_frame     str               "opencv_camera"
The mesh is the body model posed with those matrices at zero shape (betas = 0), turned upright for
display (`frames.upright_for_display`: y up, facing +z) in the OBJ and the PNG; the PNG shows it
from the front and the side.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from chatpose_jax.body import frames, load_body_model, mesh_io, rotations, synthetic

SYNTHETIC = "synthetic"


def synthetic_body_model_path() -> str:
    """Where the generated SMPL file is kept: $XDG_CACHE_HOME (default ~/.cache)/chatpose_jax/."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "chatpose_jax", "body_model", "SMPL_NEUTRAL.pkl")


def load_body(spec: str = SYNTHETIC):
    """The body model named by `spec`: an SMPL / SMPL-H / SMPL-X file or folder, or "synthetic"
    (a generated SMPL file, written once to the cache). Raises ValueError for a bad file."""
    if spec == SYNTHETIC:
        spec = synthetic_body_model_path()
        if not os.path.exists(spec):
            # Write then rename, so a run killed midway leaves no half file behind.
            partial = f"{spec}.{os.getpid()}.partial"
            synthetic.write_smpl_pkl(partial)
            os.replace(partial, spec)
    return load_body_model(spec)


def pose_arrays(rotmat: np.ndarray, rot6d: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The npz entries of one pose from rotmat float[24, 3, 3] (and the head's rot6d float[24, 6])."""
    rotmat = np.asarray(rotmat, np.float32)
    if rotmat.shape != (24, 3, 3):
        raise ValueError(f"rotmat has shape {rotmat.shape}; expected (24, 3, 3) (SMPL's 24 joints)")
    axis_angle = np.asarray(rotations.rotmat_to_axis_angle(jnp.asarray(rotmat)), np.float32)
    arrays = {"global_orient": axis_angle[0], "body_pose": axis_angle[1:].reshape(69), "rotmat": rotmat}  # camera frame
    if rot6d is not None:
        arrays["rot6d"] = np.asarray(rot6d, np.float32)
    return arrays


def posed_mesh(body_model, rotmat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vertices float32[V, 3] metres, faces int[F, 3]) of `body_model` posed by rotmat float[24, 3, 3].

    SMPL takes joints 1..23 as its body pose; SMPL-H and SMPL-X take joints 1..21 (their body
    joints; SMPL's joints 22, 23 are the hand roots, which those models pose through their hands).
    """
    rotmat = jnp.asarray(rotmat, jnp.float32)
    num_body = {"smpl": 23}.get(body_model.model_type, 21)
    vertices = _posed_vertices(body_model, rotmat[None, 0:1], rotmat[None, 1 : 1 + num_body])
    return np.asarray(vertices[0]), np.asarray(body_model.faces)


@jax.jit
def _posed_vertices(body_model, global_orient: jax.Array, body_pose: jax.Array) -> jax.Array:
    """float[1, V, 3]: one compiled program per body model (op by op, the first body took ~6 s on a CPU)."""
    return body_model(global_orient=global_orient, body_pose=body_pose).vertices


def write_pose_files(out_dir: str, stem: str, pose, body_model, title: str | None = None) -> dict[str, str]:
    """Writes `out_dir/stem.{npz,obj,png}` for `pose` (an object with rotmat [24, 3, 3] and rot6d [24, 6]).

    Returns {"npz", "obj", "png"} -> path.
    """
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, stem)
    paths = {"npz": base + ".npz", "obj": base + ".obj", "png": base + ".png"}
    np.savez(paths["npz"], **pose_arrays(pose.rotmat, pose.rot6d), pose_frame=np.array(frames.POSE_FRAME))
    vertices, faces = posed_mesh(body_model, pose.rotmat)
    vertices = frames.upright_for_display(vertices)
    mesh_io.write_obj(paths["obj"], vertices, faces)
    mesh_io.render_png(paths["png"], vertices, faces, title=title)
    return paths
