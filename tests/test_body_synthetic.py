"""The synthetic body-model files: sizes, a closed outward mesh, human proportions, sane skinning and
regressors; and the mesh writers / renderer on a posed body."""

import struct

import jax
import matplotlib.image
import numpy as np
import pytest
import smplx.joint_names
from _body_files import model_file

from chatpose_jax.body import load_body_model, mesh_io, read_model_arrays, skeletons, synthetic


@pytest.fixture(scope="module", params=["smpl", "smplx"])
def arrays(request):
    return request.param, read_model_arrays(model_file(request.param))


def _edges(faces):
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def test_full_size_and_official_keys(arrays):
    model_type, a = arrays
    num_verts = {"smpl": 6890, "smplx": 10475}[model_type]
    num_joints = {"smpl": 24, "smplx": 55}[model_type]
    assert a["v_template"].shape == (num_verts, 3)
    assert a["posedirs"].shape == (num_verts, 3, 9 * (num_joints - 1))
    assert a["J_regressor"].shape == (num_joints, num_verts) and a["weights"].shape == (num_verts, num_joints)
    assert a["kintree_table"][0, 0] == synthetic.ROOT_PARENT
    np.testing.assert_array_equal(a["kintree_table"][0, 1:], skeletons.PARENTS[model_type][1:])
    if model_type == "smplx":
        assert a["shapedirs"].shape == (num_verts, 3, 20)  # 10 shape + 10 expression, as SMPL-X v1.0
        for key in ("lmk_faces_idx", "lmk_bary_coords", "dynamic_lmk_faces_idx", "hands_componentsl", "hands_meanr"):
            assert key in a, key


def test_joint_names_follow_smplx_order():
    assert skeletons.JOINT_NAMES["smplx"] == tuple(smplx.joint_names.JOINT_NAMES[:55])
    assert skeletons.JOINT_NAMES["smpl"][:22] == tuple(smplx.joint_names.JOINT_NAMES[:22])


def test_mesh_is_closed_and_faces_outwards(arrays):
    _, a = arrays
    faces = a["f"].astype(np.int64)
    directed = _edges(faces)
    # Closed and consistently oriented: each directed edge once, and its reverse exactly once.
    keys = directed[:, 0] * len(a["v_template"]) + directed[:, 1]
    reverse = directed[:, 1] * len(a["v_template"]) + directed[:, 0]
    assert len(np.unique(keys)) == len(keys), "an edge is used twice in the same direction"
    assert np.array_equal(np.sort(keys), np.sort(reverse)), "an edge has no opposite half-edge: the mesh is open"
    assert len(np.unique(faces)) == len(a["v_template"]), "every vertex belongs to a face"
    tri = a["v_template"][faces]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 0.05 < volume < 0.12, f"enclosed volume {volume:.3f} m^3 (a 60-90 kg adult is about 0.06-0.09)"


def test_human_proportions(arrays):
    model_type, a = arrays
    v = a["v_template"]
    height, span = np.ptp(v[:, 1]), np.ptp(v[:, 0])
    assert 1.6 < height < 1.85 and abs(span / height - 1.0) < 0.1, (height, span)  # arm span ~ height
    joints = synthetic.rest_joints(model_type)
    names = skeletons.JOINT_NAMES[model_type]

    def at(n):
        return joints[names.index(n)]

    assert at("head")[1] > at("neck")[1] > at("spine3")[1] > at("pelvis")[1] > at("left_knee")[1] > at("left_ankle")[1]
    assert at("left_wrist")[0] > at("left_elbow")[0] > at("left_shoulder")[0] > 0 > at("right_shoulder")[0]
    np.testing.assert_allclose(at("left_knee") * [-1, 1, 1], at("right_knee"))


def test_skinning_weights_are_convex_and_smooth(arrays):
    _, a = arrays
    w = a["weights"]
    assert w.min() >= 0 and np.allclose(w.sum(1), 1.0)
    edges = _edges(a["f"].astype(np.int64))
    jump = np.abs(w[edges[:, 0]] - w[edges[:, 1]]).sum(1)
    assert jump.max() < 0.8 and np.percentile(jump, 99) < 0.5, "weights change abruptly across an edge"


