"""The batch layout: the only seam between the data pipeline and the model.

A batch is a dict of numpy arrays (per host) or sharded `jax.Array`s (global), with global batch
B and a fixed length T per batch (one of a few bucket lengths):

- `input_ids` int32[B, T]: tokens; the image placeholder id repeated once per image token
  (Hugging Face convention); right-padded with pad_token_id.
- `attention_mask` int32[B, T]: 1 for real tokens.
- `labels` int32[B, T]: = input_ids on assistant-answer tokens (including the `</s>` closing
  each answer and `<POSE>`), -100 elsewhere (system, user turns, image tokens, padding). Not
  shifted (the loss shifts).
- `pixel_values` float32[B, 3, H, W]: CLIP-normalised; zeros for text-only samples.
- `has_image` bool[B].
- `pose_global_orient` float32[B, P, 3], `pose_body_pose` float32[B, P, 69] (axis-angle, SMPL,
  root in the OpenCV camera frame, x right, y down, z away, as ChatPose trains), `pose_betas` float32[B, P, 10], `pose_mask`
  bool[B, P]: target poses in the order of the `<POSE>` tokens in the sequence,
  P = model.pose_head.max_poses (1 by default).
- `source` int32[B]: index of the dataset in DataConfig.datasets.

Packed rows (`data.pack`): a row holds several conversations one after the other, then padding.
Two more keys say where each lies, and the other keys change meaning per row:
- `segment_ids` int32[B, T]: 1, 2, ... per conversation of the row, 0 at padding. No token
  attends across conversations.
- `positions` int32[B, T]: each token's position in its own conversation (from 0; 0 at padding),
  the rotary positions.
- `pixel_values`, `has_image`: the image of the row's one image conversation (at most one a row).
- pose slots: slot p is the row's p-th `<POSE>` token; a conversation's target sits at the slot
  of its first `<POSE>`; P bounds the `<POSE>` tokens of a row.
- `source`: the dataset of the row's first conversation.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100

# name -> (dtype, shape after B; 'T' = sequence length, 'P' = poses, 'H' = image size)
LAYOUT = {
    "input_ids": (np.int32, ("T",)),
    "attention_mask": (np.int32, ("T",)),
    "labels": (np.int32, ("T",)),
    "pixel_values": (np.float32, (3, "H", "H")),
    "has_image": (np.bool_, ()),
    "pose_global_orient": (np.float32, ("P", 3)),
    "pose_body_pose": (np.float32, ("P", 69)),
    "pose_betas": (np.float32, ("P", 10)),
    "pose_mask": (np.bool_, ("P",)),
    "source": (np.int32, ()),
}
# The keys of packed batches only.
PACKED_LAYOUT = {
    "segment_ids": (np.int32, ("T",)),
    "positions": (np.int32, ("T",)),
}


def check_batch(batch: dict, image_size: int, max_poses: int) -> None:
    """Raises ValueError naming the key whose dtype or shape departs from the layout."""
    missing = sorted(set(LAYOUT) - set(batch))
    if missing:
        raise ValueError(f"batch lacks {missing}")
    b, t = batch["input_ids"].shape
    dims = {"T": t, "P": max_poses, "H": image_size}
    packed = {k: v for k, v in PACKED_LAYOUT.items() if k in batch}
    if packed and len(packed) != len(PACKED_LAYOUT):
        raise ValueError(f"a packed batch holds {sorted(PACKED_LAYOUT)}, this one only {sorted(packed)}")
    for key, (dtype, shape) in {**LAYOUT, **packed}.items():
        want = (b, *(dims.get(d, d) for d in shape))
        value = batch[key]
        if tuple(value.shape) != want or np.dtype(value.dtype) != np.dtype(dtype):
            raise ValueError(f"batch[{key!r}] is {value.dtype}{tuple(value.shape)}; expected {np.dtype(dtype)}{want}")
