"""ChatPose on llava-hf/llava-interleave-qwen-0.5b-hf: SigLIP so400m/14-384 (-1, "full", 729 tokens) + Qwen2-0.5B.

Qwen2: d 1024, 24 layers, 16 heads, theta 1e6, tied LM head, vocabulary 152000 rows.

    chatpose-train --config configs/backbones/llava_interleave_qwen_0_5b_hf.py:lisa --workdir /tmp/qwen05 \\
        --config.init_checkpoint=/ckpt/llava-interleave-qwen-0.5b-hf
"""

from chatpose_jax.default_config import apply_recipe, base_config, qwen2, siglip_so400m_384

QWEN_BOS = 151643  # <|endoftext|>, also the pad token
QWEN_EOS = 151645  # <|im_end|>


def get_config(recipe: str = "lisa"):
    c = base_config()
    c.name = f"llava_interleave_qwen_0_5b_hf_{recipe or 'lisa'}"
    c.model.vision = siglip_so400m_384()
    c.model.text = qwen2(
        hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=2816, num_kv_heads=16, tie_word_embeddings=True
    )
    c.model.image_token_id = 151646  # <image>
    c.model.pose_token_id = 151647  # <POSE>, after the tokenizer's 151647 tokens
    c.model.pad_token_id = QWEN_BOS
    c.model.bos_token_id = QWEN_BOS
    c.model.eos_token_id = QWEN_EOS
    return apply_recipe(c, recipe or "lisa")
