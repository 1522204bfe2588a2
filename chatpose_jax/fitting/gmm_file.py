"""SMPLify's GMM pose-prior file (`gmm_08.pkl`), read and written in its published format.

The file (SMPLify, Bogo et al., ECCV 2016; loaded as such by SMPLify-X's and SPIN's
`MaxMixturePrior`) is a Python 2 pickle of a dict: 'means' float[M, 69], 'covars' float[M, 69, 69],
'weights' float[M], a mixture of M = 8 Gaussians over SMPL's body pose (axis-angle, radians,
global orientation excluded). Users bring their own copy; `write_gmm_pkl` makes one in that format
from any set of poses (a small k-means), for tests and benchmarks.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

GMM_KEYS = ("means", "covars", "weights")
POSE_DIM = 69  # SMPL's body pose: 23 joints x 3 axis-angle


class _ArrayUnpickler(pickle.Unpickler):
    """Admits numpy and the pickle protocol's helpers only: a foreign pickle fails instead of running code."""

    def find_class(self, module: str, name: str):
        if module == "numpy" or module.startswith(("numpy.", "numpy_core")):
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode") or (module in ("copyreg", "copy_reg") and name == "_reconstructor"):
            return super().find_class(module, name)
        if module in ("builtins", "__builtin__") and name in ("object", "list", "dict", "tuple"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a GMM prior file")


def read_gmm_pkl(path: str) -> dict[str, np.ndarray]:
    """The mixture of a `gmm_08.pkl`: {'means': [M, 69], 'covars': [M, 69, 69], 'weights': [M]}, float64.

    Raises KeyError naming the file and a missing key, ValueError on a file that is not such a pickle
    or holds arrays of the wrong shapes.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f, encoding="latin1").load()  # Python 2 pickles need latin1
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a GMM prior pickle ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a GMM prior pickle (holds a {type(data).__name__}, expected a dict)")
    for key in GMM_KEYS:
        if key not in data:
            raise KeyError(f"{path}: missing key {key!r} (a GMM prior file holds {', '.join(GMM_KEYS)})")
    out = {key: np.asarray(data[key], dtype=np.float64) for key in GMM_KEYS}
    num = out["weights"].shape[0] if out["weights"].ndim == 1 else -1
    expected = {"means": (num, POSE_DIM), "covars": (num, POSE_DIM, POSE_DIM), "weights": (num,)}
    for key, shape in expected.items():
        if out[key].shape != shape or num < 1:
            raise ValueError(f"{path}: key {key!r} has shape {out[key].shape}; expected {shape} (M components)")
    return out


def _kmeans(points: np.ndarray, num_clusters: int, rng: np.random.Generator, iterations: int) -> np.ndarray:
    """Cluster labels int[N] of points float[N, D]: k-means++ seeding, then Lloyd iterations."""
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, num_clusters):
        dist = np.min([np.sum((points - c) ** 2, axis=1) for c in centres], axis=0)
        centres.append(points[rng.choice(len(points), p=dist / dist.sum())])
    centres = np.stack(centres)
    for _ in range(iterations):
        labels = np.argmin(((points[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        for k in range(num_clusters):
            if np.any(labels == k):
                centres[k] = points[labels == k].mean(axis=0)
    return np.argmin(((points[:, None] - centres[None]) ** 2).sum(-1), axis=1)


def fit_gmm(
    body_poses: np.ndarray, num_components: int = 8, seed: int = 0, regularization: float = 1e-3, iterations: int = 20
) -> dict[str, np.ndarray]:
    """A mixture over body poses float[N, 69] (radians): k-means clusters, their means and covariances.

    regularization: added to each covariance's diagonal (rad^2), so that a joint the poses never move
    still has an invertible covariance. Returns the file's dict (float64).
    """
    poses = np.asarray(body_poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIM or len(poses) < num_components:
        raise ValueError(f"body_poses has shape {poses.shape}; expected (N >= {num_components}, {POSE_DIM})")
    labels = _kmeans(poses, num_components, np.random.default_rng(seed), iterations)
    means, covars, weights = [], [], []
    for k in range(num_components):
        members = poses[labels == k]
        if len(members) == 0:  # k-means++ seeds distinct points, but a cluster can still empty out
            members = poses
        centred = members - members.mean(axis=0)
        means.append(members.mean(axis=0))
        covars.append(centred.T @ centred / max(len(members) - 1, 1) + regularization * np.eye(POSE_DIM))
        weights.append(len(members))
    weights = np.asarray(weights, dtype=np.float64)
    return {"means": np.stack(means), "covars": np.stack(covars), "weights": weights / weights.sum()}


def write_gmm_pkl(path: str, body_poses: np.ndarray, num_components: int = 8, seed: int = 0) -> str:
    """Write a `gmm_08.pkl`-format prior fitted to body poses float[N, 69] (see `fit_gmm`); returns path."""
    gmm = fit_gmm(body_poses, num_components, seed)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(gmm, f, protocol=2)
    return path
