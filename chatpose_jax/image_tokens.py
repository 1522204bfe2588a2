"""LLaVA's `mm_use_im_start_end`: the image placeholder wrapped as `<im_start><image><im_end>`.

LISA's training code, and so ChatPose's, wraps the image this way (`use_mm_start_end`, on by
default in LISA's train_ds; its chat CLI builds the same prompt) and adds `<im_start>` and
`<im_end>` to the tokenizer; a checkpoint's config says which (`mm_use_im_start_end`; LLaVA-1.5's
own checkpoints say False). `ModelConfig.mm_use_im_start_end` carries the flag; training data,
chat and evaluation all write the placeholder through `image_placeholder`.
"""

from __future__ import annotations

import re

IMAGE_TOKEN = "<image>"
IM_START = "<im_start>"
IM_END = "<im_end>"


def image_placeholder(start_end: bool) -> str:
    """The text that stands for one image: `<image>`, or `<im_start><image><im_end>`."""
    return f"{IM_START}{IMAGE_TOKEN}{IM_END}" if start_end else IMAGE_TOKEN


def wrap_images(text: str, start_end: bool) -> str:
    """`text` with each bare `<image>` wrapped when `start_end` (one already wrapped is left alone)."""
    if not start_end:
        return text
    bare = rf"(?<!{re.escape(IM_START)}){re.escape(IMAGE_TOKEN)}(?!{re.escape(IM_END)})"
    return re.sub(bare, image_placeholder(True), text)


def add_start_end_tokens(tokenizer) -> tuple[int, int]:
    """Adds `<im_start>`, `<im_end>` (special, in that order, as LISA does) when missing; returns their ids."""
    missing = [t for t in (IM_START, IM_END) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    return tokenizer.convert_tokens_to_ids(IM_START), tokenizer.convert_tokens_to_ids(IM_END)
