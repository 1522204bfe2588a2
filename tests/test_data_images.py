"""TF image preprocessing against transformers' CLIPImageProcessor, eagerly and inside tf.data.

Tolerance: TensorFlow's and PIL's bicubic resamplers use the same cubic (a = -0.5) but treat
the image borders and the antialiasing support differently, and PIL rounds to uint8 once where
we round after resizing. On rendered (smooth) pictures the mean difference is about 1e-3
(0.07 grey levels after CLIP's std) and the largest about 0.07; on pure noise, whose every
pixel is an edge, the largest reaches about 0.33. We assert mean < 5e-3 and max < 0.15 on
rendered images, mean < 1e-2 and max < 0.5 on noise.
"""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from data_synth_cache import synthetic_data
from PIL import Image

from data_pipelines import images


@pytest.fixture(scope="module")
def clip_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": 336},
        crop_size={"height": 336, "width": 336},
        resample=3,  # bicubic
        image_mean=list(images.CLIP_MEAN),
        image_std=list(images.CLIP_STD),
    )


def _compare(clip_processor, image: np.ndarray) -> tuple[float, float]:
    ref = clip_processor(images=Image.fromarray(image), return_tensors="np")["pixel_values"][0]
    ours = images.clip_preprocess(tf.constant(image), 336).numpy()
    assert ours.shape == ref.shape == (3, 336, 336)
    diff = np.abs(ours - ref)
    return float(diff.mean()), float(diff.max())


def test_clip_preprocess_matches_clip_image_processor(clip_processor, tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    paths = sorted(glob.glob(os.path.join(data["raw"]["llava_instruct"], "coco", "train2017", "*.jpg")))[:6]
    assert paths
    for path in paths:
        mean, worst = _compare(clip_processor, np.asarray(Image.open(path).convert("RGB")))
        assert mean < 5e-3 and worst < 0.15, f"{path}: mean |diff| {mean:.4f}, max {worst:.4f}"
    rng = np.random.default_rng(0)
    for shape in ((100, 180, 3), (500, 400, 3)):  # upsampling and downsampling
        mean, worst = _compare(clip_processor, rng.integers(0, 256, shape).astype(np.uint8))
        assert mean < 1e-2 and worst < 0.5, f"noise {shape}: mean |diff| {mean:.4f}, max {worst:.4f}"


def test_eager_and_tf_data_agree():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (90, 130, 3)).astype(np.uint8)
    eager = images.clip_preprocess(tf.constant(image), 112, pad_square=True).numpy()
    ds = tf.data.Dataset.from_tensors(image).map(lambda x: images.clip_preprocess(x, 112, pad_square=True))
    np.testing.assert_array_equal(next(iter(ds)).numpy(), eager)


def test_pad_to_square_centres_on_the_mean_colour():
    image = np.full((20, 50, 3), 200, np.uint8)
    out = images.pad_to_square(tf.constant(image)).numpy()
    assert out.shape == (50, 50, 3)
    np.testing.assert_array_equal(out[15:35], 200.0)
    np.testing.assert_array_equal(out[0, 0], [float(int(255 * c)) for c in images.CLIP_MEAN])


def test_crop_person_follows_center_and_scale():
    image = np.zeros((200, 300, 3), np.uint8)
    image[80:120, 180:220] = 255  # a 40-pixel white square centred at (x, y) = (199.5, 99.5)
    crop = images.crop_person(tf.constant(image), tf.constant([199.5, 99.5]), tf.constant(0.4), size=80).numpy()
    # The box is 80 pixels wide: the square fills its middle half.
    assert crop[25:55, 25:55].min() > 250 and crop[:15].max() < 5 and crop[:, 65:].max() < 5
    off = images.crop_person(tf.constant(image), tf.constant([10.0, 10.0]), tf.constant(0.4), size=80).numpy()
    assert off[:20, :20].max() == 0, "outside the image is black"
