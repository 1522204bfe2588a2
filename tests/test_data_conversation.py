"""Tokenizer, Vicuna v1 prompts and label masks against a plain-Python reference."""

import itertools

import numpy as np
import pytest

from data_pipelines import conversation, templates
from data_pipelines.tokenizer import load_tokenizer, make_synthetic_tokenizer

DESCRIPTIONS = [
    "The person is leaning forward. The left elbow is bent and the right knee is straight.",
    "Someone stands upright, with left hand up over the head, feet wide apart.",
]
VQA = ["<image>\nWhat colour is the background?", "The background is blue.", "Is the person facing the camera?", "No."]
NUM_IMAGE_TOKENS = 5


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    corpus = [conversation.SYSTEM_PROMPT, "USER: ASSISTANT:", *templates.all_template_texts(), *DESCRIPTIONS, *VQA] * 20
    folder = tmp_path_factory.mktemp("tokenizer")
    make_synthetic_tokenizer(folder, corpus)
    return load_tokenizer(folder)


def test_synthetic_tokenizer_reloads_with_special_ids(tokenizer, tmp_path_factory):
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    got = {t: again.convert_tokens_to_ids(t) for t in ("<unk>", "<s>", "</s>", "<image>", "<pad>", "<POSE>")}
    assert got == {"<unk>": 0, "<s>": 1, "</s>": 2, "<image>": 1000, "<pad>": 1001, "<POSE>": 1002}, got
    assert len(again) == 1003
    ids = again("a <POSE>.</s>")["input_ids"]
    assert ids[0] == 1 and 1002 in ids and ids[-1] == 2, f"<s> first, <POSE> and </s> single tokens: {ids}"


def _reference(tokenizer, turns, num_image_tokens, max_text_length):
    """Plain Python: prompt by string concatenation, characters of each piece walked along the text."""
    text = conversation.SYSTEM_PROMPT + " "
    spans = []
    for user, answer in turns:
        text += "USER: " + user + " ASSISTANT: "
        spans.append((len(text), len(text) + len(answer) + 4))
        text += answer + "</s>"
    ids = tokenizer(text)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    specials = set(tokenizer.all_special_tokens) | {"<image>", "<POSE>", "<pad>"}
    pos, learned = 0, []
    for i, piece in enumerate(pieces):
        if i == 0 and piece == "<s>":
            learned.append(False)
            continue
        if piece in specials:
            s = piece
            if piece == "<POSE>" and text[pos] == " ":
                pos += 1  # <POSE> takes the space before it (chatpose_jax.pose_token)
        elif piece.startswith("<0x") and piece.endswith(">"):
            s = chr(int(piece[3:-1], 16))
        else:
            s = piece.replace("\u2581", " ")
            if s.startswith(" ") and text[pos] != " ":
                s = s[1:]  # the dummy prefix of the first word
        assert text[pos : pos + len(s)] == s, f"piece {piece!r} does not match text at {pos}: {text[pos : pos + 20]!r}"
        start, end = pos, pos + len(s)
        pos = end
        learned.append(piece != "<image>" and any(end > a and start < b for a, b in spans))
    out_ids, out_labels, text_count = [], [], 0
    for tid, learn in zip(ids, learned, strict=True):
        if tid != 1000:
            text_count += 1
            if text_count > max_text_length:
                break
        for _ in range(num_image_tokens if tid == 1000 else 1):
            out_ids.append(tid)
            out_labels.append(tid if learn else -100)
    cut_pose = 1002 in [t for t in ids if t != 1000][max_text_length:]
    return out_ids, out_labels, cut_pose


def _all_conversations():
    rng = np.random.default_rng(0)
    convs = []
    for q, a in itertools.product(templates.TEXT_TO_POSE_QUESTIONS, templates.POSE_ANSWERS):
        convs.append(("text_to_pose", [(templates.text_to_pose_question(q, DESCRIPTIONS[len(convs) % 2]), a)]))
    for q, a in itertools.product(templates.IMAGE_TO_POSE_QUESTIONS, templates.POSE_ANSWERS):
        convs.append(("image_to_pose", [(f"<image>\n{q}", a)]))
    convs.append(("vqa_image", conversation.make_turns(conversation.VQA, VQA, rng, has_image=True)))
    convs.append(("vqa_text", conversation.make_turns(conversation.VQA, VQA, rng, has_image=False)))
    convs.append(("rpe", conversation.make_turns(conversation.IMAGE_TO_POSE, DESCRIPTIONS, rng)))
    return convs


@pytest.mark.parametrize("max_text_length", [512, 70])
def test_ids_and_labels_equal_plain_python_reference(tokenizer, max_text_length):
    convs = _all_conversations()
    enc = conversation.encode(tokenizer, [t for _, t in convs], NUM_IMAGE_TOKENS, max_text_length)
    for i, (kind, turns) in enumerate(convs):
        ref_ids, ref_labels, cut_pose = _reference(tokenizer, turns, NUM_IMAGE_TOKENS, max_text_length)
        if cut_pose:
            assert not enc.keep[i] and enc.drop_reason[i] == "pose_truncated", f"{kind} #{i}: cut <POSE> kept"
            continue
        assert enc.keep[i], f"{kind} #{i} dropped ({enc.drop_reason[i]})"
        n = int(enc.attention_mask[i].sum())
        assert enc.input_ids[i, :n].tolist() == ref_ids, f"{kind} #{i}: ids differ"
        assert enc.labels[i, :n].tolist() == ref_labels, f"{kind} #{i}: labels differ"
        assert (enc.labels[i, n:] == -100).all() and (enc.input_ids[i, n:] == 1001).all(), f"{kind} #{i}: padding"


