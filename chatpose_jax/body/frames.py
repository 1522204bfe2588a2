"""The frame of the pose's root (global orientation), and turning a body upright for display.

ChatPose's pose targets, and so the released weights' outputs, hold the root orientation in the
OpenCV camera frame: x right, y down, z away from the camera (Feng et al., CVPR 2024; its public
PyTorch release). HMR data (SPIN / 4D-Humans files) keep their files' camera-frame root;
PoseScript roots have their yaw removed and are then left-multiplied by Rx(+90 deg), so a person
standing upright and facing the camera has the root diag(1, -1, -1) in both kinds of data. The
23 body-pose joints are frame-free.

Everything this project stores or exchanges holds roots in this frame: prepared datasets, model
and training checkpoints (`model.pose_frame`), predictions files (`pose_frame`), chat npz files.
Only pictures and meshes meant for a person's eyes (OBJ / PLY / PNG, the evaluation gallery) are
turned upright with `upright_for_display`.
"""

from __future__ import annotations

import numpy as np

POSE_FRAME = "opencv_camera"
POSE_FRAME_DESCRIPTION = "the OpenCV camera frame (x right, y down, z away from the camera)"
# Rx(180 deg): OpenCV camera axes -> a y-up view frame (x right, y up, z towards the viewer).
CAMERA_TO_DISPLAY = np.diag([1.0, -1.0, -1.0])
# The root of a person standing upright and facing the camera, in POSE_FRAME (axis-angle, radians).
UPRIGHT_FACING_CAMERA_ROOT = np.array([np.pi, 0.0, 0.0], np.float32)


class PoseFrameError(ValueError):
    """A file or checkpoint whose roots are not (or not known to be) in POSE_FRAME."""


def upright_for_display(points: np.ndarray) -> np.ndarray:
    """Points of a body posed with a camera-frame root, turned to stand upright and face the viewer.

    points: float[..., 3] metres (vertices or joints) in POSE_FRAME (y down) -> float[..., 3] in
    a y-up view frame (x right, y up, the body facing +z): x, -y, -z, i.e. Rx(180 deg).
    """
    points = np.asarray(points)
    return points @ CAMERA_TO_DISPLAY.T.astype(points.dtype)


def require_pose_frame(stored: object, where: str, remedy: str) -> None:
    """Raises PoseFrameError unless `stored` (a frame name read from `where`) is POSE_FRAME.

    remedy: what the user can do (e.g. the command that re-prepares or re-imports).
    """
    if stored == POSE_FRAME:
        return
    found = "no pose frame (written before roots moved to the camera frame)" if stored is None else repr(stored)
    raise PoseFrameError(
        f"{where} has {found}; this code reads and writes roots in {POSE_FRAME_DESCRIPTION}, "
        f"pose_frame={POSE_FRAME!r}, and never mixes frames: {remedy}"
    )
