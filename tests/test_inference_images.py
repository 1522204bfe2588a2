"""numpy / PIL CLIP preprocessing against transformers' CLIPImageProcessor and the TF pipeline."""

import numpy as np
import pytest
from PIL import Image

from chatpose_jax.inference import images

SHAPES = [(90, 130), (200, 97), (112, 112), (400, 300), (37, 41)]


def random_image(shape, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8))


def smooth_image(shape):
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    channels = [128 + 100 * np.sin(x / 9.0 + k) * np.cos(y / 13.0 - k) for k in range(3)]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pad_square", [False, True])
def test_matches_clip_image_processor(shape, pad_square):
    from transformers import CLIPImageProcessor

    image = random_image(shape)
    processor = CLIPImageProcessor(size={"shortest_edge": 112}, crop_size={"height": 112, "width": 112})
    reference_input = images.pad_to_square(image) if pad_square else image
    expected = processor(images=reference_input, return_tensors="np")["pixel_values"][0]
    got = images.clip_preprocess(image, 112, pad_square=pad_square)
    assert got.shape == (3, 112, 112) and got.dtype == np.float32
    # Same PIL resize on the same uint8 pixels: equal up to float32 rounding of the normalisation.
    np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"shape {shape}, pad_square={pad_square}")


def test_pad_to_square_follows_llava():
    image = Image.fromarray(np.full((20, 50, 3), 255, np.uint8))
    square = np.asarray(images.pad_to_square(image))
    assert square.shape == (50, 50, 3)
    fill = [int(255 * c) for c in images.CLIP_MEAN]
    np.testing.assert_array_equal(square[0, 0], fill)  # mean colour above
    np.testing.assert_array_equal(square[15:35, :], 255)  # image pasted at (50 - 20) // 2 = 15
    np.testing.assert_array_equal(square[35, 0], fill)


@pytest.mark.parametrize("pad_square", [False, True])
def test_matches_the_training_pipeline(pad_square):
    import tensorflow as tf

    from data_pipelines import images as tf_images

    pixels = smooth_image((90, 130))
    train = tf_images.clip_preprocess(tf.constant(pixels), 112, pad_square=pad_square).numpy()
    infer = images.clip_preprocess(Image.fromarray(pixels), 112, pad_square=pad_square)
    # TF's and PIL's bicubic kernels round differently: allow 2 grey levels anywhere, 0.3 on average.
    levels = np.abs(train - infer) * np.asarray(images.CLIP_STD)[:, None, None] * 255
    assert levels.max() <= 2.0 and levels.mean() <= 0.3, f"max {levels.max():.2f}, mean {levels.mean():.3f} levels"


def test_missing_and_unreadable_images_name_the_path(tmp_path):
    with pytest.raises(images.ImageError, match="nope.png does not exist"):
        images.load_image(str(tmp_path / "nope.png"))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(images.ImageError, match="cannot read image .*bad.png"):
        images.load_image(str(bad))
