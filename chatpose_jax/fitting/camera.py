"""The perspective camera SMPLify fits under, and its first guess of the camera translation.

Camera frame as SPIN's `perspective_projection` (OpenCV): x right, y down, z away from the camera;
the body is moved by the camera translation (no camera rotation: the body's global orientation
carries it). Defaults are SPIN's for its 224-pixel crops (constants.py: FOCAL_LENGTH = 5000,
IMG_RES = 224), with the principal point at the crop centre.
"""

from __future__ import annotations

import jax.numpy as jnp

DEFAULT_FOCAL_LENGTH = 5000.0  # pixels
DEFAULT_CROP_SIZE = 224  # pixels; the default principal point is its centre


def project(points: jnp.ndarray, translation: jnp.ndarray, focal_length, principal_point) -> jnp.ndarray:
    """Pinhole projection of body points moved by the camera translation.

    points: float[B, N, 3] metres; translation: float[B, 3] metres; focal_length: float[B] or scalar
    pixels; principal_point: float[B, 2] or [2] pixels. Returns float[B, N, 2] pixels.
    """
    camera_points = points + translation[:, None]
    focal = jnp.reshape(jnp.asarray(focal_length, points.dtype), (-1, 1, 1))
    centre = jnp.reshape(jnp.asarray(principal_point, points.dtype), (-1, 1, 2))
    return focal * camera_points[..., :2] / camera_points[..., 2:] + centre


def _weighted_mean(x: jnp.ndarray, weight: jnp.ndarray) -> jnp.ndarray:
    """Mean over axis 1 of x (float[B, N, C]) weighted by float[B, N]; zero total weight gives zero."""
    total = jnp.sum(weight, axis=1, keepdims=True)
    return jnp.sum(x * weight[..., None], axis=1) / jnp.maximum(total, 1e-12)


def initial_translation(
    body_keypoints: jnp.ndarray,
    keypoints_2d: jnp.ndarray,
    confidence: jnp.ndarray,
    torso: tuple[int, int, int, int],
    focal_length,
    principal_point,
) -> jnp.ndarray:
    """SMPLify's first camera translation: depth from similar triangles on the torso, then centring.

    The person is taken as parallel to the image plane, so depth = focal * (3D torso height) / (2D
    torso height), the torso height being the distance from the shoulders' midpoint to the hips'
    (Bogo et al., ECCV 2016, Sec. 3.2). Where a shoulder or hip is undetected, the sizes compared are
    instead the confidence-weighted spreads of all detected keypoints about their centre, in x and y.
    The translation in x, y then puts the body's (weighted) keypoint centre on the detections' centre.
    body_keypoints: float[B, K, 3] metres (body frame, as oriented for the fit); keypoints_2d:
    float[B, K, 2] pixels; confidence: float[B, K]; torso: indices of left/right shoulder, left/right
    hip; focal_length, principal_point: see `project`. Returns float[B, 3] metres.
    """
    focal = jnp.reshape(jnp.asarray(focal_length, body_keypoints.dtype), (-1,))
    centre = jnp.reshape(jnp.asarray(principal_point, body_keypoints.dtype), (-1, 2))
    shoulders, hips = list(torso[:2]), list(torso[2:])

    def torso_height(points):
        return jnp.linalg.norm(jnp.mean(points[:, shoulders], axis=1) - jnp.mean(points[:, hips], axis=1), axis=-1)

    def spread(points, weight):
        offsets = points - _weighted_mean(points, weight)[:, None]
        variance = _weighted_mean(jnp.sum(offsets**2, axis=-1, keepdims=True), weight)[:, 0]
        return jnp.sqrt(jnp.maximum(variance, 1e-12))

    detected = (confidence > 0).astype(body_keypoints.dtype)
    torso_seen = jnp.all(confidence[:, list(torso)] > 0, axis=1)
    size_3d = jnp.where(torso_seen, torso_height(body_keypoints), spread(body_keypoints[..., :2], detected))
    size_2d = jnp.where(torso_seen, torso_height(keypoints_2d), spread(keypoints_2d, detected))
    depth = focal * size_3d / jnp.maximum(size_2d, 1e-6)
    body_centre = _weighted_mean(body_keypoints, detected)
    image_centre = _weighted_mean(keypoints_2d, detected)
    xy = (image_centre - centre) * (depth + body_centre[:, 2])[:, None] / focal[:, None] - body_centre[:, :2]
    return jnp.concatenate([xy, depth[:, None]], axis=-1)
