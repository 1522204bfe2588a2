"""Typed config of the retrieval model and its data (the `retrieval` section of an experiment)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
    """PoseScript's retrieval model; widths default to their recipe, text embeddings from scratch."""

    num_joints: int = 22  # root + 21 body joints (axis-angle each)
    latent_dim: int = 512  # joint embedding width (L2-normalised)
    pose_hidden: int = 512  # pose-encoder MLP width
    pose_bottleneck: int = 32  # the Linear(512, 32) -> ReLU -> Linear(32, 512) bottleneck
    vocab_size: int = 1024  # rows of the token embedding (>= the tokenizer's vocabulary)
    embed_dim: int = 768  # token-embedding width (DistilBERT's in PoseScript; ours is trained here)
    text_layers: int = 4
    text_heads: int = 4
    text_ff: int = 1024
    dropout: float = 0.1
    max_text_length: int = 64  # tokens per description (longer ones are cut)
    init_logit_scale: float = 10.0
    flip_prob: float = 0.5  # left-right flip augmentation
    tokenizer: str = ""  # tokenizer folder ("" = data.tokenizer)
    texts: str = "all"  # "all" (human + automatic captions) | "human" | "automatic"
    init_embeddings: str = ""  # a ChatPose checkpoint whose token-embedding table starts ours ("" = random)

    def __post_init__(self):
        if self.texts not in ("all", "human", "automatic"):
            raise ValueError(f"retrieval.texts={self.texts!r}; expected 'all', 'human' or 'automatic'")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"retrieval.flip_prob={self.flip_prob} must be in [0, 1]")
