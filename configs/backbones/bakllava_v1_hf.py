"""ChatPose on llava-hf/bakLlava-v1-hf: CLIP ViT-L/14-336 + Mistral-7B-v0.1 (8 kv heads, window 4096).

    chatpose-train --config configs/backbones/bakllava_v1_hf.py:lisa --workdir gs://BUCKET/bakllava \\
        --config.init_checkpoint=/ckpt/bakLlava-v1-hf --config.mesh.fsdp=-1 --config.mesh.data=1
"""

from chatpose_jax.default_config import apply_recipe, base_config, clip_vit_l14_336, mistral_7b


def get_config(recipe: str = "lisa"):
    c = base_config()
    c.name = f"bakllava_v1_hf_{recipe or 'lisa'}"
    c.model.scan_layers = True  # flat compile time in depth
    c.model.vision = clip_vit_l14_336()
    c.model.text = mistral_7b(vocab_size=32064)
    c.model.image_token_id = 32000  # <image>
    c.model.pad_token_id = 32001  # <pad>
    c.model.pose_token_id = 32002  # <POSE>, after the tokenizer's 32002 tokens (rows padded to 32064)
    return apply_recipe(c, recipe or "lisa")
