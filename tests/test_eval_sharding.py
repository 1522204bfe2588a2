"""chatpose-eval's decoding sharded over the mesh's data axes gives the one-device results (8 CPU devices)."""

import io

import jax
import numpy as np
import pytest

from tests import chat_fixtures, eval_fixtures

pytestmark = pytest.mark.slow  # make test-fast leaves this file out (make test runs it)

MEAN = (np.full(3, 0.1, np.float32), np.full(69, -0.05, np.float32))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A random-init tiny ChatPose whose greedy answers hold <POSE> for some text prompts and not others.

    A random model answers every benchmark question alike (they differ only inside the caption), so
    the <POSE> column of the LM head is solved for: at each prompt's first answer step its logit lands
    1.0 above the leading logit for every other question and 1.0 below for the rest (least squares on
    the prompts' last hidden states, 11 equations in 128 unknowns: exact).
    """
    from chatpose_jax.inference import prompt
    from chatpose_jax.inference.session import ChatModel, left_pad, load_chat_tokenizer
    from chatpose_jax.model import chatpose, decoding

    config = eval_fixtures.tiny_model_config()
    params, lora = chatpose.init_params(config, jax.random.key(3))
    tokenizer = load_chat_tokenizer(chat_fixtures.tiny_tokenizer(tmp_path_factory), config)
    plain = ChatModel(config, params, lora, tokenizer)
    # All 11 prompts in one left-padded prefill (one compile), as the decoders run them.
    encoded = [plain.encode([], prompt.user_turn(q, False)) for q in benchmark("text", 11).questions]
    length = max(len(e) for e in encoded)
    ids, mask = left_pad(encoded, length, config.pad_token_id)
    prefill = jax.jit(decoding.prefill, static_argnums=(0, 6))
    (logits, hidden), _ = prefill(config, params, lora, ids, None, mask, length + 1)
    states = np.asarray(hidden, np.float64)
    leading = np.asarray(logits).max(axis=-1)
    target = leading + np.where(np.arange(len(leading)) % 2 == 0, 1.0, -1.0)
    column = np.linalg.lstsq(states, target, rcond=None)[0].astype(np.float32)
    kernel = params["lm_head"]["kernel"]
    params = {**params, "lm_head": {"kernel": kernel.at[:, config.pose_token_id].set(column)}}
    return ChatModel(config, params, lora, tokenizer)


def benchmark(kind: str, n: int):
    from PIL import Image

    from chatpose_jax.eval.benchmarks import BenchmarkData, question_for

    rng = np.random.default_rng(0)
    words = ["left", "right", "arm", "knee", "raised", "bent", "sitting", "person", "head", "forward"]
    texts = [" ".join(rng.choice(words, size=3 + 2 * (i % 5))) for i in range(n)] if kind == "text" else [""] * n
    images = None
    if kind == "image":
        images = []
        for _ in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buf, format="JPEG")
            images.append(buf.getvalue())
    name = "posescript" if kind == "text" else "3dpw"
    crops = np.tile(np.array([[64.0, 48.0, 0.4]], np.float32), (n, 1))
    zeros = np.zeros
    return BenchmarkData(
        name, kind, "pose", np.array([f"s{i}" for i in range(n)]), [question_for(name, t) for t in texts], texts,
        images, crops, zeros((n, 3), np.float32), zeros((n, 69), np.float32), zeros((n, 10), np.float32),
        np.array(["n"] * n), zeros((n, 24, 4), np.float32),
    )  # fmt: skip


def decode(model, data, *, devices, mesh, batch_size, forced=False):
    from chatpose_jax.eval.mesh_decode import MeshDecoder
    from chatpose_jax.eval.predictions import predict_benchmark
    from chatpose_jax.parallel.mesh import MeshConfig

    decoder = MeshDecoder.create(model, batch_size, MeshConfig(*mesh), devices=devices)
    preds = predict_benchmark(decoder, data, MEAN, max_new_tokens=6, force_pose_answer=forced, progress=False)
    return decoder, preds


def assert_same(one, eight):
    np.testing.assert_array_equal(eight.ids, one.ids)
    np.testing.assert_array_equal(eight.answer, one.answer)
    np.testing.assert_array_equal(eight.has_pose, one.has_pose)
    np.testing.assert_allclose(eight.global_orient, one.global_orient, atol=2e-4)
    np.testing.assert_allclose(eight.body_pose, one.body_pose, atol=2e-4)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_sharded_decoding_equals_one_device(model, kind):
    assert jax.device_count() == 8, "tests run on 8 forced CPU devices (tests/conftest.py)"
    data = benchmark(kind, 11 if kind == "text" else 5)
    _, one = decode(model, data, devices=jax.devices()[:1], mesh=(1, 1, 1), batch_size=4)
    decoder, eight = decode(model, data, devices=jax.devices(), mesh=(4, 2, 1), batch_size=4)
    # The 8-device batch really is split: 8 rows per step, one per device, and fsdp splits weights.
    assert decoder.rows_per_host == 8
    ids, _, _, _ = decoder._global_inputs([np.arange(5, dtype=np.int32)], None)
    assert len(ids.sharding.device_set) == 8 and {s.data.shape[0] for s in ids.addressable_shards} == {1}
    specs = {str(leaf.sharding.spec) for leaf in jax.tree.leaves(decoder.params)}
    assert any("fsdp" in s for s in specs), specs
    # Some answers hold <POSE> and some do not, so both paths (pose head, mean pose) are compared.
    assert 0 < one.has_pose.sum() < len(data) or kind == "image", one.answer
    assert_same(one, eight)
    assert np.all(one.global_orient[~one.has_pose] == MEAN[0])


def test_sharded_teacher_forced_poses_equal_one_device(model):
    data = benchmark("image", 3)
    _, one = decode(model, data, devices=jax.devices()[:1], mesh=(1, 1, 1), batch_size=2, forced=True)
    _, eight = decode(model, data, devices=jax.devices(), mesh=(2, 2, 2), batch_size=2, forced=True)
    assert one.has_pose.all() and np.ptp(one.body_pose, axis=0).max() > 1e-4, "poses must differ per image"
    assert_same(one, eight)
