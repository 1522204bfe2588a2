"""Text-pose retrieval metrics (PoseScript's protocol): R@k both ways, mRecall, FID on pose features.

Every query is ranked against the whole set; the match of query i is item i. Ties count against
the query (an item scoring equal to the match ranks above it), so a constant encoder scores chance
at best. Recalls are percentages.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def match_ranks(scores: np.ndarray) -> np.ndarray:
    """int[N]: 0-based rank of item i among all items for query i. scores: float[N, N] (query, item)."""
    scores = np.asarray(scores, np.float64)
    diagonal = np.diagonal(scores)[:, None]
    return np.sum(scores >= diagonal, axis=1) - 1


def recalls(text_features: np.ndarray, pose_features: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """{'r_t2p@k', 'r_p2t@k' for k in ks, 'mrecall'} in percent, from float[N, D] L2-normalised features."""
    scores = np.asarray(text_features, np.float64) @ np.asarray(pose_features, np.float64).T
    t2p, p2t = match_ranks(scores), match_ranks(scores.T)
    out = {}
    for k in ks:
        out[f"r_p2t@{k}"] = 100.0 * float(np.mean(p2t < k))
    for k in ks:
        out[f"r_t2p@{k}"] = 100.0 * float(np.mean(t2p < k))
    out["mrecall"] = float(np.mean([out[f"r_p2t@{k}"] for k in ks] + [out[f"r_t2p@{k}"] for k in ks]))
    return out


def frechet_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """FID between float[N, D] feature sets: |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2))."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"feature sets of shapes {real.shape} and {generated.shape}; expected (N, D) and (M, D)")
    mu1, mu2 = real.mean(0), generated.mean(0)
    c1, c2 = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(c1 @ c2, disp=False)
    if not np.all(np.isfinite(covmean)):  # near-singular products: regularise, as the usual FID code does
        eps = 1e-6 * np.eye(len(c1))
        covmean = scipy.linalg.sqrtm((c1 + eps) @ (c2 + eps))
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(covmean))
