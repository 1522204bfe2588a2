"""The inference prompt is what training sees: same text as data_pipelines' Vicuna v1, same tokens."""

import pytest

from chatpose_jax.inference import prompt
from tests import chat_fixtures

HISTORY = [
    ("<image>\nCan you predict the SMPL pose of the person in this image?", "Sure, it is <POSE>."),
    ("Is the person sitting?", "No, the person stands with arms raised."),
]


@pytest.mark.parametrize("turns", [0, 1, 2])
def test_generation_prompt_equals_the_training_text_up_to_the_answer(turns):
    from data_pipelines import conversation

    history = HISTORY[:turns]
    question = "What is the pose of the person? Please respond with the SMPL pose."
    text, spans = conversation.vicuna_prompt([*history, (question, "")])
    assert prompt.SYSTEM_PROMPT == conversation.SYSTEM_PROMPT
    expected = text[: spans[-1][0]].rstrip(" ")
    assert prompt.generation_prompt(history, question) == expected


def test_prompt_tokens_are_a_prefix_of_the_training_tokens(tmp_path_factory):
    from transformers import AutoTokenizer

    from data_pipelines import conversation

    tokenizer = AutoTokenizer.from_pretrained(chat_fixtures.tiny_tokenizer(tmp_path_factory))
    question = prompt.user_turn("Can you predict the SMPL pose of the person in this image?", with_image=True)
    answer = "Sure, it is <POSE>."
    train_text, _ = conversation.vicuna_prompt([*HISTORY[:1], (question, answer)])
    train_ids = tokenizer(train_text)["input_ids"]
    ids = tokenizer(prompt.generation_prompt(HISTORY[:1], question))["input_ids"]
    assert train_ids[: len(ids)] == ids, f"prompt tokens {ids} are not a prefix of training tokens {train_ids}"
    # The answer the model must produce starts right after the prompt, space glued to its first piece;
    # <POSE> holds the space before it (no lone "▁" piece, as the release's slow tokenizer splits it).
    assert tokenizer.decode(train_ids[len(ids) :]) == answer.replace(" <POSE>", "<POSE>") + "</s>"


def test_user_turn_puts_the_image_first():
    assert prompt.user_turn("  hello ", with_image=True) == "<image>\nhello"
    assert prompt.user_turn("hello", with_image=False) == "hello"


def test_inference_runs_without_tensorflow_or_the_data_pipeline():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import chatpose_jax.inference.session, chatpose_jax.inference.predict, chatpose_jax.inference.terminal\n"
        "import chatpose_jax.cli.chat\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets', 'data_pipelines')]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
