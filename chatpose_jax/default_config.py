"""Shared defaults of every experiment config, and the two published fine-tuning recipes.

`configs/*.py` start from `base_config()` and change a few fields. The defaults, each with its
comment, are the dataclasses' in `chatpose_jax.experiment`, `chatpose_jax.model.config`,
`chatpose_jax.parallel.mesh` and `chatpose_jax.retrieval.config`: written once, read here.
"""

from __future__ import annotations

import dataclasses
import typing

import ml_collections

from chatpose_jax.experiment import Experiment
from chatpose_jax.model.config import TextConfig, VisionConfig


def family(cls: type, fields: dict) -> ml_collections.ConfigDict:
    """A model family's section: the dataclass `cls`'s defaults with the family's `fields` over them."""
    section = defaults(cls)
    section.update(fields)
    return section


def clip_vit_l14_336() -> ml_collections.ConfigDict:
    """CLIP ViT-L/14 at 336 px, LLaVA-1.5's tower (penultimate layer, CLS dropped: 576 tokens)."""
    return family(
        VisionConfig,
        dict(
            image_size=336,  # pixels
            patch_size=14,  # pixels; (336/14)^2 = 576 patches
            hidden_size=1024,  # tower width
            intermediate_size=4096,  # tower MLP width
            num_layers=24,  # encoder layers
            num_heads=16,  # attention heads
            num_channels=3,  # RGB
            layer_norm_eps=1e-5,
            feature_layer=-2,  # penultimate hidden state feeds the projector
            feature_select="default",  # drop CLS
            class_token=True,  # CLIP has a class embedding
            hidden_act="quick_gelu",  # CLIP's activation
            pre_layernorm=True,  # CLIP's pre_layrnorm before layer 0
            patch_bias=False,  # CLIP's patch conv has no bias
        ),
    )


def vicuna(hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int) -> ml_collections.ConfigDict:
    """A Vicuna-v1.5 (LLaMA-2) decoder with the llava-hf vocabulary (32000 + image + pad, padded to 32064)."""
    return family(
        TextConfig,
        dict(
            vocab_size=32064,  # llava-hf pads 32002 tokens to 32064 rows; <POSE> takes id 32002
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,  # SwiGLU width
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=num_heads,  # LLaMA-2 7B/13B use full multi-head attention
            head_dim=0,  # 0 = hidden_size // num_heads
            rope_theta=10000.0,
            rms_norm_eps=1e-5,
            max_position_embeddings=4096,
            tie_word_embeddings=False,
            qkv_bias=False,  # LLaMA has no biases
            hidden_act="silu",
            sliding_window=0,  # full causal attention
        ),
    )


def siglip_so400m_384() -> ml_collections.ConfigDict:
    """SigLIP so400m/14 at 384 px as llava-interleave uses it: 26 layers (the 27th removed), last layer, all 729 patches."""
    return family(
        VisionConfig,
        dict(
            image_size=384,  # pixels
            patch_size=14,  # pixels; (384//14)^2 = 27^2 = 729 patches
            hidden_size=1152,  # tower width
            intermediate_size=4304,  # tower MLP width
            num_layers=26,  # encoder layers kept by llava-interleave
            num_heads=16,  # attention heads
            num_channels=3,  # RGB
            layer_norm_eps=1e-6,
            feature_layer=-1,  # the last hidden state (before post_layernorm)
            feature_select="full",  # no CLS to drop
            class_token=False,  # SigLIP has no class embedding
            hidden_act="gelu_tanh",  # tanh-approximated GELU
            pre_layernorm=False,  # no LayerNorm before layer 0
            patch_bias=True,  # the patch conv has a bias
        ),
    )


def mistral_7b(vocab_size: int = 32064) -> ml_collections.ConfigDict:
    """Mistral-7B-v0.1 (bakLlava's decoder): grouped-query attention, sliding window 4096."""
    return family(
        TextConfig,
        dict(
            vocab_size=vocab_size,  # llava-hf pads 32002 tokens to 32064 rows; <POSE> takes id 32002
            hidden_size=4096,
            intermediate_size=14336,  # SwiGLU width
            num_layers=32,
            num_heads=32,
            num_kv_heads=8,  # grouped-query attention
            head_dim=0,  # 0 = hidden_size // num_heads
            rope_theta=10000.0,
            rms_norm_eps=1e-5,
            max_position_embeddings=32768,
            tie_word_embeddings=False,
            qkv_bias=False,
            hidden_act="silu",
            sliding_window=4096,  # each query sees the 4096 slots ending at its own, in the cache too
        ),
    )


def qwen2(
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int,
    num_kv_heads: int,
    tie_word_embeddings: bool,
    vocab_size: int = 152000,
) -> ml_collections.ConfigDict:
    """A Qwen2 / Qwen1.5 decoder: q/k/v biases, theta 1e6, eps 1e-6, no sliding window."""
    return family(
        TextConfig,
        dict(
            vocab_size=vocab_size,  # Qwen's 151646 tokens + <image> (151646), padded to 152000 rows
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,  # SwiGLU width
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_dim=0,  # 0 = hidden_size // num_heads
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
            max_position_embeddings=32768,
            tie_word_embeddings=tie_word_embeddings,  # the 0.5B model ties its LM head to the embedding
            qkv_bias=True,  # bias on q/k/v, not on o_proj or the MLP
            hidden_act="silu",
            sliding_window=0,  # use_sliding_window is false in these checkpoints
        ),
    )


