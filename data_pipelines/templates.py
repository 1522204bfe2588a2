"""Question and answer templates of ChatPose's supplement (Tables 1-3), verbatim, and the RPE prompt.

Feng et al., "ChatPose: Chatting about 3D Human Pose" (CVPR 2024), supplementary material:
Table 1: questions asking for the pose of the person in an image (image-to-pose).
Table 2: answers that hand over the pose as the `<POSE>` token (the release's `[SEG]`).
Table 3: questions asking for the pose described by a text, with a `{description}` slot
(text-to-pose). Each training sample draws one question and one answer uniformly at random.
RPE (the reasoning-based benchmark) asks one fixed question after its description of the person
and answers "Sure, it is <POSE>.".

Our own paraphrases (`EXTRA_*`) are used only when a config asks for them (`data.extra_templates`).
"""

from __future__ import annotations

import dataclasses

DESCRIPTION_SLOT = "{description}"

IMAGE_TO_POSE_QUESTIONS = (  # Table 1
    "Can you predict the SMPL pose of the person in this image?",
    "There is a person in the middle of the image, please output this person's SMPL pose.",
    "What is the human pose in this image? Please respond with SMPL pose.",
    "What is the person doing in this image? Please output SMPL pose.",
    "There is a person in the middle of the image, use SMPL to describe the pose.",
)

POSE_ANSWERS = (  # Table 2
    "The SMPL pose is <POSE>.",
    "It is <POSE>.",
    "The SMPL format of this person's pose is <POSE>.",
    "Sure, it is <POSE>.",
    "Sure, the SMPL pose is <POSE>.",
    "<POSE>.",
    "The SMPL pose of the person is <POSE>.",
    "Sure, <POSE>.",
)

TEXT_TO_POSE_QUESTIONS = (  # Table 3
    "I have a word description of a person's pose, can you give the SMPL pose of this person? {description}",
    "There is a person: {description} Please output this person's SMPL pose.",
    "{description} Give the SMPL pose.",
    "What's the SMPL pose of this person? {description}",
    "Use SMPL pose to describe this person's behavior. {description}",
    "There is a person doing this: {description} Can you use SMPL pose to describe the pose?",
    "A person is described as: {description} Use the SMPL pose to reflect this.",
    "Human pose is described as words: {description} The SMPL pose is?",
    "Human pose can be described as words: {description} And it can also be described in SMPL pose format, "
    "can you output this?",
)

# RPE's fixed format: "USER:<IMAGE> {descriptions_person}, can you give the SMPL pose of this person?
# ASSISTANT: Sure, it is <POSE>."
RPE_QUESTION = "{description}, can you give the SMPL pose of this person?"
RPE_ANSWER = "Sure, it is <POSE>."

# Our paraphrases, used only with data.extra_templates.
EXTRA_IMAGE_TO_POSE_QUESTIONS = (
    "What is the SMPL pose of the person in this image?",
    "Please estimate the 3D pose of the person in the picture.",
    "Could you tell me the body pose of the person in this image?",
    "Estimate the SMPL parameters of the human in this image.",
    "There is a person in the image. Can you give me their 3D body pose?",
)
EXTRA_POSE_ANSWERS = (
    "Here is the pose: <POSE>.",
    "Sure, the 3D pose is <POSE>.",
    "The person's pose is <POSE>.",
    "Certainly, <POSE>.",
)
EXTRA_TEXT_TO_POSE_QUESTIONS = (
    "Could you generate the SMPL pose of a person given this description: {description}",
    "Please output the SMPL pose described as follows: {description}",
    "Generate the 3D body pose that matches this description. {description}",
    "Here is a description of a pose: {description} Please give me the pose.",
    "Show me the 3D human pose for this text: {description}",
)


@dataclasses.dataclass(frozen=True)
class TemplateSet:
    """The questions and answers a sample draws from."""

    image_questions: tuple[str, ...]
    answers: tuple[str, ...]
    text_questions: tuple[str, ...]


def template_set(extra: bool = False) -> TemplateSet:
    """The supplement's Tables 1-3, plus our paraphrases when `extra`."""
    if not extra:
        return TemplateSet(IMAGE_TO_POSE_QUESTIONS, POSE_ANSWERS, TEXT_TO_POSE_QUESTIONS)
    return TemplateSet(
        IMAGE_TO_POSE_QUESTIONS + EXTRA_IMAGE_TO_POSE_QUESTIONS,
        POSE_ANSWERS + EXTRA_POSE_ANSWERS,
        TEXT_TO_POSE_QUESTIONS + EXTRA_TEXT_TO_POSE_QUESTIONS,
    )


def rpe_question(description: str) -> str:
    """RPE's fixed question about the person `description` names (a final full stop dropped before the comma)."""
    return RPE_QUESTION.replace(DESCRIPTION_SLOT, description.strip().rstrip("."))


def text_to_pose_question(template: str, description: str) -> str:
    """Fills the `{description}` slot (plain replacement: descriptions may hold braces)."""
    if DESCRIPTION_SLOT not in template:
        raise ValueError(f"text-to-pose template without {DESCRIPTION_SLOT}: {template!r}")
    return template.replace(DESCRIPTION_SLOT, description.strip())


def all_template_texts() -> list[str]:
    """Every template (the supplement's, ours and RPE's), for training a tokenizer on them."""
    t = template_set(extra=True)
    questions = (*t.text_questions, RPE_QUESTION)
    return [*t.image_questions, *t.answers, RPE_ANSWER, *(q.replace(DESCRIPTION_SLOT, "") for q in questions)]