def test_joint_regressor_reproduces_skeleton(arrays):
    model_type, a = arrays
    reg = a["J_regressor"]
    assert reg.min() >= 0 and np.allclose(reg.sum(1), 1.0)
    assert np.all((reg > 0).sum(1) >= 8), "each joint is regressed from a neighbourhood, not one vertex"
    np.testing.assert_allclose(reg @ a["v_template"], synthetic.rest_joints(model_type), atol=1e-4)


def test_shape_directions_change_height_and_girth():
    model = load_body_model(model_file("smpl"))
    rest, taller, wider = np.asarray(jax.jit(lambda m, b: m(betas=b).vertices)(model, np.eye(3)[[2, 0, 1]] * 2.0))
    assert np.ptp(taller[:, 1]) - np.ptp(rest[:, 1]) > 0.05
    assert np.ptp(wider[:, 2]) - np.ptp(rest[:, 2]) > 0.02


def test_files_are_deterministic(tmp_path):
    a = synthetic.write_npz(str(tmp_path / "a.npz"), "smplh", seed=3)
    b = synthetic.write_npz(str(tmp_path / "b.npz"), "smplh", seed=3)
    with np.load(a) as x, np.load(b) as y:
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


# --- mesh output ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def posed():
    model = load_body_model(model_file("smpl"))
    body_pose = np.zeros((1, 23, 3), np.float32)
    body_pose[0, 15, 2], body_pose[0, 16, 2] = -1.2, 1.2  # arms down
    body_pose[0, 3, 0] = 1.0  # left knee bent
    return np.asarray(jax.jit(lambda m, p: m(body_pose=p).vertices[0])(model, body_pose)), model.faces


def test_obj_round_trip(tmp_path, posed):
    verts, faces = posed
    path = mesh_io.write_obj(str(tmp_path / "body.obj"), verts, faces)
    back_v, back_f = mesh_io.read_obj(path)
    np.testing.assert_allclose(back_v, verts, atol=1e-6)
    np.testing.assert_array_equal(back_f, faces)


def test_ply_is_valid_binary(tmp_path, posed):
    verts, faces = posed
    path = mesh_io.write_ply(str(tmp_path / "body.ply"), verts, faces)
    raw = open(path, "rb").read()
    header, body = raw.split(b"end_header\n", 1)
    assert f"element vertex {len(verts)}".encode() in header and f"element face {len(faces)}".encode() in header
    v = np.frombuffer(body[: 12 * len(verts)], "<f4").reshape(-1, 3)
    np.testing.assert_allclose(v, verts, atol=1e-6)
    first_face = struct.unpack("<Biii", body[12 * len(verts) : 12 * len(verts) + 13])
    assert first_face == (3, *faces[0])
    with pytest.raises(ValueError, match=r"vertices has shape \(1, 6890, 3\); expected \(V, 3\)"):
        mesh_io.write_ply(str(tmp_path / "x.ply"), verts[None], faces)


def test_render_png_shows_a_shaded_body_in_two_views(tmp_path, posed):
    verts, faces = posed
    path = mesh_io.render_png(str(tmp_path / "body.png"), verts, faces, size_px=256)
    image = matplotlib.image.imread(path)[..., :3]
    assert image.shape[:2] == (256, 512)
    body = np.any(image < 0.95, axis=-1)
    front, side = body[:, :256], body[:, 256:]
    for name, mask in (("front", front), ("side", side)):
        rows = np.flatnonzero(mask.any(1))
        assert rows.size and np.ptp(rows) > 150, f"{name} view: the body should span most of the height"
    # Shaded, not flat: many grey levels on the body.
    assert len(np.unique(np.round(image[body].mean(-1), 2))) > 20
    # The front view is wider than the side view (shoulders vs chest depth).
    assert front.any(0).sum() > side.any(0).sum()
