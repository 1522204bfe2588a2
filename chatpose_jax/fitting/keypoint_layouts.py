"""2D keypoint layouts by name (COCO-17, OpenPose BODY_25) and where each keypoint sits on an SMPL body.

A keypoint is read from the posed body as a fixed mixture of SMPL's 24 kinematic joints and a few
surface vertices: the joints where the detector's keypoint is a joint centre, the vertex ids of the
`smplx` package's table `vertex_ids['smplh']` (smplx/vertex_ids.py; SMPL-H shares SMPL's 6890-vertex
mesh) for the face and feet, which have no SMPL joint.
Orders: COCO-17 as the COCO keypoint annotations list them (cocodataset.org, "keypoints" of the
person category); BODY_25 as OpenPose writes `pose_keypoints_2d` (the order SPIN's constants.py
copies as 'OP Nose', 'OP Neck', ...).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from chatpose_jax.body import skeletons

NUM_SMPL_JOINTS = 24
SMPL_JOINT_INDEX = {name: i for i, name in enumerate(skeletons.JOINT_NAMES["smpl"])}

SMPL_VERTEX_IDS = skeletons.SMPL_VERTEX_IDS  # surface points with no SMPL joint (smplx's table)

# What each keypoint is on the body: a vertex name of SMPL_VERTEX_IDS, or the mean of SMPL joints.
_ON_BODY = {
    "nose": "nose",
    "left_eye": "left_eye",
    "right_eye": "right_eye",
    "left_ear": "left_ear",
    "right_ear": "right_ear",
    "left_big_toe": "left_big_toe",
    "left_small_toe": "left_small_toe",
    "left_heel": "left_heel",
    "right_big_toe": "right_big_toe",
    "right_small_toe": "right_small_toe",
    "right_heel": "right_heel",
    # BODY_25's neck and mid-hip: SMPL's neck joint and the midpoint of SMPL's hip joints (SPIN's
    # JOINT_MAP takes the pelvis joint for 'OP MidHip'; the hips' midpoint is what OpenPose labels).
    "neck": ("neck",),
    "mid_hip": ("left_hip", "right_hip"),
}
for _side in ("left", "right"):
    for _part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        _ON_BODY[f"{_side}_{_part}"] = (f"{_side}_{_part}",)

COCO17_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# OpenPose's own spelling, index by index; _BODY25_CANONICAL gives the body-part name used above.
BODY25_NAMES = (
    "Nose",
    "Neck",
    "RShoulder",
    "RElbow",
    "RWrist",
    "LShoulder",
    "LElbow",
    "LWrist",
    "MidHip",
    "RHip",
    "RKnee",
    "RAnkle",
    "LHip",
    "LKnee",
    "LAnkle",
    "REye",
    "LEye",
    "REar",
    "LEar",
    "LBigToe",
    "LSmallToe",
    "LHeel",
    "RBigToe",
    "RSmallToe",
    "RHeel",
)


def _canonical_body25(name: str) -> str:
    """'RShoulder' -> 'right_shoulder', 'LBigToe' -> 'left_big_toe', 'MidHip' -> 'mid_hip'."""
    side = {"R": "right_", "L": "left_"}.get(name[0], "") if name[1:2].isupper() else ""
    rest = name[1:] if side else name
    words = "".join("_" + c.lower() if c.isupper() else c for c in rest).lstrip("_")
    return side + words


@dataclasses.dataclass(frozen=True)
class KeypointLayout:
    """A named keypoint layout and how to read it from an SMPL body.

    names: K keypoint names in the layout's published order; body_parts: K canonical part names
    (keys of the tables above); vertex_ids: the SMPL vertices the layout reads (V' ids);
    weights: float[K, 24 + V'] rows mixing [24 SMPL joints; the V' vertices] into each keypoint;
    torso: indices of the (left/right) shoulders and hips, the keypoints SMPLify starts the camera from.
    """

    name: str
    names: tuple[str, ...]
    body_parts: tuple[str, ...]
    vertex_ids: tuple[int, ...]
    weights: np.ndarray
    torso: tuple[int, ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def __hash__(self) -> int:  # the layout is a static argument of jitted functions
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeypointLayout) and other.name == self.name


def _build(name: str, names: tuple[str, ...], body_parts: tuple[str, ...]) -> KeypointLayout:
    vertex_parts = [p for p in body_parts if isinstance(_ON_BODY[p], str)]
    vertex_ids = tuple(SMPL_VERTEX_IDS[p] for p in vertex_parts)
    weights = np.zeros((len(names), NUM_SMPL_JOINTS + len(vertex_ids)))
    for k, part in enumerate(body_parts):
        source = _ON_BODY[part]
        if isinstance(source, str):
            weights[k, NUM_SMPL_JOINTS + vertex_parts.index(part)] = 1.0
        else:
            for joint in source:
                weights[k, SMPL_JOINT_INDEX[joint]] += 1.0 / len(source)
    weights.setflags(write=False)
    torso = tuple(body_parts.index(p) for p in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    return KeypointLayout(name, names, body_parts, vertex_ids, weights, torso)


LAYOUTS = {
    "coco17": _build("coco17", COCO17_NAMES, COCO17_NAMES),
    "body25": _build("body25", BODY25_NAMES, tuple(_canonical_body25(n) for n in BODY25_NAMES)),
}


def get_layout(name: str) -> KeypointLayout:
    """The layout called `name` ('coco17' or 'body25'); ValueError naming it and the known ones otherwise."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {name!r}; known layouts: {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[name]