def test_labels_are_the_answers_and_closing_eos(tokenizer):
    convs = _all_conversations()
    enc = conversation.encode(tokenizer, [t for _, t in convs], NUM_IMAGE_TOKENS, 512)
    for i, (kind, turns) in enumerate(convs):
        learned = enc.labels[i][enc.labels[i] != -100]
        decoded = tokenizer.decode(learned).replace(" ", "")
        expected = "".join(a + "</s>" for _, a in turns).replace(" ", "")
        assert decoded == expected, f"{kind}: learned {decoded!r}, answers {expected!r}"
        has_image = any("<image>" in u for u, _ in turns)
        assert (enc.input_ids[i] == 1000).sum() == (NUM_IMAGE_TOKENS if has_image else 0), kind
        assert enc.input_ids[i, 0] == 1 and enc.labels[i, 0] == -100, f"{kind}: <s> first and not learned"


def test_truncation_drops_only_samples_whose_pose_is_cut(tokenizer):
    long = " ".join(DESCRIPTIONS * 6)
    convs = [
        [(templates.text_to_pose_question(templates.TEXT_TO_POSE_QUESTIONS[0], long), "Sure, it is <POSE>.")],
        [("<image>\n" + long, "The background is blue.")],
    ]
    enc = conversation.encode(tokenizer, convs, NUM_IMAGE_TOKENS, max_text_length=60)
    assert enc.keep.tolist() == [False, True] and enc.drop_reason == ["pose_truncated", ""], enc.drop_reason
    assert enc.attention_mask[1].sum() == 60 + NUM_IMAGE_TOKENS, "60 text tokens plus the image tokens"
    assert enc.input_ids.shape[1] == 60 + NUM_IMAGE_TOKENS


# The supplement's tables as Feng et al. (CVPR 2024, supplementary material) print them.
SUPPLEMENT_TABLE_1 = [
    "Can you predict the SMPL pose of the person in this image?",
    "There is a person in the middle of the image, please output this person's SMPL pose.",
    "What is the human pose in this image? Please respond with SMPL pose.",
    "What is the person doing in this image? Please output SMPL pose.",
    "There is a person in the middle of the image, use SMPL to describe the pose.",
]
SUPPLEMENT_TABLE_2 = [
    "The SMPL pose is <POSE>.", "It is <POSE>.", "The SMPL format of this person's pose is <POSE>.",
    "Sure, it is <POSE>.", "Sure, the SMPL pose is <POSE>.", "<POSE>.", "The SMPL pose of the person is <POSE>.",
    "Sure, <POSE>.",
]  # fmt: skip
SUPPLEMENT_TABLE_3 = [
    "I have a word description of a person's pose, can you give the SMPL pose of this person? {description}",
    "There is a person: {description} Please output this person's SMPL pose.",
    "{description} Give the SMPL pose.",
    "What's the SMPL pose of this person? {description}",
    "Use SMPL pose to describe this person's behavior. {description}",
    "There is a person doing this: {description} Can you use SMPL pose to describe the pose?",
    "A person is described as: {description} Use the SMPL pose to reflect this.",
    "Human pose is described as words: {description} The SMPL pose is?",
    "Human pose can be described as words: {description} And it can also be described in SMPL pose format, can you output this?",
]


def _drawn(kind, texts, extra, n=600):
    t = templates.template_set(extra)
    return [conversation.make_turns(kind, texts, np.random.default_rng(i), True, t)[0] for i in range(n)]


def test_samples_draw_exactly_the_supplements_templates_unless_a_config_adds_ours():
    desc = DESCRIPTIONS[0]
    text = _drawn(conversation.TEXT_TO_POSE, [desc], extra=False)
    assert {q for q, _ in text} == {q.replace("{description}", desc) for q in SUPPLEMENT_TABLE_3}
    assert {a for _, a in text} == set(SUPPLEMENT_TABLE_2)
    image = _drawn(conversation.IMAGE_TO_POSE, [], extra=False)
    assert {q for q, _ in image} == {"<image>\n" + q for q in SUPPLEMENT_TABLE_1}
    assert {a for _, a in image} == set(SUPPLEMENT_TABLE_2)
    extra = _drawn(conversation.TEXT_TO_POSE, [desc], extra=True)
    ours = {q for q, _ in extra} - {q.replace("{description}", desc) for q in SUPPLEMENT_TABLE_3}
    assert len(ours) == len(templates.EXTRA_TEXT_TO_POSE_QUESTIONS), "data.extra_templates adds our paraphrases"


def test_rpe_samples_use_the_benchmarks_fixed_question_and_answer():
    (question, answer) = conversation.make_turns(
        conversation.IMAGE_TO_POSE, ["The man in the red shirt."], np.random.default_rng(0)
    )[0]
    assert question == "<image>\nThe man in the red shirt, can you give the SMPL pose of this person?"
    assert answer == "Sure, it is <POSE>."
    from chatpose_jax.eval.benchmarks import question_for

    assert question_for("rpe", "The man in the red shirt.") == question.removeprefix("<image>\n")
    assert question_for("3dpw", "") == SUPPLEMENT_TABLE_1[0]
    assert question_for("spg", desc := DESCRIPTIONS[1]) == SUPPLEMENT_TABLE_3[0].replace("{description}", desc)
