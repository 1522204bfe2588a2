"""Poses for a benchmark: from the model (batched greedy decoding, as chat answers), or from a file.

The model runs through the chat path's decoding (`chatpose_jax.model.decoding.generate`, as
`chatpose-predict` uses it), batched and sharded over the mesh by `mesh_decode.MeshDecoder`. An
answer without `<POSE>` gets the mean pose and counts in `no_pose_rate`. With
`force_pose_answer`, the answer "Sure, it is <POSE>." is teacher-forced after the question: the
pose head reads the state that precedes `<POSE>`, which measures the pose head alone.

Predictions file (npz): ids str[N], global_orient float32[N, 3] (axis-angle, radians, in the
OpenCV camera frame: x right, y down, z away, as the released ChatPose predicts it), body_pose
float32[N, 69], pose_frame str (must be "opencv_camera": a file without it, e.g. one written
before roots moved to that frame, is refused), answer str[N]; has_pose bool[N] optional (True when
absent).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from tqdm import tqdm

from chatpose_jax import paths
from chatpose_jax.body import frames
from chatpose_jax.eval import benchmarks, keypoint_poses
from chatpose_jax.eval.keypoint_poses import KeypointLifter
from chatpose_jax.eval.mesh_decode import MeshDecoder
from chatpose_jax.inference.session import ChatModel


class PredictionsFileError(ValueError):
    """A predictions file that cannot be read or does not cover the benchmark's ids."""


@dataclasses.dataclass
class Predictions:
    """One pose per benchmark sample (see the module docstring for the fields)."""

    ids: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    answer: np.ndarray
    has_pose: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, order: np.ndarray) -> Predictions:
        return Predictions(*(getattr(self, f.name)[order] for f in dataclasses.fields(self)))

    @staticmethod
    def concatenate(parts: list[Predictions]) -> Predictions:
        return Predictions(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Predictions))
        )


def mean_predictions(ids, mean: tuple[np.ndarray, np.ndarray]) -> Predictions:
    """The mean-pose baseline: every sample answered with the mean pose."""
    n = len(ids)
    return Predictions(
        np.asarray(ids, str),
        np.tile(mean[0][None], (n, 1)).astype(np.float32),
        np.tile(mean[1][None], (n, 1)).astype(np.float32),
        np.full(n, "", dtype=object).astype(str),
        np.ones(n, bool),
    )


def _step_pixels(model: ChatModel, data: benchmarks.BenchmarkData, rows: list[int]) -> np.ndarray | None:
    if data.kind != "image":
        return None
    images = [data.images[i] for i in rows]
    return benchmarks.pixel_values(images, data.crops[rows], model.config.vision.image_size, model.pad_square)


