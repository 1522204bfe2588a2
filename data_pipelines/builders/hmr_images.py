"""Person images with SMPL parameters: SPIN-style `.npz` + image folders, and 4D-Humans tars.

Examples: image (the full encoded image; the pipeline crops the person from center / scale),
image_name, source (npz stem or tar name), center float32[2] pixels, scale (box side / 200),
global_orient float32[3], body_pose float32[69], betas float32[10], has_smpl, gender ('m', 'f',
'n'), joints_3d float32[24, 4] (SPIN's `S`, or 4D-Humans' `extra_keypoints_3d` in its first 19 rows;
zeros when absent; camera frame, metres), keypoints_2d float32[44, 3] (4D-Humans' layout: OpenPose
BODY_25, then SPIN's first 19 ground-truth joints; x, y pixels of the full image, confidence; zeros
where the file has none; `data_pipelines.keypoints_2d`: tars' `keypoints_2d`, eval files'
`body_keypoints_2d` + `extra_keypoints_2d`, SPIN's `openpose` + `part`).

Evaluation files read as published: SPIN's `3dpw_test.npz` (pose, shape, gender) and
`h36m_valid_protocol2.npz` (S), and 4D-Humans' eval npz (body_pose 72 + has_body_pose, betas,
extra_keypoints_3d, optional gender; scale in pixels). Missing keys are zeros.

Layout of MANUAL_DIR: npz/NAME.npz with images under images/NAME/<imgname> (or images/<imgname>),
tars/*.tar (4D-Humans webdataset shards: KEY.jpg + KEY.data.pyd), and 4D-Humans' evaluation files
hmr2_evaluation_data/NAME.npz (its own folder: 4D-Humans' 3dpw_test.npz has the name of SPIN's).
Splits: an npz whose name holds 'test', 'val' or 'valid' becomes its own split (e.g.
'3dpw_test'); every other npz and all tars form 'train'. Roots stay in the files' OpenCV camera
frame (x right, y down, z away), as ChatPose trains on them (its release uses 4D-Humans'
`smpl_params` as they come); the metadata names the frame (`pose_frame`). Config 'default' reads
npz/ and tars/; 'hmr2' reads hmr2_evaluation_data/*.npz only, each file its own split
('3dpw_test', 'h36m_val_p2', ...), for the 4D-Humans protocol.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import tarfile

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import keypoints_2d
from data_pipelines.builders import common
from data_pipelines.orientation import POSE_FRAME

EVAL_WORDS = ("test", "val", "valid")


@dataclasses.dataclass
class HmrImagesConfig(tfds.core.BuilderConfig):
    npz_folder: str = "npz"  # folder of MANUAL_DIR holding the annotation files
    read_tars: bool = True  # also read tars/*.tar into 'train'
    every_file_a_split: bool = False  # each npz its own split, named by its stem (evaluation files)


HMR2_EVAL_FOLDER = "hmr2_evaluation_data"  # 4D-Humans' folder name for its evaluation npz files


def split_name(stem: str) -> str:
    """The split an npz file feeds: 'train', or its own name for evaluation files."""
    words = re.split(r"[^a-z0-9]+", stem.lower())
    if any(w in EVAL_WORDS for w in words):
        return re.sub(r"[^a-z0-9_]+", "_", stem.lower())
    return "train"


def _npz_people(path: str) -> tuple[dict[str, np.ndarray], int]:
    """Per-person arrays from a SPIN / 4D-Humans npz, under one set of names."""
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        if "imgname" not in keys or "center" not in keys or "scale" not in keys:
            raise KeyError(f"{path}: needs keys imgname, center, scale; has {sorted(keys)}")
        n = len(data["imgname"])
        out = {"imgname": data["imgname"].astype(str), "center": data["center"].astype(np.float64)}
        scale = data["scale"].astype(np.float64).reshape(n, -1).max(axis=1)
        # 4D-Humans / ProHMR files (body_pose of width 72) store the box side in pixels.
        four_d = "body_pose" in keys and data["body_pose"].shape[-1] == 72
        out["scale"] = scale / 200.0 if four_d else scale
        pose = data["body_pose"] if four_d else data["pose"] if "pose" in keys else None
        shape = data["betas"] if "betas" in keys else data["shape"] if "shape" in keys else None
        has = data["has_body_pose"] if "has_body_pose" in keys else data["has_smpl"] if "has_smpl" in keys else None
        out["pose"] = np.zeros((n, 72)) if pose is None else pose.astype(np.float64).reshape(n, 72)
        out["betas"] = np.zeros((n, 10)) if shape is None else shape.astype(np.float64).reshape(n, -1)[:, :10]
        out["has_smpl"] = (np.zeros(n) if pose is None else np.ones(n)) if has is None else has.reshape(n)
        out["gender"] = data["gender"].astype(str) if "gender" in keys else np.full(n, "n")
        out["S"] = np.zeros((n, 24, 4))
        if "S" in keys:
            out["S"] = data["S"].astype(np.float64).reshape(n, 24, 4)
        elif "extra_keypoints_3d" in keys:  # 4D-Humans / ProHMR: the 19 extra joints are SPIN's first 19
            out["S"][:, :19] = data["extra_keypoints_3d"].astype(np.float64).reshape(n, 19, 4)
        out["keypoints_2d"] = _npz_keypoints_2d(data, keys, n, path)
    return out, n


def _npz_keypoints_2d(data, keys: set, n: int, path: str) -> np.ndarray:
    """float32[n, 44, 3]: 4D-Humans' body/extra_keypoints_2d, else SPIN's openpose/part (either may be absent)."""
    get = lambda key: data[key] if key in keys else None  # noqa: E731
    try:
        if "body_keypoints_2d" in keys or "extra_keypoints_2d" in keys:
            return keypoints_2d.from_hmr2(get("body_keypoints_2d"), get("extra_keypoints_2d"), n)
        return keypoints_2d.from_spin(get("part"), get("openpose"), n)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


class HmrImages(tfds.core.GeneratorBasedBuilder):
    """Person crops with SMPL parameters (3DPW, H36M, COCO, MPII, ... as SPIN / 4D-Humans ship them)."""

    VERSION = tfds.core.Version("2.1.0")
    RELEASE_NOTES = {
        "2.1.0": "keypoints_2d float32[44, 3]: the files' 2D keypoints (BODY_25 + 19 extra joints, full-image pixels).",
        "2.0.0": "Roots in the files' OpenCV camera frame, as ChatPose trains on them; config 'camera' removed.",
        "1.0.0": "Roots turned into a y-up frame (no longer read).",
    }
    BUILDER_CONFIGS = [
        HmrImagesConfig(name="default", description="root in the files' OpenCV camera frame"),
        HmrImagesConfig(
            name="hmr2",
            description="4D-Humans evaluation files (hmr2_evaluation_data/*.npz), one split each, camera-frame root",
            npz_folder=HMR2_EVAL_FOLDER,
            read_tars=False,
            every_file_a_split=True,
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    MANUAL_DIR/npz/NAME.npz (SPIN / 4D-Humans annotation files) with their images under
    MANUAL_DIR/images/NAME/ (paths as in `imgname`), and/or 4D-Humans webdataset shards in
    MANUAL_DIR/tars/*.tar. Config hmr2: 4D-Humans' evaluation files in MANUAL_DIR/hmr2_evaluation_data/
    (3dpw_test.npz, h36m_val_p2.npz, ...) with their images under MANUAL_DIR/images/NAME/.
    """

    def __init__(self, *, strict: bool = False, **kwargs):
        self._strict = strict
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(),
                    "image_name": tfds.features.Text(),
                    "source": tfds.features.Text(),
                    "center": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                    "scale": np.float32,
                    "global_orient": tfds.features.Tensor(shape=(3,), dtype=np.float32),
                    "body_pose": tfds.features.Tensor(shape=(69,), dtype=np.float32),
                    "betas": tfds.features.Tensor(shape=(10,), dtype=np.float32),
                    "has_smpl": np.bool_,
                    "gender": tfds.features.Text(),
                    "joints_3d": tfds.features.Tensor(shape=(24, 4), dtype=np.float32),
                    "keypoints_2d": tfds.features.Tensor(shape=(keypoints_2d.NUM_KEYPOINTS, 3), dtype=np.float32),
                }
            ),
            description="People in images with SMPL pose and shape.",
            metadata=tfds.core.MetadataDict(pose_frame=POSE_FRAME),
        )

    def _split_generators(self, dl_manager):
        manual = os.fspath(dl_manager.manual_dir)
        config = self.builder_config
        npz_files = sorted(glob.glob(os.path.join(manual, config.npz_folder, "*.npz")))
        tars = sorted(glob.glob(os.path.join(manual, "tars", "*.tar"))) if config.read_tars else []
        if not npz_files and not tars:
            wanted = f"{config.npz_folder}/*.npz" + (" or tars/*.tar" if config.read_tars else "")
            raise FileNotFoundError(f"hmr_images ({config.name}): no {wanted} in {manual}")
        bad = common.BadRecords("hmr_images", self._strict)
        groups: dict[str, list] = {}
        for path in npz_files:
            stem = os.path.splitext(os.path.basename(path))[0]
            split = re.sub(r"[^a-z0-9_]+", "_", stem.lower()) if config.every_file_a_split else split_name(stem)
            groups.setdefault(split, []).append(("npz", path))
        for path in tars:
            groups.setdefault("train", []).append(("tar", path))
        return {split: self._generate_examples(split, sources, manual, bad) for split, sources in groups.items()}

    def _example(
        self, image: bytes, name: str, source: str, center, scale, pose, betas, has_smpl, gender, joints, kp2d
    ):
        root = np.asarray(pose[:3], np.float64)  # the file's camera frame, kept
        return {
            "image": image,
            "image_name": name,
            "source": source,
            "center": np.asarray(center, np.float32).reshape(2),
            "scale": np.float32(scale),
            "global_orient": root.astype(np.float32),
            "body_pose": np.asarray(pose[3:72], np.float32),
            "betas": np.pad(np.asarray(betas, np.float32).reshape(-1)[:10], (0, max(0, 10 - np.size(betas)))),
            "has_smpl": bool(has_smpl),
            "gender": str(gender)[:1].lower() or "n",
            "joints_3d": np.asarray(joints, np.float32).reshape(24, 4),
            "keypoints_2d": np.asarray(kp2d, np.float32).reshape(keypoints_2d.NUM_KEYPOINTS, 3),
        }

    def _generate_examples(self, split, sources, manual, bad):
        count = 0
        for kind, path in sources:
            gen = self._from_npz(path, manual, bad) if kind == "npz" else self._from_tar(path, bad)
            for key, example in gen:
                count += 1
                yield key, example
        require_records_in = ", ".join(p for _, p in sources)
        common.require_records("hmr_images", split, count, require_records_in)

    def _from_npz(self, path, manual, bad):
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            people, n = _npz_people(path)
        except (OSError, KeyError, ValueError) as e:
            bad.skip("unreadable annotation file", path, str(e))
            return
        for i in range(n):
            name = people["imgname"][i]
            image_path = common.first_existing(
                os.path.join(manual, "images", stem, name), os.path.join(manual, "images", name)
            )
            if image_path is None:
                bad.skip("missing image", os.path.join(manual, "images", stem, name), f"{path} row {i}")
                continue
            values = {k: people[k][i] for k in ("center", "scale", "pose", "betas", "S", "keypoints_2d")}
            if not common.finite(values, f"{path} row {i}", bad):
                continue
            image = common.read_image_bytes(image_path, bad)
            if image is None:
                continue
            yield f"{stem}/{i}", self._example(
                image, name, stem, values["center"], values["scale"], values["pose"], values["betas"],
                people["has_smpl"][i], people["gender"][i], values["S"], values["keypoints_2d"],
            )  # fmt: skip

    def _from_tar(self, path, bad):
        shard = os.path.basename(path)
        try:
            tar = tarfile.open(path)
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
        except (OSError, tarfile.TarError) as e:
            bad.skip("unreadable tar", path, str(e))
            return
        with tar:
            keys = sorted({name.split(".", 1)[0] for name in members})
            for key in keys:
                where = f"{path}:{key}"
                image_member = next(
                    (members[key + ext] for ext in (".jpg", ".jpeg", ".png") if key + ext in members), None
                )
                data_member = members.get(key + ".data.pyd")
                if image_member is None or data_member is None:
                    bad.skip("incomplete sample", where, "needs KEY.jpg and KEY.data.pyd")
                    continue
                try:
                    people = common.load_array_pickle(tar.extractfile(data_member).read())
                except Exception as e:  # a corrupt pickle raises many kinds
                    bad.skip("unreadable data.pyd", where, f"{type(e).__name__}: {e}")
                    continue
                people = [people] if isinstance(people, dict) else list(people)
                image = common.check_image_bytes(tar.extractfile(image_member).read(), where, bad)
                if image is None:
                    continue
                for k, person in enumerate(people):
                    try:
                        pose = np.asarray(person["body_pose"], np.float64).reshape(72)
                        values = {
                            "center": np.asarray(person["center"], np.float64).reshape(2),
                            "scale": float(np.max(person["scale"])),
                            "pose": pose,
                            "betas": np.asarray(person.get("betas", np.zeros(10)), np.float64).reshape(-1),
                            "keypoints_2d": _tar_keypoints_2d(person),
                        }
                    except (KeyError, ValueError, TypeError) as e:
                        bad.skip("malformed person", f"{where} person {k}", f"{type(e).__name__}: {e}")
                        continue
                    if not common.finite(values, f"{where} person {k}", bad):
                        continue
                    has = float(np.asarray(person.get("has_body_pose", 1.0)).reshape(-1)[0]) > 0
                    yield f"{shard}/{key}/{k}", self._example(
                        image, image_member.name, shard, values["center"], values["scale"], pose, values["betas"],
                        has, person.get("gender", "n"), np.zeros((24, 4)), values["keypoints_2d"],
                    )  # fmt: skip


def _tar_keypoints_2d(person: dict) -> np.ndarray:
    """float32[44, 3]: a 4D-Humans tar person's `keypoints_2d` as stored (zeros when absent)."""
    if "keypoints_2d" not in person:
        return np.zeros((keypoints_2d.NUM_KEYPOINTS, 3), np.float32)
    kp = np.asarray(person["keypoints_2d"], np.float32)
    if kp.shape != (keypoints_2d.NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints_2d: expected shape ({keypoints_2d.NUM_KEYPOINTS}, 3), got {kp.shape}")
    return kp
