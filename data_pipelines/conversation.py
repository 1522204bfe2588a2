"""Conversations in LLaVA's Vicuna v1 template, tokenised with the label mask ChatPose trains on.

Template ("llava_v1"): `SYSTEM USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>...`, the
system prompt followed by " ", each user turn by " ", each assistant answer by "</s>". The
prompt is tokenised as one string (so training sees exactly the tokens inference sees), with
the tokenizer's `<s>` in front. A token is learned (label = its id) when its characters overlap
an assistant answer (the answer text and its closing `</s>`, `<POSE>` included); every other
token (system, user turns, role names, image tokens, padding) has label -100.

`<image>` is one added token in the text; in the ids it is repeated once per image token (the
Hugging Face LLaVA convention), so the model splices the projected patches over those positions.
Truncation: a sample keeps at most `max_text_length` tokens that are not image tokens (or, with
`length_counts_image`, at most `max_text_length` positions, its image's included, as LISA's
`model_max_length`); when the cut would remove a `<POSE>` the sample is dropped instead (its pose
target would lose its token).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from chatpose_jax.image_tokens import wrap_images
from data_pipelines import keypoint_text, templates
from data_pipelines.tokenizer import IMAGE_TOKEN, special_ids

IGNORE_INDEX = -100
SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
USER, ASSISTANT = "USER", "ASSISTANT"
EOS_TEXT = "</s>"

# What a sample's conversation is made of (an int field of every pipeline element).
TEXT_TO_POSE, IMAGE_TO_POSE, VQA, IMAGE_TO_KEYPOINTS = 0, 1, 2, 3

Turns = list[tuple[str, str]]  # (user text, assistant answer) per round


def vicuna_prompt(turns: Sequence[tuple[str, str]], system: str = SYSTEM_PROMPT) -> tuple[str, list[tuple[int, int]]]:
    """The Vicuna v1 prompt of `turns` and the character spans [start, end) of each answer + `</s>`."""
    text = system + " "
    spans = []
    for user, answer in turns:
        text += f"{USER}: {user} {ASSISTANT}: "
        start = len(text)
        text += answer + EOS_TEXT
        spans.append((start, len(text)))
    return text, spans


def make_turns(
    kind: int,
    texts: Sequence[str],
    rng: np.random.Generator,
    has_image: bool = True,
    template_set: templates.TemplateSet | None = None,
    num_human: int = 0,
) -> Turns:
    """The conversation of one sample.

    kind TEXT_TO_POSE: `texts` are the pose's descriptions, the first `num_human` written by people
    (PoseScript), the rest automatic; one is drawn (`pick_caption`), put in a Table 3 question,
    and answered with a Table 2 answer. IMAGE_TO_POSE: `<image>` and a Table 1
    question, a Table 2 answer; when `texts` holds descriptions (RPE), one is drawn and asked
    about in RPE's fixed format instead ("{description}, can you give the SMPL pose of this
    person?" answered "Sure, it is <POSE>."). VQA: `texts` alternate human / assistant turns
    (LLaVA JSON order); with an image, `<image>` is moved to the front of the first turn, as LLaVA
    does. IMAGE_TO_KEYPOINTS: `<image>` and the supplement's keypoint question (`keypoint_text`),
    answered by `texts[0]`, the person's visible keypoints written out (the pipeline writes it from
    the crop). template_set: the supplement's tables by default (`templates.template_set`).
    """
    t = template_set or templates.template_set()
    answer = t.answers[rng.integers(len(t.answers))]
    if kind == TEXT_TO_POSE:
        if not texts:
            raise ValueError("text-to-pose sample without a description")
        description = pick_caption(texts, num_human, rng)
        template = t.text_questions[rng.integers(len(t.text_questions))]
        return [(templates.text_to_pose_question(template, description), answer)]
    if kind == IMAGE_TO_POSE:
        if texts:
            question = templates.rpe_question(texts[rng.integers(len(texts))])
            return [(f"{IMAGE_TOKEN}\n{question}", templates.RPE_ANSWER)]
        question = t.image_questions[rng.integers(len(t.image_questions))]
        return [(f"{IMAGE_TOKEN}\n{question}", answer)]
    if kind == VQA:
        if len(texts) < 2 or len(texts) % 2:
            raise ValueError(f"VQA conversation needs human/assistant pairs; got {len(texts)} turns")
        turns = [(texts[i].replace(IMAGE_TOKEN, "").strip(), texts[i + 1].strip()) for i in range(0, len(texts), 2)]
        if has_image:
            turns[0] = (f"{IMAGE_TOKEN}\n{turns[0][0]}", turns[0][1])
        return turns
    if kind == IMAGE_TO_KEYPOINTS:
        if len(texts) != 1 or not texts[0]:
            raise ValueError(f"keypoint conversation needs its answer as the one text; got {len(texts)} texts")
        return [(keypoint_text.keypoints_question(), texts[0])]
    raise ValueError(f"unknown conversation kind {kind}")


def pick_caption(texts: Sequence[str], num_human: int, rng: np.random.Generator) -> str:
    """ChatPose's PoseScript caption: one automatic caption at random; where a human one exists, then
    a human one or that automatic one with equal odds. texts: the `num_human` human captions first."""
    human, automatic = list(texts[:num_human]), list(texts[num_human:])
    if not automatic:
        return human[rng.integers(len(human))]
    caption = automatic[rng.integers(len(automatic))]
    if human and rng.random() < 0.5:
        caption = human[rng.integers(len(human))]
    return caption


@dataclasses.dataclass(frozen=True)
class Encoded:
    """Tokenised samples, right-padded to `length` columns.

    input_ids, labels, attention_mask: int32[N, length]; keep: bool[N] (False = dropped, see
    `drop_reason`); num_tokens: int32[N] real tokens; drop_reason: list of '' | 'pose_truncated'.
    """

    input_ids: np.ndarray
    labels: np.ndarray
    attention_mask: np.ndarray
    keep: np.ndarray
    num_tokens: np.ndarray
    drop_reason: list[str]


def encode(
    tokenizer,
    conversations: Sequence[Turns],
    num_image_tokens: int,
    max_text_length: int,
    length: int | None = None,
    length_counts_image: bool = False,
    image_start_end: bool = False,
) -> Encoded:
    """Tokenises conversations (one batched tokenizer call) into ids, labels and masks.

    Args:
      tokenizer: a Hugging Face fast tokenizer with `<image>`, `<pad>`, `<POSE>` (see tokenizer.py).
      conversations: per sample, its (user, answer) rounds from `make_turns`.
      num_image_tokens: positions one `<image>` expands to (576 for CLIP ViT-L/14-336).
      max_text_length: most tokens per sample that are not image tokens; with `length_counts_image`,
        most positions per sample, image tokens included (LISA's `model_max_length`): a sample with
        an image keeps at most max_text_length - num_image_tokens text tokens.
      length: columns of the output (default max_text_length, plus num_image_tokens unless
        length_counts_image).
      image_start_end: write each image as `<im_start><image><im_end>` (the model's
        `mm_use_im_start_end`; the tokenizer must hold both tokens).
    """
    ids_of = special_ids(tokenizer)
    image_id, pose_id, pad_id = ids_of["image"], ids_of["pose"], ids_of["pad"]
    if length is None:
        length = max_text_length + (0 if length_counts_image else num_image_tokens)
    conversations = [[(wrap_images(u, image_start_end), a) for u, a in turns] for turns in conversations]
    prompts, spans = zip(*(vicuna_prompt(turns) for turns in conversations), strict=True) if conversations else ((), ())
    enc = tokenizer(list(prompts), return_offsets_mapping=True, add_special_tokens=True)
    n = len(prompts)
    input_ids = np.full((n, length), pad_id, np.int32)
    labels = np.full((n, length), IGNORE_INDEX, np.int32)
    attention_mask = np.zeros((n, length), np.int32)
    keep = np.ones(n, bool)
    num_tokens = np.zeros(n, np.int32)
    reasons = [""] * n
    for i in range(n):
        ids = np.asarray(enc["input_ids"][i], np.int32)
        offsets = np.asarray(enc["offset_mapping"][i], np.int64).reshape(-1, 2)
        learned = np.zeros(len(ids), bool)
        for start, end in spans[i]:
            learned |= (offsets[:, 1] > start) & (offsets[:, 0] < end)
        learned &= ids != image_id
        is_image = ids == image_id
        budget = max_text_length - (int(is_image.sum()) * num_image_tokens if length_counts_image else 0)
        # Truncate on text tokens: cumulative count of non-image tokens.
        text_count = np.cumsum(~is_image)
        fits = text_count <= budget
        if not fits.all():
            if np.any(ids[~fits] == pose_id):
                keep[i], reasons[i] = False, "pose_truncated"
                continue
            ids, learned, is_image = ids[fits], learned[fits], is_image[fits]
        repeats = np.where(is_image, num_image_tokens, 1)
        ids = np.repeat(ids, repeats)
        learned = np.repeat(learned, repeats)
        if len(ids) > length:
            raise ValueError(
                f"sample of {len(ids)} tokens does not fit length={length} (max_text_length={max_text_length}, "
                f"num_image_tokens={num_image_tokens}, {int(is_image.sum())} images)"
            )
        input_ids[i, : len(ids)] = ids
        labels[i, : len(ids)] = np.where(learned, ids, IGNORE_INDEX)
        attention_mask[i, : len(ids)] = 1
        num_tokens[i] = len(ids)
    return Encoded(input_ids, labels, attention_mask, keep, num_tokens, reasons)
