"""SMPLify's priors: the max-mixture GMM pose prior, the elbow/knee bending prior, the shape prior.

Max-mixture (Bogo et al., ECCV 2016, Eq. 4; as SMPLify-X's and SPIN's `MaxMixturePrior` evaluate
it, merged form): the sum over Gaussians of the mixture is replaced by the best single component,

    E(theta) = min_k [ 0.5 (theta - mu_k)^T Sigma_k^-1 (theta - mu_k) - log w_k
                       + (D/2) log(2 pi) + 0.5 (log det Sigma_k - min_j log det Sigma_j) ],

D = 69. The determinant enters relative to the smallest one, as in those implementations (their
`nll_weights` divide by sqrt(det Sigma_k) / min_j sqrt(det Sigma_j)), which keeps the constant
finite in float32 and makes E the negative log-likelihood up to one constant per file.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct

from chatpose_jax.fitting import gmm_file

# SMPLify's bending prior: body_pose entries (global orientation excluded) of the left and right
# elbows' y rotation and the left and right knees' x rotation, and the sign that makes a natural
# bend negative (SMPLify-X prior.py `SMPLifyAnglePrior`: full-pose indices 55, 58, 12, 15, signs
# 1, -1, -1, -1; SPIN losses.py `angle_prior`).
BENDING_INDICES = (55 - 3, 58 - 3, 12 - 3, 15 - 3)
BENDING_SIGNS = (1.0, -1.0, -1.0, -1.0)


@struct.dataclass
class MaxMixturePrior:
    """A GMM pose prior ready to evaluate: means float[M, 69] rad, precisions float[M, 69, 69] rad^-2,
    and each component's constant float[M] (-log w_k + (D/2) log 2 pi + half its relative log-determinant)."""

    means: jnp.ndarray
    precisions: jnp.ndarray
    constants: jnp.ndarray
    weights: jnp.ndarray

    @property
    def mean_pose(self) -> jnp.ndarray:
        """float[69]: the mixture's mean body pose, sum_k w_k mu_k (SMPLify's starting pose)."""
        return self.weights @ self.means


def prior_from_gmm(gmm: dict[str, np.ndarray], dtype=jnp.float32) -> MaxMixturePrior:
    """Precisions and constants of a mixture dict (see `gmm_file.read_gmm_pkl`), computed in float64."""
    covars = np.asarray(gmm["covars"], np.float64)
    weights = np.asarray(gmm["weights"], np.float64)
    _, log_dets = np.linalg.slogdet(covars)
    dim = covars.shape[-1]
    constants = -np.log(weights) + 0.5 * dim * np.log(2 * np.pi) + 0.5 * (log_dets - log_dets.min())
    return MaxMixturePrior(
        means=jnp.asarray(gmm["means"], dtype),
        precisions=jnp.asarray(np.linalg.inv(covars), dtype),
        constants=jnp.asarray(constants, dtype),
        weights=jnp.asarray(weights, dtype),
    )


def load_max_mixture_prior(path: str, dtype=jnp.float32) -> MaxMixturePrior:
    """The pose prior of a `gmm_08.pkl` (KeyError naming the file and key when one is missing)."""
    return prior_from_gmm(gmm_file.read_gmm_pkl(path), dtype)


def max_mixture_nll(prior: MaxMixturePrior, body_pose: jnp.ndarray) -> jnp.ndarray:
    """The max-mixture negative log-likelihood (module docstring). body_pose: float[B, 69] rad -> float[B]."""
    diff = body_pose[:, None, :] - prior.means  # [B, M, 69]
    quadratic = jnp.einsum("bmi,mij,bmj->bm", diff, prior.precisions, diff)
    return jnp.min(0.5 * quadratic + prior.constants, axis=1)


def bending_prior(body_pose: jnp.ndarray) -> jnp.ndarray:
    """Penalty on elbows and knees bending the unnatural way: sum of exp(sign * angle)^2.

    body_pose: float[B, 69] radians -> float[B] (4 at the rest pose).
    """
    angles = body_pose[:, list(BENDING_INDICES)] * jnp.asarray(BENDING_SIGNS, body_pose.dtype)
    return jnp.sum(jnp.exp(angles) ** 2, axis=-1)


def shape_prior(betas: jnp.ndarray) -> jnp.ndarray:
    """Sum of squared shape coefficients. betas: float[B, K] -> float[B]."""
    return jnp.sum(betas**2, axis=-1)
