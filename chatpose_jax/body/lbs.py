"""Linear blend skinning as pure functions (the maths of SMPL, SMPL-H and SMPL-X).

Layout: vertex arrays are coordinate-major, `[..., 3, V]`, so that every large product is one
plain 2-D matmul whose output is already in the layout the next step reads (no transposes of
`B x V`-sized arrays). The model files' `(V, 3, K)` arrays are put in this layout once, at load.
`J` is the number of kinematic joints, `K` the number of shape (+ expression) coefficients,
`P = 9 (J - 1)` the number of pose-corrective features.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np


def _matmul3(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """Batched product of 3x3 (or 3xN) matrices as broadcast-and-sum.

    XLA fuses this with its neighbours; a dot per 3x3 product would be one library call each.
    """
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def blend_shapes(betas: jnp.ndarray, v_template: jnp.ndarray, shapedirs: jnp.ndarray) -> jnp.ndarray:
    """Rest-pose vertices of a body shape: v_template + sum_k betas[k] shapedirs[k].

    betas: float[B, K]; v_template: float[3, V] metres; shapedirs: float[K, 3, V] metres per unit.
    Returns v_shaped: float[B, 3, V] metres.
    """
    num_coeffs, _, num_verts = shapedirs.shape
    offsets = betas @ shapedirs.reshape(num_coeffs, 3 * num_verts)
    return v_template + offsets.reshape(betas.shape[0], 3, num_verts)


def rest_joints(
    betas: jnp.ndarray, v_template: jnp.ndarray, shapedirs: jnp.ndarray, J_regressor: jnp.ndarray
) -> jnp.ndarray:
    """Rest-pose joints J_regressor . v_shaped, computed without forming v_shaped.

    The regressor is linear, so it is applied to the template and to each shape direction once
    (batch-independent, `J x V x K` work) and the batch only mixes `K` small `J x 3` arrays.
    betas: float[B, K]; v_template: float[3, V]; shapedirs: float[K, 3, V]; J_regressor: float[J, V].
    Returns joints: float[B, J, 3] metres.
    """
    template_joints = (v_template @ J_regressor.T).T  # [J, 3]
    joint_dirs = jnp.einsum("kcv,jv->kjc", shapedirs, J_regressor)  # [K, J, 3]
    num_coeffs, num_joints = joint_dirs.shape[:2]
    offsets = betas @ joint_dirs.reshape(num_coeffs, num_joints * 3)
    return template_joints + offsets.reshape(betas.shape[0], num_joints, 3)


def pose_features(rotmat: jnp.ndarray) -> jnp.ndarray:
    """Pose-corrective features (R_j - I) of the non-root joints, flattened row-major.

    rotmat: float[B, J, 3, 3] -> float[B, 9 (J - 1)], zero at the rest pose.
    """
    eye = jnp.eye(3, dtype=rotmat.dtype)
    return (rotmat[:, 1:] - eye).reshape(rotmat.shape[0], -1)


def pose_offsets(features: jnp.ndarray, posedirs: jnp.ndarray) -> jnp.ndarray:
    """Pose-corrective vertex offsets.

    features: float[B, P]; posedirs: float[P, 3, V] metres per unit -> float[B, 3, V] metres.
    """
    num_features, _, num_verts = posedirs.shape
    offsets = features @ posedirs.reshape(num_features, 3 * num_verts)
    return offsets.reshape(features.shape[0], 3, num_verts)


def kinematic_levels(parents: Sequence[int]) -> list[np.ndarray]:
    """Joints grouped by depth in the kinematic tree (root alone at depth 0).

    Joints of one depth depend only on shallower ones, so each depth is one vectorised step.
    """
    depth = [0] * len(parents)
    for joint, parent in enumerate(parents):
        if joint == 0:
            continue
        if not 0 <= parent < joint:
            raise ValueError(f"parents[{joint}] = {parent}: expected a parent index in [0, {joint}) (root first)")
        depth[joint] = depth[parent] + 1
    depth_arr = np.asarray(depth)
    return [np.flatnonzero(depth_arr == d) for d in range(depth_arr.max() + 1)]


def rigid_transform(
    rotmat: jnp.ndarray, joints: jnp.ndarray, parents: Sequence[int]
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Forward kinematics: posed joints and the per-joint skinning transforms.

    rotmat: float[B, J, 3, 3] local rotations; joints: float[B, J, 3] rest joints (metres);
    parents: J ints, parents[0] = -1, each parent before its child.
    Returns posed_joints: float[B, J, 3] metres and transforms: float[B, J, 3, 4], the rigid map
    taking a rest-pose point to its posed place when it follows joint j alone.
    """
    parents = tuple(int(p) for p in parents)
    levels = kinematic_levels(parents)
    parents_arr = np.asarray(parents)
    # Global rotations / translations of the joints done so far, in the order they were done.
    done_rot: list[jnp.ndarray] = [rotmat[:, :1]]
    done_trans: list[jnp.ndarray] = [joints[:, :1]]
    slot = {0: 0}
    for level in levels[1:]:
        all_rot = jnp.concatenate(done_rot, axis=1)
        all_trans = jnp.concatenate(done_trans, axis=1)
        parent_slots = np.asarray([slot[int(parents_arr[j])] for j in level])
        parent_rot = all_rot[:, parent_slots]
        parent_trans = all_trans[:, parent_slots]
        bone = joints[:, level] - joints[:, parents_arr[level]]
        done_rot.append(_matmul3(parent_rot, rotmat[:, level]))
        done_trans.append(parent_trans + _matmul3(parent_rot, bone[..., None])[..., 0])
        for j in level:
            slot[int(j)] = len(slot)
    order = np.concatenate(levels)
    back = np.argsort(order)
    global_rot = jnp.concatenate(done_rot, axis=1)[:, back]
    posed_joints = jnp.concatenate(done_trans, axis=1)[:, back]
    # Skinning moves rest-pose points, so the rest joint is taken off before rotating.
    trans = posed_joints - _matmul3(global_rot, joints[..., None])[..., 0]
    return posed_joints, jnp.concatenate([global_rot, trans[..., None]], axis=-1)


