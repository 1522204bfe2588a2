"""ChatPose on liuhaotian/llava-v1.5-7b (original LLaVA layout): CLIP ViT-L/14-336 + Vicuna-7B, 32000 tokens.

The importer adds <image> (32000) and <POSE> (32001) after the 32000 LLaMA tokens: 32002 rows.
The CLIP tower comes from its own folder (mm_vision_tower):

    chatpose-train --config configs/backbones/llava_v15_7b.py:lisa --workdir gs://BUCKET/llava-v15-7b \\
        --config.init_checkpoint=/ckpt/llava-v1.5-7b --config.mesh.fsdp=-1 --config.mesh.data=1
"""

from chatpose_jax.default_config import apply_recipe, base_config, clip_vit_l14_336, vicuna


def get_config(recipe: str = "lisa"):
    c = base_config()
    c.name = f"llava_v15_7b_{recipe or 'lisa'}"
    c.model.scan_layers = True  # flat compile time in depth
    c.model.vision = clip_vit_l14_336()
    c.model.text = vicuna(hidden_size=4096, num_layers=32, num_heads=32, intermediate_size=11008)
    c.model.text.vocab_size = 32002  # 32000 LLaMA tokens + <image> + <POSE>
    c.model.image_token_id = 32000  # <image>, added by the importer
    c.model.pose_token_id = 32001  # <POSE>
    c.model.pad_token_id = 0  # <unk>, LLaVA's pad
    return apply_recipe(c, recipe or "lisa")
