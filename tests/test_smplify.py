"""SMPLify in JAX: it recovers known poses from their projections, its GMM prior is the published
formula, and its keypoint layouts and input checks are the published ones."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from chatpose_jax.body import load_body_model
from chatpose_jax.eval.metrics import pa_mpjpe
from chatpose_jax.fitting import prior, smplify
from chatpose_jax.fitting.body_keypoints import layout_keypoints
from chatpose_jax.fitting.keypoint_layouts import LAYOUTS, get_layout
from tests.smplify_fixtures import moderate_poses, smplify_files

# Ten times SPIN's step size: the fit starts from the mean pose, not from a network's guess.
TEST_CONFIG = smplify.SmplifyConfig(learning_rate=0.05, camera_iterations=30, body_iterations=100)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return smplify_files(tmp_path_factory)


@pytest.fixture(scope="module")
def model(files):
    return load_body_model(files["smpl"])


@pytest.fixture(scope="module")
def pose_prior(files):
    return prior.load_max_mixture_prior(files["gmm"])


@jax.jit
def _body25_points_and_joints(model, global_orient, body_pose, betas):
    """One compiled program for every body the recovery test poses (the truth, the fit, the mean pose)."""
    return layout_keypoints(model, get_layout("body25"), global_orient, body_pose, betas)


_pa_mpjpe_mm = jax.jit(lambda pred, target: 1000 * pa_mpjpe(pred, target))


def test_smplify_recovers_known_poses_from_exact_projections(model, pose_prior):
    num = 6
    rng = np.random.default_rng(1)
    global_orient, body_pose = moderate_poses(rng, num)
    betas = (0.5 * rng.normal(size=(num, 10))).astype(np.float32)
    # About 45 m away at SPIN's 5000 px focal length: the person spans most of the 224 px crop.
    translation = np.stack([rng.uniform(-0.1, 0.1, num), rng.uniform(-0.1, 0.1, num), rng.uniform(40, 55, num)], 1)
    points, true_joints = _body25_points_and_joints(model, global_orient, body_pose, betas)
    points = np.asarray(points, np.float64) + translation[:, None]
    pixels = 5000.0 * points[..., :2] / points[..., 2:] + 112.0
    keypoints = np.concatenate([pixels, np.ones((num, 25, 1))], axis=-1)

    fit = smplify.fit_smplify(model, pose_prior, keypoints, "body25", config=TEST_CONFIG)
    _, fitted_joints = _body25_points_and_joints(model, fit.global_orient, fit.body_pose, fit.betas)
    mean_pose = np.broadcast_to(np.asarray(pose_prior.mean_pose), (num, 69))
    _, start_joints = _body25_points_and_joints(model, global_orient, mean_pose, np.zeros((num, 10), np.float32))
    fitted_mm = np.asarray(_pa_mpjpe_mm(fitted_joints, true_joints))
    mean_pose_mm = np.asarray(_pa_mpjpe_mm(start_joints, true_joints))

    # Measured with this config: 8 people of this sampler (other seed) 35 mm mean, 40 mm worst; these 6:
    # 37 mm mean, 53 mm worst, against 81 mm mean (42-153 mm) for the mean pose. What remains is the
    # depth ambiguity of a 5000 px camera (a limb bent towards or away from it projects alike), settled
    # by the prior, so exact keypoints do not give 0 mm. Bounds: the mean below 45 mm and half the mean
    # pose's, every person below 70 mm.
    assert fitted_mm.mean() < 45.0, f"mean PA-MPJPE {fitted_mm.mean():.1f} mm; expected < 45 mm"
    assert fitted_mm.mean() < 0.5 * mean_pose_mm.mean(), (
        f"fitted {fitted_mm.round(1)} vs mean pose {mean_pose_mm.round(1)} mm"
    )
    assert np.all(fitted_mm < 70.0), f"PA-MPJPE per person {fitted_mm.round(1)} mm; expected < 70 mm"
    assert fit.body_pose.shape == (num, 69) and fit.betas.shape == (num, 10)
    assert fit.camera_translation.shape == (num, 3) and fit.reprojection_loss.shape == (num,)
    # The reprojection loss sums 25 keypoints' squared pixel errors (GM ~ r^2 below sigma): a few px each.
    assert np.all(np.asarray(fit.reprojection_loss) < 25 * 2 * 3.0**2), np.asarray(fit.reprojection_loss)


def test_layout_keypoints_read_the_full_model_joints_and_vertices(model):
    rng = np.random.default_rng(2)
    global_orient, body_pose = moderate_poses(rng, 2)
    betas = rng.normal(size=(2, 10)).astype(np.float32)

    @jax.jit
    def both(global_orient, body_pose, betas):
        full = model(betas=betas, body_pose=body_pose, global_orient=global_orient)
        coco = layout_keypoints(model, get_layout("coco17"), global_orient, body_pose, betas)
        body25, _ = layout_keypoints(model, get_layout("body25"), global_orient, body_pose, betas)
        return full.joints, full.vertices, coco, body25

    full_joints, full_vertices, (points, joints), points25 = both(global_orient, body_pose, betas)
    np.testing.assert_allclose(joints, full_joints, atol=1e-5)
    np.testing.assert_allclose(points[:, 0], full_vertices[:, 332], atol=1e-5)  # nose: smplx vertex 332
    np.testing.assert_allclose(points[:, 16], full_joints[:, 8], atol=1e-5)  # right ankle: SMPL joint 8
    np.testing.assert_allclose(points25[:, 24], full_vertices[:, 6787], atol=1e-5)  # RHeel: smplx vertex 6787
    mid_hip = get_layout("body25").names.index("MidHip")
    np.testing.assert_allclose(points25[:, mid_hip], (full_joints[:, 1] + full_joints[:, 2]) / 2, atol=1e-5)


def test_gmm_prior_equals_the_numpy_formula_on_the_file(files, pose_prior):
    with open(files["gmm"], "rb") as f:
        gmm = pickle.load(f, encoding="latin1")
    assert gmm["means"].shape == (8, 69) and gmm["covars"].shape == (8, 69, 69) and gmm["weights"].shape == (8,)
    rng = np.random.default_rng(3)
    _, poses = moderate_poses(rng, 5)
    poses[0] = gmm["means"][2]  # at a component's mean
    poses[1] += rng.normal(0, 0.5, 69)  # far from every component
    # -log(w_k N(x; mu_k, S_k)) with the determinant taken relative to the smallest, min over k.
    log_dets = np.array([np.log(np.linalg.det(c)) for c in gmm["covars"]])
    per_component = np.stack(
        [
            -np.log(w) - multivariate_normal(mu, cov).logpdf(poses.astype(np.float64))
            for mu, cov, w in zip(gmm["means"], gmm["covars"], gmm["weights"], strict=True)
        ],
        axis=1,
    )
    expected = per_component.min(axis=1) - 0.5 * log_dets.min()
    got = np.asarray(prior.max_mixture_nll(pose_prior, jnp.asarray(poses)))
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-2)


def test_bending_and_shape_priors():
    pose = np.zeros((3, 69), np.float32)
    pose[1, 52] = -1.0  # left elbow bent the natural way (SMPLify: y rotation < 0)
    pose[2, 52] = 1.0  # ... and the unnatural way
    np.testing.assert_allclose(prior.bending_prior(jnp.asarray(pose)), [4.0, 3 + np.exp(-2), 3 + np.exp(2)], rtol=1e-6)
    np.testing.assert_allclose(prior.shape_prior(jnp.asarray([[1.0, 2.0] + [0.0] * 8])), [5.0])


def test_gmm_file_missing_key_is_named(tmp_path):
    path = tmp_path / "gmm_08.pkl"
    with open(path, "wb") as f:
        pickle.dump({"means": np.zeros((8, 69)), "weights": np.ones(8) / 8}, f, protocol=2)
    with pytest.raises(KeyError, match=r"gmm_08\.pkl: missing key 'covars'"):
        prior.load_max_mixture_prior(str(path))


def test_layouts_are_the_published_orders():
    coco, body25 = get_layout("coco17"), get_layout("body25")
    assert coco.num_keypoints == 17 and body25.num_keypoints == 25
    assert coco.names[:3] == ("nose", "left_eye", "right_eye") and coco.names[-1] == "right_ankle"
    assert body25.names[:3] == ("Nose", "Neck", "RShoulder") and body25.names[8] == "MidHip"
    assert body25.names[19:] == ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")
    assert body25.vertex_ids == (332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787)
    assert [body25.body_parts[i] for i in body25.torso] == ["left_shoulder", "right_shoulder", "left_hip", "right_hip"]
    with pytest.raises(ValueError, match=r"unknown keypoint layout 'coco18'; known layouts: body25, coco17"):
        get_layout("coco18")
    assert sorted(LAYOUTS) == ["body25", "coco17"]


def test_bad_keypoints_are_refused_by_name(model, pose_prior):
    keypoints = np.ones((3, 17, 3), np.float32) * 100
    with pytest.raises(ValueError, match="unknown keypoint layout 'openpose18'"):
        smplify.fit_smplify(model, pose_prior, keypoints, "openpose18")
    bad = keypoints.copy()
    bad[2, 7, 0] = np.nan
    with pytest.raises(ValueError, match=r"person 2, keypoint 7 \(left_elbow\) has a non-finite x"):
        smplify.fit_smplify(model, pose_prior, bad, "coco17")
    unseen = keypoints.copy()
    unseen[1, :, 2] = 0.0
    with pytest.raises(ValueError, match="person 1 has every confidence zero"):
        smplify.fit_smplify(model, pose_prior, unseen, "coco17")
    with pytest.raises(ValueError, match=r"keypoints have shape \(3, 17, 3\); expected \(B, 25, 3\)"):
        smplify.fit_smplify(model, pose_prior, keypoints, "body25")
