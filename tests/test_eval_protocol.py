"""The SPIN and 4D-Humans image protocols against numpy references written here, on synthetic 3DPW-style data."""

import os
import pickle

import jax
import numpy as np
import pytest

from chatpose_jax.eval import image_protocol, metrics
from chatpose_jax.eval.benchmarks import BenchmarkData, mean_rotations


@pytest.fixture(scope="module")
def body_dir(tmp_path_factory):
    from chatpose_jax.body import synthetic

    root = str(tmp_path_factory.mktemp("bodies"))
    synthetic.write_model_folder(root, model_types=("smpl",), gender="all")
    synthetic.write_h36m_regressor(f"{root}/J_regressor_h36m.npy")
    synthetic.write_j19_regressor(f"{root}/SMPL_to_J19.pkl")
    return root


@pytest.fixture(scope="module")
def bodies(body_dir):
    return image_protocol.load_body_models(body_dir)


@pytest.fixture(scope="module")
def j19(body_dir):
    with open(os.path.join(body_dir, "SMPL_to_J19.pkl"), "rb") as f:
        return np.asarray(pickle.load(f, encoding="latin1"), np.float64)


def numpy_lsp14(vertices, regressor):
    joints = np.einsum("jv,bvc->bjc", regressor, vertices)
    return joints[:, [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]] - joints[:, :1]


HMR2_KEYPOINT_LIST = list(range(25, 38)) + [43]  # 4D-Humans' datasets_eval.yaml for 3DPW-TEST and H36M-VAL-P2
HMR2_PELVIS_IND = 39


def numpy_hmr2_14(vertices, j19):
    """4D-Humans: model joints = 25 OpenPose joints (unused here: NaN), then SMPL_to_J19's 19; minus joint 39."""
    extra = np.einsum("jv,bvc->bjc", j19, vertices)
    joints = np.concatenate([np.full((len(vertices), 25, 3), np.nan), extra], axis=1)
    return (joints - joints[:, [HMR2_PELVIS_IND]])[:, HMR2_KEYPOINT_LIST]


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


@jax.jit
def posed(model, betas, body_pose, global_orient):
    return model(betas=betas, body_pose=body_pose, global_orient=global_orient).vertices


def vertices(bodies, gender, data, betas=None):
    betas = data.betas if betas is None else betas
    return np.asarray(posed(bodies.model(gender), betas, data.body_pose, data.global_orient))


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


def test_hmr2_joints_match_numpy_reference_and_differ_from_spin(bodies, j19):
    data = poses(4, 4, "f")
    ours = image_protocol.ground_truth_joints(data, bodies, "hmr2")
    np.testing.assert_allclose(ours, numpy_hmr2_14(vertices(bodies, "f", data), j19), atol=1e-5)
    spin = image_protocol.ground_truth_joints(data, bodies, "spin")
    assert np.max(np.abs(ours - spin)) > 0.01, "4D-Humans' regressor and pelvis must give other joints than SPIN's"
    data.betas[:] = 0
    data.gender[:] = "n"
    scored = image_protocol.score(data.global_orient, data.body_pose, data, bodies, "hmr2")["summary"]
    assert scored["mpjpe_mm"] < 1e-3 and scored["pa_mpjpe_mm"] < 1e-2, scored
    shifted = np.asarray(metrics.hmr2_joints14(vertices(bodies, "n", data) + np.float32([1.0, 0.5, -2.0]),
                                               bodies.j19_regressor))  # fmt: skip
    np.testing.assert_allclose(shifted, image_protocol.ground_truth_joints(data, bodies, "hmr2"), atol=1e-5)


@pytest.fixture(scope="module")
def hmr2_benchmark(tmp_path_factory, bodies, j19):
    """4D-Humans evaluation files written by the synthetic writer, prepared by hmr_images' 'hmr2' config."""
    import data_pipelines  # noqa: F401
    from data_pipelines.prepare import prepare
    from data_pipelines.synthetic.writers import write_hmr_images

    root = str(tmp_path_factory.mktemp("hmr2_raw"))
    gendered = {"m": bodies.model("m"), "f": bodies.model("f")}
    write_hmr_images(root, bodies.model("n"), 9, seed=5, num_tar_shards=1, h36m_regressor=bodies.h36m_regressor,
                     j19_regressor=j19, gendered_models=gendered)  # fmt: skip
    data_dir = str(tmp_path_factory.mktemp("hmr2_tfds"))
    prepare("hmr_images", root, data_dir, config="hmr2")
    return root, data_dir


