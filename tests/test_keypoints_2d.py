"""2D keypoints of the HMR data: the builder reads SPIN / 4D-Humans files into 4D-Humans' 44 rows, and the
synthetic writers' keypoints sit on the rendered bodies."""

import dataclasses
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from chatpose_jax.body import load_body_model, synthetic
from data_pipelines import keypoints_2d as k2d
from data_pipelines.prepare import prepare
from data_pipelines.synthetic import scenes as scenes_lib
from data_pipelines.synthetic.keypoints import scene_keypoints_2d
from data_pipelines.synthetic.writers.common import draw_scenes


def _keypoints(rng, n, rows):
    """float[n, rows, 3]: distinct pixel coordinates and confidences in (0, 1]."""
    out = rng.uniform(0, 100, (n, rows, 3))
    out[..., 2] = rng.uniform(0.1, 1.0, (n, rows))
    return out


def _jpeg(height=12, width=16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _write_images(manual, stem, names):
    for name in names:
        path = manual / "images" / stem / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg())


def _by_name(data_dir, name, split):
    examples = tfds.as_numpy(tfds.builder(name, data_dir=str(data_dir)).as_dataset(split=split, shuffle_files=False))
    return {(e["source"].decode(), e["image_name"].decode()): e for e in examples}


def test_layout_tables_match_spin_and_4d_humans():
    assert len(k2d.KEYPOINT_NAMES) == k2d.NUM_KEYPOINTS == 44
    assert k2d.KEYPOINT_NAMES[:3] == ("OP Nose", "OP Neck", "OP RShoulder") and k2d.KEYPOINT_NAMES[24] == "OP RHeel"
    assert k2d.KEYPOINT_NAMES[25:] == (
        "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle", "Right Wrist",
        "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow", "Left Wrist", "Neck (LSP)",
        "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)", "Head (H36M)",
    )  # fmt: skip
    # 4D-Humans' flip permutation (hmr2/datasets/image_dataset.py) maps each row to its mirror name.
    body_flip = [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21]
    extra_flip = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18]
    mirror = lambda n: n.replace("Left", "@").replace("Right", "Left").replace("@", "Right")  # noqa: E731
    op_mirror = lambda n: n[:3] + {"L": "R", "R": "L"}.get(n[3], n[3]) + n[4:] if n[4].isupper() else n  # noqa: E731
    names = k2d.KEYPOINT_NAMES
    assert [names[i] for i in body_flip] == [op_mirror(n) for n in names[:25]]
    assert [names[25 + i] for i in extra_flip] == [mirror(n) for n in names[25:]]


