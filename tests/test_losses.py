"""Losses: token cross-entropy at learned positions equals the full one; the released pose loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chatpose_jax.train import losses

IGNORE = losses.IGNORE_INDEX


def _labels():
    labels = np.full((3, 12), IGNORE, np.int32)
    labels[0, 7:] = [5, 1, 9, 2, 0]
    labels[1, 3:6] = [4, 4, 8]
    labels[1, 10] = 3  # a learned token after a gap
    return jnp.asarray(labels)  # row 2 learns nothing


def test_learned_positions_lists_the_positions_whose_next_token_is_learned():
    positions, targets = losses.learned_positions(_labels(), 5)
    np.testing.assert_array_equal(positions, [[6, 7, 8, 9, 10], [2, 3, 4, 9, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(targets, [[5, 1, 9, 2, 0], [4, 4, 8, 3, IGNORE], [IGNORE] * 5])


def test_cross_entropy_at_learned_positions_equals_the_full_one_with_its_gradient():
    labels = _labels()
    logits = jax.random.normal(jax.random.key(0), (3, 12, 10)) * 3
    positions, targets = losses.learned_positions(labels, 5)

    def full(logits):
        return losses.token_cross_entropy(logits, labels)

    def selected(logits):
        return losses.target_cross_entropy(jnp.take_along_axis(logits, positions[..., None], axis=1), targets)

    def autodiff(logits):  # the textbook formula, differentiated by JAX
        lp = jax.nn.log_softmax(logits[:, :-1], -1)
        t = labels[:, 1:]
        nll = -jnp.take_along_axis(lp, jnp.where(t == IGNORE, 0, t)[..., None], -1)[..., 0]
        return (nll * (t != IGNORE)).sum(), (t != IGNORE).sum().astype(jnp.float32)

    ref_sum, ref_n = autodiff(logits)
    ref_grad = jax.grad(lambda x: autodiff(x)[0])(logits)
    for fn in (full, selected):
        total, count = fn(logits)
        np.testing.assert_allclose(total, ref_sum, rtol=1e-6)
        assert float(count) == float(ref_n) == 9
        np.testing.assert_allclose(jax.grad(lambda x, fn=fn: fn(x)[0])(logits), ref_grad, atol=1e-6)
    correct, n = losses.target_accuracy(jnp.take_along_axis(logits, positions[..., None], axis=1), targets)
    ref_correct, _ = losses.token_accuracy(logits, labels)
    assert float(correct) == float(ref_correct) and float(n) == 9


def _released_pose_loss_numpy(pred, target, mask):
    """ChatPose's pose loss as the paper and its release write it, per sample with a pose:
    mean |R_body_pred - R_body_gt| over the 23 x 9 body entries + mean |R_root_pred - R_root_gt|
    over the root's 9, then averaged over the samples that hold a pose."""
    per_sample = []
    for b in range(pred.shape[0]):
        for p in range(pred.shape[1]):
            if not mask[b, p]:
                continue
            body = np.abs(pred[b, p, 1:] - target[b, p, 1:]).reshape(-1)
            root = np.abs(pred[b, p, 0] - target[b, p, 0]).reshape(-1)
            assert body.size == 207 and root.size == 9
            per_sample.append(body.sum() / 207.0 + root.sum() / 9.0)
    return np.mean(per_sample)


def test_pose_loss_is_the_released_body_mean_plus_root_mean_where_the_root_error_dominates():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(3, 2, 24, 3, 3)).astype(np.float32)
    pred = target + 0.01 * rng.normal(size=target.shape).astype(np.float32)
    pred[:, :, 0] = -target[:, :, 0]  # the root is far off, the body close
    mask = np.array([[True, False], [True, True], [False, False]])
    total, count = losses.pose_loss("released", jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
    reference = _released_pose_loss_numpy(pred, target, mask)
    np.testing.assert_allclose(float(total / count), reference, rtol=1e-5)
    assert float(count) == 3
    # One mean over the 216 entries weighs the root 24 times less: a different, much smaller loss.
    flat_total, _ = losses.pose_loss("flat", jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
    flat_reference = np.mean([np.abs(pred[b, p] - target[b, p]).mean() for b, p in np.argwhere(mask)])
    np.testing.assert_allclose(float(flat_total / count), flat_reference, rtol=1e-5)
    assert reference > 5 * flat_reference, (reference, flat_reference)


def test_pose_loss_names_the_config_field_for_an_unknown_kind():
    with pytest.raises(ValueError, match="train.loss.pose_loss='mean'"):
        losses.pose_loss("mean", jnp.zeros((1, 1, 24, 3, 3)), jnp.zeros((1, 1, 24, 3, 3)), jnp.ones((1, 1), bool))
