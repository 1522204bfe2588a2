"""The keypoint-text template (ChatPose supplement Sec. 3): answer <-> keypoints and the crop's pixel frame."""

import numpy as np
import pytest

from chatpose_jax.fitting.keypoint_layouts import BODY25_NAMES
from data_pipelines import keypoint_text
from data_pipelines.tokenizer import IMAGE_TOKEN

CROP_SIZE = 256


def _random_keypoints(rng: np.random.Generator, crop_size: int = CROP_SIZE) -> np.ndarray:
    """float[25, 3]: random positions, some off the crop, some with confidence 0."""
    xy = rng.uniform(-40.0, crop_size + 40.0, size=(25, 2))
    confidence = np.where(rng.random(25) < 0.2, 0.0, rng.uniform(0.1, 1.0, 25))
    return np.concatenate([xy, confidence[:, None]], axis=-1)


def test_question_is_the_supplements_after_the_image_placeholder():
    supplement = (
        "There is a person in the image, please estimate the visible keypoints coordinates. "
        "The output format should be Nose:(x1,y1),Neck:(x2,y2),..."
    )
    assert keypoint_text.KEYPOINTS_QUESTION == supplement
    assert keypoint_text.keypoints_question() == f"{IMAGE_TOKEN}\n{supplement}"


def test_body25_names_are_openposes():
    assert BODY25_NAMES[:9] == (
        "Nose",
        "Neck",
        "RShoulder",
        "RElbow",
        "RWrist",
        "LShoulder",
        "LElbow",
        "LWrist",
        "MidHip",
    )
    assert BODY25_NAMES[19:] == ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")
    assert len(BODY25_NAMES) == 25


def test_answer_writes_visible_keypoints_in_layout_order_at_integer_pixels():
    keypoints = np.zeros((25, 3))
    keypoints[0] = (10.4, 20.6, 0.9)  # Nose
    keypoints[1] = (255.4, 0.0, 0.5)  # Neck, on the last column
    keypoints[2] = (255.6, 30.0, 1.0)  # RShoulder: pixel 256, off the crop
    keypoints[4] = (-0.4, 12.0, 1.0)  # RWrist: pixel 0
    keypoints[24] = (100.0, 100.0, 1.0)  # RHeel
    keypoints[23] = (100.0, 100.0, 0.0)  # RSmallToe: confidence 0
    answer = keypoint_text.keypoints_answer(keypoints, CROP_SIZE)
    assert answer == "The detected visible keypoints are Nose:(10,21), Neck:(255,0), RWrist:(0,12), RHeel:(100,100)"


def test_round_trip_is_exact_at_integer_pixels():
    rng = np.random.default_rng(0)
    for _ in range(20):
        keypoints = _random_keypoints(rng)
        visible = keypoint_text.on_crop(keypoints, CROP_SIZE)
        if not visible.any():
            continue
        parsed = keypoint_text.parse_keypoints_answer(keypoint_text.keypoints_answer(keypoints, CROP_SIZE))
        assert parsed.shape == (25, 3) and parsed.dtype == np.float32
        expected_xy = np.floor(keypoints[visible, :2] + 0.5)
        np.testing.assert_array_equal(parsed[visible, :2], expected_xy, err_msg="visible keypoints' pixels differ")
        np.testing.assert_array_equal(parsed[visible, 2], 1.0)
        np.testing.assert_array_equal(parsed[~visible], 0.0, err_msg="an invisible keypoint was parsed")


def test_answer_without_a_visible_keypoint_or_of_another_layout_is_refused():
    with pytest.raises(ValueError, match="no keypoint is visible"):
        keypoint_text.keypoints_answer(np.full((25, 3), -5.0), CROP_SIZE)
    with pytest.raises(ValueError, match="float\\[25, 3\\]"):
        keypoint_text.keypoints_answer(np.zeros((17, 3)), CROP_SIZE)


def test_truncated_answer_keeps_its_complete_entries():
    text = "The detected visible keypoints are Nose:(10,21), Neck:(12,40), RShoulder:(30,4"
    parsed = keypoint_text.parse_keypoints_answer(text)
    np.testing.assert_array_equal(parsed[0], (10, 21, 1))
    np.testing.assert_array_equal(parsed[1], (12, 40, 1))
    np.testing.assert_array_equal(parsed[2:], 0.0, err_msg="the half-written RShoulder entry was read")


