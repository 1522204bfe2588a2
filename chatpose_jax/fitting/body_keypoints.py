"""An SMPL body's 3D keypoints in a layout, posing only the joints and the few vertices the layout reads.

SMPLify compares projected keypoints with detections at every step; skinning all 6890 vertices to
read at most 11 of them would be almost all of the work, so the vertices are cut out first and
go through the same linear blend skinning as the full body (`chatpose_jax.body.lbs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from chatpose_jax.body import lbs, rotations
from chatpose_jax.body.model import BodyModel
from chatpose_jax.fitting.keypoint_layouts import NUM_SMPL_JOINTS, KeypointLayout


def check_smpl(model: BodyModel) -> None:
    """Raise ValueError unless `model` is SMPL (the layouts' vertex ids are SMPL mesh ids)."""
    if model.model_type != "smpl" or model.num_joints != NUM_SMPL_JOINTS:
        raise ValueError(
            f"{model.source}: SMPLify fits an SMPL body (24 joints, 6890 vertices); got a {model.model_type} model"
        )


def pose_rotmat(model: BodyModel, global_orient: jnp.ndarray, body_pose: jnp.ndarray) -> jnp.ndarray:
    """Axis-angle SMPL pose to local joint rotations, with the model's pose mean added as the model does.

    global_orient: float[B, 3] and body_pose: float[B, 69] radians -> float[B, 24, 3, 3].
    """
    pose = jnp.concatenate([global_orient, body_pose], axis=-1).reshape(-1, NUM_SMPL_JOINTS, 3)
    return rotations.axis_angle_to_rotmat(pose + model.pose_mean[:NUM_SMPL_JOINTS])


def posed_joints_and_vertices(
    model: BodyModel, betas: jnp.ndarray, rotmat: jnp.ndarray, vertex_ids: Sequence[int]
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The posed kinematic joints and the chosen vertices, exactly as the full model poses them.

    betas: float[B, K]; rotmat: float[B, J, 3, 3]; vertex_ids: V' mesh indices.
    Returns joints: float[B, J, 3] and vertices: float[B, V', 3], metres, body frame (no translation).
    """
    ids = np.asarray(vertex_ids, dtype=np.int32)
    rest = lbs.rest_joints(betas, model.v_template, model.shapedirs, model.J_regressor)
    joints, transforms = lbs.rigid_transform(rotmat, rest, model.parents)
    if ids.size == 0:
        return joints, jnp.zeros((betas.shape[0], 0, 3), joints.dtype)
    v_posed = lbs.blend_shapes(betas, model.v_template[:, ids], model.shapedirs[:, :, ids])
    v_posed = v_posed + lbs.pose_offsets(lbs.pose_features(rotmat), model.posedirs[:, :, ids])
    vertices = lbs.skin(lbs.transform_rows(transforms), model.lbs_weights[:, ids], v_posed)
    return joints, jnp.swapaxes(vertices, 1, 2)


def layout_keypoints(
    model: BodyModel, layout: KeypointLayout, global_orient: jnp.ndarray, body_pose: jnp.ndarray, betas: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """An SMPL body's keypoints in `layout`, and its 24 joints.

    global_orient: float[B, 3], body_pose: float[B, 69] radians; betas: float[B, K].
    Returns keypoints: float[B, K_layout, 3] and joints: float[B, 24, 3], metres, body frame.
    """
    rotmat = pose_rotmat(model, global_orient, body_pose)
    joints, vertices = posed_joints_and_vertices(model, betas, rotmat, layout.vertex_ids)
    sources = jnp.concatenate([joints, vertices], axis=1)
    weights = jnp.asarray(layout.weights, sources.dtype)
    return jnp.einsum("ks,bsc->bkc", weights, sources), joints
