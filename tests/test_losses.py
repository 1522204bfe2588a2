"""Token cross-entropy: the LM head on learned positions only equals the full-sequence loss."""

import jax
import jax.numpy as jnp
import numpy as np

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
