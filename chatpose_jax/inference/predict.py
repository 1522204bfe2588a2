"""Batched one-turn answers for many prompts and images, written to one JSONL file.

Inputs: a JSONL file whose lines are {"id"?: str, "prompt"?: str, "image"?: path} (a relative
image path is read from the file's folder; an image without a prompt gets `default_prompt`), or a
folder: its images (sorted by name, each asked `default_prompt`) and its *.jsonl files.

Rows with and without an image go into separate batches (the vision tower runs only for the
first kind); each batch is left-padded to a multiple of `length_bucket` and filled to
`batch_size` rows, so a run compiles a few shapes only, and runs `decoding.generate`. Greedy
answers equal `ChatModel.answer` for the same prompt (the tests check it).
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from chatpose_jax import paths
from chatpose_jax.body import frames
from chatpose_jax.inference import outputs, prompt
from chatpose_jax.inference.images import ImageError
from chatpose_jax.inference.session import ChatModel, left_pad, round_up
from chatpose_jax.model import decoding

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
DEFAULT_IMAGE_PROMPT = "Can you predict the SMPL pose of the person in this image?"


class InputError(ValueError):
    """An inputs file or folder that cannot be read as prediction records."""


@dataclasses.dataclass(frozen=True)
class Record:
    id: str
    prompt: str
    image: str | None = None  # path
    pixel_values: np.ndarray | None = None  # float32[3, S, S], preprocessed already (instead of `image`)

    @property
    def has_image(self) -> bool:
        return self.image is not None or self.pixel_values is not None

    def pixels(self, model: ChatModel) -> np.ndarray:
        return self.pixel_values if self.pixel_values is not None else model.pixel_values(self.image)


def _records_from_jsonl(path: str, default_prompt: str) -> list[Record]:
    folder = os.fspath(paths.path(paths.absolute(path)).parent)
    stem = paths.path(path).stem
    records = []
    with paths.path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{number}: not JSON ({e.msg})") from e
            if not isinstance(item, dict) or not ({"prompt", "image"} & item.keys()):
                raise InputError(f'{path}:{number}: expected an object with "prompt" and/or "image"')
            image = item.get("image")
            if image is not None:
                image = image if os.path.isabs(image) or paths.is_remote(image) else paths.join(folder, image)
                if not paths.path(image).is_file():
                    raise ImageError(f"{path}:{number}: image {image} does not exist")
            text = item.get("prompt") or (default_prompt if image else "")
            if not text.strip():
                raise InputError(f"{path}:{number}: empty prompt")
            records.append(Record(str(item.get("id", f"{stem}:{number}")), text, image))
    return records


def read_inputs(path: str, default_prompt: str = DEFAULT_IMAGE_PROMPT) -> list[Record]:
    """Records of a JSONL file or a folder (see the module docstring), in order.

    Raises:
      InputError, ImageError: naming the file (and line) at fault.
    """
    if paths.path(path).is_file():
        return _records_from_jsonl(path, default_prompt)
    if not paths.path(path).is_dir():
        raise InputError(f"inputs {path} does not exist")
    records = []
    for name in sorted(p.name for p in paths.path(path).iterdir()):
        full = paths.join(path, name)
        if name.lower().endswith(IMAGE_EXTENSIONS):
            records.append(Record(name, default_prompt, full))
        elif name.endswith(".jsonl"):
            records.extend(_records_from_jsonl(full, default_prompt))
    if not records:
        raise InputError(f"inputs folder {path} holds no images and no .jsonl files")
    return records


def _pose_json(pose_rotmat: np.ndarray, rot6d: np.ndarray, position: int) -> dict:
    arrays = outputs.pose_arrays(pose_rotmat, rot6d)
    return {"position": position, **{k: v.tolist() for k, v in arrays.items()}, "pose_frame": frames.POSE_FRAME}


def predict_records(
    model: ChatModel,
    records: list[Record],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """One result per record, in input order.

    Each result: id, prompt, image, answer (text), tokens (generated ids, `</s>` included),
    stop_reason ("eos" | "max_new_tokens"), poses: per `<POSE>` {position, global_orient [3],
    body_pose [69] (axis-angle, radians), rotmat [24][3][3], rot6d [24][6], pose_frame}; the root
    (global_orient, rotmat[0]) is in the OpenCV camera frame (x right, y down, z away), as the
    released ChatPose emits it.

    Raises:
      PromptTooLongError: naming the record whose prompt leaves no room in the context.
    """
    cfg = model.config
    encoded = []
    for record in records:
        ids = model.encode([], prompt.user_turn(record.prompt, record.has_image))
        try:
            model.check_length(ids)
        except ValueError as e:
            raise type(e)(f"record {record.id}: {e}") from e
        encoded.append(ids)
    longest = max(len(ids) for ids in encoded)
    # Every row of a batch gets the same number of new tokens, so no row runs past the context.
    max_new_tokens = min(max_new_tokens, model.context_length - longest)
    results: list[dict | None] = [None] * len(records)
    groups = [[i for i, r in enumerate(records) if r.has_image == kind] for kind in (True, False)]
    bar = tqdm(total=len(records), disable=not progress, desc="predict", unit="prompt")
    for group in groups:
        for start in range(0, len(group), batch_size):
            rows = group[start : start + batch_size]
            # Fill the batch with copies of its first row: one static shape per bucket.
            filled = rows + [rows[0]] * (batch_size - len(rows))
            length = round_up(max(len(encoded[i]) for i in filled), model.length_bucket)
            input_ids, mask = left_pad([encoded[i] for i in filled], length, cfg.pad_token_id)
            pixel_values = None
            if records[rows[0]].has_image:
                pixel_values = jnp.asarray(np.stack([records[i].pixels(model) for i in filled]))
            out = decoding.generate(
                cfg,
                model.params,
                model.lora,
                jnp.asarray(input_ids),
                pixel_values,
                jnp.asarray(mask),
                jax.random.key(seed),
                max_new_tokens=max_new_tokens,
                max_length=length + max_new_tokens,
                temperature=temperature,
                top_p=top_p,
            )
            out = jax.device_get(out)
            for row, i in enumerate(rows):
                results[i] = _result(model, records[i], encoded[i], length, out, row)
            bar.update(len(rows))
    bar.close()
    return results


def _result(model: ChatModel, record: Record, ids: np.ndarray, padded: int, out, row: int) -> dict:
    n = int(out.lengths[row])
    tokens = np.asarray(out.tokens[row, :n], np.int32)
    pose = out.pose
    poses = [
        # generate counts positions in the left-padded sequence; report them in the real one.
        _pose_json(pose.rotmat[row, p], pose.rot6d[row, p], int(pose.positions[row, p]) - (padded - len(ids)))
        for p in range(pose.valid.shape[1])
        if pose.valid[row, p]
    ]
    return {
        "id": record.id,
        "prompt": record.prompt,
        "image": record.image,
        "answer": model.decode(tokens),
        "tokens": tokens.tolist(),
        "stop_reason": "eos" if n and tokens[-1] == model.config.eos_token_id else "max_new_tokens",
        "poses": poses,
    }


def write_results(path: str, results: list[dict]) -> str:
    """One JSON object per line; float32 values are written exactly (as float64 reprs)."""
    target = paths.path(paths.absolute(path))  # local or gs://
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(result) + "\n" for result in results), encoding="utf-8")
    return path
