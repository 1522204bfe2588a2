"""The embedded default: a ChatPose small enough to train on a 2-core CPU in minutes.

Same architecture as LLaVA-1.5 (CLIP-style tower, mlp2x_gelu projector, LLaMA decoder with
grouped-query attention, pose head, LoRA on q/v), tiny widths. The synthetic tokenizer has
1000 pieces; <image>, <pad> and <POSE> follow at 1000, 1001, 1002 (rows padded to 1024).

    chatpose-train --config configs/tiny.py --workdir /tmp/tiny --config.train.num_steps=200
"""

from chatpose_jax.default_config import base_config


def get_config():
    c = base_config()
    c.name = "tiny"

    v = c.model.vision
    v.image_size = 112  # pixels: (112/14)^2 = 64 image tokens
    v.patch_size = 14
    v.hidden_size = 64
    v.intermediate_size = 256
    v.num_layers = 3  # the penultimate (feature_layer=-2) feeds the projector, as in LLaVA-1.5
    v.num_heads = 4

    t = c.model.text
    t.vocab_size = 1024  # 1000 sentencepiece pieces + <image>, <pad>, <POSE>, padded
    t.hidden_size = 128
    t.intermediate_size = 344
    t.num_layers = 4
    t.num_heads = 4
    t.num_kv_heads = 2  # grouped-query attention, so the tiny model exercises it
    t.max_position_embeddings = 512

    c.model.image_token_id = 1000
    c.model.pad_token_id = 1001
    c.model.pose_token_id = 1002
    c.model.dtype = "float32"  # CPUs gain nothing from bf16 matmuls
    c.model.remat_policy = "none"
    c.model.lora.rank = 8
    c.model.lora.alpha = 16.0
    # No pretrained LLaVA exists at this size: the tiny model learns every weight, and weights the
    # pose loss like the text loss so that it learns poses within the demo's few minutes.
    c.train.trainable = "all"
    c.train.loss.pose_weight = 1.0

    c.train.num_steps = 300
    c.train.batch_size = 8
    c.train.grad_accum_steps = 1
    c.train.max_text_length = 128  # a text-to-pose prompt averages ~90 tokens; longer ones would be dropped
    c.train.log_every = 10
    c.train.checkpoint_every = 100

    c.optimizer.lr = 1e-3
    c.optimizer.warmup_steps = 20

    c.data.shuffle_buffer = 256
    return c
