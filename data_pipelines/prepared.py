"""Opening a prepared dataset, refusing one whose poses are in another frame than this code's.

The pose builders (posescript, hmr_images, rpe, spg) give roots in the OpenCV camera frame (x
right, y down, z away), ChatPose's, from version 2.0.0 on, and store the frame in their metadata
(`pose_frame`). Version 1.0.0 held y-up roots: a data_dir prepared by it is refused with a message
naming both frames and the command that prepares the dataset again, never read as if it were
in the camera frame.
"""

from __future__ import annotations

import json

import tensorflow_datasets as tfds

from data_pipelines.orientation import POSE_FRAME

POSE_DATASETS = ("posescript", "hmr_images", "rpe", "spg")  # builders whose examples hold a root
OLD_FRAME = "a y-up frame (x right, y up, z towards the viewer, or AMASS yaw-free y-up)"


class PoseFrameMismatchError(ValueError):
    """A prepared dataset whose roots are not in the OpenCV camera frame; the message names the folder."""


def _prepare_command(name: str, data_dir: str) -> str:
    dataset, _, config = name.partition("/")
    config_flag = f" --builder_config {config}" if config else ""
    return f"chatpose-data prepare {dataset} --manual_dir RAW{config_flag} --data_dir {data_dir}"


def open_builder(name: str, data_dir: str):
    """`tfds.builder(name, data_dir=data_dir)`, checked for the frame of its poses.

    name: a builder name, optionally with its config ('hmr_images/hmr2').

    Raises:
      PoseFrameMismatchError: `data_dir` holds only an older version of a pose dataset (y-up roots),
        or its metadata names another frame.
    """
    import data_pipelines  # noqa: F401  (registers the builders)

    builder = tfds.builder(name, data_dir=data_dir)
    if name.partition("/")[0] not in POSE_DATASETS:
        return builder
    folder = builder.data_path
    if not folder.exists():
        versions = sorted(p.name for p in folder.parent.iterdir()) if folder.parent.exists() else []
        if versions:
            raise PoseFrameMismatchError(
                f"{folder.parent} holds {name} version {', '.join(versions)}, prepared with roots in {OLD_FRAME}; "
                f"this code reads version {builder.version}, whose roots are in the OpenCV camera frame "
                f"(x right, y down, z away; pose_frame={POSE_FRAME!r}), ChatPose's. Frames are never mixed: "
                f"prepare it again ({_prepare_command(name, data_dir)})"
            )
        return builder
    metadata = folder / "metadata.json"  # what preparation stored, not what the code would write
    stored = json.loads(metadata.read_text()).get("pose_frame") if metadata.exists() else None
    if stored != POSE_FRAME:
        raise PoseFrameMismatchError(
            f"{folder}: metadata pose_frame={stored!r}, but training and evaluation read roots in the OpenCV "
            f"camera frame (pose_frame={POSE_FRAME!r}); prepare it again ({_prepare_command(name, data_dir)})"
        )
    return builder
