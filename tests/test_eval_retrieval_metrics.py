"""R@k and mRecall against a brute-force ranking; FID against an eigenvalue computation."""

import numpy as np
import pytest

from chatpose_jax.eval.retrieval_metrics import frechet_distance, recalls


def brute_force_recall(scores, k):
    """Percent of queries whose match has fewer than k other items scoring at least as high (ties count against)."""
    hits = 0
    for i, row in enumerate(scores):
        ranked = sorted(range(len(row)), key=lambda j: -row[j])
        above = [j for j in ranked if j != i and row[j] >= row[i]]
        hits += len(above) < k
    return 100.0 * hits / len(scores)


def test_recalls_match_brute_force_ranking():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(40, 8))
    pose = text + rng.normal(size=(40, 8)) * 1.5
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    pose /= np.linalg.norm(pose, axis=1, keepdims=True)
    out = recalls(text, pose, ks=(1, 5, 10))
    scores = text @ pose.T
    for k in (1, 5, 10):
        assert out[f"r_t2p@{k}"] == pytest.approx(brute_force_recall(scores, k))
        assert out[f"r_p2t@{k}"] == pytest.approx(brute_force_recall(scores.T, k))
    assert out["mrecall"] == pytest.approx(np.mean([out[f"r_{d}@{k}"] for d in ("p2t", "t2p") for k in (1, 5, 10)]))
    assert 0 < out["r_t2p@1"] < out["r_t2p@10"] < 100


def test_constant_poses_score_no_better_than_chance_text_to_pose():
    text = np.eye(10)
    pose = np.tile(np.eye(10)[:1], (10, 1))  # every generated pose the same: all items tie
    assert recalls(text, pose, ks=(1, 5))["r_t2p@5"] == 0.0


def test_fid_matches_eigenvalue_formula():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 6))
    b = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 0.3
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(c1 @ c2)
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.sum(np.sqrt(eig)).real
    assert abs(frechet_distance(a, b) - expected) < 1e-6 * max(1.0, expected)
    assert abs(frechet_distance(a, a)) < 1e-6