def test_4d_humans_files_have_the_published_layout(hmr2_benchmark):
    root, _ = hmr2_benchmark
    folder = os.path.join(root, "hmr2_evaluation_data")
    assert sorted(os.listdir(folder)) == ["3dpw_test.npz", "h36m_val_p2.npz"]
    keys = {"imgname", "center", "scale", "body_pose", "has_body_pose", "betas", "has_betas", "body_keypoints_2d",
            "extra_keypoints_2d", "body_keypoints_3d", "extra_keypoints_3d"}  # fmt: skip
    four_d, spin = np.load(os.path.join(folder, "3dpw_test.npz")), np.load(os.path.join(root, "npz", "3dpw_test.npz"))
    assert set(four_d.files) == keys | {"gender"}
    assert set(np.load(os.path.join(folder, "h36m_val_p2.npz")).files) == keys
    n = len(four_d["imgname"])
    shapes = {"body_pose": (n, 72), "betas": (n, 10), "body_keypoints_2d": (n, 25, 3), "extra_keypoints_2d": (n, 19, 3),
              "body_keypoints_3d": (n, 25, 4), "extra_keypoints_3d": (n, 19, 4)}  # fmt: skip
    assert {k: four_d[k].shape for k in shapes} == shapes
    np.testing.assert_array_equal(four_d["imgname"], spin["imgname"])
    np.testing.assert_allclose(four_d["scale"], 200.0 * spin["scale"])  # 4D-Humans stores the box side in pixels
    np.testing.assert_allclose(four_d["body_pose"], spin["pose"])


def test_4d_humans_benchmark_scores_like_numpy_reference(hmr2_benchmark, bodies, j19):
    from chatpose_jax.eval.benchmarks import read_benchmark

    root, data_dir = hmr2_benchmark
    raw = np.load(os.path.join(root, "hmr2_evaluation_data", "3dpw_test.npz"))
    data = read_benchmark("3dpw", data_dir, with_images=False, protocol="hmr2")
    names = ["3dpw_test/" + str(name) for name in raw["imgname"]]
    assert sorted(data.ids) == sorted(names)
    order = [names.index(i) for i in data.ids]  # TFDS keeps its own order; match the file's rows by id
    raw = {k: raw[k][order] for k in raw.files}
    assert set(data.gender) == {"m", "f"} and data.ground_truth == "joints"
    np.testing.assert_array_equal(data.gender, raw["gender"])
    # Ground truth: each person's own gendered body in the file's camera frame (kept), J19, pelvis.
    gt = np.zeros((len(data), 14, 3))
    for i, gender in enumerate(raw["gender"]):
        pose = raw["body_pose"][i : i + 1].astype(np.float32)
        verts = posed(bodies.model(str(gender)), raw["betas"][i : i + 1].astype(np.float32), pose[:, 3:], pose[:, :3])
        gt[i] = numpy_hmr2_14(np.asarray(verts, np.float64), j19)[0]
    np.testing.assert_allclose(image_protocol.ground_truth_joints(data, bodies, "hmr2"), gt, atol=1e-4)
    # Predictions: the true (camera-frame) poses on the neutral, shapeless body.
    zeros = np.zeros((len(data), 10), np.float32)
    verts = posed(bodies.model("n"), zeros, data.body_pose, data.global_orient)
    pred = numpy_hmr2_14(np.asarray(verts, np.float64), j19)
    scored = image_protocol.score(data.global_orient, data.body_pose, data, bodies, "hmr2")
    np.testing.assert_allclose(scored["per_sample"]["mpjpe_mm"], 1000 * np.linalg.norm(pred - gt, axis=-1).mean(1),
                               rtol=1e-4, atol=1e-3)  # fmt: skip
    np.testing.assert_allclose(scored["per_sample"]["pa_mpjpe_mm"], numpy_pa_mpjpe(pred, gt), rtol=1e-3, atol=1e-2)
    assert scored["summary"]["mpjpe_mm"] > 1.0, "shape and gender differ, so the error is not zero"
    h36m = read_benchmark("h36m", data_dir, with_images=False, protocol="hmr2")
    assert len(h36m) == 2 and np.abs(image_protocol.ground_truth_joints(h36m, bodies, "hmr2")).max() > 0.1
