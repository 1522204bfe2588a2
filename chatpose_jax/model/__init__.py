"""The ChatPose model: CLIP tower, projector, LLaMA decoder, pose head, LoRA."""
