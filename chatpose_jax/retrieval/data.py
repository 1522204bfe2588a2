"""PoseScript text-pose pairs for the retrieval model: read through the `posescript` builder.

Poses: float32[N, 22, 3] axis-angle (root + 21 body joints; the root yaw-free in the OpenCV camera
frame, as the builder gives it). Left-right flip (PoseScript's augmentation): swap left and right joints, negate the
y and z components of every joint's axis-angle, swap the words left / right in the text; texts
that speak of clocks or axes are not flipped.
"""

from __future__ import annotations

import re

import jax
import numpy as np

NUM_JOINTS = 22
# SMPL joints 0..21 with left and right swapped.
FLIP_PERMUTATION = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20)
_NO_FLIP = re.compile(r"clock|axis|axes", re.IGNORECASE)
_SIDES = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def flip_poses(poses: np.ndarray) -> np.ndarray:
    """float[..., 22, 3] -> the mirrored poses (left <-> right, axis-angle y and z negated)."""
    flipped = np.asarray(poses)[..., list(FLIP_PERMUTATION), :].copy()
    flipped[..., 1:] *= -1.0
    return flipped


def can_flip(text: str) -> bool:
    return _NO_FLIP.search(text) is None


def flip_text(text: str) -> str:
    """Swaps the words left and right, keeping their case."""

    def swap(m):
        word = m.group(0)
        other = "right" if word.lower() == "left" else "left"
        return other.capitalize() if word[0].isupper() else other

    return _SIDES.sub(swap, text)


def load_pairs(data_dir: str, split: str, texts: str = "all") -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    """(poses float32[N, 22, 3], texts per pose, ids int64[N]) of a posescript split.

    texts: 'all' (human first, then automatic), 'human' or 'automatic'; poses without such a text
    are left out. Raises FileNotFoundError naming the folder when the split is not prepared.
    """
    import tensorflow_datasets as tfds  # imported here, as the pipeline below: TensorFlow kept lazy

    from data_pipelines import prepared  # lazy: data_pipelines loads TensorFlow

    try:
        builder = prepared.open_builder("posescript", data_dir)
        info = builder.info.splits
    except prepared.PreparedDataError:  # a stale or other-frame copy: never read as if unprepared
        raise
    except Exception as e:  # tfds raises several kinds for an unprepared dataset
        raise FileNotFoundError(f"posescript is not prepared in {data_dir}: {e}") from e
    if split not in info or info[split].num_examples == 0:
        raise FileNotFoundError(f"posescript in {data_dir} has no (or an empty) split {split!r}")
    poses, all_texts, ids = [], [], []
    for r in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
        human = [t.decode() for t in r["texts_human"]]
        auto = [t.decode() for t in r["texts_automatic"]]
        chosen = {"all": human + auto, "human": human, "automatic": auto}[texts]
        if not chosen:
            continue
        poses.append(
            np.concatenate([r["global_orient"], r["body_pose"][: 3 * (NUM_JOINTS - 1)]]).reshape(NUM_JOINTS, 3)
        )
        all_texts.append(chosen)
        ids.append(int(r["id"]))
    if not poses:
        raise FileNotFoundError(f"posescript split {split!r} in {data_dir} has no pose with {texts} texts")
    return np.stack(poses).astype(np.float32), all_texts, np.asarray(ids, np.int64)


def body_pose_to_joints(global_orient: np.ndarray, body_pose: np.ndarray) -> np.ndarray:
    """SMPL global_orient float[N, 3] + body_pose float[N, 69] -> float32[N, 22, 3] (hands dropped)."""
    go = np.asarray(global_orient, np.float32).reshape(-1, 1, 3)
    bp = np.asarray(body_pose, np.float32).reshape(-1, 23, 3)[:, : NUM_JOINTS - 1]
    return np.concatenate([go, bp], axis=1)


class TextTokens:
    """Descriptions -> (tokens int32[B, L], mask bool[B, L]) with the project's tokenizer, cut at L."""

    def __init__(self, tokenizer_dir: str, max_length: int):
        from data_pipelines.tokenizer import load_tokenizer  # imported here: data_pipelines imports TensorFlow

        self.tokenizer = load_tokenizer(tokenizer_dir)
        self.max_length = max_length
        self.vocab_size = len(self.tokenizer)

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        tokens = np.zeros((len(rows), self.max_length), np.int32)
        mask = np.zeros((len(rows), self.max_length), bool)
        for i, row in enumerate(rows):
            row = row[: self.max_length]
            tokens[i, : len(row)], mask[i, : len(row)] = row, True
        return tokens, mask


def _host_rows(batch_size: int) -> tuple[int, int]:
    per_host = batch_size // jax.process_count()
    return jax.process_index() * per_host, (jax.process_index() + 1) * per_host


class RetrievalBatches:
    """Endless random training batches {poses, tokens, mask} (one random text per pose, random flips).

    Batch k is drawn from rng(seed, k), so `state()` / `restore()` (the batch count) resume exactly.
    """

    def __init__(self, poses, texts, tokens: TextTokens, batch_size: int, sharding, seed: int, flip_prob: float):
        if len(poses) < batch_size:
            raise ValueError(f"retrieval: {len(poses)} training poses for a batch of {batch_size}")
        self.poses, self.texts, self.tokens = poses, texts, tokens
        self.batch_size, self.sharding, self.seed, self.flip_prob = batch_size, sharding, seed, flip_prob
        self.count = 0

    def host_batch(self, k: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, k])
        rows = rng.choice(len(self.poses), self.batch_size, replace=False)
        poses = self.poses[rows].copy()
        texts = [self.texts[i][rng.integers(len(self.texts[i]))] for i in rows]
        flip = rng.random(self.batch_size) < self.flip_prob
        for j in np.flatnonzero(flip):
            if can_flip(texts[j]):
                poses[j], texts[j] = flip_poses(poses[j]), flip_text(texts[j])
        tokens, mask = self.tokens(texts)
        return {"poses": poses, "tokens": tokens, "mask": mask}

    def __next__(self) -> dict:
        batch = self.host_batch(self.count)  # every host draws the whole batch and keeps its rows
        self.count += 1
        lo, hi = _host_rows(self.batch_size)
        return {k: jax.make_array_from_process_local_data(self.sharding, v[lo:hi], v.shape) for k, v in batch.items()}

    def state(self) -> dict:
        return {"count": self.count}

    def restore(self, state: dict) -> None:
        self.count = int(state["count"])
