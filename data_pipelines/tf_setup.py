"""TensorFlow as a pure host-side input library: no GPU or TPU, quiet logs."""

from __future__ import annotations

import os


def hide_accelerators_from_tensorflow() -> None:
    """Makes TensorFlow see CPUs only, so it never reserves accelerator memory JAX needs.

    Must run before TensorFlow touches a device; harmless if TensorFlow already did.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):
            # RuntimeError: devices already initialised (someone used TF first); ValueError: no such kind.
            pass
