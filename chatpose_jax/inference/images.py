"""CLIP image preprocessing in numpy / PIL, the same steps as data_pipelines/images.py (TensorFlow).

Chain (CLIPImageProcessor for openai/clip-vit-large-patch14-336, at any size): [LLaVA-1.5's
pad-to-square with the mean colour] -> resize the short side to `size` (PIL bicubic on uint8)
-> centre crop size x size -> scale 1/255 -> normalise with CLIP's mean and std -> channels first.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, UnidentifiedImageError

from chatpose_jax import paths

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageError(ValueError):
    """An image that cannot be used: missing, unreadable or not an image."""


def load_image(path: str) -> Image.Image:
    """The RGB image at `path` (grey and RGBA converted); ImageError naming the path otherwise."""
    source = paths.path(path)  # local or gs://
    if not source.is_file():
        raise ImageError(f"image {path} does not exist")
    try:
        with source.open("rb") as f, Image.open(f) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"cannot read image {path}: {e}") from e


def pad_to_square(image: Image.Image, fill=CLIP_MEAN) -> Image.Image:
    """LLaVA-1.5's `expand2square`: the image pasted at ((S - W) // 2, (S - H) // 2) on an S x S square
    of colour int(255 * mean), S = max(W, H)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new("RGB", (side, side), tuple(int(255 * c) for c in fill))
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def resize_shortest_and_crop(image: Image.Image, size: int) -> np.ndarray:
    """Short side to `size` (bicubic), long side int(size * long / short), then the centre size x size.

    Returns uint8[size, size, 3]; the crop starts at ((H' - size) // 2, (W' - size) // 2).
    """
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = max(int(size * long / short), size)
    new_w, new_h = (size, new_long) if width <= height else (new_long, size)
    resized = np.asarray(image.resize((new_w, new_h), Image.BICUBIC))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top : top + size, left : left + size]


def normalize(image: np.ndarray) -> np.ndarray:
    """uint8 / 0..255 [H, W, 3] -> CLIP-normalised float32[3, H, W] (channels first, as pixel_values)."""
    x = (np.asarray(image, np.float32) / 255.0 - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def clip_preprocess(image: Image.Image, size: int, pad_square: bool = False) -> np.ndarray:
    """The whole chain for one RGB image -> pixel_values float32[3, size, size]."""
    if pad_square:
        image = pad_to_square(image)
    return normalize(resize_shortest_and_crop(image.convert("RGB"), size))


def preprocess_file(path: str, size: int, pad_square: bool = False) -> np.ndarray:
    """`clip_preprocess(load_image(path))`: float32[3, size, size]; ImageError for a bad file."""
    return clip_preprocess(load_image(path), size, pad_square)
