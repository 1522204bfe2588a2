"""HMR augmentation of a person crop and its SMPL pose (4D-Humans' recipe), in TensorFlow.

4D-Humans' training dataset (which ChatPose's release reads its HMR data through) augments each
person: the box scaled by 1 + 0.3 clip(N(0, 1), -1, 1), rotated by 30 clip(N(0, 1), -2, 2) degrees
with probability 0.6, flipped left-right with probability 0.5 (left and right SMPL joints swapped
and their rotations mirrored) and each colour channel scaled by U(0.8, 1.2). The ChatPose paper
says it trained "without any data augmentation" (supplement, on occlusion): the experiment's
`data.hmr_augment` (chatpose_jax.experiment.HmrAugmentConfig) makes it a choice, off in the
`chatpose` recipe. The functions here read that config by attribute.

Frames: the root is in the OpenCV camera frame (x right, y down, z away). A left-right flip of the
picture is the mirror x -> -x: every joint's axis-angle becomes (a_x, -a_y, -a_z) and left and
right joints trade places. A rotation of the picture by `angle` about the crop centre (image x
right, y down) is the camera-frame rotation Rz(angle) of the body: root' = Rz(angle) root.
"""

from __future__ import annotations

import math

import tensorflow as tf

# SMPL joint i <-> its mirror (SPIN / 4D-Humans' SMPL_JOINTS_FLIP_PERM), joint 0 the root.
SMPL_FLIP_PERMUTATION = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22)


def flip_pose(global_orient: tf.Tensor, body_pose: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The mirrored pose (x -> -x): float[3], float[69] axis-angle -> same, left and right joints swapped."""
    pose = tf.reshape(tf.concat([global_orient, body_pose], 0), [24, 3])
    pose = tf.gather(pose, SMPL_FLIP_PERMUTATION) * tf.constant([1.0, -1.0, -1.0], pose.dtype)
    return pose[0], tf.reshape(pose[1:], [69])


def rotate_root(global_orient: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
    """Root axis-angle float[3] (camera frame) turned by Rz(angle radians): the body of a picture rotated by angle."""
    c, s = tf.cos(angle), tf.sin(angle)
    zero, one = tf.zeros_like(c), tf.ones_like(c)
    rz = tf.reshape(tf.stack([c, -s, zero, s, c, zero, zero, zero, one]), [3, 3])
    return rotmat_to_axis_angle(rz @ axis_angle_to_rotmat(global_orient))


def rotate_image(image: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
    """float[S, S, 3] turned by `angle` radians about its centre, a pixel (u, v) (x right, y down) relative
    to the centre going to R(angle) (u, v): the picture of the body Rz(angle) applies to. Outside is black."""
    size = tf.cast(tf.shape(image)[0], tf.float32)
    centre = (size - 1.0) / 2.0
    c, s = tf.cos(angle), tf.sin(angle)
    # Output pixel p samples the input at R(-angle) (p - centre) + centre.
    transform = tf.stack([c, s, centre - c * centre - s * centre, -s, c, centre + s * centre - c * centre, 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform[None],
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return out[0]


def axis_angle_to_rotmat(aa: tf.Tensor) -> tf.Tensor:
    """Rodrigues: float[3] radians -> float[3, 3]."""
    angle = tf.norm(aa)
    axis = aa / tf.maximum(angle, 1e-12)
    x, y, z = axis[0], axis[1], axis[2]
    zero = tf.zeros_like(x)
    k = tf.reshape(tf.stack([zero, -z, y, z, zero, -x, -y, x, zero]), [3, 3])
    return tf.eye(3, dtype=aa.dtype) + tf.sin(angle) * k + (1.0 - tf.cos(angle)) * (k @ k)


def rotmat_to_axis_angle(r: tf.Tensor) -> tf.Tensor:
    """float[3, 3] -> float[3] radians, angle in [0, pi], well conditioned in float32 at every angle.

    The angle is atan2(|v| / 2, (tr R - 1) / 2) with v the antisymmetric part's vector; the axis is
    v / |v| below a quarter turn, and from the symmetric part (1 - cos) a a^T, signed by v, above.
    """
    vec = tf.stack([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    cos = (tf.linalg.trace(r) - 1.0) / 2.0
    angle = tf.atan2(tf.norm(vec) / 2.0, cos)
    small_axis = vec / tf.maximum(tf.norm(vec), 1e-12)
    sym = (r + tf.transpose(r)) / 2.0 - tf.eye(3, dtype=r.dtype) * cos
    big = tf.argmax(tf.linalg.diag_part(sym))
    row = tf.gather(sym, big)  # (1 - cos) a_big a, with a_big the largest component
    large_axis = row / tf.maximum(tf.norm(row), 1e-12)
    large_axis = tf.where(tf.reduce_sum(large_axis * vec) < 0, -large_axis, large_axis)
    return tf.where(angle < math.pi / 2, small_axis, large_axis) * angle


def draw(config, seed: tf.Tensor) -> dict[str, tf.Tensor]:
    """This sample's random choices, from a stateless seed int[2]: scale, angle (radians), flip, colour[3]."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    normal = tf.random.stateless_normal([2], seeds[0])
    uniform = tf.random.stateless_uniform([2], seeds[1])
    scale = 1.0 + config.scale_factor * tf.clip_by_value(normal[0], -1.0, 1.0)
    degrees = config.rotation_degrees * tf.clip_by_value(normal[1], -2.0, 2.0)
    angle = tf.where(uniform[0] < config.rotation_rate, degrees * math.pi / 180.0, 0.0)
    flip = uniform[1] < config.flip_rate
    colour = tf.random.stateless_uniform([3], seeds[2], 1.0 - config.colour_scale, 1.0 + config.colour_scale)
    return {"scale": scale, "angle": angle, "flip": flip, "colour": colour}


def augment_crop(crop: tf.Tensor, choice: dict[str, tf.Tensor]) -> tf.Tensor:
    """A person crop float[S, S, 3] 0..255 rotated, flipped and recoloured as `choice` says (its scale is
    applied when the crop is cut: `choice["scale"]` times the box side)."""
    crop = rotate_image(crop, choice["angle"])
    crop = tf.where(choice["flip"], tf.image.flip_left_right(crop), crop)
    return tf.clip_by_value(crop * choice["colour"], 0.0, 255.0)


def augment_pose(global_orient: tf.Tensor, body_pose: tf.Tensor, choice: dict[str, tf.Tensor]):
    """The pose of the augmented crop: (float[3] camera-frame root, float[69]) rotated, then flipped, as
    `augment_crop` turns and flips the picture."""
    global_orient = rotate_root(global_orient, choice["angle"])
    flipped_orient, flipped_body = flip_pose(global_orient, body_pose)
    global_orient = tf.where(choice["flip"], flipped_orient, global_orient)
    body_pose = tf.where(choice["flip"], flipped_body, body_pose)
    return global_orient, body_pose
