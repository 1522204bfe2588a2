"""ChatPose on LLaVA-1.5-13B (CLIP ViT-L/14-336, Vicuna-13B-v1.5: d=5120, 40 layers, 40 heads).

The paper's main model. "chatpose" is the released launch script's recipe (LoRA r=128):

    chatpose-train --config configs/llava15_13b.py:chatpose --workdir gs://BUCKET/chatpose-13b \
        --config.init_checkpoint=/ckpt/llava-1.5-13b --config.mesh.fsdp=-1 --config.mesh.data=1
"""

from chatpose_jax.default_config import apply_recipe, base_config, vicuna


def get_config(recipe: str = "lisa"):
    c = base_config()
    c.name = f"llava15_13b_{recipe or 'lisa'}"
    c.model.scan_layers = True  # flat compile time and program size in depth
    c.model.text = vicuna(hidden_size=5120, num_layers=40, num_heads=40, intermediate_size=13824)
    return apply_recipe(c, recipe or "lisa")
