"""SMPLify in JAX: fit SMPL pose, shape and camera translation to 2D keypoints, many people at once.

As SMPLify (Bogo et al., ECCV 2016) in SPIN's PyTorch form (Kolotouros et al., ICCV 2019,
smplify/smplify.py and losses.py): start from the prior's mean pose, upright and facing the camera,
with the translation from similar triangles on the torso (`camera.initial_translation`); then
  1. a camera stage: global orientation and camera translation fitted to the torso keypoints
     (squared pixel error), with the depth held near its first estimate;
  2. a body stage: global orientation, body pose and shape fitted to every keypoint with the
     Geman-McClure robust error (sigma = 100 px), the GMM pose prior, the elbow/knee bending prior
     and the shape prior; the camera translation stays fixed.
Each stage runs a fixed number of optimiser steps (optax, Adam by default), so the whole fit is one
jitted program over the batch; people never interact (the loss is a sum over people and Adam is
elementwise). Weights enter squared, as in SPIN: `pose_prior_weight ** 2 * E_pose`, and so on.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from chatpose_jax.body.frames import UPRIGHT_FACING_CAMERA_ROOT
from chatpose_jax.body.model import BodyModel
from chatpose_jax.fitting import camera, prior
from chatpose_jax.fitting.body_keypoints import check_smpl, layout_keypoints
from chatpose_jax.fitting.keypoint_layouts import KeypointLayout, get_layout

NUM_BETAS = 10


@dataclasses.dataclass(frozen=True)
class SmplifyConfig:
    """Weights, iterations and optimiser of a fit (defaults: SPIN's smplify.py / losses.py)."""

    sigma: float = 100.0  # Geman-McClure scale of the reprojection error, pixels
    pose_prior_weight: float = 4.78  # GMM pose prior (enters squared)
    shape_prior_weight: float = 5.0  # sum of betas^2 (enters squared)
    angle_prior_weight: float = 15.2  # elbow/knee bending prior (enters squared)
    depth_weight: float = 100.0  # camera stage: pull of the depth to its first estimate, per metre (squared)
    camera_iterations: int = 100  # optimiser steps of the camera stage
    body_iterations: int = 100  # optimiser steps of the body stage
    learning_rate: float = 1e-2  # step size of both stages (radians, metres and betas alike)
    optimizer: Callable[[float], optax.GradientTransformation] = optax.adam  # learning rate -> optax optimiser

    def __post_init__(self):
        for name in ("sigma", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SmplifyConfig.{name} = {getattr(self, name)}; expected > 0")
        for name in ("pose_prior_weight", "shape_prior_weight", "angle_prior_weight", "depth_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SmplifyConfig.{name} = {getattr(self, name)}; expected >= 0")
        for name in ("camera_iterations", "body_iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"SmplifyConfig.{name} = {value!r}; expected an int >= 0")


@struct.dataclass
class SmplifyResult:
    """A batch of fits. global_orient: float[B, 3] and body_pose: float[B, 69] axis-angle radians
    (camera frame: x right, y down, z away); betas: float[B, 10]; camera_translation: float[B, 3]
    metres; reprojection_loss: float[B], the final confidence-weighted Geman-McClure error (pixels^2)."""

    global_orient: jnp.ndarray
    body_pose: jnp.ndarray
    betas: jnp.ndarray
    camera_translation: jnp.ndarray
    reprojection_loss: jnp.ndarray


def check_keypoints(keypoints, layout: KeypointLayout) -> np.ndarray:
    """Keypoints float[B, K, 3] (x, y pixels, confidence) as float32, or ValueError naming the fault.

    Faults: a shape other than (B, K_layout, 3); a NaN or infinite entry (the person and keypoint are
    named); a negative confidence; a person whose confidences are all zero.
    """
    array = np.asarray(keypoints, dtype=np.float32)
    expected = f"(B, {layout.num_keypoints}, 3) for layout {layout.name!r}"
    if array.ndim != 3 or array.shape[1:] != (layout.num_keypoints, 3) or array.shape[0] == 0:
        raise ValueError(f"keypoints have shape {array.shape}; expected {expected}")
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        person, k, column = (int(i) for i in bad[0])
        what = ("x", "y", "confidence")[column]
        raise ValueError(
            f"keypoints: person {person}, keypoint {k} ({layout.names[k]}) has a non-finite {what} "
            f"({array[person, k, column]}); {len(bad)} non-finite entries in all"
        )
    negative = np.argwhere(array[..., 2] < 0)
    if negative.size:
        person, k = (int(i) for i in negative[0])
        raise ValueError(f"keypoints: person {person}, keypoint {k} ({layout.names[k]}) has a negative confidence")
    unseen = np.flatnonzero(np.all(array[..., 2] == 0, axis=1))
    if unseen.size:
        raise ValueError(
            f"keypoints: person {int(unseen[0])} has every confidence zero (nothing to fit); "
            f"people with none: {unseen.tolist()}"
        )
    return array


def geman_mcclure(residual: jnp.ndarray, sigma: float) -> jnp.ndarray:
    """Geman-McClure robust error sigma^2 r^2 / (sigma^2 + r^2), elementwise (r and sigma in pixels)."""
    squared = residual**2
    return sigma**2 * squared / (sigma**2 + squared)


def reprojection_error(projected, keypoints_2d, confidence, sigma: float) -> jnp.ndarray:
    """sum_k confidence_k^2 * sum_xy GM(projected - detected). float[B, K, 2] x 2, float[B, K] -> float[B]."""
    per_keypoint = jnp.sum(geman_mcclure(projected - keypoints_2d, sigma), axis=-1)
    return jnp.sum(confidence**2 * per_keypoint, axis=-1)


def camera_stage_weights(confidence: jnp.ndarray, torso: tuple[int, ...]) -> jnp.ndarray:
    """float[B, K]: confidence^2 on the torso keypoints, or on every keypoint for a person with no torso seen."""
    in_torso = np.zeros(confidence.shape[-1], dtype=bool)
    in_torso[list(torso)] = True
    torso_weight = jnp.where(in_torso, confidence**2, 0.0)
    has_torso = jnp.sum(torso_weight, axis=-1, keepdims=True) > 0
    return jnp.where(has_torso, torso_weight, confidence**2)


def _optimize(loss_fn: Callable, params: dict, config: SmplifyConfig, iterations: int) -> dict:
    """`iterations` steps of the configured optimiser on a scalar loss of a dict of arrays."""
    optimizer = config.optimizer(config.learning_rate)

    def step(_, carry):
        params, state = carry
        grads = jax.grad(loss_fn)(params)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params, _ = jax.lax.fori_loop(0, iterations, step, (params, optimizer.init(params)))
    return params


@functools.partial(jax.jit, static_argnames=("layout", "config"))
def _fit(
    model: BodyModel,
    pose_prior: prior.MaxMixturePrior,
    keypoints: jnp.ndarray,
    focal_length: jnp.ndarray,
    principal_point: jnp.ndarray,
    *,
    layout: KeypointLayout,
    config: SmplifyConfig,
) -> SmplifyResult:
    batch = keypoints.shape[0]
    dtype = model.v_template.dtype
    keypoints_2d, confidence = keypoints[..., :2].astype(dtype), keypoints[..., 2].astype(dtype)

    def project(global_orient, body_pose, betas, translation):
        points, _ = layout_keypoints(model, layout, global_orient, body_pose, betas)
        return camera.project(points, translation, focal_length, principal_point)

    global_orient = jnp.broadcast_to(jnp.asarray(UPRIGHT_FACING_CAMERA_ROOT, dtype), (batch, 3))
    body_pose = jnp.broadcast_to(pose_prior.mean_pose.astype(dtype), (batch, 69))
    betas = jnp.zeros((batch, NUM_BETAS), dtype)
    start_points, _ = layout_keypoints(model, layout, global_orient, body_pose, betas)
    start_translation = camera.initial_translation(
        start_points, keypoints_2d, confidence, layout.torso, focal_length, principal_point
    )

    torso_weights = camera_stage_weights(confidence, layout.torso)

    def camera_loss(params):
        projected = project(params["global_orient"], body_pose, betas, params["translation"])
        reprojection = jnp.sum(torso_weights * jnp.sum((projected - keypoints_2d) ** 2, axis=-1), axis=-1)
        depth = config.depth_weight**2 * (params["translation"][:, 2] - start_translation[:, 2]) ** 2
        return jnp.sum(reprojection + depth)

    fitted = _optimize(
        camera_loss,
        {"global_orient": global_orient, "translation": start_translation},
        config,
        config.camera_iterations,
    )
    translation = fitted["translation"]

    def body_terms(params):
        projected = project(params["global_orient"], params["body_pose"], params["betas"], translation)
        reprojection = reprojection_error(projected, keypoints_2d, confidence, config.sigma)
        priors = (
            config.pose_prior_weight**2 * prior.max_mixture_nll(pose_prior, params["body_pose"])
            + config.angle_prior_weight**2 * prior.bending_prior(params["body_pose"])
            + config.shape_prior_weight**2 * prior.shape_prior(params["betas"])
        )
        return reprojection, priors

    def body_loss(params):
        reprojection, priors = body_terms(params)
        return jnp.sum(reprojection + priors)

    params = {"global_orient": fitted["global_orient"], "body_pose": body_pose, "betas": betas}
    params = _optimize(body_loss, params, config, config.body_iterations)
    final_reprojection, _ = body_terms(params)
    return SmplifyResult(
        global_orient=params["global_orient"],
        body_pose=params["body_pose"],
        betas=params["betas"],
        camera_translation=translation,
        reprojection_loss=final_reprojection,
    )


def _per_person(value, batch: int, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A scalar / per-image camera parameter broadcast to float32[B, *shape], or ValueError naming it."""
    array = np.asarray(value, dtype=np.float32)
    try:
        return np.ascontiguousarray(np.broadcast_to(array, (batch, *shape)))
    except ValueError:
        raise ValueError(f"{name} has shape {array.shape}; expected {shape} or {(batch, *shape)}") from None


def fit_smplify(
    model: BodyModel,
    pose_prior: prior.MaxMixturePrior,
    keypoints,
    layout: str | KeypointLayout = "body25",
    *,
    focal_length=camera.DEFAULT_FOCAL_LENGTH,
    principal_point=None,
    config: SmplifyConfig = SmplifyConfig(),
) -> SmplifyResult:
    """Fit SMPL to a batch of 2D keypoints (see the module docstring).

    model: an SMPL `BodyModel`; pose_prior: `prior.load_max_mixture_prior(gmm_08.pkl)`;
    keypoints: float[B, K, 3] (x, y pixels, confidence >= 0; 0 = not detected) in `layout`'s order
    ('coco17', 'body25', or a `KeypointLayout`); focal_length: pixels, scalar or float[B];
    principal_point: pixels, float[2] or float[B, 2] (default: the centre of SPIN's 224-pixel crop).
    Bad input (an unknown layout, a non-SMPL model, NaN keypoints, a person with every confidence
    zero) raises ValueError before anything runs. Returns a `SmplifyResult`.
    """
    if not isinstance(layout, KeypointLayout):
        layout = get_layout(layout)
    check_smpl(model)
    keypoints = check_keypoints(keypoints, layout)
    batch = keypoints.shape[0]
    if principal_point is None:
        principal_point = (camera.DEFAULT_CROP_SIZE / 2, camera.DEFAULT_CROP_SIZE / 2)
    focal = _per_person(focal_length, batch, (), "focal_length")
    centre = _per_person(principal_point, batch, (2,), "principal_point")
    if not np.all(focal > 0):
        raise ValueError(f"focal_length must be > 0 pixels; got {np.unique(focal[focal <= 0]).tolist()}")
    return _fit(
        model, pose_prior, jnp.asarray(keypoints), jnp.asarray(focal), jnp.asarray(centre), layout=layout, config=config
    )
