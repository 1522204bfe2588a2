"""Pose as text: OpenPose BODY_25 keypoints written in the answer, the LLaVA* baseline of ChatPose's supplement.

Feng et al., "ChatPose: Chatting about 3D Human Pose" (CVPR 2024), supplementary material, Sec. 3
("Representations of Human Pose"): instead of the `<POSE>` token, the model answers the visible 2D
keypoints' coordinates as text, discretised to integers, and SMPLify lifts them to SMPL. Template:

  USER: <Image> There is a person in the image, please estimate the visible keypoints coordinates.
  The output format should be Nose:(x1,y1),Neck:(x2,y2),... ASSISTANT: The detected visible
  keypoints are {KEYPOINT_NAME1}:{X1, Y1}, [KEYPOINT_NAME2]: {X2, Y2}, ...

The keypoints are OpenPose's BODY_25 (CMU-Perceptual-Computing-Lab/openpose, doc/output.md,
`POSE_BODY_25_BODY_PARTS`), named and ordered as OpenPose writes them (`keypoint_layouts.BODY25_NAMES`).

Frame: a keypoint's (x, y) are pixels of the person crop the model sees (x right, y down, pixel i's
centre at i), the crop `images.crop_person` cuts (SPIN's box of side 200 * scale around the centre)
at any output size: CLIP's resize of that square crop keeps the same box, so `to_crop_pixels` with
crop_size = the model's image size gives the coordinates in the picture the model is shown.
"""

from __future__ import annotations

import re

import numpy as np

from chatpose_jax.fitting.keypoint_layouts import BODY25_NAMES
from data_pipelines.tokenizer import IMAGE_TOKEN

NUM_KEYPOINTS = len(BODY25_NAMES)  # 25

KEYPOINTS_QUESTION = (  # the supplement's question, verbatim
    "There is a person in the image, please estimate the visible keypoints coordinates. "
    "The output format should be Nose:(x1,y1),Neck:(x2,y2),..."
)
ANSWER_PREFIX = "The detected visible keypoints are "
# The supplement's answer line mixes brace styles ("{NAME1}:{X1, Y1}, [NAME2]: {X2, Y2}"), so it
# shows a placeholder rather than a format; we write the format its question asks for,
# "Name:(x,y)", entries joined by ", ". The parser reads the answer line's variants too.
ENTRY_FORMAT = "{name}:({x},{y})"
ENTRY_SEPARATOR = ", "

_NAME_INDEX = {name.lower(): i for i, name in enumerate(BODY25_NAMES)}
_NUMBER = r"([-+]?\d+(?:\.\d*)?)"
# One complete entry: a name (optionally in {} or []), a colon, two numbers in (), {} or [].
# The closing bracket is required, so a half-written last entry of a truncated answer never matches.
_ENTRY = re.compile(r"[\[{]?\s*([A-Za-z_]+)\s*[\]}]?\s*:\s*[({\[]\s*" + _NUMBER + r"\s*,\s*" + _NUMBER + r"\s*[)}\]]")


def keypoints_question() -> str:
    """The user turn: the image placeholder, a newline and the question, as the other image questions."""
    return f"{IMAGE_TOKEN}\n{KEYPOINTS_QUESTION}"


def pixel_of(xy: np.ndarray) -> np.ndarray:
    """The integer pixel each position falls on (nearest pixel centre, halves rounded up). float[..., 2] -> same."""
    return np.floor(np.asarray(xy, np.float64) + 0.5)


def on_crop(keypoints: np.ndarray, crop_size: int) -> np.ndarray:
    """Which keypoints are visible in the crop: confidence > 0 and the pixel they fall on inside it.

    keypoints: float[K, 3] (x, y crop pixels, confidence) -> bool[K]. A keypoint is on the crop when
    its integer pixel is in [0, crop_size) in x and y, i.e. its position in [-0.5, crop_size - 0.5),
    the crop's extent with pixel centres at integers; NaN positions are off.
    """
    keypoints = np.asarray(keypoints, np.float64)
    pixel = pixel_of(keypoints[:, :2])
    with np.errstate(invalid="ignore"):
        inside = np.all((pixel >= 0) & (pixel < crop_size), axis=-1)
        return inside & (keypoints[:, 2] > 0)


