"""Shared defaults of every experiment config, and the two published fine-tuning recipes.

`configs/*.py` start from `base_config()` and change a few fields. Every field has a comment;
the typed meaning of each lives in `chatpose_jax.experiment` and `chatpose_jax.model.config`.
"""

from __future__ import annotations

import ml_collections

from chatpose_jax.parallel.mesh import DEFAULT_LOGICAL_AXIS_RULES


def clip_vit_l14_336() -> ml_collections.ConfigDict:
    """CLIP ViT-L/14 at 336 px, LLaVA-1.5's tower (penultimate layer, CLS dropped: 576 tokens)."""
    return ml_collections.ConfigDict(
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
        )
    )


def vicuna(hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int) -> ml_collections.ConfigDict:
    """A Vicuna-v1.5 (LLaMA-2) decoder with the llava-hf vocabulary (32000 + image + pad, padded to 32064)."""
    return ml_collections.ConfigDict(
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
        )
    )


def siglip_so400m_384() -> ml_collections.ConfigDict:
    """SigLIP so400m/14 at 384 px as llava-interleave uses it: 26 layers (the 27th removed), last layer, all 729 patches."""
    return ml_collections.ConfigDict(
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
        )
    )


def mistral_7b(vocab_size: int = 32064) -> ml_collections.ConfigDict:
    """Mistral-7B-v0.1 (bakLlava's decoder): grouped-query attention, sliding window 4096."""
    return ml_collections.ConfigDict(
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
        )
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
    return ml_collections.ConfigDict(
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
        )
    )


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by all experiments (the LISA recipe on a LLaVA-1.5-7B-shaped model)."""
    c = ml_collections.ConfigDict()
    c.name = "chatpose"  # run name, used in logs
    c.init_checkpoint = ""  # orbax checkpoint or HF folder to start from ("" = random init)

    c.model = ml_collections.ConfigDict()
    c.model.vision = clip_vit_l14_336()
    c.model.text = vicuna(hidden_size=4096, num_layers=32, num_heads=32, intermediate_size=11008)
    c.model.projector = ml_collections.ConfigDict(dict(type="mlp2x_gelu", bias=True))  # Linear-GELU-Linear
    c.model.pose_head = ml_collections.ConfigDict(dict(num_joints=24, max_poses=1))  # 24 x 6D rotations
    c.model.lora = ml_collections.ConfigDict(
        dict(rank=8, alpha=16.0, dropout=0.05, target_modules=("q_proj", "v_proj"))  # LISA's defaults
    )
    c.model.image_token_id = 32000  # llava-hf's <image>, repeated once per image token
    c.model.pose_token_id = 32002  # <POSE>, appended after <image> (32000) and <pad> (32001)
    c.model.pad_token_id = 32001
    c.model.bos_token_id = 1  # <s>
    c.model.eos_token_id = 2  # </s>
    c.model.dtype = "bfloat16"  # compute dtype; norms, softmax and losses stay float32
    c.model.param_dtype = "float32"  # storage dtype of parameters
    c.model.attention_impl = "xla"  # "reference" | "xla" | "cudnn" (fused, GPU bf16)
    # Decoder remat: none, full, minimal, dots, save_qkv_proj, save_dot_except_mlp, qkv_proj_offloaded,
    # minimal_offloaded (MaxText's names; chatpose-compile prints each one's memory).
    c.model.remat_policy = "full"
    c.model.scan_layers = False  # decoder layers under nn.scan
    c.model.pose_frame = "opencv_camera"  # the root's frame (x right, y down, z away), the released model's
    c.model.mm_use_im_start_end = False  # True: images written <im_start><image><im_end> (LISA / ChatPose)

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # -1 = every device not used by the other axes
    c.mesh.fsdp = 1  # shards parameters and the batch (ZeRO-3 style)
    c.mesh.tensor = 1  # shards heads / MLP width / vocabulary
    # Multislice: over how many slices (DCN) each axis above is laid; their product = slices.
    # Several slices with all three at 1 put the data axis across them; tensor never crosses slices.
    c.mesh.dcn_data = 1
    c.mesh.dcn_fsdp = 1  # allowed, but slow: parameters are gathered over DCN in every layer
    c.mesh.dcn_tensor = 1  # must stay 1
    c.mesh.logical_axis_rules = DEFAULT_LOGICAL_AXIS_RULES  # logical axis -> mesh axes

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 5000  # LISA: 10 epochs x 500 steps
    c.train.batch_size = 160  # global sequences per optimizer step (LISA: 2 x 10 accum x 8 GPUs)
    c.train.grad_accum_steps = 10  # micro-batches per optimizer step
    c.train.max_text_length = 512  # text tokens per sequence; image tokens come on top ...
    c.train.length_counts_image = False  # ... unless True: then it counts them (LISA's model_max_length)
    c.train.seed = 0
    c.train.log_every = 10  # steps between metric lines
    c.train.checkpoint_every = 500  # steps between checkpoints
    c.train.keep_checkpoints = 3  # newest checkpoints kept
    c.train.trainable = "lora_and_full_embeddings"  # LISA trains embed_tokens and lm_head fully
    c.train.eval_every = 500  # steps between held-out evaluations (0 = at the end only)
    c.train.eval_batches = 4  # held-out batches per evaluation
    c.train.max_nonfinite_in_row = 10  # skipped non-finite updates in a row that stop the run
    # SMPL .pkl/.npz or smplx-style folder for pose metrics and body losses; "" = none (no MPJPE in the
    # training logs); "synthetic" = a generated stand-in body, for the tiny demo only.
    c.train.body_model = ""
    c.train.loss = ml_collections.ConfigDict(
        dict(
            ce_weight=1.0,  # cross-entropy on the assistant's answer tokens
            pose_weight=0.1,  # L1 on rotation matrices (ChatPose's recipe)
            pose_loss="released",  # body mean + root mean (ChatPose's); "flat": one mean over 24 x 9
            joints_weight=0.0,  # optional: SMPL joints through the body model
            vertices_weight=0.0,  # optional: SMPL vertices through the body model
        )
    )

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.lr = 3e-4  # peak learning rate
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.95
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 100  # linear warm-up from 0
    c.optimizer.schedule = "linear"  # decay after warm-up: "linear" | "cosine" | "constant"
    c.optimizer.end_lr_ratio = 0.0  # final lr = end_lr_ratio * lr
    c.optimizer.clip_norm = 1.0  # global-norm clipping; 0 disables

    c.data = ml_collections.ConfigDict()
    c.data.data_dir = ""  # TFDS data_dir of prepared datasets
    c.data.tokenizer = ""  # tokenizer folder ("" = the checkpoint's own)
    c.data.datasets = ("posescript", "llava_instruct", "hmr_images")  # conversation sources
    c.data.ratios = (1.0, 1.0, 2.0)  # ChatPose's "posescript || vqa || hmr" at 1:1:2
    c.data.image_aspect = "none"  # "pad" = LLaVA-1.5's pad-to-square; ChatPose does not pad
    c.data.extra_templates = False  # True adds our paraphrases to the supplement's Tables 1-3
    c.data.vqa_image_sources = ("coco", "gqa", "vg")  # VQA records by image source, as ChatPose filters mix665k
    # HMR crop augmentation, 4D-Humans' recipe (scale, rotation, flip with left/right swap, colour).
    # 4D-Humans' dataset object (which ChatPose's release reads) augments; the supplement says the
    # model trained without augmentation: off.
    c.data.hmr_augment = ml_collections.ConfigDict(
        dict(
            enabled=False,
            scale_factor=0.3,  # box side times 1 + 0.3 clip(N(0, 1), -1, 1)
            rotation_degrees=30.0,  # 30 clip(N(0, 1), -2, 2) degrees ...
            rotation_rate=0.6,  # ... with probability 0.6
            flip_rate=0.5,  # left-right flip probability
            colour_scale=0.2,  # each channel times U(0.8, 1.2)
        )
    )
    c.data.shuffle_buffer = 1000
    return c


RECIPES = ("lisa", "chatpose")


def apply_recipe(c: ml_collections.ConfigDict, recipe: str) -> ml_collections.ConfigDict:
    """Sets the fine-tuning recipe by name.

    "lisa": LISA's defaults (LoRA r=8 alpha=16, batch 2 x accum 10 per device, 5000 steps, length 512).
    LISA's 512 positions held a 256-token CLIP-224 image; LLaVA-1.5's 576 would not fit, so here the
    512 are text tokens with the image on top.
    "chatpose": ChatPose's released launch script (LoRA r=128 alpha=256, batch 16 x accum 2,
    30 epochs x 500 steps, model_max_length 1024 counting the image's 576 positions, posescript ||
    vqa || hmr at 1:1:2, no HMR augmentation as the supplement says).
    Both write images as <im_start><image><im_end> (LISA's use_mm_start_end, on by default).
    """
    if recipe == "lisa":
        c.model.lora.rank, c.model.lora.alpha = 8, 16.0
        c.train.grad_accum_steps = 10
        c.train.batch_size = 160
        c.train.num_steps = 5000
        c.train.max_text_length = 512
        c.train.length_counts_image = False
    elif recipe == "chatpose":
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
    c.model.mm_use_im_start_end = True  # LISA's train_ds (and so ChatPose's) wraps the image (use_mm_start_end)
    return c