def test_builder_reads_each_source_into_the_44_rows(tmp_path):
    rng = np.random.default_rng(0)
    manual = tmp_path / "raw"
    (manual / "npz").mkdir(parents=True)
    n = 2
    common = dict(center=np.full((n, 2), 8.0), scale=np.full(n, 0.05), pose=np.zeros((n, 72)), shape=np.zeros((n, 10)))
    # SPIN training file with `openpose` + `part`; person 1's OpenPose misses the nose and the left ear.
    part, openpose = _keypoints(rng, n, 24), _keypoints(rng, n, 25)
    openpose[1, [0, 18], :] = 0.0
    names = [f"im{i}.jpg" for i in range(n)]
    np.savez(manual / "npz" / "coco_train.npz", imgname=np.array(names), part=part, openpose=openpose, **common)
    _write_images(manual, "coco_train", names)
    # SPIN file with `part` only (LSP style), and one with neither.
    lsp_part = _keypoints(rng, n, 24)
    np.savez(manual / "npz" / "lsp_train.npz", imgname=np.array(names), part=lsp_part, **common)
    _write_images(manual, "lsp_train", names)
    np.savez(manual / "npz" / "bare_test.npz", imgname=np.array(names), **common)
    _write_images(manual, "bare_test", names)
    # 4D-Humans webdataset shard: the person's keypoints_2d [44, 3] as stored.
    tar_kp = _keypoints(rng, 1, 44)[0].astype(np.float32)
    person = {"center": np.float32([8, 6]), "scale": np.float32(0.05), "body_pose": np.zeros(72, np.float32),
              "betas": np.zeros(10, np.float32), "has_body_pose": np.float32(1), "keypoints_2d": tar_kp}  # fmt: skip
    (manual / "tars").mkdir()
    with tarfile.open(manual / "tars" / "000000.tar", "w") as tar:
        for member, payload in (("a.jpg", _jpeg()), ("a.data.pyd", pickle.dumps([person]))):
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    # 4D-Humans evaluation file: body_keypoints_2d [N, 25, 3] then extra_keypoints_2d [N, 19, 3].
    body, extra = _keypoints(rng, n, 25), _keypoints(rng, n, 19)
    (manual / "hmr2_evaluation_data").mkdir()
    np.savez(manual / "hmr2_evaluation_data" / "x_test.npz", imgname=np.array(names), center=common["center"],
             scale=np.full(n, 10.0), body_pose=np.zeros((n, 72)), has_body_pose=np.ones(n), betas=np.zeros((n, 10)),
             body_keypoints_2d=body, extra_keypoints_2d=extra)  # fmt: skip
    _write_images(manual, "x_test", names)

    data_dir = tmp_path / "tfds"
    prepare("hmr_images", str(manual), str(data_dir))
    prepare("hmr_images", str(manual), str(data_dir), config="hmr2")
    train = _by_name(data_dir, "hmr_images", "train")
    for i, name in enumerate(names):
        got = train[("coco_train", name)]["keypoints_2d"]
        assert got.shape == (44, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got[25:], part[i, :19], rtol=1e-6, err_msg="J24 rows 0-18 -> rows 25-43")
        want_body = openpose[i].copy()
        if i == 1:  # OpenPose has no nose / left ear: J24's Nose (19) and Left Ear (22) fill them
            want_body[0], want_body[18] = part[i, 19], part[i, 22]
        np.testing.assert_allclose(got[:25], want_body, rtol=1e-6)
        lsp = train[("lsp_train", name)]["keypoints_2d"]
        np.testing.assert_allclose(lsp[25:], lsp_part[i, :19], rtol=1e-6)
        face = {0: 19, 16: 20, 15: 21, 18: 22, 17: 23}  # BODY_25 nose, LEye, REye, LEar, REar <- J24
        np.testing.assert_allclose(lsp[list(face)], lsp_part[i, list(face.values())], rtol=1e-6)
        others = [r for r in range(25) if r not in face]
        assert not lsp[others].any(), "rows the file does not annotate stay zero"
    np.testing.assert_allclose(train[("000000.tar", "a.jpg")]["keypoints_2d"], tar_kp)
    bare = _by_name(data_dir, "hmr_images", "bare_test")
    assert not any(e["keypoints_2d"].any() for e in bare.values())
    evaluation = _by_name(data_dir, "hmr_images/hmr2", "x_test")
    for i, name in enumerate(names):
        got = evaluation[("x_test", name)]["keypoints_2d"]
        np.testing.assert_allclose(got, np.concatenate([body[i], extra[i]]), rtol=1e-6)


def test_builder_names_the_file_and_key_of_a_malformed_keypoint_array(tmp_path):
    manual = tmp_path / "raw"
    (manual / "npz").mkdir(parents=True)
    np.savez(manual / "npz" / "bad_train.npz", imgname=np.array(["a.jpg"]), center=np.zeros((1, 2)),
             scale=np.ones(1), part=np.zeros((1, 14, 3)))  # fmt: skip
    _write_images(manual, "bad_train", ["a.jpg"])
    from data_pipelines.builders.common import BadRecordError

    with pytest.raises(BadRecordError, match=r"bad_train\.npz.*part: expected shape \(1, 24, 3\), got \(1, 14, 3\)"):
        prepare("hmr_images", str(manual), str(tmp_path / "tfds"), strict=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("body")
    model = load_body_model(synthetic.write_smpl_pkl(str(root / "SMPL_NEUTRAL.pkl"), seed=0))
    j19 = synthetic.joint_regressor(synthetic.build_mesh("smpl").verts, synthetic.j19_targets("smpl"))
    return model, j19, draw_scenes(model, 12, seed=3, yaw_range=np.pi / 3)


def _background(scene: scenes_lib.Scene) -> np.ndarray:
    """uint8[H, W, 3]: the picture `render.render_body` draws where no body is."""
    height, width = scene.image.shape[:2]
    rows = np.linspace(0.85, 1.1, height)[:, None, None]
    back = np.clip(np.asarray(scenes_lib.BACKGROUNDS[scene.background])[None, None] * rows, 0.0, 1.0)
    return (back * np.ones((height, width, 3)) * 255.0 + 0.5).astype(np.uint8)


def test_synthetic_keypoints_fall_on_the_rendered_body(rendered):
    model, j19, shown = rendered
    keypoints = scene_keypoints_2d(model, j19, shown)
    assert keypoints.shape == (len(shown), 44, 3) and keypoints.dtype == np.float32
    # BODY_25 shoulders, hips, knees, mid-hip and neck; J19 hips, knees, shoulders, pelvis, thorax, spine.
    rows = [1, 2, 5, 8, 9, 10, 12, 13] + [25 + j for j in (1, 2, 3, 4, 8, 9, 14, 15, 16)]
    checked = 0
    for s, kp in zip(shown, keypoints, strict=True):
        height, width = s.image.shape[:2]
        inside = (kp[:, 0] >= 0) & (kp[:, 0] < width) & (kp[:, 1] >= 0) & (kp[:, 1] < height)
        np.testing.assert_array_equal(kp[:, 2], inside.astype(np.float32))  # many pictures cut the feet
        back = _background(s)
        for r in rows:
            if not inside[r]:
                continue
            col, row = int(kp[r, 0]), int(kp[r, 1])
            diff = np.abs(s.image[row, col].astype(int) - back[row, col]).max()
            assert diff > 3, f"{k2d.KEYPOINT_NAMES[r]} at ({col}, {row}) shows background"
            checked += 1
        # The box written for the person holds its keypoints (center, scale: the projected mesh's box).
        half = s.scale * 200.0 / 2.0
        assert (np.abs(kp[:, :2] - s.center) <= half).all()
    assert checked >= 0.9 * len(shown) * len(rows), checked


def test_keypoints_outside_the_picture_have_confidence_zero(rendered):
    model, j19, shown = rendered
    s = shown[0]
    moved = dataclasses.replace(s, transl=s.transl + np.array([0.9, 0.0, 0.0]))  # the body half out on the right
    kp = scene_keypoints_2d(model, j19, [moved])[0]
    height, width = s.image.shape[:2]
    inside = (kp[:, 0] >= 0) & (kp[:, 0] < width) & (kp[:, 1] >= 0) & (kp[:, 1] < height)
    assert inside.any() and not inside.all()
    np.testing.assert_array_equal(kp[:, 2], inside.astype(np.float32))
    no_j19 = scene_keypoints_2d(model, None, shown[:2])
    assert not no_j19[:, 25:].any(), "without the J19 regressor the extra rows are not annotated"
    np.testing.assert_allclose(no_j19[:, :25], scene_keypoints_2d(model, j19, shown[:2])[:, :25])


def test_writer_files_carry_the_pictures_keypoints(rendered, tmp_path):
    from data_pipelines.synthetic.writers import write_hmr_images

    model, j19, _ = rendered
    out = write_hmr_images(str(tmp_path), model, 9, seed=4, num_tar_shards=1, j19_regressor=j19)
    shown = out["scenes"]
    want = scene_keypoints_2d(model, j19, shown)
    thirds = np.array_split(np.arange(9), 3)
    spin = np.load(tmp_path / "npz" / "synth_train.npz")
    np.testing.assert_allclose(spin["part"], k2d.to_spin_part(want[thirds[0]]))
    np.testing.assert_allclose(spin["openpose"], want[thirds[0], :25])
    np.testing.assert_allclose(k2d.from_spin(spin["part"], spin["openpose"], 3), want[thirds[0]])
    four_d = np.load(tmp_path / "hmr2_evaluation_data" / "3dpw_test.npz")
    np.testing.assert_allclose(four_d["body_keypoints_2d"], want[thirds[1], :25])
    np.testing.assert_allclose(four_d["extra_keypoints_2d"], want[thirds[1], 25:])
    with tarfile.open(tmp_path / "tars" / "000000.tar") as tar:
        for i in thirds[2]:
            person = pickle.loads(tar.extractfile(f"synth_{i:06d}.data.pyd").read())[0]
            np.testing.assert_allclose(person["keypoints_2d"], want[i])


def test_demo_data_stage_makes_data_prepared_before_keypoints_again(tmp_path, monkeypatch, capsys):
    import json

    import data_pipelines.prepare
    import data_pipelines.synthetic.writers
    from chatpose_jax.demo import run

    data = tmp_path / "data"
    tfds_dir = data / "tfds"
    (tfds_dir / "hmr_images" / "default" / "2.0.0").mkdir(parents=True)  # what the 2.0.0 builder left
    (data / "ready.json").write_text(json.dumps({"tfds": str(tfds_dir), "sizes": [5, 6]}))
    calls = []

    def fake_synthesize(out, **sizes):
        os.makedirs(out)
        calls.append(("synthesize", sizes))
        return {name: out for name in run.DATASETS}

    monkeypatch.setattr(data_pipelines.synthetic.writers, "synthesize", fake_synthesize)
    monkeypatch.setattr(data_pipelines.prepare, "prepare", lambda name, raw, out: calls.append(("prepare", name)))
    run.stage_data(tmp_path, 5, 6)
    printed = capsys.readouterr().out
    assert "again" in printed and "2.0.0" in printed and "keypoints_2d" in printed, printed
    assert [c[0] for c in calls] == ["synthesize"] + ["prepare"] * len(run.DATASETS)
    assert not (tfds_dir / "hmr_images").exists(), "the stale copy is removed, not read"
    calls.clear()
    run.stage_data(tmp_path, 5, 6)  # now nothing is stale: reused as before
    assert calls == [] and "reusing the data" in capsys.readouterr().out


def test_synthetic_smpl_has_its_named_surface_points_on_its_head_and_feet():
    """The SMPL vertex ids keypoint layouts read as nose, eyes, ears, toes and heels are those parts on the
    synthetic body: in front of / beside its head, in front of / behind its ankles, each on its own side."""
    import tempfile

    import jax
    import jax.numpy as jnp

    from chatpose_jax.body import load_body_model, skeletons, synthetic

    body = load_body_model(synthetic.write_smpl_pkl(tempfile.mkdtemp() + "/SMPL_NEUTRAL.pkl"))
    rest = jax.jit(lambda b: b(betas=jnp.zeros((1, 10))))(body)  # T-pose: y up, facing +z, the body's left at +x
    v, j = np.asarray(rest.vertices[0]), np.asarray(rest.joints[0])
    at = {name: v[i] for name, i in skeletons.SMPL_VERTEX_IDS.items()}
    head, neck = j[skeletons.JOINT_NAMES["smpl"].index("head")], j[skeletons.JOINT_NAMES["smpl"].index("neck")]
    assert at["nose"][2] > head[2] + 0.05 and abs(at["nose"][0]) < 0.01 and at["nose"][1] > neck[1]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        ankle = j[skeletons.JOINT_NAMES["smpl"].index(f"{side}_ankle")]
        assert sign * at[f"{side}_eye"][0] > 0.02 and at[f"{side}_eye"][1] > at["nose"][1]
        assert at[f"{side}_eye"][2] > head[2] + 0.05
        assert sign * at[f"{side}_ear"][0] > 0.07 and abs(at[f"{side}_ear"][2] - head[2]) < 0.03
        for toe in ("big_toe", "small_toe"):
            assert at[f"{side}_{toe}"][2] > ankle[2] + 0.15 and at[f"{side}_{toe}"][1] < ankle[1], (side, toe)
        assert sign * (at[f"{side}_small_toe"][0] - at[f"{side}_big_toe"][0]) > 0.02  # the small toe is outside
        assert at[f"{side}_heel"][2] < ankle[2] - 0.05 and at[f"{side}_heel"][1] < ankle[1]
