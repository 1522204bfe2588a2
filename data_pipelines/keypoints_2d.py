"""The 44 2D keypoints of a person, in 4D-Humans' layout, and how SPIN's and 4D-Humans' files fill them.

Layout (float[44, 3] per person: x, y in pixels of the full image, then a confidence; a row the
source does not annotate is zeros):
  rows 0-24   OpenPose BODY_25, in OpenPose's order (`BODY25_NAMES`, SPIN's 'OP Nose', 'OP Neck', ...);
  rows 25-43  the 19 extra joints: the first 19 of SPIN's 24 ground-truth joints (`J24_NAMES`: LSP's
              14, MPII's pelvis and thorax, H36M's spine, jaw and head).

Public sources of the layout:
  - SPIN (github.com/nkolot/SPIN), constants.py: JOINT_NAMES lists the 25 'OP ...' joints, then the
    24 ground-truth joints ('Right Ankle' ... 'Right Ear'); JOINT_MAP sends 'Nose', 'Left Eye', ...
    to the same SMPL points as 'OP Nose', 'OP LEye', ... (what `J24_FACE_TO_BODY25` encodes).
    datasets/base_dataset.py: keypoints = concatenate(npz['openpose'] [25], npz['part'] [24]).
  - 4D-Humans (github.com/shubham-goel/4D-Humans), hmr2/datasets/image_dataset.py:
    keypoints_2d = concatenate(npz['body_keypoints_2d'] [25], npz['extra_keypoints_2d'] [19]); its
    webdataset tars store the same [44, 3] as `keypoints_2d` of each person in KEY.data.pyd, and its
    flip permutation is BODY_25's followed by SPIN's J24 flip restricted to the first 19 joints.
"""

from __future__ import annotations

import numpy as np

from chatpose_jax.fitting.keypoint_layouts import BODY25_NAMES

NUM_BODY = 25
NUM_EXTRA = 19
NUM_KEYPOINTS = NUM_BODY + NUM_EXTRA  # 44

# SPIN's 24 ground-truth joints (`part`), constants.py JOINT_NAMES[25:], in order.
J24_NAMES = (
    "Right Ankle",
    "Right Knee",
    "Right Hip",
    "Left Hip",
    "Left Knee",
    "Left Ankle",
    "Right Wrist",
    "Right Elbow",
    "Right Shoulder",
    "Left Shoulder",
    "Left Elbow",
    "Left Wrist",
    "Neck (LSP)",
    "Top of Head (LSP)",
    "Pelvis (MPII)",
    "Thorax (MPII)",
    "Spine (H36M)",
    "Jaw (H36M)",
    "Head (H36M)",
    "Nose",
    "Left Eye",
    "Right Eye",
    "Left Ear",
    "Right Ear",
)
EXTRA_NAMES = J24_NAMES[:NUM_EXTRA]  # 4D-Humans' 19 extra joints
KEYPOINT_NAMES = tuple(f"OP {n}" for n in BODY25_NAMES) + EXTRA_NAMES  # the 44 rows

# J24's face rows, which the 19 extra joints leave out, and the BODY_25 rows that mean the same point:
#   (J24 row, J24 name, BODY_25 row, BODY_25 name)
J24_FACE_TO_BODY25 = (
    (19, "Nose", 0, "Nose"),
    (20, "Left Eye", 16, "LEye"),
    (21, "Right Eye", 15, "REye"),
    (22, "Left Ear", 18, "LEar"),
    (23, "Right Ear", 17, "REar"),
)
_FACE_J24 = [row[0] for row in J24_FACE_TO_BODY25]
_FACE_BODY25 = [row[2] for row in J24_FACE_TO_BODY25]
assert all(J24_NAMES[j] == name and BODY25_NAMES[b] == op for j, name, b, op in J24_FACE_TO_BODY25)


def _rows(array, n: int | None, num: int, what: str) -> np.ndarray:
    """`array` as float64[n, num, 3] (n None: any N); ValueError naming `what` and both shapes otherwise."""
    out = np.asarray(array, np.float64)
    if out.ndim != 3 or out.shape[1:] != (num, 3) or (n is not None and len(out) != n):
        raise ValueError(f"{what}: expected shape ({'N' if n is None else n}, {num}, 3), got {out.shape}")
    return out


def from_hmr2(body: np.ndarray | None, extra: np.ndarray | None, n: int) -> np.ndarray:
    """float32[n, 44, 3] from 4D-Humans' `body_keypoints_2d` [n, 25, 3] and `extra_keypoints_2d`
    [n, 19, 3] (either None: zeros), concatenated as 4D-Humans' ImageDataset does."""
    out = np.zeros((n, NUM_KEYPOINTS, 3), np.float32)
    if body is not None:
        out[:, :NUM_BODY] = _rows(body, n, NUM_BODY, "body_keypoints_2d")
    if extra is not None:
        out[:, NUM_BODY:] = _rows(extra, n, NUM_EXTRA, "extra_keypoints_2d")
    return out


def from_spin(part: np.ndarray | None, openpose: np.ndarray | None, n: int) -> np.ndarray:
    """float32[n, 44, 3] from SPIN's `part` [n, 24, 3] (J24) and `openpose` [n, 25, 3] (either None).

    `openpose` fills rows 0-24 and part's first 19 joints rows 25-43; part's face joints (nose, eyes,
    ears) fill BODY_25's nose, eyes and ears where `openpose` has none (confidence <= 0 or absent).
    """
    out = np.zeros((n, NUM_KEYPOINTS, 3), np.float32)
    if openpose is not None:
        out[:, :NUM_BODY] = _rows(openpose, n, NUM_BODY, "openpose")
    if part is not None:
        part = _rows(part, n, len(J24_NAMES), "part")
        out[:, NUM_BODY:] = part[:, :NUM_EXTRA]
        face = out[:, _FACE_BODY25]  # a copy
        missing = face[..., 2] <= 0
        face[missing] = part[:, _FACE_J24][missing]
        out[:, _FACE_BODY25] = face
    return out


def to_spin_part(keypoints: np.ndarray) -> np.ndarray:
    """SPIN's `part` float[N, 24, 3] from 44-row keypoints float[N, 44, 3]: the 19 extra joints, then
    the face joints from BODY_25's nose, eyes and ears (the inverse of `from_spin` without openpose)."""
    keypoints = _rows(keypoints, None, NUM_KEYPOINTS, "keypoints_2d")
    part = np.zeros((len(keypoints), len(J24_NAMES), 3))
    part[:, :NUM_EXTRA] = keypoints[:, NUM_BODY:]
    part[:, _FACE_J24] = keypoints[:, _FACE_BODY25]
    return part
