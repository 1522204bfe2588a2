"""Pose head: the decoder state just before each `<POSE>` -> 24 joint rotations.

Linear(d, d) - ReLU - Linear(d, 24 * 6) gives the 6D rotation of each joint (joint 0 global
orientation, 1..23 SMPL body pose), turned into matrices in the HMR2.0 layout.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from chatpose_jax.model.config import PoseHeadConfig
from chatpose_jax.model.layers import Linear

try:  # the body-model package owns rotation conventions once it exists
    from chatpose_jax.body.rotations import rot6d_hmr2_to_rotmat
except ImportError:  # pragma: no cover - depends on which modules are present

    def rot6d_hmr2_to_rotmat(rot6d: jax.Array) -> jax.Array:
        """6D -> rotation matrix, HMR2.0 layout (not SPIN's view(3, 2)).

        The 6 numbers reshape to (2, 3): row 0 is the first column a1, row 1 the second column a2.
        Gram-Schmidt: b1 = a1/|a1|, b2 = normalise(a2 - (b1.a2) b1), b3 = b1 x b2; R = [b1 b2 b3]
        as columns.

        Args:
          rot6d: float[..., 6].
        Returns:
          float[..., 3, 3].
        """
        x = rot6d.astype(jnp.float32).reshape(*rot6d.shape[:-1], 2, 3)
        a1, a2 = x[..., 0, :], x[..., 1, :]
        b1 = a1 / jnp.maximum(jnp.linalg.norm(a1, axis=-1, keepdims=True), 1e-8)
        b2 = a2 - jnp.sum(b1 * a2, axis=-1, keepdims=True) * b1
        b2 = b2 / jnp.maximum(jnp.linalg.norm(b2, axis=-1, keepdims=True), 1e-8)
        b3 = jnp.cross(b1, b2)
        return jnp.stack([b1, b2, b3], axis=-1)


# The HMR2.0 6D layout holds a rotation's first two columns: (1,0,0, 0,1,0) is the identity.
IDENTITY_ROT6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
# The root of a person standing upright and facing the camera in the OpenCV camera frame the pose
# head's root lives in: diag(1, -1, -1) (body/frames.py's UPRIGHT_FACING_CAMERA_ROOT).
UPRIGHT_ROOT_ROT6D = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def rest_pose_rot6d_bias(key, shape, dtype=jnp.float32) -> jax.Array:
    """fc2's initial bias: the root upright and facing the camera, every body joint at the identity.

    A zero bias would start every joint at the Gram-Schmidt of small noise, a random rotation;
    starting at the rest pose (as HMR2.0 starts from its mean pose) lets training refine a body
    rather than untangle random joints. The root starts at diag(1, -1, -1), not the identity: the
    targets' roots are in the OpenCV camera frame, where an upright person is 180 degrees about x
    from the identity, and at exactly 180 degrees the L1 loss on the Gram-Schmidt matrix has no
    gradient (the error is radial to the normalised column), so an identity start never turns.
    Only the initial value: the function stays Linear-ReLU-Linear, so released weights load
    unchanged. shape: (num_joints * 6,).
    """
    del key
    num_joints = shape[0] // 6
    rest = jnp.array([UPRIGHT_ROOT_ROT6D] + [IDENTITY_ROT6D] * (num_joints - 1), jnp.float32)
    return rest.reshape(-1).astype(dtype)


class PoseHead(nn.Module):
    """float[..., d] -> rot6d float[..., num_joints, 6] (float32); params fc1, fc2."""

    cfg: PoseHeadConfig
    hidden_size: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    init_std: float = 0.02

    @nn.compact
    def __call__(self, hidden: jax.Array) -> jax.Array:
        dense = dict(use_bias=True, dtype=self.dtype, param_dtype=self.param_dtype, init_std=self.init_std)
        x = Linear(self.hidden_size, ("embed", "mlp"), name="fc1", **dense)(hidden)
        x = jax.nn.relu(x)
        x = Linear(self.cfg.num_joints * 6, ("mlp", "joints"), name="fc2", bias_init=rest_pose_rot6d_bias, **dense)(x)
        return x.astype(jnp.float32).reshape(*x.shape[:-1], self.cfg.num_joints, 6)


def positions_before_pose(input_ids: jax.Array, pose_token_id: int, max_poses: int) -> tuple[jax.Array, jax.Array]:
    """Positions t with input_ids[t + 1] == `<POSE>`: the states that predict `<POSE>`.

    Args:
      input_ids: int[B, T].
    Returns:
      positions int[B, P] (the first P such positions in order; 0 where absent) and valid bool[B, P].
    """
    is_before = jnp.pad(input_ids[:, 1:] == pose_token_id, ((0, 0), (0, 1)))
    order = jnp.argsort(~is_before, axis=-1, stable=True)[:, :max_poses]
    valid = jnp.take_along_axis(is_before, order, axis=-1)
    if order.shape[1] < max_poses:  # sequences shorter than P
        pad = max_poses - order.shape[1]
        order = jnp.pad(order, ((0, 0), (0, pad)))
        valid = jnp.pad(valid, ((0, 0), (0, pad)))
    return jnp.where(valid, order, 0), valid
