"""Tiny random transformers LLaVA models for parity tests (float32, saved with `save_pretrained`)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

VOCAB = 160
IMAGE_ID = 158  # the placeholder, as llava-hf: inside the vocabulary, near its end
PAD_ID = 159
POSE_ID = 160  # appended by the importer after the existing rows
IMAGE_SIZE = 28  # 2 x 2 patches of 14 px: 4 image tokens
NUM_IMAGE_TOKENS = 4


def tiny_llava_config(num_kv_heads: int = 2, tie: bool = False) -> LlavaConfig:
    text = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_theta=500.0,  # far from the default so a theta mix-up shows
        tie_word_embeddings=tie,
        initializer_range=0.1,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=PAD_ID,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=14,
        projection_dim=32,
        initializer_range=0.1,
    )
    return LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=IMAGE_ID,
        vision_feature_layer=-2,
        pad_token_id=PAD_ID,
        tie_word_embeddings=tie,
    )


def make_hf_llava(seed: int = 0, **kw) -> LlavaForConditionalGeneration:
    """A random model whose norms and biases are not at their init values either."""
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(tiny_llava_config(**kw)).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias") or "class_embedding" in name:
                p.copy_(0.1 * torch.randn_like(p))
    return model


def save_hf_llava(model, folder, max_shard_size=None) -> str:
    kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(str(folder), **kwargs)
    return str(folder)


def image_prompt(rng: np.random.RandomState, batch: int, text_before: int = 3, text_after: int = 6) -> np.ndarray:
    """int64[B, T]: <s>, some text, the image placeholders, more text."""
    ids = rng.randint(3, IMAGE_ID - 1, size=(batch, 1 + text_before + NUM_IMAGE_TOKENS + text_after))
    ids[:, 0] = 1
    ids[:, 1 + text_before : 1 + text_before + NUM_IMAGE_TOKENS] = IMAGE_ID
    return ids


def pixels(rng: np.random.RandomState, batch: int) -> np.ndarray:
    return rng.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE).astype(np.float32)


def hf_logits(model, input_ids, pixel_values=None, attention_mask=None, position_ids=None) -> np.ndarray:
    as_t = lambda a: None if a is None else torch.from_numpy(np.asarray(a))  # noqa: E731
    with torch.no_grad():
        out = model(
            input_ids=as_t(input_ids),
            pixel_values=as_t(pixel_values),
            attention_mask=as_t(attention_mask),
            position_ids=as_t(position_ids),
        )
    return out.logits.float().numpy()
