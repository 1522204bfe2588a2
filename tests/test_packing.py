"""Packed rows (data.pack): several conversations per row, segment-local attention and positions,
the same losses and gradients as one conversation per row, exact resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chatpose_jax.config_files import repo_config
from chatpose_jax.experiment import load_experiment
from chatpose_jax.model import attention, chatpose
from chatpose_jax.train import step as step_lib
from data_pipelines import pipeline
from data_pipelines.batch import check_batch

IMAGE, PAD, POSE, BOS = 1000, 1001, 1002, 1
# XLA:CPU at its lowest optimisation level: the tests compare numbers, and compile 2-3x faster.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def compiled(fn, *args, static=()):
    """`fn` jitted and compiled for `args` with FAST_COMPILE, called on them."""
    dynamic = [a for i, a in enumerate(args) if i not in static]
    jitted = jax.jit(fn, static_argnums=static)
    return jitted.lower(*args).compile(FAST_COMPILE)(*dynamic)


def tiny_experiment(max_poses=4):
    """The tiny config, smaller still; P = `max_poses` pose slots a row."""
    config = repo_config("tiny")
    # Smaller than the demo model so that each test compiles in seconds; grouped-query heads stay.
    config.model.text.num_layers = 2
    config.model.text.hidden_size = 32
    config.model.text.intermediate_size = 64
    config.model.vision.num_layers = 2
    config.model.vision.hidden_size = 32
    config.model.vision.intermediate_size = 64
    config.model.lora.rank = 0
    config.model.lora.dropout = 0.0
    config.model.pose_head.max_poses = max_poses
    return load_experiment(config)


@pytest.fixture(scope="module")
def model():
    """(experiment, params): random weights drawn in numpy (norm scales 1), no init program to compile."""
    experiment = tiny_experiment(max_poses=4)
    shapes, _ = chatpose.abstract_variables(experiment.model)
    rng = np.random.default_rng(0)

    def draw(path, s):
        if jax.tree_util.keystr(path).endswith("['scale']"):
            return jnp.ones(s.shape, s.dtype)
        return jnp.asarray(0.05 * rng.standard_normal(s.shape), s.dtype)

    return experiment, jax.tree_util.tree_map_with_path(draw, shapes["params"])


def samples(num_image_tokens, seed=0):
    """Tokenised samples as the pipeline holds them (right-padded): (length, has image, has pose) each."""
    rng = np.random.default_rng(seed)
    specs = [(30, False, True), (22, False, False), (num_image_tokens + 20, True, True), (17, False, True),
             (26, False, True), (12, False, False)]  # fmt: skip
    t = max(n for n, _, _ in specs)
    n = len(specs)
    el = {
        "input_ids": np.full((n, t), PAD, np.int32),
        "attention_mask": np.zeros((n, t), np.int32),
        "labels": np.full((n, t), -100, np.int32),
        "pixel_values": np.zeros((n, 3, 112, 112), np.float32),
        "has_image": np.array([img for _, img, _ in specs]),
        "has_pose": np.array([pose for _, _, pose in specs]),
        "num_pose": np.array([int(pose) for _, _, pose in specs], np.int32),
        "global_orient": (0.5 * rng.normal(size=(n, 3))).astype(np.float32),
        "body_pose": (0.3 * rng.normal(size=(n, 69))).astype(np.float32),
        "betas": np.zeros((n, 10), np.float32),
        "source": np.array([0 if pose and not img else 2 if img else 1 for _, img, pose in specs], np.int32),
        "index": np.arange(n),
    }
    for i, (length, img, pose) in enumerate(specs):
        ids = rng.integers(3, 1000, length).astype(np.int32)
        ids[0] = BOS
        start = 3
        if img:
            ids[3 : 3 + num_image_tokens] = IMAGE
            start += num_image_tokens
            el["pixel_values"][i] = rng.normal(size=(3, 112, 112))
        answer = slice(start + (length - start) // 2, length)
        if pose:
            ids[length - 2] = POSE
        el["input_ids"][i, :length] = ids
        el["attention_mask"][i, :length] = 1
        el["labels"][i, answer] = ids[answer]
    return el


def test_pack_rows_fills_the_least_filled_row_and_skips_misfits():
    lengths = np.array([50, 40, 30, 60, 20, 90, 10])
    placed = pipeline.pack_rows(lengths, np.zeros(7, int), np.zeros(7, bool), rows=2, length=100, max_poses=1)
    # 50 -> row 0, 40 -> row 1, 30 -> row 1 (70), 60 fits no row, 20 -> row 0 (70), 90 no, 10 -> row 0.
    assert placed == [0, 1, 1, -1, 0, -1, 0]
    placed = pipeline.pack_rows(np.array([60, 60, 60, 60, 5]), np.zeros(5, int), np.zeros(5, bool), 2, 100, 1)
    assert placed == [0, 1, -1, -1], "two misfits in a row (= rows) end the scan before the 5"
    # Poses and images bound a row too.
    placed = pipeline.pack_rows(np.array([10, 10, 10, 10]), np.array([1, 1, 1, 0]), np.zeros(4, bool), 2, 100, 1)
    assert placed == [0, 1, -1, 0], "one <POSE> a row with max_poses=1"
    placed = pipeline.pack_rows(np.array([10, 10, 10, 10]), np.zeros(4, int), np.array([1, 1, 1, 0], bool), 2, 100, 1)
    assert placed == [0, 1, -1, 0], "one image a row"


def test_packed_layout_holds_each_sample_as_a_segment():
    el = samples(64)
    placed = pipeline.pack_rows(el["attention_mask"].sum(1), el["num_pose"], el["has_image"], 2, 160, 4)
    assert len(placed) == 6 and set(placed) == {0, 1}
    batch = pipeline.to_packed_layout(el, placed, 2, 160, 4, PAD)
    check_batch(batch, image_size=112, max_poses=4)
    for r in range(2):
        segments = batch["segment_ids"][r]
        mine = [i for i, row in enumerate(placed) if row == r]
        assert segments.max() == len(mine)
        for s, i in enumerate(mine, start=1):
            n = int(el["attention_mask"][i].sum())
            np.testing.assert_array_equal(batch["input_ids"][r][segments == s], el["input_ids"][i, :n])
            np.testing.assert_array_equal(batch["positions"][r][segments == s], np.arange(n))
        np.testing.assert_array_equal(batch["attention_mask"][r], segments > 0)
    assert batch["pose_mask"].sum() == el["has_pose"].sum()
    np.testing.assert_array_equal(
        np.asarray(attention.segment_positions(jnp.asarray(batch["segment_ids"]))), batch["positions"]
    )


def test_packed_losses_and_gradients_equal_the_unpacked_batch(model):
    experiment, params = model
    # Every weight but the vision tower's learns (its gradient adds compile time, not coverage: the
    # image features enter the decoder the same way packed or not).
    frozen = {k: v for k, v in params.items() if k in ("vision_tower", "multi_modal_projector")}
    trainable = {"lora": {}, "params": {k: v for k, v in params.items() if k not in frozen}}
    settings = step_lib.StepSettings(experiment.model, experiment.train.loss)
    el = samples(experiment.model.vision.num_image_tokens)
    unpacked = pipeline.to_layout(el, el["input_ids"].shape[1], 4)
    placed = pipeline.pack_rows(el["attention_mask"].sum(1), el["num_pose"], el["has_image"], 2, 160, 4)
    assert len(placed) == 6
    packed = pipeline.to_packed_layout(el, placed, 2, 160, 4, PAD)

    def loss_and_grads(batch):
        batch = {k: jnp.asarray(v) for k, v in batch.items() if k in step_lib.MODEL_INPUTS + step_lib.POSE_TARGETS}
        counts = step_lib.step_counts(batch)
        fn = jax.value_and_grad(step_lib.micro_loss, has_aux=True)
        (loss, sums), grads = compiled(fn, trainable, frozen, batch, counts, None, settings, static=(4, 5))
        return float(loss), jax.tree.map(float, sums), grads

    loss_u, sums_u, grads_u = loss_and_grads(unpacked)
    loss_p, sums_p, grads_p = loss_and_grads(packed)
    assert sums_u["poses"] == sums_p["poses"] == 4 and sums_u["tokens"] == sums_p["tokens"] > 0
    assert sums_p["pose_missing"] == 0
    np.testing.assert_allclose(loss_p, loss_u, atol=1e-5, rtol=0)
    for key in ("ce_sum", "pose_l1_sum", "correct"):
        np.testing.assert_allclose(sums_p[key], sums_u[key], atol=1e-4, rtol=1e-6, err_msg=key)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(grads_p), jax.tree.leaves(grads_u), strict=True):
        # float32 sums in another order: relative 1e-4 on the largest (pose head, |g| ~ 70) entries.
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4, err_msg=jax.tree_util.keystr(path))


def test_segments_never_see_each_other_and_positions_restart(model):
    experiment, params = model
    rng = np.random.default_rng(3)
    a, b = rng.integers(3, 1000, 20).astype(np.int32), rng.integers(3, 1000, 15).astype(np.int32)
    a[0] = b[0] = BOS
    t = 40
    ids = np.full((1, t), PAD, np.int32)
    ids[0, :20], ids[0, 20:35] = a, b
    segments = np.zeros((1, t), np.int32)
    segments[0, :20], segments[0, 20:35] = 1, 2
    mask = (segments > 0).astype(np.int32)

    def forward(input_ids, attention_mask, segment_ids=None):
        fn = lambda i, m, s: chatpose.apply(experiment.model, params, {}, i, None, m, segment_ids=s)  # noqa: E731
        return compiled(fn, input_ids, attention_mask, segment_ids, static=(2,) if segment_ids is None else ())

    packed = np.asarray(forward(ids, mask, segments).logits[0])
    changed = ids.copy()
    changed[0, 1:20] = rng.integers(3, 1000, 19)
    again = np.asarray(forward(changed, mask, segments).logits[0])
    np.testing.assert_array_equal(again[20:35], packed[20:35])
    assert np.abs(again[:20] - packed[:20]).max() > 1e-3, "segment 1 did change"
    # Each conversation alone in its own (right-padded, unpacked) row: positions from 0 there too.
    for tokens, where in ((a, slice(0, 20)), (b, slice(20, 35))):
        row = np.full((1, t), PAD, np.int32)
        row[0, : len(tokens)] = tokens
        alone = np.asarray(forward(row, (row != PAD).astype(np.int32)).logits[0, : len(tokens)])
        np.testing.assert_allclose(packed[where], alone, atol=1e-5, rtol=0)


def test_splash_takes_the_segments_of_packed_rows():
    rng = np.random.default_rng(0)
    b, t, h, k, d = 2, 128, 2, 1, 16
    q, key, v = (jnp.asarray(rng.normal(size=(b, t, n, d)), jnp.float32) for n in (h, k, k))
    segments = np.zeros((b, t), np.int32)
    segments[0, :50], segments[0, 50:100], segments[0, 100:120] = 1, 2, 3
    segments[1, :128] = 1
    segments = jnp.asarray(segments)
    mask = attention.segment_causal_mask(segments)
    want = attention.reference_attention(q, key, v, mask)
    got = attention.splash_attention(q, key, v, mask, is_causal=True, segment_ids=segments, interpret=True)
    real = np.asarray(segments > 0)
    np.testing.assert_allclose(np.asarray(got)[real], np.asarray(want)[real], atol=1e-5, rtol=0)


# ---- the pipeline ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from data_synth_cache import synthetic_data

    return synthetic_data(tmp_path_factory)


def _config(data, **kw):
    fields = dict(
        data_dir=data["data_dir"], datasets=("posescript", "llava_instruct", "hmr_images"), ratios=(1.0, 1.0, 2.0),
        batch_size=4, max_text_length=168, image_size=112, num_image_tokens=64, shuffle_buffer=32, seed=0,
        max_poses=8, pack=True, pack_length=400,
    )  # fmt: skip
    fields.update(kw)
    return pipeline.PipelineConfig(**fields)


def test_packed_batches_hold_the_stream_in_segments_and_resume_exactly(data):
    from data_pipelines.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(data["raw"]["tokenizer"])
    cfg = _config(data)
    it = pipeline.BatchIterator(cfg, tokenizer, 0, 1)
    first = [next(it) for _ in range(2)]
    state = it.state()
    following = [next(it) for _ in range(2)]
    for batch in first + following:
        check_batch(batch, image_size=112, max_poses=8)
        segments = batch["segment_ids"]
        assert batch["input_ids"].shape[1] in cfg.bucket_lengths + (400,)
        assert (segments.max(1) >= 1).all(), "every row holds a conversation"
        starts = (segments > 0) & (batch["positions"] == 0)
        assert (batch["input_ids"][starts] == BOS).all() and starts.sum() == segments.max(1).sum()
        assert ((batch["input_ids"] == IMAGE).sum(1) == 64 * batch["has_image"]).all(), "one image a row at most"
        np.testing.assert_array_equal(batch["pose_mask"].sum(1), [(row == POSE).sum() for row in batch["input_ids"]])
    rows = sum(len(b["segment_ids"]) for b in first + following)
    held = sum(int(b["segment_ids"].max(1).sum()) for b in first + following)
    assert held > rows, f"{held} conversations in {rows} rows: nothing was packed"
    # Together the packed batches hold the samples of the unpacked stream, in stream order.
    plain = pipeline.BatchIterator(_config(data, pack=False, batch_size=1), tokenizer, 0, 1)
    conversations = [ids[seg == s] for b in first + following for ids, seg in zip(b["input_ids"], b["segment_ids"], strict=True)
                     for s in range(1, seg.max() + 1)]  # fmt: skip
    expected = []
    for _ in conversations:
        one = next(plain)
        expected.append(one["input_ids"][0][one["attention_mask"][0] > 0])
    assert sorted(map(bytes, conversations)) == sorted(map(bytes, expected))
    resumed = pipeline.BatchIterator(cfg, tokenizer, 0, 1, state=state)
    for x, y in zip(following, [next(resumed) for _ in range(2)], strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], f"after restore, batch key {key} differs")
