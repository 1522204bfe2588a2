"""Linear blend skinning as pure functions (the maths of SMPL, SMPL-H and SMPL-X).

Layout: the model's vertex arrays are coordinate-major, `[..., 3, V]`, so that every large product
is one plain 2-D matmul whose output is already in the layout the next step reads (no transposes of
`B x V`-sized arrays); the files' `(V, 3, K)` arrays are put in this layout once, at load. The
posed vertices come out vertex-major, `[B, V, 3]`, as users expect.
`J` is the number of kinematic joints, `K` the number of shape (+ expression) coefficients,
`P = 9 (J - 1)` the number of pose-corrective features.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def _matmul3(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """Batched product of 3x3 (or 3xN) matrices as explicit multiply-adds.

    XLA fuses these with their neighbours; a dot per 3x3 product would be one library call each,
    and a size-3 reduction compiles to slow code on CPU.
    """
    return sum(a[..., :, k, None] * b[..., None, k, :] for k in range(a.shape[-1]))


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


def transform_rows(transforms: jnp.ndarray) -> jnp.ndarray:
    """Joint transforms float[B, J, 3, 4] as rows float[B * 12, J], the left operand of skinning."""
    batch, num_joints = transforms.shape[:2]
    return jnp.transpose(transforms.reshape(batch, num_joints, 12), (0, 2, 1)).reshape(batch * 12, num_joints)


@jax.custom_vjp
def apply_blended(blended: jnp.ndarray, v_posed: jnp.ndarray) -> jnp.ndarray:
    """Apply per-vertex affine maps: out[b, i, v] = sum_k blended[b, i, k, v] v_posed[b, k, v] + blended[b, i, 3, v].

    blended: float[B, 3, 4, V]; v_posed: float[B, 3, V] -> float[B, 3, V].
    Written out term by term, and so is its gradient: XLA's CPU code for the size-3 reductions that
    `jnp.sum` / automatic differentiation would produce here runs ~80x slower.
    """
    return sum(blended[:, :, k] * v_posed[:, None, k] for k in range(3)) + blended[:, :, 3]


def _apply_blended_fwd(blended, v_posed):
    return apply_blended(blended, v_posed), (blended, v_posed)


def _apply_blended_bwd(residuals, g):
    blended, v_posed = residuals
    ones = jnp.ones_like(v_posed[:, :1])
    d_blended = g[:, :, None] * jnp.concatenate([v_posed, ones], axis=1)[:, None]
    d_v_posed = sum(blended[:, i, :3] * g[:, i, None] for i in range(3))
    return d_blended, d_v_posed


apply_blended.defvjp(_apply_blended_fwd, _apply_blended_bwd)


def skin(transforms_rows: jnp.ndarray, lbs_weights: jnp.ndarray, v_posed: jnp.ndarray) -> jnp.ndarray:
    """Linear blend skinning: v = sum_j w_j (R_j v + t_j).

    transforms_rows: float[B * 12, J] (`transform_rows` of float[B, J, 3, 4]); lbs_weights: float[J, V]
    (columns sum to 1); v_posed: float[B, 3, V] metres -> float[B, 3, V] metres.
    The blended transforms are one `(B*12, J) @ (J, V)` matmul whose rows are already per
    coordinate, so the final multiply-add reads them contiguously along V.
    """
    batch, _, num_verts = v_posed.shape
    blended = (transforms_rows @ lbs_weights).reshape(batch, 3, 4, num_verts)
    return apply_blended(blended, v_posed)


# Skinning blends a 12-number transform per vertex and body: `B x 12 x V` floats, 170 MB at batch 512,
# which would be written and read back through memory if formed whole. Past `_BLOCK_ABOVE_BYTES`
# the vertices go through in blocks of about `_BLOCK_BYTES` of transforms; below it one pass is
# faster, as each loop step has a fixed cost. Measured on a 2-core CPU at batch 512: the forward is
# fastest with 3-6 MB blocks, the backward (which recomputes each block) with larger ones; 18 MB
# (768 vertices) costs the forward ~15% and saves the backward ~30%.
_BLOCK_ABOVE_BYTES = 32 << 20
_BLOCK_BYTES = 18 << 20


def vertex_block_size(batch: int, num_verts: int, itemsize: int = 4) -> int:
    """Vertices per block for `lbs`: all of them for small batches, else a multiple of 16."""
    per_vertex = batch * 12 * itemsize
    if per_vertex * num_verts <= _BLOCK_ABOVE_BYTES:
        return num_verts
    return int(min(num_verts, max(16, (_BLOCK_BYTES // per_vertex) // 16 * 16)))


def _posed_block(betas, features, transforms_rows, v_template, shapedirs, posedirs, lbs_weights):
    """Shape, pose-correct and skin one block of Vb vertices.

    betas: float[B, K]; features: float[B, P]; transforms_rows: float[B * 12, J]; v_template: float[3, Vb];
    shapedirs: float[K, 3, Vb]; posedirs: float[P, 3, Vb]; lbs_weights: float[J, Vb].
    Returns float[B, Vb, 3] metres.
    """
    v_posed = blend_shapes(betas, v_template, shapedirs) + pose_offsets(features, posedirs)
    return jnp.swapaxes(skin(transforms_rows, lbs_weights, v_posed), 1, 2)


def lbs(
    betas: jnp.ndarray,
    rotmat: jnp.ndarray,
    v_template: jnp.ndarray,
    shapedirs: jnp.ndarray,
    posedirs: jnp.ndarray,
    J_regressor: jnp.ndarray,
    lbs_weights: jnp.ndarray,
    parents: Sequence[int],
    transl: jnp.ndarray | None = None,
    vertex_block: int | None = None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Shape, pose-correct, pose and skin a body (smplx's `lbs`), blocked over vertices for large batches.

    betas: float[B, K]; rotmat: float[B, J, 3, 3]; v_template: float[3, V]; shapedirs: float[K, 3, V];
    posedirs: float[P, 3, V]; J_regressor: float[J, V]; lbs_weights: float[J, V]; parents: J ints;
    transl: float[B, 3] metres or None; vertex_block: vertices per block (None: `vertex_block_size`).
    Returns vertices: float[B, V, 3] and joints: float[B, J, 3], metres.
    The translation rides on the joint transforms (skinning weights sum to one), which saves a
    separate pass over the vertices.
    Each block is rematerialised in the backward pass, so gradients never hold `B x 12 x V` either.
    """
    batch, num_joints = rotmat.shape[:2]
    num_verts = v_template.shape[1]
    joints = rest_joints(betas, v_template, shapedirs, J_regressor)
    posed_joints, transforms = rigid_transform(rotmat, joints, parents)
    if transl is not None:
        posed_joints = posed_joints + transl[:, None]
        transforms = transforms.at[..., 3].add(transl[:, None])
    rows = transform_rows(transforms)
    features = pose_features(rotmat)
    block = vertex_block or vertex_block_size(batch, num_verts, jnp.dtype(v_template.dtype).itemsize)
    if block >= num_verts:
        return _posed_block(betas, features, rows, v_template, shapedirs, posedirs, lbs_weights), posed_joints

    posed_block = jax.checkpoint(_posed_block)

    def body(i, vertices):
        # The last block is moved back to end at V; it recomputes a few vertices, identically.
        start = jnp.minimum(i * block, num_verts - block)

        def cut(array):
            return lax.dynamic_slice_in_dim(array, start, block, axis=array.ndim - 1)

        out = posed_block(betas, features, rows, cut(v_template), cut(shapedirs), cut(posedirs), cut(lbs_weights))
        return lax.dynamic_update_slice(vertices, out, (0, start, 0))

    num_blocks = -(-num_verts // block)
    vertices = lax.fori_loop(0, num_blocks, body, jnp.zeros((batch, num_verts, 3), v_template.dtype))
    return vertices, posed_joints
