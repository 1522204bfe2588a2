"""Tiny random transformers LLaVA models of each backbone family (float32), for parity tests.

Every pairing shares the llava_tiny vocabulary and prompt layout (4 image tokens), so
`llava_tiny.image_prompt` / `hf_logits` and `family_pixels` below work for all of them:
  llama_clip    LLaMA + CLIP (-2, "default"), theta 500
  mistral_clip  Mistral + CLIP with a sliding window of 5, shorter than the 14-token prompts
  qwen2_siglip  Qwen2 (q/k/v bias, tied head, theta 1e6, eps 1e-6) + SigLIP (-1, "full", tanh GELU, 32 px)
  llama3_clip   LLaMA-3 rope scaling ("llama3", factor 8) with wavelengths on both sides of the band
"""

from __future__ import annotations

import numpy as np
import torch
from llava_tiny import IMAGE_ID, IMAGE_SIZE, PAD_ID, VOCAB
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    MistralConfig,
    Qwen2Config,
    SiglipVisionConfig,
)

WINDOW = 5  # Mistral's sliding window in the tiny model: shorter than every test prompt
SIGLIP_IMAGE_SIZE = 32  # not a multiple of 14, like SigLIP's 384: the conv skips the last 4 rows and columns
FAMILIES = ("llama_clip", "mistral_clip", "qwen2_siglip", "llama3_clip")
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,  # wavelengths of head_dim 16 at theta 500 span 6..1446
}


def _text_fields(**kw) -> dict:
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        initializer_range=0.1,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=PAD_ID,
    )
    fields.update(kw)
    return fields


def _clip() -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=14,
        projection_dim=32,
        initializer_range=0.1,
    )


def _siglip() -> SiglipVisionConfig:
    return SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=SIGLIP_IMAGE_SIZE,
        patch_size=14,
        layer_norm_eps=1e-6,
        hidden_act="gelu_pytorch_tanh",
        vision_use_head=False,
    )


def tiny_config(family: str) -> LlavaConfig:
    """The LlavaConfig of one tiny pairing (see the module docstring)."""
    tie = False
    layer, select = -2, "default"
    if family == "llama_clip":
        text, vision = LlamaConfig(**_text_fields(rope_theta=500.0)), _clip()
    elif family == "mistral_clip":
        text, vision = MistralConfig(**_text_fields(rope_theta=500.0, sliding_window=WINDOW)), _clip()
    elif family == "qwen2_siglip":
        tie = True
        text = Qwen2Config(**_text_fields(rope_theta=1e6, tie_word_embeddings=True, use_sliding_window=False))
        vision, layer, select = _siglip(), -1, "full"
    elif family == "llama3_clip":
        text, vision = LlamaConfig(**_text_fields(rope_parameters=dict(LLAMA3_ROPE))), _clip()
    else:
        raise ValueError(f"unknown tiny family {family!r}")
    return LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=IMAGE_ID,
        vision_feature_layer=layer,
        vision_feature_select_strategy=select,
        pad_token_id=PAD_ID,
        tie_word_embeddings=tie,
    )


def make_family(family: str, seed: int = 0) -> LlavaForConditionalGeneration:
    """A random model of `family` whose norms and biases are off their init values too."""
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(tiny_config(family)).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias") or "class_embedding" in name:
                p.copy_(0.1 * torch.randn_like(p))
    return model


def family_pixels(family: str, rng: np.random.RandomState, batch: int) -> np.ndarray:
    """float32[B, 3, S, S] at the tower's input size (4 patches of 14 px in every family)."""
    side = SIGLIP_IMAGE_SIZE if family == "qwen2_siglip" else IMAGE_SIZE
    return rng.randn(batch, 3, side, side).astype(np.float32)
