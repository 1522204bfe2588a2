"""TensorFlow as a pure host-side input library: no GPU or TPU, quiet logs."""

from __future__ import annotations

import contextlib
import io
import os

from absl import flags, logging

_quiet = False  # set by quiet_console(): prepare() drops TFDS's status lines


def hide_accelerators_from_tensorflow() -> None:
    """Makes TensorFlow see CPUs only, so it never reserves accelerator memory JAX needs.

    Must run before TensorFlow touches a device; harmless if TensorFlow already did. Before
    TensorFlow is first imported it also keeps its C++ INFO lines off the console, and turns off
    oneDNN's custom kernels: the input pipeline runs none of the math they speed up, and with them on
    TensorFlow 2.21 prints an INFO line at import that no log level silences.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf

    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):
            # RuntimeError: devices already initialised (someone used TF first); ValueError: no such kind.
            pass


def quiet_console() -> None:
    """Leaves the console to a program's own lines and progress bars (`make demo` calls it once).

    - absl's INFO logs off (orbax's checkpoint manager, TFDS's builders, ...): verbosity WARNING,
      unless the program was given --verbosity;
    - TFDS's progress bars ("Generating splits...", "Shuffling ...") off;
    - `prepare` drops the status lines TFDS prints to stdout around preparing a dataset
      ("Downloading and preparing dataset ...", "Dataset ... downloaded and prepared to ...").
    Warnings and errors, logged or printed to stderr, still show.
    """
    global _quiet
    _quiet = True
    if not (flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present):
        logging.set_verbosity(logging.WARNING)
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()


@contextlib.contextmanager
def tfds_status_lines():
    """Around a TFDS `download_and_prepare`: after `quiet_console()`, what TFDS prints to stdout is dropped.

    TFDS prints its "Downloading and preparing dataset ..." lines (it does not log them), so no
    verbosity setting reaches them; stderr (warnings, errors, tracebacks) is left alone.
    """
    if not _quiet:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield
