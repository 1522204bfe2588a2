"""The JAX body model against the `smplx` package, on full-size synthetic SMPL / SMPL-H / SMPL-X files."""

import os
import pickle
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import smplx
import torch
from _body_files import model_file, model_folder
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from scipy.spatial.transform import Rotation

from chatpose_jax.body import load_body_model, read_model_arrays

TOL_M = 1e-5  # float32 parity bound from the issue (metres)
BATCH = 6


def _random_axis_angle(rng, batch, joints, near_pi=True):
    """Random axis-angle poses, a third of them within 0.01 rad of a half turn (the hard case)."""
    axis = rng.normal(size=(batch, joints, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = rng.uniform(0, np.pi, size=(batch, joints, 1))
    if near_pi:
        flip = rng.uniform(size=(batch, joints, 1)) < 1 / 3
        angle = np.where(flip, np.pi - rng.uniform(0, 0.01, size=angle.shape), angle)
        angle[0, 0] = np.pi  # exactly a half turn once
    return (axis * angle).astype(np.float32)


def _inputs(model_type, rng, batch=BATCH):
    """Random smplx-shaped inputs for every pose argument of the model type (axis-angle)."""
    body_joints = 23 if model_type == "smpl" else 21
    x = {
        "betas": rng.normal(size=(batch, 10)).astype(np.float32) * 1.5,
        "global_orient": _random_axis_angle(rng, batch, 1).reshape(batch, 3),
        "body_pose": _random_axis_angle(rng, batch, body_joints).reshape(batch, -1),
        "transl": rng.normal(size=(batch, 3)).astype(np.float32),
    }
    if model_type != "smpl":
        x["left_hand_pose"] = _random_axis_angle(rng, batch, 15).reshape(batch, -1)
        x["right_hand_pose"] = _random_axis_angle(rng, batch, 15).reshape(batch, -1)
    if model_type == "smplx":
        for name in ("jaw_pose", "leye_pose", "reye_pose"):
            x[name] = _random_axis_angle(rng, batch, 1).reshape(batch, 3)
        x["expression"] = rng.normal(size=(batch, 10)).astype(np.float32)
    return x


def _smplx_reference(model_type, inputs, flat_hand_mean=False):
    kwargs = {} if model_type == "smpl" else {"ext": "npz", "use_pca": False, "flat_hand_mean": flat_hand_mean}
    ref = smplx.create(model_folder(), model_type=model_type, num_betas=10, **kwargs)
    with torch.no_grad():
        out = ref(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    return out.vertices.numpy(), out.joints.numpy()


def _assert_close(ours, ref, what):
    err = np.abs(np.asarray(ours) - ref).max()
    assert err < TOL_M, f"{what}: max |ours - smplx| = {err:.3g} m, expected < {TOL_M}"


@pytest.mark.parametrize("model_type", ["smpl", "smplh", "smplx"])
def test_axis_angle_matches_smplx(model_type):
    rng = np.random.default_rng({"smpl": 0, "smplh": 1, "smplx": 2}[model_type])
    inputs = _inputs(model_type, rng)
    ref_verts, ref_joints = _smplx_reference(model_type, inputs)
    model = load_body_model(model_folder(), model_type=model_type)
    out = jax.jit(lambda m, x: m(**x))(model, inputs)
    num_joints = {"smpl": 24, "smplh": 52, "smplx": 55}[model_type]
    assert out.vertices.shape == ref_verts.shape and out.joints.shape == (BATCH, num_joints, 3)
    _assert_close(out.vertices, ref_verts, f"{model_type} vertices")
    _assert_close(out.joints, ref_joints[:, :num_joints], f"{model_type} joints")
    assert np.array_equal(out.faces, np.asarray(model.faces)) and out.faces.shape[1] == 3


@pytest.mark.parametrize("model_type", ["smpl", "smplx"])
def test_rotation_matrix_inputs_match_smplx(model_type):
    """Rotation matrices made by scipy (not by our code) give smplx's axis-angle result."""
    rng = np.random.default_rng(3)
    inputs = _inputs(model_type, rng)
    ref_verts, ref_joints = _smplx_reference(model_type, inputs, flat_hand_mean=True)
    as_rotmat = {}
    for name, value in inputs.items():
        if name in ("betas", "transl", "expression"):
            as_rotmat[name] = value
        else:
            rotmat = Rotation.from_rotvec(value.reshape(-1, 3).astype(np.float64)).as_matrix()
            as_rotmat[name] = rotmat.reshape(BATCH, -1, 3, 3).astype(np.float32)
    model = load_body_model(model_folder(), model_type=model_type, flat_hand_mean=True)
    out = jax.jit(lambda m, x: m(**x))(model, as_rotmat)
    _assert_close(out.vertices, ref_verts, f"{model_type} vertices from rotmats")
    _assert_close(out.joints, ref_joints[:, : model.num_joints], f"{model_type} joints from rotmats")


def test_smpl_rotmat_path_of_smplx_agrees():
    """smplx's own pose2rot=False path and ours agree on the same matrices."""
    rng = np.random.default_rng(4)
    rotmat = Rotation.from_rotvec(_random_axis_angle(rng, BATCH, 24).reshape(-1, 3)).as_matrix()
    rotmat = rotmat.reshape(BATCH, 24, 3, 3).astype(np.float32)
    betas = rng.normal(size=(BATCH, 10)).astype(np.float32)
    ref = smplx.create(model_folder(), model_type="smpl")
    with torch.no_grad():
        r = ref(
            betas=torch.from_numpy(betas),
            global_orient=torch.from_numpy(rotmat[:, :1]),
            body_pose=torch.from_numpy(rotmat[:, 1:]),
            pose2rot=False,
        )
    forward = jax.jit(lambda m, b, r: m(betas=b, global_orient=r[:, :1], body_pose=r[:, 1:]))
    out = forward(load_body_model(model_file("smpl")), betas, rotmat)
    _assert_close(out.vertices, r.vertices.numpy(), "smpl vertices (pose2rot=False)")


def test_hand_pca_matches_smplx():
    rng = np.random.default_rng(5)
    inputs = _inputs("smplx", rng)
    left, right = rng.normal(size=(2, BATCH, 12)).astype(np.float32)
    ref = smplx.create(model_folder(), model_type="smplx", ext="npz", use_pca=True, num_pca_comps=12)
    torch_inputs = {k: torch.from_numpy(v) for k, v in inputs.items()}
    torch_inputs.update(left_hand_pose=torch.from_numpy(left), right_hand_pose=torch.from_numpy(right))
    with torch.no_grad():
        r = ref(**torch_inputs)
    model = load_body_model(model_folder(), model_type="smplx")
    inputs.update(
        left_hand_pose=model.hand_pose_from_pca(left, "left"), right_hand_pose=model.hand_pose_from_pca(right, "right")
    )
    _assert_close(
        jax.jit(lambda m, x: m(**x))(model, inputs).vertices, r.vertices.numpy(), "smplx vertices with hand PCA"
    )


def _write_chumpy_pickle(path, arrays, chumpy_keys):
    """Pickle like the official SMPL file: chosen entries as `chumpy.ch.Ch` objects, their value in 'x'.

    The class exists under chumpy's name only while pickling; it is gone before anything loads.
    """
    assert "chumpy" not in sys.modules
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch, package.ch = Ch, module
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        data = dict(arrays)
        for key in chumpy_keys:
            obj = Ch()
            obj.x = arrays[key]
            obj._dirty_vars = set()  # real chumpy state carries more than 'x'
            data[key] = obj
        data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=2)
    finally:
        del sys.modules["chumpy.ch"], sys.modules["chumpy"]


def test_chumpy_pickle_loads_without_chumpy(tmp_path):
    arrays = read_model_arrays(model_file("smpl"))
    path = str(tmp_path / "SMPL_NEUTRAL.pkl")
    _write_chumpy_pickle(path, arrays, ["v_template", "shapedirs", "weights", "posedirs"])
    with open(path, "rb") as f:
        assert b"chumpy.ch" in f.read(), "the test file should name chumpy's class"
    with pytest.raises(ModuleNotFoundError):
        __import__("chumpy")
    plain = load_body_model(model_file("smpl"))
    from_chumpy = load_body_model(path)
    for name in ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights"):
        np.testing.assert_array_equal(getattr(from_chumpy, name), getattr(plain, name), err_msg=name)


def test_synthetic_writer_chumpy_option_loads(tmp_path):
    from chatpose_jax.body import synthetic

    path = synthetic.write_smpl_pkl(str(tmp_path / "m.pkl"), chumpy=True)
    assert "chumpy" not in sys.modules
    model = load_body_model(path)
    np.testing.assert_allclose(model.v_template.T, read_model_arrays(model_file("smpl"))["v_template"], atol=1e-6)


def test_dense_regressor_pickle_and_npz_load_alike(tmp_path):
    arrays = read_model_arrays(model_file("smpl"))
    dense_pkl, npz = str(tmp_path / "dense.pkl"), str(tmp_path / "SMPL_NEUTRAL.npz")
    with open(dense_pkl, "wb") as f:
        pickle.dump(arrays, f, protocol=2)
    np.savez(npz, **arrays)
    reference = load_body_model(model_file("smpl"))
    for path in (dense_pkl, npz):
        other = load_body_model(path)
        for name in ("v_template", "J_regressor", "posedirs"):
            np.testing.assert_array_equal(getattr(other, name), getattr(reference, name), err_msg=f"{path} {name}")
        assert other.parents == reference.parents and other.model_type == "smpl"


def test_folder_loading_needs_model_type_when_ambiguous():
    with pytest.raises(ValueError, match="pass model_type"):
        load_body_model(model_folder())
    assert load_body_model(model_folder(), model_type="smplh").num_joints == 52


def test_num_betas_truncates_and_dtype_applies():
    model = load_body_model(model_file("smpl"), num_betas=4, dtype=jnp.bfloat16)
    assert model.shapedirs.shape == (4, 3, 6890) and model.posedirs.dtype == jnp.bfloat16
    smplx_model = load_body_model(model_file("smplx"), num_betas=7, num_expression_coeffs=3)
    assert smplx_model.num_betas == 7 and smplx_model.num_expression_coeffs == 3


# --- bad input -----------------------------------------------------------------------------------
def _rewrite(tmp_path, name, change):
    arrays = read_model_arrays(model_file("smpl"))
    change(arrays)
    path = str(tmp_path / name)
    np.savez(path, **arrays)
    return path


def test_missing_key_names_file_and_key(tmp_path):
    path = _rewrite(tmp_path, "no_posedirs.npz", lambda a: a.pop("posedirs"))
    with pytest.raises(ValueError, match=r"no_posedirs\.npz.*'posedirs'"):
        load_body_model(path)


def test_wrong_shape_names_key_found_and_expected(tmp_path):
    path = _rewrite(tmp_path, "bad_weights.npz", lambda a: a.update(weights=a["weights"][:, :20]))
    with pytest.raises(
        ValueError, match=r"bad_weights\.npz: key 'weights' has shape \(6890, 20\); expected \(6890, 24\)"
    ):
        load_body_model(path)


def test_joint_count_not_matching_kintree(tmp_path):
    path = _rewrite(tmp_path, "short_regressor.npz", lambda a: a.update(J_regressor=a["J_regressor"][:23]))
    with pytest.raises(ValueError, match=r"'J_regressor' has shape \(23, 6890\); expected \(24, 6890\)"):
        load_body_model(path)
    path = _rewrite(tmp_path, "odd_tree.npz", lambda a: a.update(kintree_table=a["kintree_table"][:, :20]))
    with pytest.raises(ValueError, match=r"odd_tree\.npz: key 'kintree_table' has shape \(2, 20\)"):
        load_body_model(path)
    with pytest.raises(ValueError, match=r"smplx"):
        load_body_model(model_file("smpl"), model_type="smplx")


def test_files_that_are_not_body_models(tmp_path):
    text = tmp_path / "notes.pkl"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.pkl: not a body-model pickle"):
        load_body_model(str(text))
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match=r"list\.pkl.*expected a dict"):
        load_body_model(str(listed))
    other = tmp_path / "other.npz"
    np.savez(other, images=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"other\.npz: missing key 'kintree_table'"):
        load_body_model(str(other))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"v_template": os.getcwd}))
    with pytest.raises(ValueError, match=r"refusing to load"):
        load_body_model(str(evil))
    with pytest.raises(ValueError, match="no such"):
        load_body_model(str(tmp_path / "absent.npz"))


def test_wrong_input_shape_names_argument():
    model = load_body_model(model_file("smpl"))
    with pytest.raises(ValueError, match=r"body_pose has shape \(2, 68\); expected axis-angle \(2, 69\)"):
        model(body_pose=np.zeros((2, 68)))
    with pytest.raises(ValueError, match=r"betas has shape \(2, 11\)"):
        model(betas=np.zeros((2, 11)), body_pose=np.zeros((2, 69)))
    with pytest.raises(ValueError, match="takes no jaw_pose"):
        model(jaw_pose=np.zeros((1, 3)))


# --- transformations of the model ----------------------------------------------------------------
def test_sharded_batch_matches_single_device():
    devices = jax.devices()
    assert len(devices) == 8, "tests/conftest.py forces 8 CPU devices"
    model = load_body_model(model_file("smpl"))
    inputs = _inputs("smpl", np.random.default_rng(6), batch=16)
    forward = jax.jit(lambda m, x: m(**x).vertices)
    single = forward(model, inputs)
    mesh = Mesh(np.array(devices), ("batch",))
    sharded_inputs = jax.device_put(inputs, NamedSharding(mesh, P("batch")))
    sharded_model = jax.device_put(model, NamedSharding(mesh, P()))
    sharded = forward(sharded_model, sharded_inputs)
    assert sharded.sharding.spec[0] == "batch" and len(sharded.addressable_shards) == 8
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(single), atol=1e-6)


def test_vmap_over_examples_matches_batch():
    model = load_body_model(model_file("smpl"))
    inputs = _inputs("smpl", np.random.default_rng(7))
    batched = jax.jit(lambda m, x: m(**x).joints)(model, inputs)
    per_example = jax.jit(jax.vmap(lambda m, x: m(**{k: v[None] for k, v in x.items()}).joints[0], in_axes=(None, 0)))
    one_at_a_time = per_example(model, inputs)
    np.testing.assert_allclose(one_at_a_time, batched, atol=1e-6)


def test_gradients_finite_at_rest_and_match_finite_differences():
    model = load_body_model(model_file("smpl"))
    target = model.v_template.T[None] + 0.01

    @jax.jit
    def loss(body_pose, betas):
        return jnp.mean((model(body_pose=body_pose, betas=betas).vertices - target) ** 2)

    zeros_pose, zeros_betas = jnp.zeros((1, 69)), jnp.zeros((1, 10))
    g_pose, g_betas = jax.jit(jax.grad(loss, argnums=(0, 1)))(zeros_pose, zeros_betas)
    assert np.all(np.isfinite(g_pose)) and np.all(np.isfinite(g_betas))
    direction = np.random.default_rng(8).normal(size=(1, 69)).astype(np.float32)
    eps = 1e-2
    numeric = (loss(zeros_pose + eps * direction, zeros_betas) - loss(zeros_pose - eps * direction, zeros_betas)) / (
        2 * eps
    )
    analytic = jnp.sum(g_pose * direction)
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2)
    # Gradients with respect to the model's own arrays (e.g. to fit a template) flow too.
    g_model = jax.jit(jax.grad(lambda m: jnp.sum(m(body_pose=zeros_pose).vertices)))(model)
    assert g_model.v_template.shape == model.v_template.shape
    # Rest pose: vertices = v_template, so each vertex's gradient is its skinning weights' sum (1 within 5e-8);
    # XLA:CPU's float32 skinning through the 24 joint transforms adds up to ~1.2e-5 of rounding.
    np.testing.assert_allclose(g_model.v_template, 1.0, atol=3e-5)


@pytest.mark.parametrize("vertex_block", [64, 1000, 4000])
def test_vertex_blocked_skinning_matches_one_pass(vertex_block):
    """Large batches skin in vertex blocks (the last one overlapping); values and gradients are unchanged."""
    from chatpose_jax.body import lbs

    model = load_body_model(model_file("smpl"))
    inputs = _inputs("smpl", np.random.default_rng(9), batch=3)
    rotmat = jax.jit(lambda m, x: m(**x).rotmat)(model, inputs)
    args = (model.v_template, model.shapedirs, model.posedirs, model.J_regressor, model.lbs_weights)

    def loss(betas, rotmat, transl, block):
        verts, joints = lbs.lbs(betas, rotmat, *args, model.parents, transl=transl, vertex_block=block)
        return jnp.sum(verts * jnp.sin(verts)) + jnp.sum(joints**2), verts

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True), static_argnums=3)
    x = (inputs["betas"], rotmat, inputs["transl"])
    (_, one_pass), grads_one = value_and_grad(*x, 6890)
    (_, blocked), grads_blocked = value_and_grad(*x, vertex_block)
    np.testing.assert_allclose(blocked, one_pass, atol=1e-6)
    for g_one, g_blocked in zip(grads_one, grads_blocked, strict=True):
        np.testing.assert_allclose(g_blocked, g_one, rtol=1e-4, atol=1e-4)
    assert lbs.vertex_block_size(512, 6890) < 6890 <= lbs.vertex_block_size(1, 6890)