def keypoints_answer(keypoints: np.ndarray, crop_size: int) -> str:
    """The assistant's answer listing the visible keypoints, in BODY_25 order, at integer pixels.

    keypoints: float[25, 3] in BODY_25 order, (x, y) pixels of the crop, confidence; crop_size: the
    crop's side in pixels. -> "The detected visible keypoints are Nose:(x,y), Neck:(x,y), ...".
    ValueError for another shape or when no keypoint is visible (such a sample has nothing to learn).
    """
    keypoints = np.asarray(keypoints, np.float64)
    if keypoints.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected BODY_25 keypoints float[{NUM_KEYPOINTS}, 3]; got shape {keypoints.shape}")
    visible = on_crop(keypoints, crop_size)
    if not visible.any():
        raise ValueError(f"no keypoint is visible in the {crop_size}x{crop_size} crop")
    pixels = pixel_of(keypoints[:, :2]).astype(np.int64)
    entries = [
        ENTRY_FORMAT.format(name=BODY25_NAMES[k], x=pixels[k, 0], y=pixels[k, 1]) for k in np.flatnonzero(visible)
    ]
    return ANSWER_PREFIX + ENTRY_SEPARATOR.join(entries)


def keypoints_turns(keypoints: np.ndarray, crop_size: int) -> list[tuple[str, str]]:
    """The one-round conversation of a person crop: the keypoint question and its answer (`keypoints_answer`)."""
    return [(keypoints_question(), keypoints_answer(keypoints, crop_size))]


def parse_keypoints_answer(text: str) -> np.ndarray:
    """The keypoints an answer lists: float32[25, 3], (x, y) crop pixels and confidence 1, zeros where missing.

    Tolerant of model output, never raising on a string: reads every complete `Name:(x,y)` entry
    (spaces anywhere, the coordinates in (), {} or [], the name bare or in {} / []), matching names
    to BODY_25's case-insensitively; ignores unknown names, entries whose numbers are not finite,
    a repeated name after its first entry, and a half-written entry (a truncated answer's last).
    """
    keypoints = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    for match in _ENTRY.finditer(text):
        index = _NAME_INDEX.get(match.group(1).lower())
        if index is None or keypoints[index, 2] > 0:
            continue
        xy = np.array([float(match.group(2)), float(match.group(3))], np.float32)
        if np.all(np.isfinite(xy)):
            keypoints[index] = (xy[0], xy[1], 1.0)
    return keypoints


def to_crop_pixels(keypoints_full: np.ndarray, center: np.ndarray, scale: float, crop_size: int) -> np.ndarray:
    """Full-image keypoints in the person crop's pixel frame, as `images.crop_person` places the person.

    keypoints_full: float[K, 3], (x, y) pixels of the full image (pixel i's centre at i), confidence;
    center: float[2] the box centre (x, y) in those pixels; scale: the box side / 200 (SPIN's
    convention); crop_size: the crop's side in pixels. -> float32[K, 3]: (x, y) in the crop
    (x' = (x - cx) * crop_size / side + (crop_size - 1) / 2), the confidence kept where the keypoint
    is on the crop (`on_crop`) and 0 where it leaves it (its coordinates kept).

    The crop samples output pixel j at cx - side / 2 + (j + 0.5) * side / crop_size; resizing the
    square crop to another size (CLIP's preprocessing, half-pixel centres) maps the same box, so
    crop_size may be the crop's or the model's image size. HMR augmentation (scale jitter, rotation,
    flip) moves the person: apply it to the keypoints too, or train without it.
    """
    keypoints_full = np.asarray(keypoints_full, np.float64)
    center = np.asarray(center, np.float64).reshape(2)
    pixels_per_unit = crop_size / (200.0 * float(scale))
    xy = (keypoints_full[:, :2] - center) * pixels_per_unit + (crop_size - 1) / 2.0
    crop = np.concatenate([xy, keypoints_full[:, 2:3]], axis=-1)
    crop[:, 2] = np.where(on_crop(crop, crop_size), crop[:, 2], 0.0)
    return crop.astype(np.float32)
