"""The split around <POSE>: as the release's slow tokenizer splits [SEG], and the same in training,
generation and the teacher-forced evaluation prefix."""

import dataclasses

import numpy as np
import pytest
import sentencepiece as spm

from chatpose_jax.inference import prompt
from data_pipelines import conversation, templates
from data_pipelines.tokenizer import load_tokenizer, make_synthetic_tokenizer

ANSWER = "Sure, it is <POSE>."


def _tiny_config(**fields):
    """A model config with the synthetic tokenizer's ids (the model itself is never run here)."""
    from chatpose_jax.model.config import ModelConfig, TextConfig, VisionConfig

    vision = VisionConfig(image_size=28, patch_size=14, hidden_size=8, intermediate_size=8, num_layers=1, num_heads=1)
    text = TextConfig(vocab_size=1024, hidden_size=8, intermediate_size=8, num_layers=1, num_heads=1, num_kv_heads=1)
    return ModelConfig(vision=vision, text=text, image_token_id=1000, pose_token_id=1002, pad_token_id=1001, **fields)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    make_synthetic_tokenizer(
        folder, [conversation.SYSTEM_PROMPT, "USER: ASSISTANT:", *templates.all_template_texts()] * 20
    )
    return folder


def _released_slow_pieces(model_file: str, text: str, token: str = "[SEG]") -> list[str]:
    """The release's slow LLaMA tokenizer (transformers 4.3x `PreTrainedTokenizer.tokenize`) on text with
    the non-special added token `token`: the text is cut at the token, each side stripped next to it
    (its default for added tokens without their own strip flags), each part encoded by sentencepiece."""
    sp = spm.SentencePieceProcessor(model_file=model_file)
    before, _, after = text.partition(token)
    pieces = sp.encode(before.rstrip(), out_type=str) + [token]
    return pieces + (sp.encode(after.lstrip(), out_type=str) if after.strip() else [])


def test_no_lone_space_piece_before_pose_as_in_the_release(folder):
    tokenizer = load_tokenizer(folder)
    ours = tokenizer.convert_ids_to_tokens(tokenizer(ANSWER, add_special_tokens=False)["input_ids"])
    released = _released_slow_pieces(str(folder / "tokenizer.model"), ANSWER.replace("<POSE>", "[SEG]"))
    cut = released.index("[SEG]")
    assert ours[: ours.index("<POSE>")] == released[:cut] == ["▁Sure", ",", "▁it", "▁is"], (ours, released)
    for answer in templates.POSE_ANSWERS:  # every Table 2 answer: nothing but the pose token after the words
        pieces = tokenizer.convert_ids_to_tokens(tokenizer(answer, add_special_tokens=False)["input_ids"])
        assert "▁" not in pieces, f"{answer!r} splits into {pieces}"


