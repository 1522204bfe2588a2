"""The Vicuna v1 ("llava_v1") generation prompt, as text: what training sees, up to the answer.

Training tokenises `SYSTEM USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>...` (see
data_pipelines/conversation.py). A generation prompt is the same text for the history turns
plus the new user turn, cut where the new answer would start; it ends in "ASSISTANT:" without
the trailing space, because LLaMA's tokenizer glues that space to the answer's first piece
("▁Sure"), so the model generates it. Pure Python: no tokenizer, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
USER, ASSISTANT = "USER", "ASSISTANT"
EOS_TEXT = "</s>"
IMAGE_TOKEN = "<image>"
POSE_TOKEN = "<POSE>"


def user_turn(text: str, with_image: bool) -> str:
    """A user message; an attached image goes first as `<image>` and a newline, as LLaVA places it."""
    text = text.strip()
    return f"{IMAGE_TOKEN}\n{text}" if with_image else text


def generation_prompt(history: Sequence[tuple[str, str]], question: str, system: str = SYSTEM_PROMPT) -> str:
    """The prompt text for answering `question` after the (user, answer) rounds of `history`.

    Equals data_pipelines.conversation.vicuna_prompt(history + [(question, "")])'s text up to the
    last answer, without its trailing space.
    """
    text = system + " "
    for user, answer in history:
        text += f"{USER}: {user} {ASSISTANT}: {answer}{EOS_TEXT}"
    return text + f"{USER}: {question} {ASSISTANT}:"
