"""The attention kernels `ModelConfig.attention_impl` picks: Pallas splash attention (run here in Pallas
interpret mode, `make_splash_mha(..., interpret=True)`) against the reference, alone and sharded,
"auto"'s choice per platform, and the kernel in a TPU program compiled ahead of time on this host."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chatpose_jax.model import attention

REPO = Path(__file__).resolve().parent.parent

# Float32 throughout. The kernel's online softmax (blocks of 128 keys, running max and sum rescaled
# per block, queries pre-multiplied by the scale) and the reference's one-pass softmax differ by
# float32 rounding only: ~1e-6 on these unit-variance inputs (outputs are averages of unit values),
# ~1e-5 on gradients, which sum up to 256 such terms.
ATOL, GRAD_ATOL = 2e-5, 1e-4


def _qkv(b, t, h, k, d, seed=0):
    keys = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(keys[0], (b, t, h, d))
    kk = jax.random.normal(keys[1], (b, t, k, d))
    v = jax.random.normal(keys[2], (b, t, k, d))
    g = jax.random.normal(keys[3], (b, t, h, d))
    return q, kk, v, g


def _valid(b, t, left, right):
    valid = np.ones((b, t), bool)
    valid[0, :left] = False
    valid[-1, t - right :] = False
    return jnp.asarray(valid)


def _out_and_grads(fn, g, real):
    """jit(q, k, v -> (out, d/dq,k,v of sum(out * g) over real rows)): padding rows reach no loss."""

    def run(q, k, v):
        out, vjp = jax.vjp(fn, q, k, v)
        return out, vjp(jnp.where(real, g, 0.0))

    return jax.jit(run)


def _assert_matches(fn, q, k, v, g, mask, real):
    out, grads = _out_and_grads(fn, g, real)(q, k, v)
    want, want_grads = _out_and_grads(lambda *a: attention.reference_attention(*a, mask), g, real)(q, k, v)
    assert out.shape == q.shape and out.dtype == q.dtype
    assert bool(jnp.isfinite(out).all())  # rows that see no real key (left padding) included
    np.testing.assert_allclose(jnp.where(real, out, 0), jnp.where(real, want, 0), atol=ATOL)
    for ours, theirs in zip(grads, want_grads, strict=True):
        assert bool(jnp.isfinite(ours).all())
        np.testing.assert_allclose(ours, theirs, atol=GRAD_ATOL)


@pytest.mark.parametrize(
    "t, heads, kv_heads, left, right",
    [
        (256, 4, 2, 0, 37),  # right padding, grouped-query (H=4, K=2), two blocks of 128
        (256, 4, 4, 45, 0),  # left padding: the first 45 queries see no key
        (200, 4, 2, 13, 21),  # not a multiple of the block (padded to 256, sliced back); both paddings
    ],
)
def test_causal_splash_and_its_gradient_equal_the_reference(t, heads, kv_heads, left, right):
    q, k, v, g = _qkv(2, t, heads, kv_heads, 32)
    valid = _valid(2, t, left, right)
    mask = attention.causal_mask(jnp.arange(t), valid)
    fn = lambda *a: attention.dot_product_attention(*a, mask, impl="splash", is_causal=True)  # noqa: E731
    _assert_matches(fn, q, k, v, g, mask, valid[:, :, None, None])


def test_splash_with_a_sliding_window_and_without_a_mask():
    t, window = 200, 70
    q, k, v, g = _qkv(2, t, 2, 1, 16, seed=1)
    valid = _valid(2, t, 9, 30)
    mask = attention.causal_mask(jnp.arange(t), valid, sliding_window=window)
    fn = lambda *a: attention.dot_product_attention(  # noqa: E731
        *a, mask, impl="splash", is_causal=True, sliding_window=window
    )
    _assert_matches(fn, q, k, v, g, mask, valid[:, :, None, None])
    # The vision tower: every token sees every token (padded to 256 keys the kernel must hide).
    fn = lambda *a: attention.dot_product_attention(*a, None, impl="splash")  # noqa: E731
    _assert_matches(fn, q, k, v, g, None, jnp.ones((2, t, 1, 1), bool))


def test_splash_in_shard_map_over_batch_and_heads():
    from jax.sharding import NamedSharding, PartitionSpec

    from chatpose_jax.parallel.axes import BTHD, BTKD, logical_to_spec, sharding_context, traced_under
    from chatpose_jax.parallel.mesh import MeshConfig, make_mesh

    cfg = MeshConfig(data=2, fsdp=2, tensor=2)
    mesh = make_mesh(cfg, jax.devices()[:8])
    t = 128
    q, k, v, g = _qkv(4, t, 4, 2, 16, seed=2)
    valid = _valid(4, t, 17, 40)
    mask = attention.causal_mask(jnp.arange(t), valid)
    real = valid[:, :, None, None]

    def put(x, axes):
        return jax.device_put(x, NamedSharding(mesh, logical_to_spec(axes, cfg.logical_axis_rules)))

    q, g = put(q, BTHD), put(g, BTHD)
    k, v = put(k, BTKD), put(v, BTKD)
    fn = traced_under(
        lambda *a: attention.dot_product_attention(*a, mask, impl="splash", is_causal=True),
        mesh,
        cfg.logical_axis_rules,
    )
    with sharding_context(mesh, cfg.logical_axis_rules):
        text = jax.jit(fn).lower(q, k, v).as_text()
    assert "shard_map" in text or "sdy.manual_computation" in text, text[:2000]
    _assert_matches(fn, q, k, v, g, mask, real)
    out = jax.jit(fn)(q, k, v)
    assert out.sharding.is_equivalent_to(NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None, "tensor")), 4)


def test_auto_and_splash_pick_per_platform_and_call(monkeypatch):
    t = 64
    q, k, _, _ = _qkv(1, t, 4, 2, 32)
    mask = attention.causal_mask(jnp.arange(t), jnp.ones((1, t), bool))
    # A decoding step: one query against a cache of 96 slots.
    q1, cache = q[:, :1], jnp.zeros((1, 96, 2, 32))
    step_mask = attention.causal_mask(jnp.array([40]), jnp.arange(96)[None] <= 40)
    assert attention.target_platform() == "cpu"
    assert attention.resolve_impl("auto", q, k, mask, True) == "xla"
    assert attention.resolve_impl("splash", q, k, mask, True) == "splash"
    assert attention.resolve_impl("splash", q, k, None) == "splash"
    assert attention.resolve_impl("splash", q1, cache, step_mask) == "xla"  # the cache: xla
    assert attention.resolve_impl("splash", q, k, mask, False) == "xla"  # an arbitrary mask: xla
    monkeypatch.setattr(attention, "target_platform", lambda: "tpu")
    assert attention.resolve_impl("auto", q, k, mask, True) == "splash"
    assert attention.resolve_impl("auto", q1, cache, step_mask) == "xla"
    monkeypatch.setattr(attention, "target_platform", lambda: "gpu")
    bf16 = q.astype(jnp.bfloat16)
    assert attention.resolve_impl("auto", bf16, k.astype(jnp.bfloat16), mask, True) == "cudnn"
    assert attention.resolve_impl("auto", q, k, mask, True) == "xla"  # float32: not cuDNN's
    assert attention.resolve_impl("auto", jnp.zeros((1, t, 2, 160), jnp.bfloat16), k, mask, True) == "xla"
    assert attention.resolve_impl("auto", q1.astype(jnp.bfloat16), cache, step_mask) == "xla"  # odd length
    with pytest.raises(ValueError, match="unknown attention impl 'flash'"):
        attention.resolve_impl("flash", q, k)
    # On CPU "auto" runs the blockwise kernel: the same numbers as "xla".
    monkeypatch.undo()
    v = jnp.ones_like(k)
    np.testing.assert_array_equal(
        attention.dot_product_attention(q, k, v, mask, impl="auto", is_causal=True),
        attention.dot_product_attention(q, k, v, mask, impl="xla", is_causal=True),
    )


def test_splash_block_sizes():
    assert [attention.splash_block(n) for n in (128, 200, 512, 640, 1024, 1088, 2048)] == [
        128, 256, 512, 128, 512, 128, 512,
    ]  # fmt: skip


# The tiny config's train step for a TPU v5e-4 slice (data=2 x tensor=2, one decoder layer and the one
# tower layer LLaVA's penultimate features read, 64 image + 128 text tokens): with "splash" the
# compiled program runs the Mosaic kernels (forward, dq, dkv) in both the decoder and the tower; with
# "xla" the lowered program has none. (One compile: about 20 s here, twice that on a loaded host.)
AOT_CODE = """
import json, re
from chatpose_jax.config_files import repo_config
from chatpose_jax.experiment import load_experiment
from chatpose_jax.parallel.mesh import make_mesh
from chatpose_jax.parallel.topology import compile_only_devices
from chatpose_jax.train import aot
from chatpose_jax.train.setup import build_abstract_trainer

