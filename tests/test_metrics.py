"""Pose metrics against numpy formulas written here (SPIN's similarity transform)."""

import jax
import numpy as np
import pytest
from _body_files import model_file
from scipy.spatial.transform import Rotation

from chatpose_jax.body import load_body_model, synthetic
from chatpose_jax.eval import metrics


def spin_similarity_transform(s1, s2):
    """SPIN's compute_similarity_transform for one sample, S1 and S2 of shape (N, 3)."""
    s1, s2 = s1.T, s2.T
    mu1, mu2 = s1.mean(axis=1, keepdims=True), s2.mean(axis=1, keepdims=True)
    x1, x2 = s1 - mu1, s2 - mu2
    var1 = np.sum(x1**2)
    k = x1 @ x2.T
    u, _, vh = np.linalg.svd(k)
    v = vh.T
    z = np.eye(3)
    z[-1, -1] *= np.sign(np.linalg.det(u @ v.T))
    r = v @ z @ u.T
    scale = np.trace(r @ k) / var1
    t = mu2 - scale * (r @ mu1)
    return (scale * r @ s1 + t).T


def test_pa_mpjpe_matches_spin_formula():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(16, 14, 3))
    target = rng.normal(size=(16, 14, 3))
    pred[3] = -pred[3]  # a reflected sample exercises the det < 0 branch
    expected = np.array(
        [np.linalg.norm(spin_similarity_transform(p, t) - t, axis=1).mean() for p, t in zip(pred, target, strict=True)]
    )
    ours = jax.jit(metrics.pa_mpjpe)(pred.astype(np.float32), target.astype(np.float32))
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)
    assert np.all(np.asarray(ours) <= np.asarray(metrics.mpjpe(pred, target)) + 1e-6), "alignment never hurts"


def test_known_similarity_transform_gives_zero():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(8, 17, 3)).astype(np.float32)
    rot = Rotation.random(8, random_state=2).as_matrix().astype(np.float32)
    scale = rng.uniform(0.5, 2.0, size=(8, 1, 1)).astype(np.float32)
    shift = rng.normal(size=(8, 1, 3)).astype(np.float32)
    pred = scale * np.einsum("bij,bnj->bni", rot, target) + shift
    assert np.all(np.asarray(metrics.mpjpe(pred, target)) > 0.1)
    np.testing.assert_allclose(metrics.pa_mpjpe(pred, target), 0.0, atol=1e-5)


def test_mpjpe_and_pve_are_mean_distances_in_input_units():
    target = np.zeros((2, 4, 3), np.float32)
    pred = target.copy()
    pred[0, :, 0] = 3.0  # every joint 3 units off
    pred[1, 0] = [0.0, 3.0, 4.0]  # one joint 5 units off out of 4
    np.testing.assert_allclose(metrics.mpjpe(pred, target), [3.0, 1.25])
    np.testing.assert_allclose(metrics.pve(pred * 1000.0, target), [3000.0, 1250.0])


def test_lsp14_joints_from_h36m_regressor(tmp_path):
    path = synthetic.write_h36m_regressor(str(tmp_path / "J_regressor_h36m.npy"), "smpl")
    regressor = metrics.load_h36m_regressor(path, num_vertices=6890)
    assert regressor.shape == (17, 6890)
    np.testing.assert_allclose(regressor.sum(1), 1.0, atol=1e-6)
    model = load_body_model(model_file("smpl"))
    vertices = np.asarray(jax.jit(lambda transl: model(transl=transl).vertices)(np.array([[0.5, 1.0, -2.0]])))
    lsp = np.asarray(jax.jit(metrics.lsp14_joints)(vertices, regressor))
    h36m = np.einsum("jv,bvc->bjc", regressor, vertices)
    expected = h36m[:, [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]] - h36m[:, :1]
    np.testing.assert_allclose(lsp, expected, atol=1e-5)
    # The rest pose in LSP order: right leg on -x, left leg on +x, head top highest.
    assert lsp[0, 0, 0] < 0 < lsp[0, 5, 0] and lsp[0, 13, 1] == lsp[0, :, 1].max()
    with pytest.raises(ValueError, match=r"shape \(17, 6890\); expected \(17, 10475\)"):
        metrics.load_h36m_regressor(path, num_vertices=10475)
    with pytest.raises(ValueError, match=r"h36m_regressor has shape \(17, 6890\); expected \(17, 100\)"):
        metrics.lsp14_joints(np.zeros((1, 100, 3)), regressor)


def test_demo_heldout_errors_are_zero_for_the_same_body_and_procrustes_removes_a_turn():
    # The demo's held-out scorer (chatpose_jax.demo.heldout): the same pose scores 0; a pose turned about the
    # vertical as a whole scores MPJPE > 0 but PA-MPJPE ~0 (Procrustes takes the rotation out).
    from chatpose_jax.demo.heldout import pose_errors_mm

    model = load_body_model(model_file("smpl"))
    rng = np.random.default_rng(0)
    rotmat = Rotation.from_rotvec(0.3 * rng.normal(size=(4 * 24, 3))).as_matrix().reshape(4, 24, 3, 3)
    turned = rotmat.copy()
    turned[:, 0] = Rotation.from_euler("y", 90, degrees=True).as_matrix() @ rotmat[:, 0]
    assert pose_errors_mm(model, rotmat.astype(np.float32), rotmat.astype(np.float32)) == pytest.approx(
        (0, 0), abs=1e-3
    )
    mpjpe, pa = pose_errors_mm(model, turned.astype(np.float32), rotmat.astype(np.float32))
    assert mpjpe > 50 and pa < 0.5, (mpjpe, pa)
