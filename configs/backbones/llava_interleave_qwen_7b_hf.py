"""ChatPose on llava-hf/llava-interleave-qwen-7b-hf: SigLIP so400m/14-384 (729 tokens) + Qwen1.5-7B (untied).

    chatpose-train --config configs/backbones/llava_interleave_qwen_7b_hf.py:lisa --workdir gs://BUCKET/qwen7b \\
        --config.init_checkpoint=/ckpt/llava-interleave-qwen-7b-hf --config.mesh.fsdp=-1 --config.mesh.data=1
"""

from chatpose_jax.default_config import apply_recipe, base_config, qwen2, siglip_so400m_384

QWEN_BOS = 151643  # <|endoftext|>, also the pad token
QWEN_EOS = 151645  # <|im_end|>


def get_config(recipe: str = "lisa"):
    c = base_config()
    c.name = f"llava_interleave_qwen_7b_hf_{recipe or 'lisa'}"
    c.model.scan_layers = True  # flat compile time in depth
    c.model.vision = siglip_so400m_384()
    c.model.text = qwen2(
        hidden_size=4096,
        num_layers=32,
        num_heads=32,
        intermediate_size=11008,
        num_kv_heads=32,
        tie_word_embeddings=False,
    )
    c.model.image_token_id = 151646  # <image>
    c.model.pose_token_id = 151647  # <POSE>, after the tokenizer's 151647 tokens
    c.model.pad_token_id = QWEN_BOS
    c.model.bos_token_id = QWEN_BOS
    c.model.eos_token_id = QWEN_EOS
    return apply_recipe(c, recipe or "lisa")
