"""SPG (the supplement's text-to-pose benchmark): implicit descriptions paired with poses.

The supplement publishes no file format we could read, so the raw format is ours: MANUAL_DIR/
spg.json, a list of {id, description, global_orient [3], body_pose [69]} (axis-angle, radians;
the root in the OpenCV camera frame, x right, y down, z away, as ChatPose's PoseScript handling
gives). Examples: id, description, global_orient, body_pose; the metadata names the frame
(`pose_frame`). One split, 'test'.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from data_pipelines.orientation import POSE_FRAME


class Spg(tfds.core.GeneratorBasedBuilder):
    """Speculative pose generation: text -> pose."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "2.0.0": "spg.json roots read as the OpenCV camera frame (ChatPose's).",
        "1.0.0": "spg.json roots read as y-up (no longer read).",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = "MANUAL_DIR/spg.json: [{id, description, global_orient, body_pose}, ...]"

    def __init__(self, *, strict: bool = False, **kwargs):
        self._strict = strict
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "id": np.int64,
                    "description": tfds.features.Text(),
                    "global_orient": tfds.features.Tensor(shape=(3,), dtype=np.float32),
                    "body_pose": tfds.features.Tensor(shape=(69,), dtype=np.float32),
                }
            ),
            description="SPG: implicit pose descriptions with their poses.",
            metadata=tfds.core.MetadataDict(pose_frame=POSE_FRAME),
        )

    def _split_generators(self, dl_manager):
        path = os.path.join(os.fspath(dl_manager.manual_dir), "spg.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"spg: {path} does not exist")
        return {"test": self._generate_examples(path, common.read_json(path), common.BadRecords("spg", self._strict))}

    def _generate_examples(self, path, records, bad):
        count = 0
        for i, r in enumerate(records):
            where = f"{path} entry {i}"
            try:
                values = {
                    "global_orient": np.asarray(r["global_orient"], np.float32).reshape(3),
                    "body_pose": np.asarray(r["body_pose"], np.float32).reshape(69),
                }
                rid, text = int(r["id"]), str(r["description"])
            except (KeyError, TypeError, ValueError) as e:
                bad.skip("malformed entry", where, f"{type(e).__name__}: {e}")
                continue
            if not common.finite(values, where, bad):
                continue
            count += 1
            yield rid, {"id": rid, "description": text, **values}
        common.require_records("spg", "test", count, path)
