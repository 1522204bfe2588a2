"""The body model as a pytree: SMPL / SMPL-H / SMPL-X arrays plus their static topology.

`BodyModel` holds only arrays as leaves (so `jit`, `vmap`, `grad` and shardings apply to it as to
any parameters) and keeps the kinematic tree, the model type and the faces as static data.
Calling it poses the body; `chatpose_jax.body.loading` builds it from the official files.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct

from chatpose_jax.body import lbs, rotations, skeletons


class StaticArray:
    """A numpy array carried as static pytree data, compared by identity.

    Static fields must be hashable; hashing 40k face indices on every jit call would cost more
    than the call, and a model's faces never change, so identity is the right equality.
    """

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array)
        self.array.setflags(write=False)

    def __hash__(self) -> int:
        return id(self.array)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StaticArray) and other.array is self.array

    def __repr__(self) -> str:
        return f"StaticArray(shape={self.array.shape}, dtype={self.array.dtype})"


@struct.dataclass
class BodyOutput:
    """A posed batch of bodies.

    vertices: float[B, V, 3] metres; joints: float[B, J, 3] metres, the kinematic joints in the
    `smplx` order (24 for SMPL, 52 for SMPL-H, 55 for SMPL-X); rotmat: float[B, J, 3, 3], the local
    joint rotations that were applied; faces: int[F, 3] (static, numpy).
    """

    vertices: jnp.ndarray
    joints: jnp.ndarray
    rotmat: jnp.ndarray
    faces_static: StaticArray = struct.field(pytree_node=False)

    @property
    def faces(self) -> np.ndarray:
        return self.faces_static.array


@struct.dataclass
class BodyModel:
    """SMPL-family body model; arrays in the coordinate-major layout of `chatpose_jax.body.lbs`.

    v_template: float[3, V] metres; shapedirs: float[K, 3, V] and exprdirs: float[E, 3, V] metres per
    unit coefficient (E = 0 but for SMPL-X); posedirs: float[9 (J - 1), 3, V]; J_regressor: float[J, V];
    lbs_weights: float[J, V]; pose_mean: float[J, 3] axis-angle added to axis-angle inputs (the mean
    hand pose unless loaded with flat_hand_mean); hands_components_left/right: float[C, 45] hand PCA
    bases (C = 0 for SMPL). Static: model_type ('smpl', 'smplh', 'smplx'), parents, faces, source.
    """

    v_template: jnp.ndarray
    shapedirs: jnp.ndarray
    exprdirs: jnp.ndarray
    posedirs: jnp.ndarray
    J_regressor: jnp.ndarray
    lbs_weights: jnp.ndarray
    pose_mean: jnp.ndarray
    hands_components_left: jnp.ndarray
    hands_components_right: jnp.ndarray
    model_type: str = struct.field(pytree_node=False)
    parents: tuple[int, ...] = struct.field(pytree_node=False)
    faces_static: StaticArray = struct.field(pytree_node=False)
    source: str = struct.field(pytree_node=False, default="")

    @property
    def faces(self) -> np.ndarray:
        """int32[F, 3] vertex indices of the triangles."""
        return self.faces_static.array

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[-1]

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[0]

    @property
    def num_expression_coeffs(self) -> int:
        return self.exprdirs.shape[0]

    @property
    def joint_names(self) -> tuple[str, ...]:
        return skeletons.JOINT_NAMES[self.model_type]

    @property
    def pose_arguments(self) -> tuple[tuple[str, int, int], ...]:
        """(argument, first joint, number of joints) of each pose input, in joint order."""
        return skeletons.POSE_ARGUMENTS[self.model_type]

    def hand_pose_from_pca(self, pca_coeffs: jnp.ndarray, side: str) -> jnp.ndarray:
        """Hand PCA coefficients to the axis-angle hand pose (without the mean, which the call adds).

        pca_coeffs: float[B, C'] with C' <= C; side: 'left' or 'right'. Returns float[B, 45] radians.
        """
        components = {"left": self.hands_components_left, "right": self.hands_components_right}[side]
        if pca_coeffs.shape[-1] > components.shape[0]:
            raise ValueError(
                f"{self.source}: {side} hand PCA has {components.shape[0]} components; got {pca_coeffs.shape[-1]}"
            )
        return pca_coeffs @ components[: pca_coeffs.shape[-1]]

    def __call__(
        self,
        betas: jnp.ndarray | None = None,
        body_pose: jnp.ndarray | None = None,
        global_orient: jnp.ndarray | None = None,
        transl: jnp.ndarray | None = None,
        *,
        left_hand_pose: jnp.ndarray | None = None,
        right_hand_pose: jnp.ndarray | None = None,
        jaw_pose: jnp.ndarray | None = None,
        leye_pose: jnp.ndarray | None = None,
        reye_pose: jnp.ndarray | None = None,
        expression: jnp.ndarray | None = None,
    ) -> BodyOutput:
        """Pose a batch of bodies.

        Each pose argument of n joints is axis-angle float[B, 3n] or float[B, n, 3] (radians), or
        rotation matrices float[B, n, 3, 3] (float[B, 3, 3] too for one joint); a missing one is the
        rest pose. betas: float[B, <=K], expression: float[B, <=E] (missing trailing coefficients are
        zero); transl: float[B, 3] metres. A leading batch of 1 broadcasts against the others.
        The model's pose_mean is added to axis-angle inputs only, as smplx does.
        """
        poses = {
            "global_orient": global_orient,
            "body_pose": body_pose,
            "left_hand_pose": left_hand_pose,
            "right_hand_pose": right_hand_pose,
            "jaw_pose": jaw_pose,
            "leye_pose": leye_pose,
            "reye_pose": reye_pose,
        }
        allowed = {name for name, _, _ in self.pose_arguments}
        for name, value in poses.items():
            if value is not None and name not in allowed:
                raise ValueError(
                    f"{self.source}: a {self.model_type} model takes no {name}; it takes {sorted(allowed)}"
                )
        given = [v for v in [betas, transl, expression, *poses.values()] if v is not None]
        batch = max([jnp.shape(v)[0] for v in given if jnp.ndim(v) > 0], default=1)
        dtype = self.v_template.dtype

        rotmats = []
        for name, first, count in self.pose_arguments:
            rotmats.append(self._pose_rotmat(name, poses[name], first, count, batch, dtype))
        rotmat = jnp.concatenate(rotmats, axis=1)

        coeffs = [self._coefficients("betas", betas, self.num_betas, batch, dtype)]
        dirs = [self.shapedirs]
        if self.num_expression_coeffs:
            coeffs.append(self._coefficients("expression", expression, self.num_expression_coeffs, batch, dtype))
            dirs.append(self.exprdirs)
        elif expression is not None:
            raise ValueError(f"{self.source}: a {self.model_type} model has no expression space")
        shape_coeffs = jnp.concatenate(coeffs, axis=1)
        shape_dirs = jnp.concatenate(dirs, axis=0) if len(dirs) > 1 else dirs[0]

        if transl is not None:
            transl = self._batched("transl", jnp.asarray(transl, dtype), (3,), batch)
        vertices, joints = lbs.lbs(
            shape_coeffs,
            rotmat,
            self.v_template,
            shape_dirs,
            self.posedirs,
            self.J_regressor,
            self.lbs_weights,
            self.parents,
            transl=transl,
        )
        return BodyOutput(vertices=vertices, joints=joints, rotmat=rotmat, faces_static=self.faces_static)

    def _batched(self, name: str, value: jnp.ndarray, trailing: tuple[int, ...], batch: int) -> jnp.ndarray:
        """Check value's shape is (batch or 1, *trailing) and broadcast the batch."""
        if value.ndim != 1 + len(trailing) or value.shape[1:] != trailing or value.shape[0] not in (1, batch):
            raise ValueError(
                f"{self.source}: {name} has shape {tuple(value.shape)}; expected ({batch}, {', '.join(map(str, trailing))})"
            )
        return jnp.broadcast_to(value, (batch, *trailing))

    def _coefficients(self, name: str, value, size: int, batch: int, dtype) -> jnp.ndarray:
        if value is None:
            return jnp.zeros((batch, size), dtype)
        value = jnp.asarray(value, dtype)
        if value.ndim != 2 or value.shape[1] > size or value.shape[0] not in (1, batch):
            raise ValueError(f"{self.source}: {name} has shape {tuple(value.shape)}; expected ({batch}, <= {size})")
        value = jnp.pad(value, ((0, 0), (0, size - value.shape[1])))
        return jnp.broadcast_to(value, (batch, size))

    def _pose_rotmat(self, name: str, value, first: int, count: int, batch: int, dtype) -> jnp.ndarray:
        """One pose argument as rotation matrices float[B, count, 3, 3]."""
        mean = self.pose_mean[first : first + count]
        if value is None:
            # The rest pose of an axis-angle argument is its mean (non-zero for smplx's hand mean).
            return jnp.broadcast_to(rotations.axis_angle_to_rotmat(mean), (batch, count, 3, 3))
        value = jnp.asarray(value, dtype)
        shape = tuple(value.shape)
        if shape[1:] in ((3 * count,), (count, 3)) and value.ndim >= 2:
            axis_angle = self._batched(name, value.reshape(shape[0], count, 3), (count, 3), batch)
            return rotations.axis_angle_to_rotmat(axis_angle + mean)
        if shape[1:] == (count, 3, 3) or (count == 1 and shape[1:] == (3, 3)):
            return self._batched(name, value.reshape(shape[0], count, 3, 3), (count, 3, 3), batch)
        raise ValueError(
            f"{self.source}: {name} has shape {shape}; expected axis-angle ({batch}, {3 * count}) or "
            f"({batch}, {count}, 3), or rotation matrices ({batch}, {count}, 3, 3)"
        )
