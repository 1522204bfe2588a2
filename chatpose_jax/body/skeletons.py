"""Kinematic trees of SMPL, SMPL-H and SMPL-X: joint names, parents and the pose arguments.

The joint order is the one the official files and the `smplx` package use; the pose arguments
(`global_orient`, `body_pose`, ...) are consecutive runs of joints in that order.
"""

from __future__ import annotations

BODY_JOINT_NAMES = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
LEFT_WRIST, RIGHT_WRIST, HEAD = 20, 21, 15

FINGERS = ("index", "middle", "pinky", "ring", "thumb")


def _hand(side: str, wrist: int, first: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Names and parents of one hand's 15 joints: 5 fingers x 3 phalanges, each chain from the wrist."""
    names, parents = [], []
    for f, finger in enumerate(FINGERS):
        for k in range(3):
            names.append(f"{side}_{finger}{k + 1}")
            parents.append(wrist if k == 0 else first + 3 * f + k - 1)
    return tuple(names), tuple(parents)


_LH_SMPLH = _hand("left", LEFT_WRIST, 22)
_RH_SMPLH = _hand("right", RIGHT_WRIST, 37)
_LH_SMPLX = _hand("left", LEFT_WRIST, 25)
_RH_SMPLX = _hand("right", RIGHT_WRIST, 40)

JOINT_NAMES = {
    "smpl": BODY_JOINT_NAMES + ("left_hand", "right_hand"),
    "smplh": BODY_JOINT_NAMES + _LH_SMPLH[0] + _RH_SMPLH[0],
    "smplx": BODY_JOINT_NAMES + ("jaw", "left_eye_smplhf", "right_eye_smplhf") + _LH_SMPLX[0] + _RH_SMPLX[0],
}
PARENTS = {
    "smpl": BODY_PARENTS + (LEFT_WRIST, RIGHT_WRIST),
    "smplh": BODY_PARENTS + _LH_SMPLH[1] + _RH_SMPLH[1],
    "smplx": BODY_PARENTS + (HEAD, HEAD, HEAD) + _LH_SMPLX[1] + _RH_SMPLX[1],
}
NUM_JOINTS = {name: len(parents) for name, parents in PARENTS.items()}
MODEL_TYPE_BY_NUM_JOINTS = {n: name for name, n in NUM_JOINTS.items()}

# Pose arguments per model type: (argument, first joint, number of joints), in joint order.
POSE_ARGUMENTS = {
    "smpl": (("global_orient", 0, 1), ("body_pose", 1, 23)),
    "smplh": (("global_orient", 0, 1), ("body_pose", 1, 21), ("left_hand_pose", 22, 15), ("right_hand_pose", 37, 15)),
    "smplx": (
        ("global_orient", 0, 1),
        ("body_pose", 1, 21),
        ("jaw_pose", 22, 1),
        ("leye_pose", 23, 1),
        ("reye_pose", 24, 1),
        ("left_hand_pose", 25, 15),
        ("right_hand_pose", 40, 15),
    ),
}

# File names inside a model folder, as the `smplx` package lays it out.
FILE_PREFIX = {"smpl": "SMPL", "smplh": "SMPLH", "smplx": "SMPLX"}


# Named surface points of the SMPL (and SMPL-H) mesh that have no joint: the `smplx` package's table
# (smplx/vertex_ids.py, vertex_ids['smplh']), which keypoint layouts read (chatpose_jax.fitting) and
# the synthetic SMPL places on its face and feet (chatpose_jax.body.synthetic).
SMPL_VERTEX_IDS = {
    "nose": 332,
    "right_eye": 6260,
    "left_eye": 2800,
    "right_ear": 4071,
    "left_ear": 583,
    "left_big_toe": 3216,
    "left_small_toe": 3226,
    "left_heel": 3387,
    "right_big_toe": 6617,
    "right_small_toe": 6624,
    "right_heel": 6787,
}