def test_transformers_slow_sentencepiece_tokenizer_splits_seg_as_ours_splits_pose(folder):
    """The release's tokenizer kind, run: transformers' sentencepiece backend (the slow LLaMA
    tokenizer's) with [SEG] added by add_tokens, as LISA adds it."""
    from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

    class SlowLlamaTokenizer(SentencePieceBackend):
        vocab_files_names = {"vocab_file": "tokenizer.model"}

    slow = SlowLlamaTokenizer(
        vocab_file=str(folder / "tokenizer.model"), legacy=True, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    slow.add_tokens(["[SEG]"])
    released = slow.tokenize(ANSWER.replace("<POSE>", "[SEG]"))
    tokenizer = load_tokenizer(folder)
    ours = tokenizer.convert_ids_to_tokens(tokenizer(ANSWER, add_special_tokens=False)["input_ids"])
    assert released[: released.index("[SEG]")] == ours[: ours.index("<POSE>")] == ["▁Sure", ",", "▁it", "▁is"]


def test_training_generation_and_forced_prefix_agree(folder):
    from chatpose_jax.eval.mesh_decode import FORCED_ANSWER_PREFIX
    from chatpose_jax.inference.session import load_chat_tokenizer

    tokenizer = load_tokenizer(folder)
    question = templates.text_to_pose_question(templates.TEXT_TO_POSE_QUESTIONS[2], "Arms up, knees bent.")
    enc = conversation.encode(tokenizer, [[(question, ANSWER)]], num_image_tokens=4, max_text_length=200)
    n = int(enc.attention_mask[0].sum())
    train_ids = enc.input_ids[0, :n]
    pose_at = int(np.flatnonzero(train_ids == 1002)[0])
    assert enc.labels[0, pose_at] == 1002, "<POSE> is learned"
    # chat loads the tokenizer its own way; it splits alike.
    config = _tiny_config()
    chat_tokenizer = load_chat_tokenizer(str(folder), config)
    generation = chat_tokenizer(prompt.generation_prompt([], question))["input_ids"]
    answer_start = int(np.flatnonzero(enc.labels[0] != -100)[0])
    assert generation == train_ids[:answer_start].tolist(), "generation starts from training's prompt tokens"
    forced = chat_tokenizer(prompt.generation_prompt([], question) + FORCED_ANSWER_PREFIX)["input_ids"]
    assert forced == train_ids[:pose_at].tolist(), (
        "the teacher-forced prefix must end where training's answer reaches <POSE>: "
        f"{chat_tokenizer.convert_ids_to_tokens(forced[-3:])} vs {chat_tokenizer.convert_ids_to_tokens(train_ids[pose_at - 3 : pose_at + 1])}"
    )


def test_images_wrapped_in_start_and_end_tokens_alike_in_training_chat_and_forced_evaluation(folder):
    from chatpose_jax.eval.mesh_decode import FORCED_ANSWER_PREFIX
    from chatpose_jax.inference.session import ChatModel, load_chat_tokenizer

    config = _tiny_config(mm_use_im_start_end=True)
    tokenizer = load_tokenizer(folder, image_start_end=True)
    start, end = tokenizer.convert_tokens_to_ids(["<im_start>", "<im_end>"])
    assert (start, end) == (1003, 1004), "appended after <POSE>, start first, as LISA adds them"
    question = templates.IMAGE_TO_POSE_QUESTIONS[1]
    enc = conversation.encode(tokenizer, [[(f"<image>\n{question}", ANSWER)]], 4, 200, image_start_end=True)
    ids = enc.input_ids[0, : int(enc.attention_mask[0].sum())]
    at = int(np.flatnonzero(ids == start)[0])
    assert ids[at : at + 6].tolist() == [start, 1000, 1000, 1000, 1000, end], ids[at : at + 6]
    assert (enc.labels[0, at : at + 6] == -100).all(), "the wrapped image is not learned"
    model = ChatModel(config, {}, None, load_chat_tokenizer(str(folder), config))
    chat = model.encode([], prompt.user_turn(question, True))
    answer_start = int(np.flatnonzero(enc.labels[0] != -100)[0])
    assert chat.tolist() == ids[:answer_start].tolist(), "chat writes the image as training does"
    forced = model.encode_text(prompt.generation_prompt([], prompt.user_turn(question, True)) + FORCED_ANSWER_PREFIX)
    assert forced.tolist() == ids[: int(np.flatnonzero(ids == 1002)[0])].tolist()
    plain = ChatModel(dataclasses.replace(config, mm_use_im_start_end=False), {}, None, model.tokenizer)
    assert start not in plain.encode([], prompt.user_turn(question, True)), "LLaVA-1.5's own checkpoints do not wrap"


def test_imported_release_tokenizer_splits_as_the_release(tmp_path, folder):
    """[SEG] added as LISA adds it (a plain added token), renamed <POSE> by the import: no lone space."""
    from transformers import AutoTokenizer

    from chatpose_jax.convert.chatpose_torch import _released_tokenizer

    release = tmp_path / "release"
    base = AutoTokenizer.from_pretrained(str(folder))
    base.save_pretrained(str(release))
    release_tokenizer = AutoTokenizer.from_pretrained(str(release))
    release_tokenizer.add_tokens(["[SEG]"])
    release_tokenizer.save_pretrained(str(release))
    imported, _ = _released_tokenizer(str(release), str(tmp_path / "imported"))
    pieces = imported.convert_ids_to_tokens(imported(ANSWER, add_special_tokens=False)["input_ids"])
    assert pieces[: pieces.index("<POSE>")] == ["▁Sure", ",", "▁it", "▁is"], pieces
