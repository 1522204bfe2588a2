"""Poses for a benchmark: from the model (batched greedy decoding, as chat answers), or from a file.

The model runs through `chatpose_jax.inference` (the code chat and `chatpose-predict` use). An
answer without `<POSE>` gets the mean pose and counts in `no_pose_rate`. With
`force_pose_answer`, the answer "Sure, it is <POSE>." is teacher-forced after the question: the
pose head reads the state that precedes `<POSE>`, which measures the pose head alone.

Predictions file (npz): ids str[N], global_orient float32[N, 3], body_pose float32[N, 69]
(axis-angle, radians, y-up), answer str[N]; has_pose bool[N] optional (True when absent).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from chatpose_jax.eval import benchmarks
from chatpose_jax.inference import outputs, prompt
from chatpose_jax.inference.predict import Record, predict_records
from chatpose_jax.inference.session import ChatModel, left_pad, pose_from_states, round_up
from chatpose_jax.model import decoding

FORCED_ANSWER_PREFIX = " Sure, it is"  # + "<POSE>." : the first answer of the supplement's Table 2
PIXEL_CHUNK_BATCHES = 8  # batches whose images are preprocessed at a time (bounds host memory)


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


def _records(model: ChatModel, data: benchmarks.BenchmarkData, rows: range) -> list[Record]:
    pixels = None
    if data.kind == "image":
        images = [data.images[i] for i in rows]
        pixels = benchmarks.pixel_values(images, data.crops[list(rows)], model.config.vision.image_size,
                                         model.pad_square)  # fmt: skip
    return [
        Record(str(data.ids[i]), data.questions[i], None, None if pixels is None else pixels[k])
        for k, i in enumerate(rows)
    ]


def _pose_or_mean(result: dict, mean) -> tuple[np.ndarray, np.ndarray, bool]:
    if result["poses"]:
        pose = result["poses"][0]
        return np.asarray(pose["global_orient"], np.float32), np.asarray(pose["body_pose"], np.float32), True
    return mean[0], mean[1], False


def predict_benchmark(
    model: ChatModel,
    data: benchmarks.BenchmarkData,
    mean: tuple[np.ndarray, np.ndarray],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    force_pose_answer: bool = False,
    progress: bool = True,
) -> Predictions:
    """The model's poses for every sample of `data` (greedy, batched); the mean pose where none came."""
    from tqdm import tqdm

    n = len(data)
    go, bp = np.zeros((n, 3), np.float32), np.zeros((n, 69), np.float32)
    answers, has = [""] * n, np.zeros(n, bool)
    chunk = batch_size * PIXEL_CHUNK_BATCHES
    bar = tqdm(total=n, disable=not progress, desc=f"eval {data.name}", unit="sample")
    for start in range(0, n, chunk):
        rows = range(start, min(start + chunk, n))
        records = _records(model, data, rows)
        if force_pose_answer:
            g, b = forced_poses(model, records, batch_size=batch_size)
            go[start : rows.stop], bp[start : rows.stop], has[start : rows.stop] = g, b, True
            for i in rows:
                answers[i] = "Sure, it is <POSE>."
        else:
            results = predict_records(model, records, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                      progress=False)  # fmt: skip
            for i, result in zip(rows, results, strict=True):
                go[i], bp[i], has[i] = _pose_or_mean(result, mean)
                answers[i] = result["answer"]
        bar.update(len(rows))
    bar.close()
    return Predictions(data.ids.copy(), go, bp, np.asarray(answers, dtype=str).reshape(n), has)


_prefill = jax.jit(decoding.prefill, static_argnums=(0, 6))


def forced_poses(model: ChatModel, records: list[Record], *, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(global_orient float32[N, 3], body_pose float32[N, 69]) read after the question + " Sure, it is"."""
    cfg = model.config
    encoded = []
    for r in records:
        text = prompt.generation_prompt([], prompt.user_turn(r.prompt, r.has_image)) + FORCED_ANSWER_PREFIX
        ids = np.asarray(model.tokenizer(text, add_special_tokens=True)["input_ids"], np.int32)
        encoded.append(np.repeat(ids, np.where(ids == cfg.image_token_id, cfg.vision.num_image_tokens, 1)))
    go, bp = [], []
    for start in range(0, len(records), batch_size):
        rows = list(range(start, min(start + batch_size, len(records))))
        filled = rows + [rows[0]] * (batch_size - len(rows))
        length = round_up(max(len(encoded[i]) for i in filled), model.length_bucket)
        input_ids, mask = left_pad([encoded[i] for i in filled], length, cfg.pad_token_id)
        pixels = None
        if records[rows[0]].has_image:
            pixels = jnp.asarray(np.stack([records[i].pixels(model) for i in filled]))
        (_, hidden), _ = _prefill(cfg, model.params, model.lora, jnp.asarray(input_ids), pixels, jnp.asarray(mask),
                                  length)  # fmt: skip
        _, rotmat = pose_from_states(cfg, model.params, hidden)
        for row in range(len(rows)):
            arrays = outputs.pose_arrays(np.asarray(rotmat[row]))
            go.append(arrays["global_orient"])
            bp.append(arrays["body_pose"])
    return np.asarray(go, np.float32).reshape(-1, 3), np.asarray(bp, np.float32).reshape(-1, 69)


def save_predictions(path: str, preds: Predictions) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, ids=preds.ids.astype(str), global_orient=preds.global_orient.astype(np.float32),
             body_pose=preds.body_pose.astype(np.float32), answer=preds.answer.astype(str),
             has_pose=preds.has_pose.astype(bool))  # fmt: skip
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
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise PredictionsFileError(f"{path}: not a readable npz file ({e})") from e
    for key, width in (("ids", None), ("global_orient", 3), ("body_pose", 69)):
        if key not in arrays:
            raise PredictionsFileError(
                f"{path}: missing key {key!r} (needs ids, global_orient (N,3), body_pose (N,69))"
            )
        if width and (arrays[key].ndim != 2 or arrays[key].shape[1] != width):
            raise PredictionsFileError(f"{path}: key {key!r} has shape {arrays[key].shape}; expected (N, {width})")
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
