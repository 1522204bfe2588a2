"""FLOPs of a ChatPose training step by the MaxText convention, for MFU.

A matmul weight of N parameters costs, per token it touches:
  - 6N when it is trained (forward 2N, gradient w.r.t. the input 2N, w.r.t. the weight 2N),
  - 4N when it is frozen but gradients flow through it to something trained upstream
    (the decoder's base weights under LoRA: forward 2N + input gradient 2N),
  - 2N when it is frozen and nothing upstream is trained (the vision tower and the projector:
    forward only).
Attention adds its score and value products (no weights): 4 * T^2 * H * head_dim per layer in
the forward pass (half that when causal), times 3 in training. Embedding lookups, norms and
elementwise work are not counted, as in MaxText.
"""

from __future__ import annotations

import dataclasses

from chatpose_jax.model.config import ModelConfig

# Dense bf16 peak per chip, FLOP/s, from the vendors' data sheets.
PEAK_BF16_FLOPS = {
    "h100": 989e12,
    "h200": 989e12,
    "a100": 312e12,
    "v4": 275e12,
    "v5e": 197e12,
    "v5p": 459e12,
    "v6e": 918e12,
}


@dataclasses.dataclass(frozen=True)
class StepFlops:
    """FLOPs of one training step (all sequences of the global batch), by part."""

    vision: float  # frozen tower, forward only, through the feature layer
    projector: float  # frozen projector, forward only
    decoder: float  # decoder linears: 4N frozen base + 6N LoRA
    lm_head: float  # 6N when trained, else 4N
    attention: float  # causal attention products in the decoder (+ the tower's, forward only)
    pose_head: float  # 6N per <POSE> slot

    @property
    def total(self) -> float:
        return self.vision + self.projector + self.decoder + self.lm_head + self.attention + self.pose_head


def vision_layers_run(cfg: ModelConfig) -> int:
    """Encoder layers the tower runs to reach its feature layer (23 of 24 for LLaVA-1.5)."""
    layer = cfg.vision.feature_layer
    return layer if layer >= 0 else cfg.vision.num_layers + 1 + layer


def vision_matmul_params(cfg: ModelConfig) -> tuple[int, int]:
    """(per-token encoder matmul params over the layers run, patch-embedding params per patch)."""
    v = cfg.vision
    per_layer = 4 * v.hidden_size * v.hidden_size + 2 * v.hidden_size * v.intermediate_size
    patch = v.num_channels * v.patch_size * v.patch_size * v.hidden_size
    return per_layer * vision_layers_run(cfg), patch


def projector_params(cfg: ModelConfig) -> int:
    d_in, d = cfg.vision.hidden_size, cfg.text.hidden_size
    return d_in * d + (d * d if cfg.projector.type == "mlp2x_gelu" else 0)


def decoder_layer_params(cfg: ModelConfig) -> dict[str, int]:
    """Matmul params of one decoder layer by linear name (q, k, v, o, gate, up, down)."""
    t = cfg.text
    hd = t.resolved_head_dim
    q, kv = t.num_heads * hd, t.num_kv_heads * hd
    d, f = t.hidden_size, t.intermediate_size
    return {
        "q_proj": d * q,
        "k_proj": d * kv,
        "v_proj": d * kv,
        "o_proj": q * d,
        "gate_proj": d * f,
        "up_proj": d * f,
        "down_proj": f * d,
    }


def lora_layer_params(cfg: ModelConfig) -> int:
    """LoRA params of one decoder layer: r * (d_in + d_out) per target linear."""
    if cfg.lora.rank == 0:
        return 0
    t = cfg.text
    hd = t.resolved_head_dim
    q, kv, d, f = t.num_heads * hd, t.num_kv_heads * hd, t.hidden_size, t.intermediate_size
    shapes = {
        "q_proj": (d, q),
        "k_proj": (d, kv),
        "v_proj": (d, kv),
        "o_proj": (q, d),
        "gate_proj": (d, f),
        "up_proj": (d, f),
        "down_proj": (f, d),
    }
    return sum(cfg.lora.rank * sum(shapes[m]) for m in cfg.lora.target_modules if m in shapes)


def train_step_flops(
    cfg: ModelConfig,
    batch_size: int,
    seq_len: int,
    num_images: int,
    lm_head_trained: bool = True,
) -> StepFlops:
    """FLOPs of one training step.

    Args:
      cfg: the model config.
      batch_size: sequences in the step (global batch, all micro-batches together).
      seq_len: decoder positions per sequence, image tokens included.
      num_images: images in the step (sequences with an image; text-only ones skip the tower).
      lm_head_trained: whether the LM head gets gradients (LISA trains it fully).
    """
    v, t = cfg.vision, cfg.text
    tower_tokens = v.num_patches + int(v.class_token)
    tower_params, patch_params = vision_matmul_params(cfg)
    vision = num_images * (2 * tower_params * tower_tokens + 2 * patch_params * v.num_patches)
    vision_attention = num_images * 4 * tower_tokens**2 * v.hidden_size * vision_layers_run(cfg)
    projector = num_images * 2 * projector_params(cfg) * v.num_image_tokens

    tokens = batch_size * seq_len
    base = sum(decoder_layer_params(cfg).values()) * t.num_layers
    lora = lora_layer_params(cfg) * t.num_layers
    decoder = tokens * (4 * base + 6 * lora)
    lm_head = tokens * (6 if lm_head_trained else 4) * t.hidden_size * t.vocab_size
    hd = t.resolved_head_dim
    causal_forward = 2 * seq_len**2 * t.num_heads * hd * t.num_layers  # half of 4*T^2*H*hd
    attention = 3 * batch_size * causal_forward + vision_attention
    pose = batch_size * cfg.pose_head.max_poses * 6 * (t.hidden_size**2 + t.hidden_size * 6 * cfg.pose_head.num_joints)
    return StepFlops(vision, projector, decoder, lm_head, attention, pose)


def forward_flops(cfg: ModelConfig, batch_size: int, seq_len: int, num_images: int) -> float:
    """FLOPs of one forward pass (2N per token per weight, causal attention once, LM head on every position)."""
    v, t = cfg.vision, cfg.text
    tower_tokens = v.num_patches + int(v.class_token)
    tower_params, patch_params = vision_matmul_params(cfg)
    vision = num_images * (2 * tower_params * tower_tokens + 2 * patch_params * v.num_patches)
    vision += num_images * 4 * tower_tokens**2 * v.hidden_size * vision_layers_run(cfg)
    vision += num_images * 2 * projector_params(cfg) * v.num_image_tokens
    tokens = batch_size * seq_len
    base = (sum(decoder_layer_params(cfg).values()) + lora_layer_params(cfg)) * t.num_layers
    dense = tokens * 2 * (base + t.hidden_size * t.vocab_size)
    attention = batch_size * 2 * seq_len**2 * t.num_heads * t.resolved_head_dim * t.num_layers
    pose = batch_size * cfg.pose_head.max_poses * 2 * (t.hidden_size**2 + t.hidden_size * 6 * cfg.pose_head.num_joints)
    return vision + dense + attention + pose


def model_flops_utilization(step_flops: float, step_time_s: float, num_chips: int, peak_flops_per_chip: float) -> float:
    """Achieved FLOP/s over the chips' peak: the fraction of the hardware the step uses."""
    return step_flops / (step_time_s * num_chips * peak_flops_per_chip)
