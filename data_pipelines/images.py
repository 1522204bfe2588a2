"""Image preprocessing in TensorFlow: person crops, LLaVA's pad-to-square, CLIP's resize and normalisation.

Every op takes and returns tensors of one image (`uint8` or `float32[H, W, 3]`, pixel values
0..255), so it runs eagerly and inside `tf.data` alike. `clip_preprocess` is the whole chain of
`CLIPImageProcessor` for openai/clip-vit-large-patch14-336 at any size: resize the short side
(bicubic), centre crop, scale by 1/255, normalise with CLIP's mean and std, channels first.
"""

from __future__ import annotations

import tensorflow as tf

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HMR_CROP_SIZE = 256  # pixels: 4D-Humans' person crops, before CLIP's resize


def decode(image_bytes: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG / PNG / BMP / GIF bytes -> uint8[H, W, 3] (grey and RGBA converted to RGB)."""
    return tf.io.decode_image(image_bytes, channels=3, expand_animations=False)


def crop_person(image: tf.Tensor, center: tf.Tensor, scale: tf.Tensor, size: int = HMR_CROP_SIZE) -> tf.Tensor:
    """The square box of side 200 * scale pixels around `center`, resampled to size x size (bilinear).

    image: [H, W, 3]; center: float[2] (x, y) pixels, pixel i's centre at i; scale: box side / 200
    (SPIN's convention). Outside the image is black, as in SPIN / 4D-Humans crops. -> float32[size, size, 3].
    """
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    side = 200.0 * tf.cast(scale, tf.float32)
    center = tf.cast(center, tf.float32)
    half = side / 2.0 - 0.5 * side / size  # centre of the first / last output pixel
    y1, y2 = center[1] - half, center[1] + half
    x1, x2 = center[0] - half, center[0] + half
    box = tf.stack([y1 / (shape[0] - 1.0), x1 / (shape[1] - 1.0), y2 / (shape[0] - 1.0), x2 / (shape[1] - 1.0)])
    out = tf.image.crop_and_resize(
        tf.cast(image, tf.float32)[None], box[None], tf.zeros([1], tf.int32), [size, size], extrapolation_value=0.0
    )
    return out[0]


def pad_to_square(image: tf.Tensor, fill: tuple[float, float, float] = CLIP_MEAN) -> tf.Tensor:
    """LLaVA-1.5's `expand2square`: the image centred on a square of the mean colour.

    image: [H, W, 3] 0..255 -> float32[S, S, 3], S = max(H, W); the fill is int(255 * mean) per
    channel and the offset (S - side) // 2, as LLaVA pastes it with PIL.
    """
    image = tf.cast(image, tf.float32)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.maximum(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    color = tf.constant([float(int(255 * c)) for c in fill], tf.float32)
    padded = tf.pad(image - color, [[top, side - h - top], [left, side - w - left], [0, 0]])
    return padded + color


def resize_shortest_and_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """CLIP's resize (short side to `size`, bicubic, values rounded to 0..255 as PIL's uint8) and centre crop.

    image: [H, W, 3] -> float32[size, size, 3]. The long side becomes int(size * long / short), and
    the crop starts at (H' - size) // 2, (W' - size) // 2, as `CLIPImageProcessor` does.
    """
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    short = tf.minimum(shape[0], shape[1])
    new_h = tf.cast(tf.math.floor(size * shape[0] / short + 1e-6), tf.int32)
    new_w = tf.cast(tf.math.floor(size * shape[1] / short + 1e-6), tf.int32)
    new_h, new_w = tf.maximum(new_h, size), tf.maximum(new_w, size)
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_h, new_w]), method="bicubic", antialias=True)
    resized = tf.clip_by_value(tf.round(resized), 0.0, 255.0)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top : top + size, left : left + size, :]


def normalize(image: tf.Tensor) -> tf.Tensor:
    """0..255 [H, W, 3] -> CLIP-normalised float32[3, H, W] (channels first, as pixel_values)."""
    x = (tf.cast(image, tf.float32) / 255.0 - tf.constant(CLIP_MEAN)) / tf.constant(CLIP_STD)
    return tf.transpose(x, [2, 0, 1])


def clip_preprocess(image: tf.Tensor, size: int, pad_square: bool = False) -> tf.Tensor:
    """The full chain: [optional pad-to-square] -> resize + centre crop -> normalise. -> float32[3, size, size]."""
    if pad_square:
        image = pad_to_square(image)
    return normalize(resize_shortest_and_crop(image, size))
