"""The ChatPose model: CLIP tower, projector, LLaMA decoder, pose head, LoRA.

`ChatPose` is the whole model as one Flax linen module (`chatpose_jax.model.chatpose` holds it with the
functional `init_params` / `apply`); `ModelConfig` its configuration.
"""

from chatpose_jax.model.chatpose import ChatPose
from chatpose_jax.model.config import ModelConfig

__all__ = ["ChatPose", "ModelConfig"]