def predict_benchmark(
    decoder: MeshDecoder,
    data: benchmarks.BenchmarkData,
    mean: tuple[np.ndarray, np.ndarray],
    *,
    max_new_tokens: int = 32,
    force_pose_answer: bool = False,
    progress: bool = True,
    num_steps: int | None = None,
    lifter: KeypointLifter | None = None,
) -> Predictions:
    """The model's poses for every sample of `data` (this host's rows; greedy, batched, sharded over the
    mesh by `decoder`); the mean pose where an answer holds no <POSE>.

    num_steps: decoding steps to run (every process must run the same number; default: enough for
    `data`). Steps past this host's rows decode filler rows whose results are dropped.
    lifter: ask the supplement's keypoint question instead and lift each answer's keypoints to SMPL
    with SMPLify (`keypoint_poses`); an answer without a usable keypoint gets the mean pose.
    """
    model, per = decoder.model, decoder.rows_per_host
    n = len(data)
    steps = -(-n // per) if num_steps is None else num_steps
    if steps * per < n:
        raise ValueError(f"{steps} steps of {per} rows cannot decode {n} rows")
    if lifter is not None and force_pose_answer:
        raise ValueError("keypoint answers (--pose_from=keypoints) cannot be teacher-forced (--force_pose_answer)")
    has_image = data.kind == "image"
    questions = data.questions
    if lifter is not None:
        questions = [keypoint_poses.keypoints_question(data.name, text) for text in data.texts]
    encoded = []
    for i, question in enumerate(questions):
        try:
            encoded.append(decoder.encode(question, has_image, force_pose_answer))
        except ValueError as e:
            raise type(e)(f"benchmark {data.name} sample {data.ids[i]}: {e}") from e
    # Prompts of like length share a step (a step pads to its longest); results go back to file order.
    order = np.argsort([len(ids) for ids in encoded], kind="stable")
    go, bp = np.zeros((n, 3), np.float32), np.zeros((n, 69), np.float32)
    answers, has = [""] * n, np.zeros(n, bool)
    bar = tqdm(total=n, disable=not progress, desc=f"eval {data.name}", unit="sample")
    for step in range(steps):
        rows = [int(i) for i in order[step * per : (step + 1) * per]]
        if rows:
            ids, pixels = [encoded[i] for i in rows], _step_pixels(model, data, rows)
        else:  # this host has no rows left: decode a filler so that every process runs the step
            question = benchmarks.question_for(data.name, "")
            ids = [decoder.encode(question, has_image, force_pose_answer)]
            size = model.config.vision.image_size
            pixels = np.zeros((1, 3, size, size), np.float32) if has_image else None
        if force_pose_answer:
            axis_angle, found = decoder.forced(ids, pixels), np.ones(len(ids), bool)
        else:
            out = decoder.generate(ids, pixels, max_new_tokens)
            axis_angle, found = out["axis_angle"], out["has_pose"]
        if not rows:
            continue
        texts = [
            "Sure, it is <POSE>." if force_pose_answer else model.decode(out["tokens"][k, : out["lengths"][k]])
            for k in range(len(rows))
        ]
        if lifter is not None:  # the pose from the answer's keypoints, not from a <POSE> token
            lifted_go, lifted_bp, found = lifter.lift(texts, model.config.vision.image_size, mean)
            axis_angle = np.concatenate([lifted_go, lifted_bp], axis=1).reshape(len(rows), 24, 3)
        for k, i in enumerate(rows):
            has[i] = bool(found[k])
            if has[i]:
                go[i], bp[i] = axis_angle[k, 0], axis_angle[k, 1:].reshape(69)
            else:
                go[i], bp[i] = mean
            answers[i] = texts[k]
        bar.update(len(rows))
    bar.close()
    return Predictions(data.ids.copy(), go, bp, np.asarray(answers, dtype=str).reshape(n), has)


def save_predictions(path: str, preds: Predictions) -> str:
    """Writes `preds` to the npz file `path` (local or gs://; `.npz` appended when missing, as
    np.savez does); returns the name written."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    target = paths.path(paths.absolute(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as f:  # through epath, so gs:// works
        np.savez(f, ids=preds.ids.astype(str), global_orient=preds.global_orient.astype(np.float32),
                 body_pose=preds.body_pose.astype(np.float32), answer=preds.answer.astype(str),
                 has_pose=preds.has_pose.astype(bool), pose_frame=np.array(frames.POSE_FRAME))  # fmt: skip
    return path


def _first(items, k: int = 5) -> str:
    items = list(items)
    return ", ".join(repr(i) for i in items[:k]) + (", ..." if len(items) > k else "")


def load_predictions(path: str, ids: np.ndarray) -> Predictions:
    """Poses from another method, in the order of the benchmark's `ids`.

    Raises:
      PredictionsFileError: unreadable file, a missing key or shape (naming it), or ids missing /
        extra / repeated with respect to the benchmark (how many, and the first few).
    """
    try:
        with paths.path(path).open("rb") as handle, np.load(handle, allow_pickle=False) as f:  # local or gs://
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001  (a bucket's client raises its own kinds, e.g. tf NotFoundError)
        if not isinstance(e, (OSError, ValueError)) and not paths.is_remote(path):
            raise
        raise PredictionsFileError(f"{path}: not a readable npz file ({e})") from e
    for key, width in (("ids", None), ("global_orient", 3), ("body_pose", 69)):
        if key not in arrays:
            raise PredictionsFileError(
                f"{path}: missing key {key!r} (needs ids, global_orient (N,3), body_pose (N,69))"
            )
        if width and (arrays[key].ndim != 2 or arrays[key].shape[1] != width):
            raise PredictionsFileError(f"{path}: key {key!r} has shape {arrays[key].shape}; expected (N, {width})")
    stored_frame = str(arrays["pose_frame"]) if "pose_frame" in arrays else None
    try:
        frames.require_pose_frame(
            stored_frame,
            f"{path} (key 'pose_frame')",
            f"give its global_orient in that frame and store pose_frame={frames.POSE_FRAME!r} with it",
        )
    except frames.PoseFrameError as e:
        raise PredictionsFileError(str(e)) from e
    file_ids = arrays["ids"].astype(str).reshape(-1)
    n = len(file_ids)
    for key in ("global_orient", "body_pose"):
        if len(arrays[key]) != n:
            raise PredictionsFileError(f"{path}: key {key!r} has {len(arrays[key])} rows for {n} ids")
    unique, counts = np.unique(file_ids, return_counts=True)
    if np.any(counts > 1):
        raise PredictionsFileError(f"{path}: {int(np.sum(counts > 1))} ids repeat: {_first(unique[counts > 1])}")
    wanted = set(np.asarray(ids, str).tolist())
    have = set(file_ids.tolist())
    missing = [i for i in np.asarray(ids, str) if i not in have]
    extra = [i for i in file_ids if i not in wanted]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of the benchmark's {len(wanted)} ids are missing: {_first(missing)}")
        if extra:
            parts.append(f"{len(extra)} ids are not in the benchmark: {_first(extra)}")
        raise PredictionsFileError(f"{path}: " + "; ".join(parts))
    position = {k: i for i, k in enumerate(file_ids.tolist())}
    order = np.array([position[i] for i in np.asarray(ids, str)], dtype=int)
    answer = arrays["answer"].astype(str) if "answer" in arrays else np.full(n, "", dtype="<U1")
    has = arrays["has_pose"].astype(bool) if "has_pose" in arrays else np.ones(n, bool)
    return Predictions(
        file_ids, arrays["global_orient"].astype(np.float32), arrays["body_pose"].astype(np.float32), answer, has
    ).take(order)
