"""How the text around `<POSE>` is split into tokens, the same in training, generation and evaluation.

The released ChatPose adds its pose token `[SEG]` with `tokenizer.add_tokens("[SEG]")` to LLaVA's
slow (sentencepiece) LLaMA tokenizer, whose `tokenize` (transformers 4.3x) strips the text on
both sides of such a non-special added token: "Sure, it is [SEG]." becomes "Sure, it is" +
[SEG] + ".", i.e. "▁Sure" "," "▁it" "▁is" [SEG] and the full stop, with no lone "▁" before the
pose token, so the state that predicts `[SEG]` (the one the pose head reads) is the one at "▁is".

A fast tokenizer with `<POSE>` as a plain added token keeps the space as a lone "▁" piece
("▁is" "▁" "<POSE>"), which moves the state the pose head reads one position and makes a prompt
ending in "... it is" (the teacher-forced `--force_pose_answer` prefix) stop before that "▁".
`strip_space_before_pose` gives `<POSE>` `lstrip`, so the space before it belongs to the token:
"▁is" "<POSE>", as the release splits it, and the forced prefix " Sure, it is" ends exactly where
training's answer tokens reach `<POSE>`.
"""

from __future__ import annotations

import json

from tokenizers import Tokenizer

POSE_TOKEN = "<POSE>"


def strip_space_before_pose(tokenizer, token: str = POSE_TOKEN):
    """Makes `token` (an added token of the fast tokenizer `tokenizer`) absorb the space on its left.

    Changes `tokenizer` in place (and returns it); a tokenizer whose token already strips, or that
    lacks it, is left as it is. Saved with `save_pretrained`, the flag stays.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer; {token} needs one")
    state = json.loads(backend.to_str())
    entries = [e for e in state.get("added_tokens", []) if e["content"] == token and not e["lstrip"]]
    if not entries:
        return tokenizer
    for entry in entries:
        entry["lstrip"] = True
    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(state))
    return tokenizer
