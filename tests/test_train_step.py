"""The sharded train step: equal across meshes, exact under gradient accumulation, safe on NaN."""

import jax
import numpy as np
import pytest

from chatpose_jax.config_files import repo_config
from chatpose_jax.experiment import load_experiment
from chatpose_jax.parallel.mesh import MeshConfig, batch_sharding, make_mesh
from chatpose_jax.train import setup as setup_lib
from chatpose_jax.train import state as state_lib

pytestmark = pytest.mark.slow  # make test-fast leaves this file out (make test runs it)


def tiny_config(**overrides):
    config = repo_config("tiny")
    # Smaller than the demo model so the test compiles fast; dropout off for exact comparisons.
    config.model.text.num_layers = 2
    config.model.vision.num_layers = 2
    config.model.lora.dropout = 0.0
    config.train.batch_size = 8
    config.optimizer.warmup_steps = 0
    config.optimizer.schedule = "constant"
    # Adam divides by sqrt(v) + eps: with eps=1e-8 a gradient of ~1e-9 (float noise from a different
    # reduction order on another mesh) becomes a full +-lr step. A larger eps compares the maths,
    # not the amplified noise.
    config.optimizer.eps = 1e-4
    for key, value in overrides.items():
        section, field = key.split("__")
        config[section][field] = value
    return config


def random_batch(experiment, seed=0, batch_size=8, text_len=40):
    """Token soup with one image, an answer span and one <POSE> per row (the batch layout)."""
    m = experiment.model
    rng = np.random.default_rng(seed)
    n_img = m.vision.num_image_tokens
    t = n_img + text_len
    ids = rng.integers(3, 1000, (batch_size, t)).astype(np.int32)
    ids[:, 2 : 2 + n_img] = m.image_token_id
    ids[:, t - 6] = m.pose_token_id
    labels = np.full_like(ids, -100)
    labels[:, t - 12 : t - 2] = ids[:, t - 12 : t - 2]
    mask = np.ones_like(ids)
    mask[1, t - 2 :] = 0  # one right-padded row
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "pixel_values": rng.normal(size=(batch_size, 3, m.vision.image_size, m.vision.image_size)).astype(np.float32),
        "pose_global_orient": (0.5 * rng.normal(size=(batch_size, 1, 3))).astype(np.float32),
        "pose_body_pose": (0.3 * rng.normal(size=(batch_size, 1, 69))).astype(np.float32),
        "pose_betas": np.zeros((batch_size, 1, 10), np.float32),
        "pose_mask": np.array([[True]] * (batch_size - 1) + [[False]]),
    }


def run_steps(config, mesh_cfg, batches, devices=None):
    experiment = load_experiment(config)
    mesh = make_mesh(mesh_cfg, devices)
    trainer = setup_lib.build_trainer(experiment, mesh)
    losses = []
    for batch in batches:
        metrics = trainer.step(setup_lib.global_batch(batch, trainer.batch_sharding))
        losses.append(float(metrics["loss"]))
    trainable = jax.tree.map(np.asarray, trainer.state.trainable)
    return losses, trainable, trainer


@pytest.fixture(scope="module")
def one_device_run():
    config = tiny_config()
    experiment = load_experiment(config)
    # The third step sees the first batch again, so its loss shows what two steps learnt.
    batches = [random_batch(experiment, seed) for seed in (0, 1, 0)]
    losses, trainable, trainer = run_steps(config, MeshConfig(data=1), batches, jax.devices()[:1])
    held_out = random_batch(experiment, seed=7)
    evaluated = jax.tree.map(float, trainer.evaluate(setup_lib.global_batch(held_out, trainer.batch_sharding)))
    return config, batches, losses, trainable, (held_out, evaluated)


def assert_trees_close(a, b, atol):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=jax.tree_util.keystr(path))


