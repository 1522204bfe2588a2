"""Preparing one dataset from its manual folder into a TFDS data_dir (what `chatpose-data prepare` runs)."""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from data_pipelines import tf_setup
from data_pipelines.builders import BUILDERS


def prepare(name: str, manual_dir: str, data_dir: str, *, strict: bool = False, **builder_kwargs):
    """Builds dataset `name` from the raw files in `manual_dir` into `data_dir`; returns the builder.

    builder_kwargs go to the builder (posescript: amass_dir, release; llava_instruct: json_name;
    config: a builder config name such as 'raw'). Afterwards `tfds.builder(name, data_dir=data_dir)`
    (with `import data_pipelines`) reads the result. Raises KeyError for an unknown name and
    FileNotFoundError when `manual_dir` does not exist or holds no readable record.
    """
    if name not in BUILDERS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(BUILDERS)}")
    if "://" in manual_dir:  # the builders read raw files by local name; TFDS writes data_dir anywhere
        raise FileNotFoundError(
            f"manual_dir {manual_dir}: the raw files must be local (copy them first, e.g. gcloud storage cp -r); "
            "data_dir may be gs://"
        )
    if not os.path.isdir(manual_dir):
        raise FileNotFoundError(f"manual_dir {manual_dir} does not exist")
    if not os.listdir(manual_dir):
        raise FileNotFoundError(
            f"manual_dir {manual_dir} is empty (see the {name} builder's MANUAL_DOWNLOAD_INSTRUCTIONS)"
        )
    builder = BUILDERS[name](data_dir=data_dir, strict=strict, **builder_kwargs)
    with tf_setup.tfds_status_lines():  # dropped after tf_setup.quiet_console()
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder
