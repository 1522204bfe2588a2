"""Typed, frozen model configuration (built from `config.model` of an experiment config).

Families (LLaMA, Mistral, Qwen2; CLIP, SigLIP) are data here, read by one decoder and one tower.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from chatpose_jax.config_types import from_config_dict


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """A ViT vision tower: CLIP ViT-L/14-336 for LLaVA-1.5, SigLIP so400m/14-384 for llava-interleave.

    The two families differ only in the fields `class_token`, `pre_layernorm`, `patch_bias`,
    `hidden_act` and `layer_norm_eps`.
    """

    image_size: int  # input side in pixels (336 for LLaVA-1.5; 384 for SigLIP, whose last 384 % 14 rows are unused)
    patch_size: int  # patch side in pixels (14)
    hidden_size: int  # tower width (1024 for ViT-L)
    intermediate_size: int  # MLP width (4096)
    num_layers: int  # encoder layers (24)
    num_heads: int  # attention heads (16)
    num_channels: int = 3
    layer_norm_eps: float = 1e-5
    feature_layer: int = -2  # hidden state fed to the projector; -2 = penultimate (LLaVA-1.5)
    feature_select: Literal["default", "full"] = "default"  # "default" drops the CLS token
    class_token: bool = True  # CLIP has one; SigLIP has none
    hidden_act: Literal["quick_gelu", "gelu", "gelu_tanh"] = "quick_gelu"  # CLIP: quick_gelu; SigLIP: gelu_tanh
    pre_layernorm: bool = True  # a LayerNorm on the embeddings before layer 0 (CLIP); SigLIP has none
    patch_bias: bool = False  # bias on the patch-embedding conv (SigLIP); CLIP has none

    def __post_init__(self):
        if self.image_size < self.patch_size:
            raise ValueError(f"vision.image_size {self.image_size} is smaller than patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"vision.hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if not -self.num_layers - 1 <= self.feature_layer <= self.num_layers:
            raise ValueError(f"vision.feature_layer {self.feature_layer} is outside a {self.num_layers}-layer tower")
        if self.feature_select == "default" and not self.class_token:
            raise ValueError('vision.feature_select "default" drops a CLS token, but class_token is false: use "full"')

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_image_tokens(self) -> int:
        """Tokens one image contributes to the decoder (576 for CLIP-L/14 at 336 px)."""
        return self.num_patches + int(self.class_token and self.feature_select == "full")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """A LLaMA-style decoder: LLaMA / Vicuna, Mistral and Qwen2 differ only in these fields.

    Mistral: `sliding_window`; Qwen2: `qkv_bias`, `rope_theta` 1e6, `rms_norm_eps` 1e-6,
    `tie_word_embeddings` (small models); LLaMA-3: `rope_type` "llama3" and its factors.
    """

    vocab_size: int  # rows of the embedding and LM head, including added tokens
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int  # grouped-query attention when < num_heads
    head_dim: int = 0  # 0 = hidden_size // num_heads
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # bias on q/k/v projections (Qwen2); LLaMA has none
    hidden_act: Literal["silu", "gelu", "gelu_tanh"] = "silu"  # the gate activation of the SwiGLU MLP
    sliding_window: int = 0  # a query sees at most this many keys, itself included (Mistral); 0 = unbounded
    rope_type: Literal["default", "llama3"] = "default"  # "llama3": LLaMA-3.1's frequency-dependent scaling
    rope_factor: float = 1.0  # llama3: low frequencies are divided by this
    rope_low_freq_factor: float = 1.0  # llama3: wavelengths above original_max / this are scaled fully
    rope_high_freq_factor: float = 4.0  # llama3: wavelengths below original_max / this are kept
    rope_original_max_position_embeddings: int = 8192  # llama3: the pre-training context length

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"text.num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if not self.head_dim and self.hidden_size % self.num_heads:
            raise ValueError(f"text.hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.sliding_window < 0:
            raise ValueError(f"text.sliding_window {self.sliding_window} is negative (0 = no window)")
        if self.rope_type == "llama3" and not self.rope_low_freq_factor < self.rope_high_freq_factor:
            raise ValueError("text.rope_low_freq_factor must be below rope_high_freq_factor for llama3 rope")

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads


@dataclasses.dataclass(frozen=True)
class ProjectorConfig:
    """Vision-to-text projector; LLaVA-1.5 uses `mlp2x_gelu`: Linear - GELU(erf) - Linear."""

    type: Literal["mlp2x_gelu", "linear"] = "mlp2x_gelu"  # mlp2x_gelu: Linear - GELU - Linear
    bias: bool = True


@dataclasses.dataclass(frozen=True)
class PoseHeadConfig:
    """Linear(d, d) - ReLU - Linear(d, num_joints * 6) on the state before each `<POSE>`."""

    num_joints: int = 24  # joint 0 = global orientation, 1..23 = SMPL body pose
    max_poses: int = 1  # static number of `<POSE>` slots read per sequence (24 x 6D rotations each)


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    """Low-rank adapters on decoder linears (LISA's defaults)."""

    rank: int = 8  # 0 disables LoRA
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the shapes and numerics of `ChatPose`."""

    vision: VisionConfig
    text: TextConfig
    projector: ProjectorConfig = ProjectorConfig()
    pose_head: PoseHeadConfig = PoseHeadConfig()
    lora: LoraConfig = LoraConfig()
    # Token ids of llava-hf's vocabulary: <image> 32000 and <pad> 32001 were added to LLaMA's 32000,
    # <POSE> comes after them.
    image_token_id: int = 32000  # placeholder id repeated once per image token (HF convention)
    pose_token_id: int = 32002  # `<POSE>`, appended after the existing vocabulary
    pad_token_id: int = 32001  # <pad>
    bos_token_id: int = 1  # <s>
    eos_token_id: int = 2  # </s>
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"  # compute dtype; norms, softmax, losses in float32
    param_dtype: Literal["float32", "bfloat16"] = "float32"  # storage dtype of parameters
    # Attention kernel (model/attention.py): "reference" (einsum, float32 softmax), "xla" (XLA; a
    # blockwise kernel on CPU), "cudnn" (fused, GPU bf16/fp16), "splash" (Pallas splash attention, TPU;
    # training and prefill, decoding steps take "xla"), "auto" = the platform compiled for picks:
    # splash on TPU, cuDNN on GPU where it takes the shapes (else xla), xla on CPU. The full recipes
    # (default_config.apply_recipe) set "auto".
    attention_impl: Literal["reference", "xla", "cudnn", "splash", "auto"] = "xla"
    # Gradient checkpointing of decoder layers (model/llama.py `remat_policy`; MaxText's names;
    # chatpose-compile prints each one's memory). Training configs choose one; none for inference.
    remat_policy: Literal[
        "none", "full", "minimal", "dots", "dots_no_batch", "save_qkv_proj", "save_dot_except_mlp",
        "qkv_proj_offloaded", "minimal_offloaded",
    ] = "none"  # fmt: skip
    scan_layers: bool = False  # decoder and tower layers scanned (compile time and program size flat in depth)
    initializer_range: float = 0.02  # std of the normal init of fresh kernels and embeddings
    # Frame of the pose head's root (joint 0): the OpenCV camera frame, as the released ChatPose
    # emits it (chatpose_jax.body.frames). Stored with every checkpoint; one without it is refused.
    pose_frame: Literal["opencv_camera"] = "opencv_camera"
    # LLaVA's mm_use_im_start_end: the image is written `<im_start><image><im_end>` in every prompt
    # (chatpose_jax.image_tokens); LISA / ChatPose train so, LLaVA-1.5's checkpoints do not.
    mm_use_im_start_end: bool = False

    def __post_init__(self):
        for name in ("image_token_id", "pose_token_id", "pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if not 0 <= value < self.text.vocab_size:
                raise ValueError(f"model.{name} {value} is outside the vocabulary of {self.text.vocab_size}")
        if self.image_token_id == self.pose_token_id:
            raise ValueError("model.image_token_id and model.pose_token_id must differ")

    @property
    def head_dim(self) -> int:
        return self.text.resolved_head_dim

    def to_dict(self) -> dict:
        """Plain nested dict (JSON-serialisable); `model_config_from_dict` inverts it."""
        return dataclasses.asdict(self)


def model_config_from_dict(d: dict) -> ModelConfig:
    """Inverse of `ModelConfig.to_dict` (lists from JSON become tuples), checked field by field."""
    return from_config_dict(ModelConfig, d, "model")
