"""Question and answer templates of ChatPose's supplement (Tables 1-3), in their spirit.

Table 1: questions asking for the pose of the person in an image (image-to-pose).
Table 2: answers that hand over the pose as the `<POSE>` token.
Table 3: questions asking for the pose described by a text, with a `{description}` slot
(text-to-pose). Each training sample draws one question and one answer uniformly at random.
"""

from __future__ import annotations

IMAGE_TO_POSE_QUESTIONS = (
    "Can you predict the SMPL pose of the person in this image?",
    "What is the SMPL pose of the person in this image?",
    "Please estimate the 3D pose of the person in the picture.",
    "Could you tell me the body pose of the person in this image?",
    "What is the pose of the person in this photo? Please respond with the SMPL pose.",
    "Estimate the SMPL parameters of the human in this image.",
    "There is a person in the image. Can you give me their 3D body pose?",
    "Please output the SMPL pose of the person shown here.",
    "How is the person in this image posed? Answer with the SMPL pose.",
    "Give me the 3D human pose of the person in the image.",
)

POSE_ANSWERS = (
    "Sure, it is <POSE>.",
    "The SMPL pose of this person is <POSE>.",
    "Here is the pose: <POSE>.",
    "Sure, the 3D pose is <POSE>.",
    "The person's pose is <POSE>.",
    "Certainly, <POSE>.",
    "It is <POSE>.",
    "The body pose is <POSE>.",
)

TEXT_TO_POSE_QUESTIONS = (
    "Could you generate the SMPL pose of a person given this description: {description}",
    "Please output the SMPL pose described as follows: {description}",
    "{description} Can you give me the SMPL pose of this person?",
    "Generate the 3D body pose that matches this description. {description}",
    "What is the SMPL pose of a person who is described like this: {description}",
    "Here is a description of a pose: {description} Please give me the pose.",
    "Can you create the SMPL pose for the following description? {description}",
    "Show me the 3D human pose for this text: {description}",
)

DESCRIPTION_SLOT = "{description}"


def text_to_pose_question(template: str, description: str) -> str:
    """Fills the `{description}` slot (plain replacement: descriptions may hold braces)."""
    if DESCRIPTION_SLOT not in template:
        raise ValueError(f"text-to-pose template without {DESCRIPTION_SLOT}: {template!r}")
    return template.replace(DESCRIPTION_SLOT, description.strip())


def all_template_texts() -> list[str]:
    """Every template, for training a tokenizer on them."""
    return [*IMAGE_TO_POSE_QUESTIONS, *POSE_ANSWERS, *(t.replace(DESCRIPTION_SLOT, "") for t in TEXT_TO_POSE_QUESTIONS)]
