"""TFDS builders and tf.data pipelines for ChatPose's conversation datasets.

Importing this package imports TensorFlow and hides every GPU and TPU from it: tf.data only
feeds host memory, and the accelerators belong to JAX.
"""

from data_pipelines.tf_setup import hide_accelerators_from_tensorflow

hide_accelerators_from_tensorflow()

# Registers the TFDS builders (posescript, hmr_images, llava_instruct, spg, rpe) by name.
from data_pipelines import builders  # noqa: E402, F401
