"""The paper's benchmarks, read through the training builders: ids, fixed prompts, inputs, ground truth.

Each benchmark is a test split of a TFDS builder of `data_pipelines` (the same examples training
reads): 3DPW test and H36M protocol 2 from `hmr_images`, RPE from `rpe`, PoseScript test from
`posescript`, SPG from `spg`. Under the 4D-Humans protocol (`protocol="hmr2"`) 3DPW and H36M are
read from 4D-Humans' own evaluation files (`hmr_images/hmr2`: 3dpw_test, h36m_val_p2), whose
ground truth is their 3D keypoints. Prompts are fixed per benchmark: the first question of the
supplement's Table 1 for images, of Table 3 for texts; RPE asks its own fixed question about the
described person ("{description}, can you give the SMPL pose of this person?"), as training does.

Frames: roots and 3D joints are in the OpenCV camera frame (x right, y down, z away), as the
builders give them and the model (like the released ChatPose) predicts them; a dataset prepared
before the builders moved to that frame is refused (`chatpose_jax.eval.prepared.require_prepared`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from chatpose_jax import paths
from chatpose_jax.body.frames import UPRIGHT_FACING_CAMERA_ROOT

# What each benchmark reads: (TFDS dataset, split, input kind, ground truth kind).
#   image/smpl: pose + betas + gender through the gendered body model; image/joints: the file's 3D
#   joints (SPIN's `S`, or 4D-Humans' `extra_keypoints_3d` in rows 0..18).
BENCHMARKS = {
    "3dpw": ("hmr_images", "3dpw_test", "image", "smpl"),
    "h36m": ("hmr_images", "h36m_valid_protocol2", "image", "joints"),
    "rpe": ("rpe", "test", "image", "smpl"),
    "posescript": ("posescript", "test", "text", "pose"),
    "spg": ("spg", "test", "text", "pose"),
}
PROTOCOLS = ("spin", "hmr2")
# What the hmr2 protocol reads instead (4D-Humans' files, scored against their `extra_keypoints_3d`).
HMR2_BENCHMARKS = {
    "3dpw": ("hmr_images/hmr2", "3dpw_test", "image", "joints"),
    "h36m": ("hmr_images/hmr2", "h36m_val_p2", "image", "joints"),
}
# Where the mean pose of the baseline comes from: the training split of the same kind of data.
MEAN_POSE_SOURCE = {"image": ("hmr_images", "train"), "text": ("posescript", "train")}
MEAN_POSE_MAX_EXAMPLES = 20_000
J24_TO_J14 = tuple(range(12)) + (12, 18)  # SPIN: 12 limb joints, LSP neck, H36M head


class BenchmarkError(ValueError):
    """A benchmark that is unknown, not prepared, or empty; the message names it and the folder."""


@dataclasses.dataclass
class BenchmarkData:
    """One benchmark split (or a host's slice of it), in file order.

    ids: str[N]; questions: N prompts (without `<image>`); texts: N descriptions ('' for 3DPW/H36M);
    images: N encoded images or None; crops: float32[N, 3] (center x, y pixels, scale = box / 200);
    global_orient: float32[N, 3], body_pose: float32[N, 69] axis-angle radians (camera frame);
    betas: float32[N, 10]; gender: str[N] 'm' | 'f' | 'n'; joints_3d: float32[N, 24, 4] SPIN `S`
    or 4D-Humans' extra keypoints in rows 0..18 (camera frame, metres; zeros when absent).
    """

    name: str
    kind: str  # "image" | "text"
    ground_truth: str  # "smpl" | "joints" | "pose"
    ids: np.ndarray
    questions: list[str]
    texts: list[str]
    images: list[bytes] | None
    crops: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    betas: np.ndarray
    gender: np.ndarray
    joints_3d: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def question_for(name: str, text: str) -> str:
    """The fixed prompt of benchmark `name` for one sample's description `text`."""
    from data_pipelines import templates  # lazy: data_pipelines loads TensorFlow

    if BENCHMARKS[name][2] == "text":
        return templates.text_to_pose_question(templates.TEXT_TO_POSE_QUESTIONS[0], text)
    return templates.rpe_question(text) if text else templates.IMAGE_TO_POSE_QUESTIONS[0]


def _builder(dataset: str, split: str, data_dir: str, name: str):
    from data_pipelines import prepared  # lazy: data_pipelines loads TensorFlow

    if not data_dir or not paths.path(data_dir).is_dir() or not any(paths.path(data_dir).iterdir()):
        raise BenchmarkError(f"benchmark {name}: data_dir {data_dir!r} is missing or empty")
    try:
        builder = prepared.open_builder(dataset, data_dir)
        splits = builder.info.splits
    except prepared.PreparedDataError:  # a stale or other-frame copy: never read as if unprepared
        raise
    except Exception as e:  # tfds raises several kinds for an unprepared dataset
        raise BenchmarkError(
            f"benchmark {name}: dataset {dataset} is not prepared in {data_dir} "
            f"({_prepare_command(dataset, data_dir)}): {e}"
        ) from e
    if split not in splits:
        raise BenchmarkError(
            f"benchmark {name}: {paths.join(data_dir, dataset)} has no split {split!r} (it has "
            f"{', '.join(sorted(splits)) or 'none'}); prepare it from the evaluation files"
        )
    if splits[split].num_examples == 0:
        raise BenchmarkError(f"benchmark {name}: split {split!r} in {paths.join(data_dir, dataset)} is empty")
    return builder


def _prepare_command(dataset: str, data_dir: str) -> str:
    name, _, config = dataset.partition("/")
    config_flag = f" --builder_config {config}" if config else ""
    return f"chatpose-data prepare {name} --manual_dir RAW{config_flag} --data_dir {data_dir}"


def num_examples(name: str, data_dir: str, protocol: str = "spin") -> int:
    dataset, split, _, _ = spec(name, protocol)
    return _builder(dataset, split, data_dir, name).info.splits[split].num_examples


def spec(name: str, protocol: str = "spin") -> tuple[str, str, str, str]:
    """(TFDS dataset, split, input kind, ground-truth kind) of benchmark `name` under `protocol`."""
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    if protocol not in PROTOCOLS:
        raise BenchmarkError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if protocol == "hmr2" and name in HMR2_BENCHMARKS:
        return HMR2_BENCHMARKS[name]
    return BENCHMARKS[name]


def host_range(n: int, process_index: int, process_count: int) -> tuple[int, int]:
    """This host's contiguous slice [start, stop) of n examples; together the hosts cover all."""
    bounds = np.linspace(0, n, process_count + 1).round().astype(int)
    return int(bounds[process_index]), int(bounds[process_index + 1])


def read_benchmark(
    name: str,
    data_dir: str,
    *,
    with_images: bool = True,
    shard: tuple[int, int] = (0, 1),
    image_rows=None,
    protocol: str = "spin",
    limit: int = 0,
):
    """BenchmarkData of benchmark `name` in `data_dir` (the slice `shard` = (index, count) of it).

    image_rows: keep the encoded images of these rows only (the others are None), to bound memory.
    protocol: 'spin' or 'hmr2' (which files 3DPW and H36M are read from; see `spec`).
    limit: read only the first `limit` examples of the split (0: all); `shard` slices those.

    Raises:
      BenchmarkError: unknown name, dataset not prepared, split missing or empty (naming the folder).
    """
    import tensorflow_datasets as tfds  # lazy: TensorFlow

    dataset, split, kind, truth = spec(name, protocol)
    builder = _builder(dataset, split, data_dir, name)
    total = builder.info.splits[split].num_examples
    start, stop = host_range(min(total, limit) if limit > 0 else total, *shard)
    has_image = "image" in builder.info.features
    decoders = {"image": tfds.decode.SkipDecoding()} if has_image else None
    ds = builder.as_dataset(split=f"{split}[{start}:{stop}]", shuffle_files=False, decoders=decoders)
    rows = list(tfds.as_numpy(ds))
    n = len(rows)

    def field(key, shape, dtype=np.float32):
        return np.stack([np.asarray(r[key], dtype) for r in rows]) if n and key in rows[0] else np.zeros((n, *shape))

    if dataset.partition("/")[0] == "hmr_images":
        ids = [f"{r['source'].decode()}/{r['image_name'].decode()}" for r in rows]
        texts = [""] * n
    elif dataset == "posescript":
        ids = [str(int(r["id"])) for r in rows]
        texts = [(list(r["texts_human"]) + list(r["texts_automatic"]))[0].decode() for r in rows]
    else:
        ids = [str(int(r["id"])) for r in rows]
        texts = [r["description"].decode() for r in rows]
    crops = np.zeros((n, 3), np.float32)
    if has_image:
        crops = np.concatenate([field("center", (2,)), field("scale", ())[:, None]], axis=1).astype(np.float32)
    joints = field("joints_3d", (24, 4)).astype(np.float32).reshape(n, 24, 4)
    gender = np.array([r["gender"].decode() if "gender" in r else "n" for r in rows], dtype="<U1").reshape(n)
    return BenchmarkData(
        name=name,
        kind=kind,
        ground_truth=truth,
        ids=np.asarray(ids, dtype=str).reshape(n),
        questions=[question_for(name, t if name == "rpe" or kind == "text" else "") for t in texts],
        texts=texts,
        images=_images(rows, image_rows) if has_image and with_images else None,
        crops=crops,
        global_orient=field("global_orient", (3,)).astype(np.float32).reshape(n, 3),
        body_pose=field("body_pose", (69,)).astype(np.float32).reshape(n, 69),
        betas=field("betas", (10,)).astype(np.float32).reshape(n, 10),
        gender=gender,
        joints_3d=joints,
    )


def _images(rows: list[dict], keep) -> list[bytes | None]:
    keep = None if keep is None else {int(i) for i in keep}
    return [r["image"] if keep is None or i in keep else None for i, r in enumerate(rows)]


@functools.cache
def _person_pixels(image_size: int, pad_square: bool):
    """One traced TF function (bytes, center, scale) -> float32[3, S, S]: far cheaper than op-by-op eager calls."""
    import tensorflow as tf  # lazy: TensorFlow

    from data_pipelines import images as tf_images  # lazy: data_pipelines loads TensorFlow

    @tf.function(
        input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([2], tf.float32), tf.TensorSpec([], tf.float32)]
    )
    def person(data, center, scale):
        image = tf_images.crop_person(tf_images.decode(data), center, scale)
        return tf_images.clip_preprocess(image, image_size, pad_square=pad_square)

    return person


