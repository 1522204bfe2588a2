"""PoseScript (V1 or V2 release) + AMASS sequences -> poses with their descriptions.

Examples: id int64, texts_human [n] str, texts_automatic [m] str, global_orient float32[3] and
body_pose float32[69] (SMPL axis-angle, radians), split str. Config 'default' applies ChatPose's
orientation handling (PoseScript's yaw removal, then Rx(+90 deg) from AMASS's z-up into the OpenCV
camera frame: x right, y down, z away; see data_pipelines.orientation); config 'raw' keeps AMASS's
root as stored (z-up, with yaw). The prepared dataset's metadata names its frame (`pose_frame`).
"""

from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders.common import BadRecords, finite, first_existing, read_json, require_records
from data_pipelines.orientation import POSE_FRAME, chatpose_orientation

RELEASES = {
    "v2": {
        "index": "ids_2_dataset_sequence_and_frame_index_100k.json",
        "split": "{split}_ids_100k.json",
        "human": ("posescript_human_6293.json",),
        "auto": ("posescript_auto_100k.json",),
    },
    "v1": {
        "index": "ids_2_dataset_sequence_and_frame_index.json",
        "split": "{split}_ids.json",
        "human": ("human3893.json",),
        "auto": tuple(f"automatic_{v}.json" for v in "ABCDEF"),
    },
}
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class PosescriptConfig(tfds.core.BuilderConfig):
    chatpose_orientation: bool = True  # remove the yaw and turn AMASS's z-up into the OpenCV camera frame


def smplh_to_smpl_body_pose(poses: np.ndarray) -> np.ndarray:
    """AMASS pose vectors -> SMPL body_pose [..., 69]: body joints 1..21 plus the two hand roots.

    poses: [..., 156] SMPL-H (hand roots = the first joint of each hand chain, joints 22 and 37),
    [..., 165] SMPL-X (joints 25 and 40) or [..., 72] SMPL.
    """
    width = poses.shape[-1]
    if width == 72:
        return poses[..., 3:72]
    left, right = {156: (22, 37), 165: (25, 40)}.get(width, (None, None))
    if left is None:
        raise ValueError(f"pose vectors of width {width}; expected 156 (SMPL-H), 165 (SMPL-X) or 72 (SMPL)")
    return np.concatenate(
        [poses[..., 3:66], poses[..., 3 * left : 3 * left + 3], poses[..., 3 * right : 3 * right + 3]], -1
    )


def _as_texts(value) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


