"""Examples for the web page from the data a checkpoint was trained on: its held-out captions and crops.

A prepared data folder (`data.data_dir` of the training run, the builders' TFDS datasets) gives
text-to-pose prompts (PoseScript test captions asked with the paper's first text-to-pose question)
and image-to-pose examples (test person crops of `hmr_images`, written as PNG files, asked with the
first image-to-pose question). TensorFlow loads only here, when the page asks for examples.
"""

from __future__ import annotations

import os


def data_examples(data_dir: str, out_dir: str, count: int = 2) -> list[tuple[str, str | None]]:
    """Up to `count` text and `count` image examples: [(prompt, image path or None)]; [] without the datasets.

    Args:
      data_dir: a prepared TFDS folder (holding posescript/ and hmr_images/ when they were prepared).
      out_dir: where the crops are written (image_K.png).
    """
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from PIL import Image

    import data_pipelines  # noqa: F401  (hides accelerators from TensorFlow, registers the builders)
    from data_pipelines import images, prepared, templates

    def read(name: str, split: str):
        if not os.path.isdir(os.path.join(data_dir, name)):
            return []
        try:
            builder = prepared.open_builder(name, data_dir)
            return list(tfds.as_numpy(builder.as_dataset(split=split).take(count)))
        except prepared.PreparedDataError:  # prepared by older builders: no examples from it
            return []
        except (ValueError, KeyError):  # a split the folder does not hold
            return []

    found: list[tuple[str, str | None]] = []
    for ex in read("posescript", "test"):
        captions = [t.decode() for t in [*ex["texts_human"], *ex["texts_automatic"]] if t]
        if captions:
            found.append((templates.text_to_pose_question(templates.TEXT_TO_POSE_QUESTIONS[0], captions[0]), None))
    os.makedirs(out_dir, exist_ok=True)
    for k, ex in enumerate(read("hmr_images", "3dpw_test")):
        crop = images.crop_person(tf.constant(ex["image"]), tf.constant(ex["center"]), tf.constant(ex["scale"]))
        path = os.path.join(out_dir, f"image_{k}.png")
        Image.fromarray(np.clip(crop.numpy(), 0, 255).astype(np.uint8)).save(path)
        found.append((templates.IMAGE_TO_POSE_QUESTIONS[0], path))
    return found
