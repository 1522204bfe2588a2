"""TFDS builders of ChatPose's datasets; importing this package registers them with TFDS."""

from data_pipelines.builders.hmr_images import HmrImages
from data_pipelines.builders.llava_instruct import LlavaInstruct
from data_pipelines.builders.posescript import Posescript
from data_pipelines.builders.rpe import Rpe
from data_pipelines.builders.spg import Spg

BUILDERS = {"posescript": Posescript, "hmr_images": HmrImages, "llava_instruct": LlavaInstruct, "spg": Spg, "rpe": Rpe}

__all__ = ["BUILDERS", "HmrImages", "LlavaInstruct", "Posescript", "Rpe", "Spg"]
