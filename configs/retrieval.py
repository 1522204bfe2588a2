"""The text-pose retrieval model (PoseScript's recipe) that scores the text-to-pose benchmarks.

Trained by the project's loop on PoseScript pairs (train split; best validation mRecall kept in
WORKDIR/retrieval_best/):

    chatpose-train --config configs/retrieval.py --workdir /tmp/retrieval \\
        --config.data.data_dir=/tmp/tfds --config.data.tokenizer=/tmp/raw/tokenizer
    chatpose-eval --retrieval /tmp/retrieval ...

PoseScript trains with batch 512 on automatic captions, then batch 32 on human captions; this
config is the first stage (`--config.retrieval.texts=human --config.train.batch_size=32
--config.init_checkpoint=...` is not the second: run it as a new workdir). Widths are PoseScript's
but for the text embeddings, trained from scratch on our tokenizer (no DistilBERT here).
"""

import ml_collections

from chatpose_jax.default_config import base_config


def get_config(size: str = "full"):
    """size: "full" (PoseScript's widths) or "tiny" (`configs/retrieval.py:tiny`, for tests and the demo)."""
    c = base_config()
    c.name = "retrieval"
    c.task = "retrieval"  # the loop trains the retrieval model, not ChatPose

    r = c.retrieval = ml_collections.ConfigDict()
    r.num_joints = 22  # root + 21 body joints
    r.latent_dim = 512  # joint space width
    r.pose_hidden = 512  # pose MLP width
    r.pose_bottleneck = 32  # PoseScript's 32-wide bottleneck
    r.vocab_size = 32064  # >= the tokenizer's vocabulary (LLaVA's 32000 + added tokens)
    r.embed_dim = 768  # token embedding width (DistilBERT's)
    r.text_layers = 4  # transformer encoder layers
    r.text_heads = 4  # attention heads
    r.text_ff = 1024  # feed-forward width
    r.dropout = 0.1
    r.max_text_length = 128  # tokens per description (detailed automatic captions run to ~100)
    r.init_logit_scale = 10.0  # learnable temperature, PoseScript's start
    r.flip_prob = 0.5  # left-right flip augmentation
    r.tokenizer = ""  # tokenizer folder ("" = data.tokenizer)
    r.texts = "all"  # captions used: all | human | automatic
    r.init_embeddings = ""  # ChatPose checkpoint whose embedding table starts ours ("" = random)

    c.train.num_steps = 20000  # optimizer steps
    c.train.batch_size = 512  # PoseScript's batch on automatic captions
    c.train.grad_accum_steps = 1
    c.train.log_every = 50
    c.train.checkpoint_every = 1000
    c.train.eval_every = 1000  # validation mRecall (best kept)
    c.train.body_model = ""  # not used

    c.optimizer.lr = 2e-4  # Adam, PoseScript's rate
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 0
    c.optimizer.schedule = "constant"
    c.optimizer.clip_norm = 0.0
    if size == "tiny":
        _tiny(c)
    elif size not in ("full", ""):
        raise ValueError(f"configs/retrieval.py:{size}: expected 'full' or 'tiny'")
    return c


def _tiny(c):
    """Small widths for tests and the synthetic demo (seconds per hundred steps on a CPU)."""
    r = c.retrieval
    r.latent_dim, r.pose_hidden, r.vocab_size, r.embed_dim = 128, 128, 1024, 64
    r.text_layers, r.text_heads, r.text_ff, r.max_text_length = 2, 4, 256, 112
    c.train.num_steps, c.train.batch_size, c.train.log_every = 300, 32, 50
    c.train.checkpoint_every, c.train.eval_every = 300, 100
    c.optimizer.lr = 1e-3