def skin(transforms: jnp.ndarray, lbs_weights: jnp.ndarray, v_posed: jnp.ndarray) -> jnp.ndarray:
    """Linear blend skinning: v = sum_j w_j (R_j v + t_j).

    transforms: float[B, J, 3, 4]; lbs_weights: float[J, V] (columns sum to 1);
    v_posed: float[B, 3, V] metres -> float[B, 3, V] metres.
    The blended transforms are one `(B*12, J) @ (J, V)` matmul whose rows are already per
    coordinate, so the final multiply-add reads them contiguously along V.
    """
    batch, num_joints = transforms.shape[:2]
    num_verts = lbs_weights.shape[1]
    per_entry = jnp.transpose(transforms.reshape(batch, num_joints, 12), (0, 2, 1)).reshape(batch * 12, num_joints)
    blended = (per_entry @ lbs_weights).reshape(batch, 3, 4, num_verts)
    return jnp.sum(blended[:, :, :3] * v_posed[:, None], axis=2) + blended[:, :, 3]


def lbs(
    betas: jnp.ndarray,
    rotmat: jnp.ndarray,
    v_template: jnp.ndarray,
    shapedirs: jnp.ndarray,
    posedirs: jnp.ndarray,
    J_regressor: jnp.ndarray,
    lbs_weights: jnp.ndarray,
    parents: Sequence[int],
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Shape, pose-correct, pose and skin a body (smplx's `lbs`, in coordinate-major layout).

    betas: float[B, K]; rotmat: float[B, J, 3, 3]; v_template: float[3, V]; shapedirs: float[K, 3, V];
    posedirs: float[P, 3, V]; J_regressor: float[J, V]; lbs_weights: float[J, V]; parents: J ints.
    Returns vertices: float[B, 3, V] and joints: float[B, J, 3], metres, before translation.
    """
    v_shaped = blend_shapes(betas, v_template, shapedirs)
    joints = rest_joints(betas, v_template, shapedirs, J_regressor)
    v_posed = v_shaped + pose_offsets(pose_features(rotmat), posedirs)
    posed_joints, transforms = rigid_transform(rotmat, joints, parents)
    return skin(transforms, lbs_weights, v_posed), posed_joints
