"""The mixed tf.data pipeline: host shards, mixture ratios, batch layout, determinism, resume, global arrays."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from data_synth_cache import synthetic_data

from data_pipelines import pipeline
from data_pipelines.batch import check_batch
from data_pipelines.tokenizer import load_tokenizer

DATASETS = ("posescript", "llava_instruct", "hmr_images")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_data(tmp_path_factory)


@pytest.fixture(scope="module")
def tokenizer(data):
    return load_tokenizer(data["raw"]["tokenizer"])


def _config(data, **kw):
    fields = dict(
        data_dir=data["data_dir"], datasets=DATASETS, ratios=(1.0, 1.0, 2.0), batch_size=8, max_text_length=96,
        image_size=112, num_image_tokens=64, shuffle_buffer=32, seed=0,
    )  # fmt: skip
    fields.update(kw)
    return pipeline.PipelineConfig(**fields)


@pytest.mark.parametrize("hosts", [1, 2, 4])
def test_host_shards_are_disjoint_and_complete(data, hosts):
    builder = tfds.builder("posescript", data_dir=data["data_dir"])
    num = builder.info.splits["train"].num_examples
    shards = []
    for h in range(hosts):
        split = pipeline.host_split("train", num, h, hosts)
        shards.append([int(e["id"]) for e in tfds.as_numpy(builder.as_dataset(split=split))])
    all_ids = [int(e["id"]) for e in tfds.as_numpy(builder.as_dataset(split="train"))]
    flat = [i for s in shards for i in s]
    assert len(flat) == len(set(flat)), f"{hosts} hosts: shards overlap"
    assert sorted(flat) == sorted(all_ids), f"{hosts} hosts: shards miss examples"
    # The streams built on them: one epoch of each host's shuffled stream is its shard, reordered.
    cfg = _config(data, datasets=("posescript",), ratios=(1.0,))
    for h, shard in enumerate(shards):
        stream = pipeline.source_stream(cfg, 0, h, hosts)
        texts = [e["texts"] for e in tfds.as_numpy(stream.take(2 * len(shard)))]
        assert sorted(texts[: len(shard)]) == sorted(texts[len(shard) :]), f"host {h}: an epoch is not its shard"
        assert len(set(texts[: len(shard)])) == len(shard)


def test_mixture_follows_the_ratios(data):
    cfg = _config(data, ratios=(1.0, 1.0, 2.0))
    n = 4000
    sources = np.array([e["source"] for _, e in tfds.as_numpy(pipeline.mixed_elements(cfg, 0, 1).take(n))])
    expected = np.array([0.25, 0.25, 0.5])
    got = np.bincount(sources, minlength=3) / n
    sigma = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(got - expected) < 4 * sigma), f"source frequencies {got}, expected {expected}"
    cfg = _config(data, ratios=(0.0, 1.0, 1.0))
    sources = [e["source"] for _, e in tfds.as_numpy(pipeline.mixed_elements(cfg, 0, 1).take(200))]
    assert 0 not in sources, "a source with ratio 0 is never drawn"


def test_batches_follow_the_layout_and_agree_with_their_poses(data, tokenizer):
    cfg = _config(data)
    it = pipeline.BatchIterator(cfg, tokenizer, 0, 1)
    for _ in range(4):
        batch = next(it)
        check_batch(batch, image_size=112, max_poses=1)
        t = batch["input_ids"].shape[1]
        assert t in cfg.bucket_lengths and t >= batch["attention_mask"].sum(1).max()
        learned = batch["labels"] != -100
        assert (batch["labels"][learned] == batch["input_ids"][learned]).all(), "labels copy input_ids where learned"
        assert not (learned & (batch["input_ids"] == 1000)).any(), "image tokens are never learned"
        has_pose_token = (batch["input_ids"] == 1002).any(1)
        np.testing.assert_array_equal(batch["pose_mask"][:, 0], has_pose_token, "pose_mask = a <POSE> in the text")
        np.testing.assert_array_equal(batch["has_image"], (batch["input_ids"] == 1000).sum(1) == 64)
        no_image = ~batch["has_image"]
        assert (batch["pixel_values"][no_image] == 0).all() and (batch["pixel_values"][~no_image].std() > 0.1)
        expected_pose = np.isin(batch["source"], [0, 2])
        np.testing.assert_array_equal(batch["pose_mask"][:, 0], expected_pose, "posescript and hmr samples carry poses")
        assert np.isfinite(batch["pose_body_pose"]).all()


def test_same_seed_same_batches_and_resume_continues_exactly(data, tokenizer):
    cfg = _config(data)
    a = pipeline.BatchIterator(cfg, tokenizer, 0, 1)
    first = [next(a) for _ in range(3)]
    state = a.state()
    following = [next(a) for _ in range(2)]
    b = pipeline.BatchIterator(cfg, tokenizer, 0, 1)
    for x, y in zip(first, [next(b) for _ in range(3)], strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], f"same seed, batch key {key} differs")
    resumed = pipeline.BatchIterator(cfg, tokenizer, 0, 1, state=state)
    for x, y in zip(following, [next(resumed) for _ in range(2)], strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], f"after restore, batch key {key} differs")
    other = pipeline.BatchIterator(_config(data, seed=1), tokenizer, 0, 1)
    assert not np.array_equal(next(other)["input_ids"], first[0]["input_ids"]), "another seed, another stream"
    with pytest.raises(ValueError, match="seed"):
        other.restore(state)


def test_global_batch_is_sharded_over_the_data_axes(data, tokenizer):
    import jax

    from chatpose_jax.parallel.mesh import MeshConfig, make_mesh

    mesh = make_mesh(MeshConfig(data=4, fsdp=2, tensor=1))
    batch = next(pipeline.BatchIterator(_config(data), tokenizer, 0, 1))
    arrays = pipeline.global_batch(batch, mesh)
    for key, value in arrays.items():
        assert isinstance(value, jax.Array) and value.shape == batch[key].shape, key
        assert value.sharding.spec[0] == ("data", "fsdp"), f"{key}: {value.sharding.spec}"
        np.testing.assert_array_equal(np.asarray(value), batch[key])


def test_unprepared_source_is_an_error_at_start(data, tokenizer, tmp_path):
    cfg = _config(data, data_dir=str(tmp_path), datasets=("spg",), ratios=(1.0,))
    with pytest.raises(FileNotFoundError, match="chatpose-data prepare"):
        next(pipeline.BatchIterator(cfg, tokenizer, 0, 1))