def test_parser_reads_the_supplements_brace_variants_and_ignores_junk():
    text = (
        "The detected visible keypoints are {Nose}:{10, 21}, [Neck]: {12, 40} ,  RShoulder : ( 30 , 44 ), "
        "Tail:(1,2), LWrist:(x,y), nose:(99,99), LHeel:[7.6,8], RHeel:(1e999,3), LEye:(5,6"
    )
    parsed = keypoint_text.parse_keypoints_answer(text)
    expected = np.zeros((25, 3), np.float32)
    expected[0] = (10, 21, 1)  # the first Nose entry wins over the repeated "nose"
    expected[1] = (12, 40, 1)
    expected[2] = (30, 44, 1)
    expected[BODY25_NAMES.index("LHeel")] = (7.6, 8, 1)
    np.testing.assert_array_equal(parsed, expected)


@pytest.mark.parametrize(
    "text", ["", "I cannot see anyone.", "Nose:(", ":(1,2)", "The detected visible keypoints are "]
)
def test_parser_never_raises_and_returns_zeros_without_a_keypoint(text):
    np.testing.assert_array_equal(keypoint_text.parse_keypoints_answer(text), np.zeros((25, 3), np.float32))


def _dot_image(height: int, width: int, x: float, y: float, sigma: float = 4.0) -> np.ndarray:
    """uint8[H, W, 3]: black with a bright Gaussian blob centred at pixel position (x, y)."""
    ys, xs = np.mgrid[0:height, 0:width]
    blob = 255.0 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.repeat(np.round(blob).astype(np.uint8)[..., None], 3, axis=-1)


def _centroid(grey: np.ndarray) -> np.ndarray:
    """(x, y) brightness centroid of float[H, W] (values below 5% of the peak ignored)."""
    weights = np.where(grey > 0.05 * grey.max(), grey, 0.0)
    ys, xs = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


# Pixels. The blob's centroid lands within about 0.01 px of its true place (measured on these cases);
# 0.1 px, well under the 1 px the answers are discretised to, still catches a half-pixel convention slip.
CENTROID_TOLERANCE = 0.1

# (dot x, dot y, box centre x, box centre y, scale): a shrunk box, an enlarged one hanging off the
# image's right and bottom edges (black there), and one cut off the top-left corner.
CROP_CASES = [(330.3, 170.8, 300.0, 200.0, 1.7), (610.5, 455.2, 590.0, 420.0, 0.8), (20.0, 14.5, 60.0, 50.0, 1.2)]


@pytest.mark.parametrize("dot_x, dot_y, cx, cy, scale", CROP_CASES)
def test_to_crop_pixels_finds_the_dot_the_pipelines_crop_shows(dot_x, dot_y, cx, cy, scale):
    import tensorflow as tf

    from data_pipelines import images

    image = _dot_image(480, 640, dot_x, dot_y)
    center = np.array([cx, cy])
    keypoints = np.array([[dot_x, dot_y, 0.8]])
    crop = images.crop_person(tf.constant(image), tf.constant(center, tf.float32), tf.constant(scale), CROP_SIZE)
    found = _centroid(crop.numpy()[..., 0])
    predicted = keypoint_text.to_crop_pixels(keypoints, center, scale, CROP_SIZE)
    assert np.abs(found - predicted[0, :2]).max() < CENTROID_TOLERANCE, (
        f"dot at {found} in the crop, predicted {predicted[0, :2]}"
    )
    assert predicted[0, 2] == pytest.approx(0.8)

    # The pipeline's HMR chain: the crop, then CLIP's resize and normalisation to the model's image size.
    image_size = 336
    pixel_values = images.clip_preprocess(crop, image_size).numpy()
    red = (pixel_values[0] * images.CLIP_STD[0] + images.CLIP_MEAN[0]) * 255.0
    found = _centroid(red)
    predicted = keypoint_text.to_crop_pixels(keypoints, center, scale, image_size)
    assert np.abs(found - predicted[0, :2]).max() < CENTROID_TOLERANCE, (
        f"dot at {found} in pixel_values, predicted {predicted[0, :2]}"
    )


def test_to_crop_pixels_zeroes_the_confidence_of_keypoints_leaving_the_crop():
    center, scale = np.array([300.0, 200.0]), 1.0  # the box spans x, y in [200, 400) x [100, 300)
    keypoints = np.array([[300.0, 200.0, 0.9], [199.0, 200.0, 0.9], [300.0, 301.0, 0.7], [250.0, 150.0, 0.0]])
    crop = keypoint_text.to_crop_pixels(keypoints, center, scale, CROP_SIZE)
    np.testing.assert_allclose(crop[:, 2], [0.9, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(crop[0, :2], [127.5, 127.5])
    np.testing.assert_allclose(crop[1, :2], [(199.0 - 300.0) * 256 / 200 + 127.5, 127.5])
