"""ChatPose on LLaVA-1.5-7B (CLIP ViT-L/14-336, Vicuna-7B-v1.5: d=4096, 32 layers, 32 heads).

The argument picks the fine-tuning recipe, "lisa" (default) or "chatpose" (the released script):

    chatpose-train --config configs/llava15_7b.py:lisa --workdir gs://BUCKET/chatpose-7b \
        --config.init_checkpoint=/ckpt/llava-1.5-7b --config.mesh.fsdp=-1 --config.mesh.data=1
"""

from chatpose_jax.default_config import apply_recipe, base_config, vicuna


def get_config(recipe: str = "lisa"):
    c = base_config()
    c.name = f"llava15_7b_{recipe or 'lisa'}"
    c.model.scan_layers = True  # flat compile time and program size in depth
    c.model.text = vicuna(hidden_size=4096, num_layers=32, num_heads=32, intermediate_size=11008)
    return apply_recipe(c, recipe or "lisa")
