"""The SPIN image protocol against a numpy reference written here, on synthetic 3DPW-style data."""

import numpy as np
import pytest

from chatpose_jax.eval import image_protocol, metrics
from chatpose_jax.eval.benchmarks import BenchmarkData, mean_rotations


@pytest.fixture(scope="module")
def bodies(tmp_path_factory):
    from chatpose_jax.body import synthetic

    root = str(tmp_path_factory.mktemp("bodies"))
    synthetic.write_model_folder(root, model_types=("smpl",), gender="all")
    synthetic.write_h36m_regressor(f"{root}/J_regressor_h36m.npy")
    return image_protocol.load_body_models(root)


def numpy_lsp14(vertices, regressor):
    joints = np.einsum("jv,bvc->bjc", regressor, vertices)
    return joints[:, [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]] - joints[:, :1]


def numpy_pa_mpjpe(pred, gt):
    out = []
    for x1, x2 in zip(pred, gt, strict=True):
        a, b = x1 - x1.mean(0), x2 - x2.mean(0)
        u, _, vt = np.linalg.svd(a.T @ b)
        z = np.eye(3)
        z[2, 2] = np.sign(np.linalg.det(vt.T @ u.T))
        r = vt.T @ z @ u.T
        s = np.trace(r @ (a.T @ b)) / np.sum(a * a)
        aligned = s * a @ r.T + x2.mean(0)
        out.append(np.mean(np.linalg.norm(aligned - x2, axis=-1)))
    return 1000 * np.array(out)


def poses(n, seed, gender):
    from data_pipelines.synthetic.poses import sample_betas, sample_poses

    go, bp = sample_poses(n, seed)
    return BenchmarkData(
        "3dpw", "image", "smpl", np.array([str(i) for i in range(n)]), [""] * n, [""] * n, None,
        np.zeros((n, 3), np.float32), go, bp, sample_betas(n, seed + 1), np.array([gender] * n),
        np.zeros((n, 24, 4), np.float32),
    )  # fmt: skip


def vertices(bodies, gender, data, betas=None):
    model = bodies.model(gender)
    betas = data.betas if betas is None else betas
    return np.asarray(model(betas=betas, body_pose=data.body_pose, global_orient=data.global_orient).vertices)


def test_ground_truth_given_as_prediction_scores_zero(bodies):
    data = poses(5, 0, "n")
    data.betas[:] = 0  # predictions carry no shape: a neutral, zero-shape truth is reproduced exactly
    scored = image_protocol.score(data.global_orient, data.body_pose, data, bodies)
    assert scored["summary"]["mpjpe_mm"] < 1e-3 and scored["summary"]["pa_mpjpe_mm"] < 1e-2, scored["summary"]


def test_joints_match_numpy_reference_and_translation_is_removed(bodies):
    data = poses(4, 1, "n")
    verts = vertices(bodies, "n", data)
    ref = numpy_lsp14(verts, bodies.h36m_regressor)
    ours = image_protocol.ground_truth_joints(data, bodies)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    shifted = np.asarray(metrics.lsp14_joints(verts + np.array([0.3, -1.2, 4.0], np.float32), bodies.h36m_regressor))
    errors = image_protocol.errors_mm(shifted, ours)
    assert np.max(errors["mpjpe_mm"]) < 1e-2, "a translation of every joint must vanish after pelvis alignment"


def test_rotated_scaled_ground_truth_has_zero_pa_mpjpe_only(bodies):
    data = poses(4, 2, "n")
    gt = image_protocol.ground_truth_joints(data, bodies)
    angle = 0.7
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]], np.float32)
    pred = 1.3 * gt @ rot.T
    errors = image_protocol.errors_mm(pred, gt)
    np.testing.assert_allclose(errors["pa_mpjpe_mm"], 0.0, atol=0.05)
    np.testing.assert_allclose(errors["pa_mpjpe_mm"], numpy_pa_mpjpe(pred, gt), atol=0.05)
    reference_mpjpe = 1000 * np.mean(np.linalg.norm(pred - gt, axis=-1), axis=1)
    np.testing.assert_allclose(errors["mpjpe_mm"], reference_mpjpe, rtol=1e-4)
    assert np.all(errors["mpjpe_mm"] > 10.0)
    noisy = gt + np.random.default_rng(0).normal(size=gt.shape).astype(np.float32) * 0.02
    np.testing.assert_allclose(image_protocol.errors_mm(noisy, gt)["pa_mpjpe_mm"], numpy_pa_mpjpe(noisy, gt), rtol=1e-3)


def test_female_ground_truth_is_posed_with_the_female_file(bodies):
    data = poses(3, 3, "f")
    ours = image_protocol.ground_truth_joints(data, bodies)
    female = numpy_lsp14(vertices(bodies, "f", data), bodies.h36m_regressor)
    neutral = numpy_lsp14(vertices(bodies, "n", data), bodies.h36m_regressor)
    np.testing.assert_allclose(ours, female, atol=1e-5)
    assert np.max(np.abs(female - neutral)) > 0.01, "the synthetic female and neutral files must differ"


def test_mean_rotation_of_identical_poses_is_that_pose():
    aa = np.tile(np.array([[0.3, -0.2, 0.1], [0.0, 1.0, 0.0]], np.float32)[None], (5, 1, 1))
    np.testing.assert_allclose(mean_rotations(aa), aa[0], atol=1e-5)