def test_eight_device_mesh_matches_one_device(one_device_run):
    config, batches, losses, trainable, (held_out, evaluated) = one_device_run
    losses8, trainable8, trainer = run_steps(config, MeshConfig(data=2, fsdp=2, tensor=2), batches)
    assert dict(trainer.mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    np.testing.assert_allclose(losses8, losses, atol=1e-5, rtol=0)
    assert_trees_close(trainable8, trainable, atol=1e-5)
    assert losses[-1] < losses[0], losses
    # The eval step too: its sums on a held-out batch after the same three steps.
    evaluated8 = trainer.evaluate(setup_lib.global_batch(held_out, trainer.batch_sharding))
    for name, value in evaluated.items():
        np.testing.assert_allclose(float(evaluated8[name]), value, rtol=1e-5, atol=1e-4, err_msg=name)


def assert_one_device_run_repeats(config, one_device_run):
    """`config` trains one device through the same losses and weights as the default run."""
    _, batches, losses, trainable, _ = one_device_run
    other_losses, other_trainable, _ = run_steps(config, MeshConfig(data=1), batches, jax.devices()[:1])
    np.testing.assert_allclose(other_losses, losses, atol=1e-5, rtol=0)
    assert_trees_close(other_trainable, trainable, atol=1e-5)


def test_gradient_accumulation_equals_the_full_batch(one_device_run):
    assert_one_device_run_repeats(tiny_config(train__grad_accum_steps=4), one_device_run)


def test_lm_head_on_learned_positions_only_gives_the_same_steps(one_device_run):
    # With max_text_length below the sequence length the step computes logits only where a next
    # token is learned (10 per row here), not at the image tokens and prompt.
    assert_one_device_run_repeats(tiny_config(train__max_text_length=40), one_device_run)


def test_non_finite_loss_skips_the_update_and_counts_it():
    experiment = load_experiment(tiny_config())
    trainer = setup_lib.build_trainer(experiment, make_mesh(MeshConfig(data=1), jax.devices()[:1]), donate=False)
    before = jax.tree.map(np.asarray, trainer.state.trainable)
    batch = random_batch(experiment)
    batch["pose_body_pose"][0, 0, 0] = np.nan
    metrics = trainer.step(setup_lib.global_batch(batch, trainer.batch_sharding))
    assert float(metrics["update_skipped"]) == 1.0 and not np.isfinite(float(metrics["loss"]))
    assert int(trainer.state.nonfinite_in_row) == 1 and int(trainer.state.nonfinite_total) == 1
    assert_trees_close(jax.tree.map(np.asarray, trainer.state.trainable), before, atol=0)
    good = random_batch(experiment, seed=1)
    metrics = trainer.step(setup_lib.global_batch(good, trainer.batch_sharding))
    assert float(metrics["update_skipped"]) == 0.0
    assert int(trainer.state.nonfinite_in_row) == 0 and int(trainer.state.nonfinite_total) == 1


def test_new_rows_mode_trains_only_the_pose_rows(tmp_path):
    experiment = load_experiment(tiny_config(train__trainable="lora_and_new_rows"))
    trainer = setup_lib.build_trainer(experiment, make_mesh(MeshConfig(data=1), jax.devices()[:1]), donate=False)
    trained = trainer.state.trainable["params"]
    assert set(trained) == {"pose_head", "new_rows"}
    assert trained["new_rows"]["embedding"].shape == (1, experiment.model.text.hidden_size)
    embedding_before = np.asarray(state_lib.get_path(trainer.frozen, state_lib.EMBEDDING_PATH))
    for seed in range(2):
        trainer.step(setup_lib.global_batch(random_batch(experiment, seed), trainer.batch_sharding))
    params, _ = state_lib.join_params(trainer.frozen, trainer.state.trainable, (experiment.model.pose_token_id,))
    embedding = np.asarray(state_lib.get_path(params, state_lib.EMBEDDING_PATH))
    pose_id = experiment.model.pose_token_id
    changed = np.flatnonzero(np.abs(embedding - embedding_before).max(axis=1) > 0)
    assert changed.tolist() == [pose_id]

    # Saved as the loop saves it, the run loads back whole: its seed's frozen base, the trained rows.
    from chatpose_jax.train import checkpoint as ckpt
    from chatpose_jax.train.trained_model import load_trained

    manager = ckpt.make_manager(str(tmp_path), keep=None, async_save=False)
    ckpt.save(manager, 2, trainer.state, {}, ckpt.experiment_to_json(experiment))
    manager.close()
    loaded = load_trained(str(tmp_path))
    assert loaded.step == 2
    assert_trees_close(jax.tree.map(np.asarray, loaded.params), jax.tree.map(np.asarray, params), atol=0)
    assert_trees_close(
        jax.tree.map(np.asarray, loaded.lora), jax.tree.map(np.asarray, trainer.state.trainable["lora"]), atol=0
    )


class _Repeat:
    """A BatchSource handing out one host batch, placed on the trainer's mesh."""

    def __init__(self, batch, sharding):
        self.batch = setup_lib.global_batch(batch, sharding)

    def __next__(self):
        return self.batch

    def state(self):
        return {}

    def restore(self, state):
        pass


def test_labels_beyond_max_text_length_are_counted_and_stop_the_run(tmp_path):
    # Each row of random_batch learns 10 tokens: with room for 6 the step's cross-entropy would read
    # 6 per row; the step reports the other 4 x 8 rows and the loop stops with the config field named.
    from chatpose_jax.train.chatpose_task import ChatPoseTask
    from chatpose_jax.train.loop import BatchTooLongError, train_and_evaluate

    config = tiny_config(train__max_text_length=6)
    config.train.num_steps, config.train.body_model, config.train.eval_batches = 3, "", 0
    config.train.loss.joints_weight = 0.0
    experiment = load_experiment(config)
    batch = random_batch(experiment)
    trainer = setup_lib.build_trainer(experiment, make_mesh(MeshConfig(data=1), jax.devices()[:1]), donate=False)
    metrics = trainer.step(setup_lib.global_batch(batch, trainer.batch_sharding))
    assert int(metrics["tokens_beyond_max_text_length"]) == 4 * 8
    assert int(metrics["tokens"]) == 6 * 8

    def source(experiment, mesh, split):
        return _Repeat(batch, batch_sharding(mesh))

    with pytest.raises(BatchTooLongError, match=r"32 labelled tokens beyond train\.max_text_length=6"):
        train_and_evaluate(experiment, str(tmp_path / "run"), ChatPoseTask(), make_source=source, progress=False)

    fits = load_experiment(tiny_config(train__max_text_length=40))
    trainer = setup_lib.build_trainer(fits, make_mesh(MeshConfig(data=1), jax.devices()[:1]), donate=False)
    metrics = trainer.step(setup_lib.global_batch(batch, trainer.batch_sharding))
    assert int(metrics["tokens_beyond_max_text_length"]) == 0
