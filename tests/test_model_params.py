"""Parameter counts of the 7B / 13B configs against transformers, and the forward on an 8-device mesh."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from llava_tiny import VOCAB, image_prompt, make_hf_llava, pixels, save_hf_llava
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from chatpose_jax.config_files import repo_config
from chatpose_jax.convert.hf import load_llava
from chatpose_jax.model import chatpose
from chatpose_jax.model.config import model_config_from_dict
from chatpose_jax.parallel import axes
from chatpose_jax.parallel.mesh import DEFAULT_LOGICAL_AXIS_RULES, MeshConfig, make_mesh


def _experiment_model_config(name):
    return model_config_from_dict(repo_config(name).model)


def _hf_count(hidden, layers, heads, intermediate) -> int:
    """Parameters of the published llava-1.5-{7,13}b-hf shapes, built on the meta device."""
    text = LlamaConfig(
        vocab_size=32064,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        rms_norm_eps=1e-5,
    )
    vision = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
    )
    cfg = LlavaConfig(text_config=text, vision_config=vision, image_token_index=32000, pad_token_id=32001)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(cfg)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, shape", [("llava15_7b", (4096, 32, 32, 11008)), ("llava15_13b", (5120, 40, 40, 13824))])
def test_parameter_count_equals_llava15(name, shape):
    config = _experiment_model_config(name)
    shapes, _ = chatpose.abstract_variables(config)  # jax.eval_shape: nothing is allocated
    count = lambda tree: sum(math.prod(x.shape) for x in jax.tree.leaves(tree))  # noqa: E731
    params = shapes["params"]
    d = config.text.hidden_size
    pose_head = count(params["pose_head"])
    # Our only extra parameters are the pose head: Linear(d, d) + Linear(d, 144), with biases.
    assert pose_head == d * d + d + d * 144 + 144
    base = count(params) - pose_head
    assert base == _hf_count(*shape), (
        f"{name}: {base} parameters without the pose head, transformers has {_hf_count(*shape)}"
    )


def test_forward_on_fsdp4_tensor2_mesh_equals_one_device(tmp_path):
    folder = save_hf_llava(make_hf_llava(seed=3), tmp_path / "ckpt")
    config, params = load_llava(folder, dtype="float32")
    rng = np.random.RandomState(0)
    ids, px = jnp.asarray(image_prompt(rng, 4)), jnp.asarray(pixels(rng, 4))
    mask = jnp.ones(ids.shape, jnp.int32).at[1, -2:].set(0)
    single = np.asarray(jax.jit(lambda p, *a: chatpose.apply(config, p, None, *a).logits)(params, ids, px, mask))

    mesh = make_mesh(MeshConfig(data=1, fsdp=4, tensor=2))
    rules = DEFAULT_LOGICAL_AXIS_RULES
    _, sharded = load_llava(folder, dtype="float32", mesh=mesh, logical_axis_rules=rules)
    q = sharded["language_model"]["layers_0"]["self_attn"]["q_proj"]["kernel"]
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor"), q.sharding.spec
    assert len(q.addressable_shards) == 8 and q.addressable_shards[0].data.shape == (64 // 4, 64 // 2)
    # 161 vocabulary rows do not split over 2: that dimension stays whole instead of failing.
    assert sharded["lm_head"]["kernel"].sharding.spec == jax.sharding.PartitionSpec("fsdp", None)

    batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    ids_s, px_s, mask_s = (jax.device_put(a, batch) for a in (ids, px, mask))

    def forward(p, *a):
        return chatpose.apply(config, p, None, *a).logits

    # Traced under the mesh and rules, as the train and decode steps are: the activation constraints bind.
    out = jax.jit(axes.traced_under(forward, mesh, rules))(sharded, ids_s, px_s, mask_s)
    assert out.sharding.spec[0] == ("data", "fsdp") or out.sharding.spec[0] == "fsdp", out.sharding.spec
    real = np.asarray(mask).astype(bool)
    err = np.abs(np.asarray(out)[real][:, :VOCAB] - single[real][:, :VOCAB]).max()
    assert err < 1e-4, f"mesh forward differs from one device by {err:.2e}"