_, devices = compile_only_devices("v5e-4")

def experiment(impl):
    c = repo_config("tiny")
    c.model.attention_impl = impl
    c.model.text.num_layers, c.model.vision.num_layers = 1, 2
    c.train.batch_size, c.train.loss.joints_weight = 4, 0.0
    c.mesh.data, c.mesh.tensor = 2, 2
    return load_experiment(c, len(devices))

report = aot.compile_train_step(experiment("splash"), devices, text_length=128)
e = experiment("xla")
mesh = make_mesh(e.mesh, devices)
trainer = build_abstract_trainer(e, mesh)
xla_text = trainer.step_fn.lower(trainer.state, trainer.frozen, aot.abstract_batch(e, mesh, 128)).as_text()
print(json.dumps({
    "splash_calls": report.hlo.count('custom_call_target="tpu_custom_call"'),
    "splash_kernels": sorted(set(re.findall(r"splash_mha_[a-z_]+", report.hlo))),
    "splash_all_to_all": report.network.ops["all-to-all"],
    "xla_calls": xla_text.count("tpu_custom_call"),
}))
"""


@pytest.mark.slow
def test_splash_compiles_into_the_tiny_train_step_for_tpu_v5e_4():
    pytest.importorskip("libtpu", reason="the [aot] extra (libtpu) is not installed")
    from tests.tpu_compile import TPU_COMPILE_ENV

    result = subprocess.run(
        [sys.executable, "-c", AOT_CODE], capture_output=True, text=True, timeout=300, env=TPU_COMPILE_ENV, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["splash_calls"] == 6, found  # 3 kernels x (decoder layer + tower layer)
    assert found["splash_kernels"] == [
        "splash_mha_dkv_segmented_no_residuals",
        "splash_mha_dq_segmented_no_residuals",
        "splash_mha_fwd_segmented_residuals",
    ], found
    assert found["splash_all_to_all"] == 0, found
    assert found["xla_calls"] == 0, found


def _config(name, *args):
    from chatpose_jax.config_files import repo_config

    return repo_config(name, *args)


@pytest.mark.slow
def test_tiny_model_with_splash_equals_xla_on_real_tokens():
    """The decoder (causal, left and right padding, grouped-query) and the tower (unmasked, 65 tokens) end to end."""
    import dataclasses

    from chatpose_jax.experiment import load_experiment
    from chatpose_jax.model import chatpose

    c = _config("tiny.py")
    c.model.text.num_layers, c.model.vision.num_layers = 1, 2  # the tower's penultimate layer: its first
    config = load_experiment(c).model
    # Random weights from the shapes (compiling the initialiser takes longer than this whole test).
    shapes = chatpose.abstract_variables(config)[0]
    rng = np.random.RandomState(0)
    variables = jax.tree_util.tree_map_with_path(
        lambda path, s: (
            np.float32(1.0) + np.zeros(s.shape, np.float32)
            if "scale" in jax.tree_util.keystr(path)
            else rng.normal(0.0, 0.05, s.shape).astype(np.float32)
        ),
        shapes,
    )
    params, lora = variables["params"], variables.get("lora", {})
    t = 64 + 40  # the image's 64 tokens and 40 text tokens
    ids = rng.randint(3, 1000, size=(2, t))
    ids[:, 5:69] = config.image_token_id
    mask = np.ones((2, t), np.int32)
    mask[0, :3], mask[1, -11:] = 0, 0
    ids[mask == 0] = config.pad_token_id
    pixels = jnp.asarray(rng.randn(2, 3, 112, 112).astype(np.float32))

    def logits(impl):
        cfg = dataclasses.replace(config, attention_impl=impl)
        run = jax.jit(lambda p, lp: chatpose.apply(cfg, p, lp, jnp.asarray(ids), pixels, jnp.asarray(mask)).logits)
        return run(params, lora)

    splash, xla = logits("splash"), logits("xla")
    real = mask.astype(bool)
    assert bool(jnp.isfinite(splash).all())
    np.testing.assert_allclose(np.asarray(splash)[real], np.asarray(xla)[real], atol=1e-4)


@pytest.mark.parametrize("name", ["llava15_7b.py", "llava15_13b.py", "backbones/llava15_7b_hf.py"])
def test_full_recipes_take_the_platforms_attention_and_tiny_keeps_xla(name):
    from chatpose_jax.experiment import load_experiment

    for recipe in ("lisa", "chatpose"):
        assert load_experiment(_config(name, recipe)).model.attention_impl == "auto"
    assert load_experiment(_config("tiny.py")).model.attention_impl == "xla"