class Posescript(tfds.core.GeneratorBasedBuilder):
    """PoseScript text-pose pairs over AMASS."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "2.0.0": "Roots in the OpenCV camera frame (yaw removed, then Rx(+90 deg)), as ChatPose trains on them.",
        "1.0.0": "Roots in a y-up frame (no longer read).",
    }
    BUILDER_CONFIGS = [
        PosescriptConfig(name="default", description="ChatPose orientation: yaw removed, OpenCV camera frame"),
        PosescriptConfig(name="raw", description="AMASS root as stored (z-up, with yaw)", chatpose_orientation=False),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put the PoseScript release JSONs (V1 or V2) in MANUAL_DIR/posescript_release/ (or directly in
    MANUAL_DIR) and your AMASS copy (SMPL-H G .npz sequences) in MANUAL_DIR/AMASS, or pass
    amass_dir=... to the builder (chatpose-data prepare posescript --amass_dir ...).
    """

    def __init__(self, *, strict: bool = False, amass_dir: str | None = None, release: str = "auto", **kwargs):
        self._strict, self._amass_dir, self._release = strict, amass_dir, release
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "id": np.int64,
                    "texts_human": tfds.features.Sequence(tfds.features.Text()),
                    "texts_automatic": tfds.features.Sequence(tfds.features.Text()),
                    "global_orient": tfds.features.Tensor(shape=(3,), dtype=np.float32),
                    "body_pose": tfds.features.Tensor(shape=(69,), dtype=np.float32),
                    "split": tfds.features.Text(),
                }
            ),
            description="PoseScript poses (AMASS) with human and automatic descriptions.",
            metadata=tfds.core.MetadataDict(
                pose_frame=POSE_FRAME if self.builder_config.chatpose_orientation else "amass_z_up"
            ),
        )

    def _release_files(self, manual: str) -> tuple[str, dict]:
        folder = first_existing(os.path.join(manual, "posescript_release"), manual)
        order = ("v2", "v1") if self._release == "auto" else (self._release,)
        for version in order:
            files = RELEASES[version]
            if os.path.exists(os.path.join(folder, files["index"])):
                return folder, files
        raise FileNotFoundError(
            f"posescript: no release index ({' or '.join(RELEASES[v]['index'] for v in order)}) in {folder}"
        )

    def _split_generators(self, dl_manager):
        manual = os.fspath(dl_manager.manual_dir)
        folder, files = self._release_files(manual)
        amass = self._amass_dir or os.path.join(manual, "AMASS")
        if not os.path.isdir(amass):
            raise FileNotFoundError(f"posescript: AMASS folder {amass} does not exist (pass amass_dir)")
        bad = BadRecords("posescript", self._strict)
        index = read_json(os.path.join(folder, files["index"]))
        if isinstance(index, list):
            index = {str(i): v for i, v in enumerate(index)}
        texts = {"human": collections.defaultdict(list), "auto": collections.defaultdict(list)}
        for kind in ("human", "auto"):
            for name in files[kind]:
                path = os.path.join(folder, name)
                if not os.path.exists(path):
                    continue
                try:
                    captions = read_json(path)
                except ValueError as e:
                    bad.skip("malformed JSON", path, str(e))
                    continue
                for pid, value in captions.items():
                    texts[kind][str(pid)].extend(_as_texts(value))
        self._bad = bad
        generators = {}
        for split in SPLITS:
            path = os.path.join(folder, files["split"].format(split=split))
            if os.path.exists(path):
                ids = [int(i) for i in read_json(path)]
                generators[split] = self._generate_examples(split, ids, index, texts, amass, bad)
        if not generators:
            raise FileNotFoundError(f"posescript: no split file ({files['split']}) in {folder}")
        return generators

    def _generate_examples(self, split, ids, index, texts, amass, bad):
        by_file = collections.defaultdict(list)
        for pid in ids:
            entry = index.get(str(pid))
            if not (isinstance(entry, list | tuple) and len(entry) == 3):
                bad.skip("malformed index entry", f"id {pid}", f"index entry {entry!r}")
                continue
            by_file[entry[1]].append((pid, int(entry[2])))
        count = 0
        for rel, frames in sorted(by_file.items()):
            path = os.path.join(amass, rel)
            try:
                with np.load(path) as data:
                    poses = np.asarray(data["poses"], np.float64)
            except (OSError, KeyError, ValueError) as e:
                for pid, _ in frames:
                    bad.skip("missing or unreadable AMASS file", path, f"id {pid}: {type(e).__name__}: {e}")
                continue
            for pid, frame in frames:
                if not 0 <= frame < len(poses):
                    bad.skip("frame out of range", path, f"id {pid} frame {frame} of {len(poses)}")
                    continue
                human, auto = texts["human"].get(str(pid), []), texts["auto"].get(str(pid), [])
                if not human and not auto:
                    bad.skip("no description", f"id {pid}")
                    continue
                root = poses[frame, :3]
                if not finite({"poses": poses[frame]}, f"{path} frame {frame} (id {pid})", bad):
                    continue
                if self.builder_config.chatpose_orientation:
                    root = chatpose_orientation(root)
                count += 1
                yield (
                    pid,
                    {
                        "id": pid,
                        "texts_human": human,
                        "texts_automatic": auto,
                        "global_orient": root.astype(np.float32),
                        "body_pose": smplh_to_smpl_body_pose(poses[frame]).astype(np.float32),
                        "split": split,
                    },
                )
        require_records("posescript", split, count, amass)
