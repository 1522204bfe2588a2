"""One LoRA training step (forward + backward, bf16 compute) of a small LLaVA: ours vs transformers.

    python -m chatpose_jax.benchmarks.model_step [--steps 5] [--batch 4]

Shape: CLIP tower 336 px / 14 (576 image tokens), width 256, 4 layers; LLaMA d=256, 4 layers,
4 heads, MLP 688, vocabulary 8192; 576 image + 256 text tokens; batch 4. LoRA r=8 on q_proj and
v_proj; only the adapters get gradients. Both sides use bf16 parameters for the frozen weights'
matmuls (ours: float32 storage, bf16 compute; PyTorch: a bf16 model) and the same threads.
Ours is the loss of the training step (`train.step.micro_loss`: answer-token cross-entropy, the
LM head only at positions whose next token is learned, plus the masked pose term); PyTorch's is
`LlavaForConditionalGeneration(labels=...)`, which computes logits at every position.
Prints both median step times and ours / PyTorch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

VOCAB = 8192
IMAGE_ID = 8000
TEXT_TOKENS = 256


def _hf_config():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    text = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
    )
    vision = CLIPVisionConfig(
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=336,
        patch_size=14,
    )
    return LlavaConfig(text_config=text, vision_config=vision, image_token_index=IMAGE_ID, vision_feature_layer=-2)


def _batch(batch: int, rng: np.random.RandomState):
    ids = rng.randint(3, IMAGE_ID, size=(batch, 1 + 576 + TEXT_TOKENS - 1))
    ids[:, 0] = 1
    ids[:, 1:577] = IMAGE_ID
    labels = ids.copy()
    labels[:, :577] = -100
    return ids, rng.randn(batch, 3, 336, 336).astype(np.float32), labels


def time_ours(folder: str, ids, pixel_values, labels, steps: int, **overrides) -> float:
    """The loss and adapter gradients of the training step (`train.step.micro_loss`), jitted."""
    import jax
    import jax.numpy as jnp

    from chatpose_jax.convert.hf import load_llava
    from chatpose_jax.experiment import LossConfig
    from chatpose_jax.model import chatpose
    from chatpose_jax.train import step as step_lib

    config, params = load_llava(folder, **{"dtype": "bfloat16", **overrides})
    _, lora = chatpose.init_params(config, jax.random.key(0))
    settings = step_lib.StepSettings(config, LossConfig(), max_text_length=TEXT_TOKENS)
    b, p = ids.shape[0], config.pose_head.max_poses
    batch = {
        "input_ids": jnp.asarray(ids),
        "attention_mask": jnp.ones(ids.shape, jnp.int32),
        "labels": jnp.asarray(labels),
        "pixel_values": jnp.asarray(pixel_values),
        # No <POSE> in these rows: the pose term runs but is masked out, as for a text-answer batch.
        "pose_global_orient": jnp.zeros((b, p, 3)),
        "pose_body_pose": jnp.zeros((b, p, 69)),
        "pose_betas": jnp.zeros((b, p, 10)),
        "pose_mask": jnp.zeros((b, p), bool),
    }

    def loss_fn(lora_params, params, batch, rng):
        trainable = {"params": {}, "lora": lora_params}
        counts = step_lib.step_counts(batch)
        return step_lib.micro_loss(trainable, params, batch, counts, rng, settings)[0]

    step = jax.jit(jax.value_and_grad(loss_fn))
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        loss, grads = step(lora, params, batch, jax.random.key(i))
        jax.block_until_ready(grads)
        times.append(time.perf_counter() - start)
    print(f"ours: loss {float(loss):.4f}")
    return float(np.median(times[2:]))


def time_torch(model, ids, pixel_values, labels, steps: int) -> float:
    import torch

    class LoraLinear(torch.nn.Module):
        def __init__(self, base, r=8, alpha=16.0, dropout=0.05):
            super().__init__()
            self.base = base
            self.a = torch.nn.Parameter(
                torch.randn(base.in_features, r, dtype=base.weight.dtype) / base.in_features**0.5
            )
            self.b = torch.nn.Parameter(torch.zeros(r, base.out_features, dtype=base.weight.dtype))
            self.drop, self.scaling = torch.nn.Dropout(dropout), alpha / r

        def forward(self, x):
            return self.base(x) + (self.drop(x) @ self.a @ self.b) * self.scaling

    model = model.to(torch.bfloat16).train()
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.model.language_model.layers:
        layer.self_attn.q_proj = LoraLinear(layer.self_attn.q_proj)
        layer.self_attn.v_proj = LoraLinear(layer.self_attn.v_proj)
    ids_t, px_t, labels_t = (
        torch.from_numpy(ids),
        torch.from_numpy(pixel_values).to(torch.bfloat16),
        torch.from_numpy(labels),
    )
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        out = model(input_ids=ids_t, pixel_values=px_t, labels=labels_t)
        out.loss.backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    print(f"pytorch: loss {float(out.loss):.4f}")
    return float(np.median(times[2:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="PyTorch threads (0: torch's default)")
    args = parser.parse_args()

    import tempfile

    import torch
    from transformers import LlavaForConditionalGeneration

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(_hf_config()).float()
    ids, pixel_values, labels = _batch(args.batch, np.random.RandomState(0))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        ours = time_ours(folder, ids, pixel_values, labels, args.steps)
    theirs = time_torch(model, ids, pixel_values, labels, args.steps)
    print(f"batch {args.batch} x (576 image + {TEXT_TOKENS} text tokens), d=256, 4 layers, LoRA r=8, bf16")
    print(f"ours (jax):            {ours * 1e3:8.1f} ms/step")
    print(f"transformers (torch):  {theirs * 1e3:8.1f} ms/step (torch threads {torch.get_num_threads()})")
    print(f"ratio ours / pytorch:  {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