def defaults(cls: type) -> ml_collections.ConfigDict:
    """Every field of the dataclass `cls` that has a default, as a ConfigDict (sections nested).

    Fields without a default (the model's shapes, the run's length and batch) are left out: a
    config must set them, and `from_config_dict` names the one it did not.
    """
    c = ml_collections.ConfigDict()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            value = field.default
            c[field.name] = _as_config(value) if dataclasses.is_dataclass(value) else value
        elif dataclasses.is_dataclass(hints[field.name]):
            c[field.name] = defaults(hints[field.name])
    return c


def _as_config(instance) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            f.name: _as_config(v) if dataclasses.is_dataclass(v := getattr(instance, f.name)) else v
            for f in dataclasses.fields(instance)
        }
    )


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by all experiments (the LISA recipe on a LLaVA-1.5-7B-shaped model).

    Every default comes from the typed dataclasses (`Experiment` and its sections), where each
    field is commented; this sets only what they leave open and the few choices of this run.
    """
    c = defaults(Experiment)
    c.name = "chatpose"  # run name, used in logs
    c.model.vision = clip_vit_l14_336()
    c.model.text = vicuna(hidden_size=4096, num_layers=32, num_heads=32, intermediate_size=11008)
    c.model.remat_policy = "full"  # a 7B decoder's activations do not fit without it (chatpose-compile prints each)
    c.train.num_steps = 5000  # LISA: 10 epochs x 500 steps
    c.train.batch_size = 160  # global sequences per optimizer step (LISA: 2 x 10 accum x 8 GPUs) ...
    c.train.grad_accum_steps = 10  # ... in 10 micro-batches
    # c.mesh (parallel.mesh.MeshConfig): data=-1 takes every device the other axes leave; fsdp shards
    # parameters and the batch (ZeRO-3 style); tensor shards heads, MLP width and vocabulary. dcn_* lay
    # an axis over slices: with all three at 1, several slices put the data axis across them; dcn_fsdp
    # is allowed but gathers parameters over DCN in every layer; dcn_tensor must stay 1.
    return c


RECIPES = ("lisa", "chatpose", "keypoints")
# The supplement's LLaVA* (Sec. 3): the HMR people asked for their OpenPose keypoints as text, beside
# the VQA data, in ChatPose's proportion of VQA to HMR (its text-to-pose data has no keypoints).
KEYPOINT_DATASETS, KEYPOINT_RATIOS = ("llava_instruct", "hmr_keypoints"), (1.0, 2.0)


def apply_recipe(c: ml_collections.ConfigDict, recipe: str) -> ml_collections.ConfigDict:
    """Sets the fine-tuning recipe by name.

    "lisa": LISA's defaults (LoRA r=8 alpha=16, batch 2 x accum 10 per device, 5000 steps, length 512).
    LISA's 512 positions held a 256-token CLIP-224 image; LLaVA-1.5's 576 would not fit, so here the
    512 are text tokens with the image on top.
    "chatpose": ChatPose's released launch script (LoRA r=128 alpha=256, batch 16 x accum 2,
    30 epochs x 500 steps, model_max_length 1024 counting the image's 576 positions, posescript ||
    vqa || hmr at 1:1:2, no HMR augmentation as the supplement says).
    "keypoints": the supplement's keypoint-text baseline (LLaVA*) on ChatPose's recipe: VQA and the
    HMR people asked for their visible keypoints as text (`data_pipelines.keypoint_text`), 1:2;
    evaluate it with `chatpose-eval --pose_from=keypoints` (SMPLify lifts the answers).
    Both write images as <im_start><image><im_end> (LISA's use_mm_start_end, on by default), take
    the platform's fused attention (`model.attention_impl="auto"`) and pack conversations into rows
    (`data.pack`, up to 8 `<POSE>` tokens a row): a step then holds batch_size rows of several
    conversations each, where the released code pads one conversation per row (set
    `--config.data.pack=False` to train exactly as it did).
    """
    if recipe == "lisa":
        c.model.lora.rank, c.model.lora.alpha = 8, 16.0
        c.train.grad_accum_steps = 10
        c.train.batch_size = 160
        c.train.num_steps = 5000
        c.train.max_text_length = 512
        c.train.length_counts_image = False
    elif recipe in ("chatpose", "keypoints"):
        c.model.lora.rank, c.model.lora.alpha = 128, 256.0
        c.train.grad_accum_steps = 2
        c.train.batch_size = 256  # 16 per device x 2 accum x 8 GPUs
        c.train.num_steps = 15000  # 30 epochs x 500 steps
        c.train.max_text_length = 1024
        c.train.length_counts_image = True  # 1024 positions, image included: 449 text tokens beside it
        c.data.hmr_augment.enabled = False
    else:
        raise ValueError(f"unknown recipe {recipe!r}; known recipes: {', '.join(RECIPES)}")
    c.data.datasets = ("posescript", "llava_instruct", "hmr_images")
    c.data.ratios = (1.0, 1.0, 2.0)
    if recipe == "keypoints":
        c.data.datasets, c.data.ratios = KEYPOINT_DATASETS, KEYPOINT_RATIOS
    c.model.mm_use_im_start_end = True  # LISA's train_ds (and so ChatPose's) wraps the image (use_mm_start_end)
    # The platform's fused attention: Pallas splash on TPU, cuDNN on GPU (bf16), XLA on CPU (model/attention.py).
    c.model.attention_impl = "auto"
    # Packed rows: a text-only PoseScript conversation is about a tenth of an image one, so padded rows
    # are mostly padding (benchmarks/input_pipeline.py measures the share); a row holds one image.
    c.data.pack = True
    c.model.pose_head.max_poses = 8
    return c
