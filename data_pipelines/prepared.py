"""Opening a prepared dataset, refusing one whose poses are in another frame than this code's, or
that an older builder version prepared without the features this code reads.

The pose builders (posescript, hmr_images, rpe, spg) give roots in the OpenCV camera frame (x
right, y down, z away), ChatPose's, from version 2.0.0 on, and store the frame in their metadata
(`pose_frame`). Version 1.0.0 held y-up roots: a data_dir prepared by it is refused with a message
naming both frames and the command that prepares the dataset again, never read as if it were
in the camera frame. Likewise a data_dir holding only an older version listed in `OUTDATED`
(hmr_images 2.0.0: no `keypoints_2d`) is refused with a message naming both versions and what the
old one lacks, never read without the feature.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import tensorflow_datasets as tfds

from data_pipelines.orientation import POSE_FRAME

POSE_DATASETS = ("posescript", "hmr_images", "rpe", "spg")  # builders whose examples hold a root
OLD_FRAME = "a y-up frame (x right, y up, z towards the viewer, or AMASS yaw-free y-up)"
FIRST_CAMERA_FRAME_VERSION = (2, 0, 0)  # pose datasets before it hold y-up roots

# Prepared versions this code does not read although their roots are in the camera frame:
# (dataset, version) -> what that version lacks.
OUTDATED = {
    ("hmr_images", "2.0.0"): "has no 2D keypoints (feature keypoints_2d, added in 2.1.0)",
}


class PreparedDataError(ValueError):
    """A prepared dataset this code must not read; the message names the folder, the versions and the
    command that prepares it again."""


class PoseFrameMismatchError(PreparedDataError):
    """A prepared dataset whose roots are not in the OpenCV camera frame; the message names the folder."""


class OutdatedDatasetError(PreparedDataError):
    """A data_dir holding a dataset only in an older version, without features this code reads."""


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
      OutdatedDatasetError: `data_dir` holds only other versions of a pose dataset, at least one in
        the camera frame (e.g. hmr_images 2.0.0, without keypoints_2d).
    """
    import data_pipelines  # noqa: F401  (registers the builders)

    builder = tfds.builder(name, data_dir=data_dir)
    dataset = name.partition("/")[0]
    if dataset not in POSE_DATASETS:
        return builder
    folder = builder.data_path
    if not folder.exists():
        versions = _prepared_versions(folder.parent)
        if versions and all(v < FIRST_CAMERA_FRAME_VERSION for v in versions):
            raise PoseFrameMismatchError(
                f"{folder.parent} holds {name} version {_names(versions)}, prepared with roots in {OLD_FRAME}; "
                f"this code reads version {builder.version}, whose roots are in the OpenCV camera frame "
                f"(x right, y down, z away; pose_frame={POSE_FRAME!r}), ChatPose's. Frames are never mixed: "
                f"prepare it again ({_prepare_command(name, data_dir)})"
            )
        if versions:
            if len(versions) == 1:
                held = f"version {_names(versions)} only, which {_lacks(dataset, versions[0])}"
            else:
                why = "; ".join(f"{_names([v])} {_lacks(dataset, v)}" for v in versions)
                held = f"versions {_names(versions)} only ({why})"
            raise OutdatedDatasetError(
                f"{folder.parent} holds {name} {held}; this code reads version {builder.version}: "
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


def outdated(names: Sequence[str], data_dir: str) -> list[str]:
    """Why each dataset of `names` that `data_dir` holds cannot be read by this code (`open_builder`'s
    refusals); empty when every one is current or not prepared at all."""
    reasons = []
    for name in names:
        try:
            open_builder(name, data_dir)
        except PreparedDataError as e:
            reasons.append(str(e))
    return reasons


def _prepared_versions(folder) -> list[tuple[int, ...]]:
    """The version folders (e.g. '2.0.0') under a dataset's config folder, as sorted tuples of ints."""
    if not folder.exists():
        return []
    names = [p.name for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"\d+\.\d+\.\d+", p.name)]
    return sorted(tuple(int(x) for x in n.split(".")) for n in names)


def _names(versions) -> str:
    return ", ".join(".".join(str(x) for x in v) for v in versions)


def _lacks(dataset: str, version: tuple[int, ...]) -> str:
    if version < FIRST_CAMERA_FRAME_VERSION:
        return f"holds roots in {OLD_FRAME}"
    return OUTDATED.get((dataset, _names([version])), "is not the version this code reads")
