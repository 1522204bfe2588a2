"""ChatPose on llava-hf/llava-1.5-13b-hf: CLIP ViT-L/14-336 + Vicuna-13B (d 5120, 40 layers, 40 heads).

    chatpose-train --config configs/backbones/llava15_13b_hf.py:lisa --workdir gs://BUCKET/llava15-13b \\
        --config.init_checkpoint=/ckpt/llava-1.5-13b-hf --config.mesh.fsdp=-1 --config.mesh.data=1
"""

from chatpose_jax.default_config import apply_recipe, base_config, clip_vit_l14_336, vicuna


def get_config(recipe: str = "lisa"):
    c = base_config()
    c.name = f"llava15_13b_hf_{recipe or 'lisa'}"
    c.model.scan_layers = True  # flat compile time in depth
    c.model.vision = clip_vit_l14_336()
    c.model.text = vicuna(hidden_size=5120, num_layers=40, num_heads=40, intermediate_size=13824)
    c.model.image_token_id = 32000  # <image>
    c.model.pad_token_id = 32001  # <pad>
    c.model.pose_token_id = 32002  # <POSE>, after the tokenizer's 32002 tokens (rows padded to 32064)
    return apply_recipe(c, recipe or "lisa")
