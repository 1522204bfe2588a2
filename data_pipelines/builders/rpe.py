"""RPE (the supplement's reasoning-based pose estimation benchmark): image + description + pose.

The supplement publishes no file format we could read, so the raw format is ours: MANUAL_DIR/
rpe.json, a list of {id, image (path under MANUAL_DIR), description, center [2] pixels, scale
(box side / 200), global_orient [3] (OpenCV camera frame, as 3DPW), body_pose [69], betas [10],
gender}. The root stays in the OpenCV camera frame (x right, y down, z away), as hmr_images keeps
it and ChatPose predicts it; the metadata names the frame (`pose_frame`). One split, 'test'.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from data_pipelines.orientation import POSE_FRAME


class Rpe(tfds.core.GeneratorBasedBuilder):
    """Reasoning-based pose estimation: (image, description) -> pose of the person described."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "2.0.0": "Roots in the file's OpenCV camera frame, as ChatPose predicts them; configs removed.",
        "1.0.0": "Roots turned into a y-up frame (no longer read).",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = "MANUAL_DIR/rpe.json and the images it names (paths relative to MANUAL_DIR)."

    def __init__(self, *, strict: bool = False, **kwargs):
        self._strict = strict
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "id": np.int64,
                    "image": tfds.features.Image(),
                    "image_name": tfds.features.Text(),
                    "description": tfds.features.Text(),
                    "center": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                    "scale": np.float32,
                    "global_orient": tfds.features.Tensor(shape=(3,), dtype=np.float32),
                    "body_pose": tfds.features.Tensor(shape=(69,), dtype=np.float32),
                    "betas": tfds.features.Tensor(shape=(10,), dtype=np.float32),
                    "gender": tfds.features.Text(),
                }
            ),
            description="RPE: a person in an image picked out by a description, with their pose.",
            metadata=tfds.core.MetadataDict(pose_frame=POSE_FRAME),
        )

    def _split_generators(self, dl_manager):
        manual = os.fspath(dl_manager.manual_dir)
        path = os.path.join(manual, "rpe.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"rpe: {path} does not exist")
        bad = common.BadRecords("rpe", self._strict)
        return {"test": self._generate_examples(path, common.read_json(path), manual, bad)}

    def _generate_examples(self, path, records, manual, bad):
        count = 0
        for i, r in enumerate(records):
            where = f"{path} entry {i}"
            try:
                values = {
                    "center": np.asarray(r["center"], np.float32).reshape(2),
                    "scale": np.float32(r["scale"]),
                    "global_orient": np.asarray(r["global_orient"], np.float64).reshape(3),
                    "body_pose": np.asarray(r["body_pose"], np.float32).reshape(69),
                    "betas": np.asarray(r.get("betas", np.zeros(10)), np.float32).reshape(10),
                }
                rid, text, name = int(r["id"]), str(r["description"]), str(r["image"])
            except (KeyError, TypeError, ValueError) as e:
                bad.skip("malformed entry", where, f"{type(e).__name__}: {e}")
                continue
            if not common.finite(values, where, bad):
                continue
            image = common.read_image_bytes(os.path.join(manual, name), bad)
            if image is None:
                continue
            values["global_orient"] = values["global_orient"].astype(np.float32)
            count += 1
            yield rid, {"id": rid, "image": image, "image_name": name, "description": text,
                        "gender": str(r.get("gender", "n"))[:1] or "n", **values}  # fmt: skip
        common.require_records("rpe", "test", count, path)