def pixel_values(images: list[bytes], crops: np.ndarray, image_size: int, pad_square: bool = False) -> np.ndarray:
    """float32[N, 3, S, S]: each person cropped at (center, scale) and CLIP-preprocessed, as training does."""
    person = _person_pixels(image_size, pad_square)
    crops = np.asarray(crops, np.float32)
    out = [person(data, crop[:2], crop[2]).numpy() for data, crop in zip(images, crops, strict=True)]
    return np.stack(out).astype(np.float32)


def mean_rotations(axis_angle: np.ndarray) -> np.ndarray:
    """The chordal mean rotation of each joint: float[N, J, 3] axis-angle -> float[J, 3] axis-angle."""
    # lazy: data_pipelines loads TensorFlow
    from data_pipelines.orientation import axis_angle_to_rotmat, rotmat_to_axis_angle

    mean = axis_angle_to_rotmat(axis_angle).mean(axis=0)  # [J, 3, 3]
    u, _, vt = np.linalg.svd(mean)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= d[:, None]
    return rotmat_to_axis_angle(u @ vt).astype(np.float32)


def mean_pose(kind: str, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """(global_orient float32[3], body_pose float32[69]): the mean training pose of `kind` ('image' or
    'text'), from at most MEAN_POSE_MAX_EXAMPLES training examples; when none is prepared, the rest
    pose standing upright and facing the camera (root diag(1, -1, -1) in the OpenCV camera frame)."""
    import tensorflow_datasets as tfds  # lazy: TensorFlow

    from data_pipelines import prepared  # lazy: data_pipelines loads TensorFlow

    dataset, split = MEAN_POSE_SOURCE[kind]
    try:
        builder = prepared.open_builder(dataset, data_dir)
        if split not in builder.info.splits:
            raise KeyError(split)
    except prepared.PreparedDataError:  # a stale or other-frame copy: never read as if unprepared
        raise
    except Exception:  # not prepared: fall back to the rest pose
        return UPRIGHT_FACING_CAMERA_ROOT.copy(), np.zeros(69, np.float32)
    take = min(builder.info.splits[split].num_examples, MEAN_POSE_MAX_EXAMPLES)
    decoders = {"image": tfds.decode.SkipDecoding()} if "image" in builder.info.features else None
    ds = builder.as_dataset(split=f"{split}[:{take}]", shuffle_files=False, decoders=decoders)
    poses = [
        np.concatenate([r["global_orient"], r["body_pose"]]).reshape(24, 3)
        for r in tfds.as_numpy(ds)
        if r.get("has_smpl", True)
    ]
    if not poses:
        return UPRIGHT_FACING_CAMERA_ROOT.copy(), np.zeros(69, np.float32)
    mean = mean_rotations(np.stack(poses))
    return mean[0], mean[1:].reshape(69)
