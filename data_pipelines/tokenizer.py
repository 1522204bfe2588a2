"""The project's tokenizer: a Hugging Face LLaMA tokenizer plus `<image>`, `<pad>` and `<POSE>`.

Real runs load the checkpoint's own tokenizer folder (LLaVA ships `tokenizer.model`, llava-hf adds
`<image>` and `<pad>`); `load_tokenizer` adds `<POSE>` when it is missing and checks the ids. For
the tiny model and the tests, `make_synthetic_tokenizer` trains a 1000-piece sentencepiece model
on the synthetic corpus, so the special ids are 1000 (`<image>`), 1001 (`<pad>`), 1002 (`<POSE>`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable

from chatpose_jax.image_tokens import add_start_end_tokens
from chatpose_jax.pose_token import strip_space_before_pose

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"
POSE_TOKEN = "<POSE>"
ADDED_TOKENS = (IMAGE_TOKEN, PAD_TOKEN, POSE_TOKEN)
SYNTHETIC_VOCAB_SIZE = 1000  # sentencepiece pieces; the added tokens follow


def make_synthetic_tokenizer(
    out_dir: str | os.PathLike, corpus_texts: Iterable[str], vocab_size: int = SYNTHETIC_VOCAB_SIZE
):
    """Trains a LLaMA-style sentencepiece tokenizer on `corpus_texts` and saves it to `out_dir`.

    Pieces: unk 0 (`<unk>`), bos 1 (`<s>`), eos 2 (`</s>`), then learned pieces up to `vocab_size`;
    `<image>`, `<pad>`, `<POSE>` are added special tokens at vocab_size, +1, +2. Digits are split
    and unknown characters fall back to bytes, as in LLaMA. Returns the loaded tokenizer
    (`AutoTokenizer.from_pretrained(out_dir)` gives the same one back).
    """
    import sentencepiece as spm
    from transformers import AutoTokenizer

    os.makedirs(out_dir, exist_ok=True)
    texts = [t for t in corpus_texts if t.strip()]
    if not texts:
        raise ValueError("make_synthetic_tokenizer: the corpus is empty")
    texts += _filler_words()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for text in texts:
                f.write(text.replace("\n", " ") + "\n")
        prefix = os.path.join(tmp, "spm")
        spm.SentencePieceTrainer.train(
            input=corpus,
            model_prefix=prefix,
            vocab_size=vocab_size,
            model_type="bpe",
            character_coverage=1.0,
            byte_fallback=True,
            split_digits=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            hard_vocab_limit=True,
            minloglevel=2,
            num_threads=1,
        )
        with open(prefix + ".model", "rb") as src, open(os.path.join(out_dir, "tokenizer.model"), "wb") as dst:
            dst.write(src.read())
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "legacy": False,
        "model_max_length": 4096,
        "padding_side": "right",
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=1)
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    # One call per token: add_special_tokens numbers tokens in the order it meets them, and the
    # documented order (llava-hf's) is <image>, <pad>, then <POSE>.
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    tokenizer.add_special_tokens({"additional_special_tokens": [POSE_TOKEN]}, replace_extra_special_tokens=False)
    strip_space_before_pose(tokenizer)
    expected = {IMAGE_TOKEN: vocab_size, PAD_TOKEN: vocab_size + 1, POSE_TOKEN: vocab_size + 2}
    got = {t: tokenizer.convert_tokens_to_ids(t) for t in ADDED_TOKENS}
    if got != expected:
        raise RuntimeError(f"added token ids {got} differ from the expected {expected}")
    tokenizer.save_pretrained(str(out_dir))
    return load_tokenizer(out_dir)


def _filler_words() -> list[str]:
    """Deterministic syllable words appended to the corpus.

    A small synthetic corpus has too few distinct character pairs for BPE to reach 1000 pieces
    (sentencepiece then refuses the vocabulary size); these words supply the missing merges and
    never occur in the data, so they only cost unused rows.
    """
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    words = [a + b + c for a in syllables for b in syllables[::3] for c in syllables[::7]]
    return [" ".join(words[i : i + 16]) for i in range(0, len(words), 16)]


def load_tokenizer(path: str | os.PathLike, add_pose_token: bool = True, image_start_end: bool = False):
    """Loads a tokenizer folder with AutoTokenizer and checks `<image>`, `<pad>`, `<POSE>`.

    A LLaVA folder without `<POSE>` gets it appended when `add_pose_token` (ChatPose's recipe: one
    new token whose embedding row is trained); `<POSE>` takes the space before it
    (`chatpose_jax.pose_token`). With `image_start_end`, `<im_start>` and `<im_end>` are appended
    when missing (`chatpose_jax.image_tokens`). Raises ValueError naming the folder and the token
    when a special token is missing or would be split into pieces.
    """
    from transformers import AutoTokenizer

    from chatpose_jax import paths

    if not paths.path(path).is_dir():
        raise FileNotFoundError(f"tokenizer folder {path} does not exist")
    tokenizer = AutoTokenizer.from_pretrained(paths.local_copy(path))  # it reads local files only
    if add_pose_token and POSE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [POSE_TOKEN]}, replace_extra_special_tokens=False)
    strip_space_before_pose(tokenizer)  # "is <POSE>" -> "▁is" "<POSE>", as the release splits "is [SEG]"
    if image_start_end:
        add_start_end_tokens(tokenizer)
    if tokenizer.pad_token is None:
        raise ValueError(f"tokenizer {path}: no pad token")
    for token in (IMAGE_TOKEN, POSE_TOKEN):
        if token not in tokenizer.get_vocab():
            raise ValueError(f"tokenizer {path}: no {token} token")
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        if ids != [tokenizer.convert_tokens_to_ids(token)]:
            raise ValueError(f"tokenizer {path}: {token} is split into {ids}; it must be one added token")
    return tokenizer


def special_ids(tokenizer) -> dict[str, int]:
    """{'image', 'pad', 'pose', 'bos', 'eos'} -> token id."""
    return {
        "image": tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        "pad": tokenizer.pad_token_id,
        "pose": tokenizer.convert_tokens_to_ids(POSE_TOKEN),
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
    }
