"""Each TFDS builder prepares the synthetic raw data: counts, fields, orientation, bad records."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from data_synth_cache import SIZES, synthetic_data
from scipy.spatial.transform import Rotation

from data_pipelines import prepared
from data_pipelines.builders.common import BadRecordError
from data_pipelines.builders.posescript import smplh_to_smpl_body_pose
from data_pipelines.prepare import prepare

RX_PLUS_90 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def released_posescript_root(amass_root_axis_angle):
    """ChatPose's PoseScript root, as its release computes it: decompose the AMASS (z-up) root as
    R = Rz Ry Rx, set the z angle (yaw) to 0, then left-multiply by Rx(+90 deg) into the OpenCV
    camera frame. Written with scipy, independently of data_pipelines.orientation."""
    x, y, _ = Rotation.from_rotvec(amass_root_axis_angle).as_euler("xyz")  # extrinsic xyz: R = Rz Ry Rx
    yaw_free = Rotation.from_euler("xyz", [x, y, 0.0]).as_matrix()
    return Rotation.from_matrix(RX_PLUS_90 @ yaw_free).as_rotvec()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_data(tmp_path_factory)


def _read(name, data_dir, split, config=None):
    builder = tfds.builder(name if config is None else f"{name}/{config}", data_dir=data_dir)
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


def test_posescript_counts_texts_and_poses(data):
    release = os.path.join(data["raw"]["posescript"], "posescript_release")
    index = json.load(open(os.path.join(release, "ids_2_dataset_sequence_and_frame_index_100k.json")))
    auto = json.load(open(os.path.join(release, "posescript_auto_100k.json")))
    human = json.load(open(os.path.join(release, "posescript_human_6293.json")))
    total = 0
    for split in ("train", "val", "test"):
        ids = json.load(open(os.path.join(release, f"{split}_ids_100k.json")))
        examples = _read("posescript", data["data_dir"], split)
        assert sorted(int(e["id"]) for e in examples) == sorted(ids), f"{split}: ids differ from {split}_ids_100k.json"
        total += len(examples)
        for e in examples[:10]:
            pid = str(e["id"])
            assert [t.decode() for t in e["texts_automatic"]] == auto[pid]
            assert [t.decode() for t in e["texts_human"]] == ([human[pid]] if pid in human else [])
            _, rel, frame = index[pid]
            poses = np.load(os.path.join(data["raw"]["posescript"], "AMASS", rel))["poses"]
            np.testing.assert_allclose(e["body_pose"], smplh_to_smpl_body_pose(poses[frame]), atol=1e-6)
            np.testing.assert_allclose(
                Rotation.from_rotvec(e["global_orient"]).as_matrix(),
                Rotation.from_rotvec(released_posescript_root(poses[frame, :3])).as_matrix(),
                atol=1e-5,
                err_msg=f"id {pid}: root is not yaw removal then Rx(+90 deg) of the AMASS root",
            )
            assert e["split"].decode() == split
    assert total == SIZES["num_poses"]


def test_posescript_orientation_is_yaw_free_and_in_the_camera_frame(data):
    """The writer hid a random yaw in each AMASS (z-up) root; the builder must give back the yaw-free
    root in the OpenCV camera frame, where the body's up (+y) points along -y (the camera's up)."""
    from data_pipelines.synthetic.poses import sample_poses

    canonical_y_up, _ = sample_poses(SIZES["num_poses"], 0, yaw_range=0.0)
    examples = {int(e["id"]): e for e in _read("posescript", data["data_dir"], "train")}
    for pid, e in list(examples.items())[:20]:
        root = Rotation.from_rotvec(e["global_orient"]).as_matrix()
        body_up = root @ np.array([0.0, 1.0, 0.0])
        assert body_up[1] < -0.75, f"id {pid}: the body's up is {body_up} in the camera frame (expected about -y)"
        expected = np.diag([1.0, -1.0, -1.0]) @ Rotation.from_rotvec(canonical_y_up[pid]).as_matrix()
        np.testing.assert_allclose(root, expected, atol=1e-4, err_msg=f"id {pid}")


def test_upright_person_facing_the_camera_has_the_same_root_in_posescript_and_hmr_data():
    """REFERENCE: standing upright facing the camera is diag(1, -1, -1) in both data types."""
    # AMASS is z-up: the yaw-free root Rx(+90 deg) stands the body up (its +y onto the world's +z).
    amass_upright = Rotation.from_matrix(np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])).as_rotvec()
    root = Rotation.from_rotvec(released_posescript_root(amass_upright)).as_matrix()
    from data_pipelines.orientation import chatpose_orientation

    ours = Rotation.from_rotvec(chatpose_orientation(amass_upright)).as_matrix()
    np.testing.assert_allclose(ours, root, atol=1e-9)
    np.testing.assert_allclose(ours, np.diag([1.0, -1.0, -1.0]), atol=1e-9)


def test_posescript_v1_release_and_raw_config(data, tmp_path):
    manual = tmp_path / "ps"
    shutil.copytree(data["raw"]["posescript"], manual)
    for name in os.listdir(manual / "posescript_release"):
        if "100k" in name or "6293" in name:
            os.remove(manual / "posescript_release" / name)
    prepare("posescript", str(manual), str(tmp_path / "tfds"))
    v1 = _read("posescript", str(tmp_path / "tfds"), "train")
    assert len(v1) == len(_read("posescript", data["data_dir"], "train"))
    assert all(len(e["texts_automatic"]) == 6 for e in v1), "V1 has automatic_A..F"
    prepare("posescript", str(manual), str(tmp_path / "tfds"), config="raw")
    raw = {int(e["id"]): e for e in _read("posescript", str(tmp_path / "tfds"), "train", config="raw")}
    index = json.load(open(manual / "posescript_release" / "ids_2_dataset_sequence_and_frame_index.json"))
    pid = next(iter(raw))
    _, rel, frame = index[str(pid)]
    np.testing.assert_allclose(
        raw[pid]["global_orient"], np.load(manual / "AMASS" / rel)["poses"][frame, :3], atol=1e-6
    )


def test_hmr_images_npz_and_tars(data):
    raw = data["raw"]["hmr_images"]
    train = _read("hmr_images", data["data_dir"], "train")
    test = _read("hmr_images", data["data_dir"], "3dpw_test")
    spin_train = np.load(os.path.join(raw, "npz", "synth_train.npz"))
    spin_test = np.load(os.path.join(raw, "npz", "3dpw_test.npz"))
    n_tar = SIZES["num_hmr_images"] - len(spin_train["imgname"]) - len(spin_test["imgname"])
    assert len(train) == len(spin_train["imgname"]) + n_tar, "train = SPIN training npz + tar persons"
    assert len(test) == len(spin_test["imgname"])
    by_name = {e["image_name"].decode(): e for e in test}
    for i, name in enumerate(spin_test["imgname"][:5]):
        e = by_name[str(name)]
        np.testing.assert_allclose(e["center"], spin_test["center"][i], atol=1e-4)
        np.testing.assert_allclose(e["body_pose"], spin_test["pose"][i, 3:], atol=1e-6)
        np.testing.assert_allclose(e["betas"], spin_test["shape"][i], atol=1e-6)
        np.testing.assert_allclose(e["global_orient"], spin_test["pose"][i, :3], atol=1e-6, err_msg="file root kept")
        assert e["gender"].decode() == spin_test["gender"][i] and e["has_smpl"]
        assert e["image"].ndim == 3 and e["image"].shape[2] == 3
    assert sum(e["source"].decode().endswith(".tar") for e in train) == n_tar
    # 2D keypoints (44 rows): SPIN's openpose + part, and the tars' keypoints_2d, as the files hold them.
    spin_rows = {str(name): i for i, name in enumerate(spin_train["imgname"])}
    for e in train:
        name, kp = e["image_name"].decode(), e["keypoints_2d"]
        assert kp.shape == (44, 3) and kp[:, 2].sum() > 20, name  # the writer annotates every visible joint
        if e["source"].decode() == "synth_train":
            i = spin_rows[name]
            np.testing.assert_allclose(kp[:25], spin_train["openpose"][i], atol=1e-4)
            np.testing.assert_allclose(kp[25:], spin_train["part"][i, :19], atol=1e-4)


def test_llava_spg_rpe(data):
    records = json.load(open(os.path.join(data["raw"]["llava_instruct"], "llava_instruct_150k.json")))
    llava = {e["id"].decode(): e for e in _read("llava_instruct", data["data_dir"], "train")}
    assert len(llava) == len(records)
    for r in records[:5]:
        e = llava[r["id"]]
        assert [t.decode() for t in e["turns"]] == [c["value"] for c in r["conversations"]]
        assert e["has_image"] and len(e["image"]) > 100
    spg = _read("spg", data["data_dir"], "test")
    assert len(spg) == SIZES["num_spg"] and all(e["description"] for e in spg)
    rpe = _read("rpe", data["data_dir"], "test")
    assert len(rpe) == SIZES["num_rpe"] and rpe[0]["image"].shape[2] == 3
    # Both keep their files' roots: the OpenCV camera frame.
    rpe_file = {r["id"]: r for r in json.load(open(os.path.join(data["raw"]["rpe"], "rpe.json")))}
    spg_file = {r["id"]: r for r in json.load(open(os.path.join(data["raw"]["spg"], "spg.json")))}
    for examples, records in ((rpe, rpe_file), (spg, spg_file)):
        for e in examples[:5]:
            np.testing.assert_allclose(e["global_orient"], records[int(e["id"])]["global_orient"], atol=1e-6)


def test_prepared_pose_datasets_name_their_frame_and_older_versions_are_refused(data, tmp_path):
    for name in ("posescript", "hmr_images", "rpe", "spg"):
        builder = prepared.open_builder(name, data["data_dir"])
        assert builder.info.metadata["pose_frame"] == "opencv_camera", name
    # A data_dir prepared before the camera frame: version 1.0.0 only, y-up roots.
    old = tmp_path / "old"
    shutil.copytree(os.path.join(data["data_dir"], "spg"), old / "spg")
    (old / "spg" / "2.0.0").rename(old / "spg" / "1.0.0")
    with pytest.raises(
        prepared.PoseFrameMismatchError, match=r"1\.0\.0.*y-up.*OpenCV camera frame.*chatpose-data prepare spg"
    ):
        prepared.open_builder("spg", str(old))
    # A current version whose metadata names no frame is refused too.
    (old / "spg" / "1.0.0").rename(old / "spg" / "2.0.0")
    os.remove(old / "spg" / "2.0.0" / "metadata.json")
    with pytest.raises(prepared.PoseFrameMismatchError, match="pose_frame=None"):
        prepared.open_builder("spg", str(old))


def test_hmr_images_prepared_before_keypoints_is_refused_naming_both_versions(data, tmp_path):
    """A data_dir holding hmr_images 2.0.0 (no keypoints_2d) only is never read as if it had them."""
    current = str(prepared.open_builder("hmr_images", data["data_dir"]).version)
    assert current == "2.1.0"
    old = tmp_path / "old"
    shutil.copytree(os.path.join(data["data_dir"], "hmr_images", "default"), old / "hmr_images" / "default")
    (old / "hmr_images" / "default" / current).rename(old / "hmr_images" / "default" / "2.0.0")
    with pytest.raises(
        prepared.OutdatedDatasetError,
        match=r"version 2\.0\.0 only, which has no 2D keypoints \(feature keypoints_2d.*reads version 2\.1\.0: "
        r"prepare it again \(chatpose-data prepare hmr_images --manual_dir RAW",
    ):
        prepared.open_builder("hmr_images", str(old))
    assert issubclass(prepared.OutdatedDatasetError, prepared.PreparedDataError)
    # What the demo / ablation data stages ask before reusing a data_dir: one reason, naming the version.
    (reason,) = prepared.outdated(["posescript", "hmr_images"], str(old))
    assert "2.0.0" in reason and "keypoints_2d" in reason
    assert prepared.outdated(["posescript", "hmr_images"], data["data_dir"]) == []


def test_bad_records_are_skipped_counted_and_named(data, tmp_path, caplog):
    manual = tmp_path / "ps"
    shutil.copytree(data["raw"]["posescript"], manual)
    index = json.load(open(manual / "posescript_release" / "ids_2_dataset_sequence_and_frame_index_100k.json"))
    train_ids = json.load(open(manual / "posescript_release" / "train_ids_100k.json"))
    rels = sorted({index[str(i)][1] for i in train_ids})
    missing = manual / "AMASS" / rels[0]
    lost = sum(index[str(i)][1] == rels[0] for i in train_ids)
    os.remove(missing)
    nan_file = manual / "AMASS" / rels[1]
    arrays = dict(np.load(nan_file))
    nan_frames = {index[str(i)][2] for i in train_ids if index[str(i)][1] == rels[1]}
    arrays["poses"][min(nan_frames), 5] = np.nan
    np.savez(nan_file, **arrays)
    with pytest.raises(BadRecordError, match=rels[0].split("/")[-1]):
        prepare("posescript", str(manual), str(tmp_path / "strict"), strict=True)
    prepare("posescript", str(manual), str(tmp_path / "tfds"))
    got = len(_read("posescript", str(tmp_path / "tfds"), "train"))
    assert got == len(train_ids) - lost - 1, f"{got} examples; expected {len(train_ids)} - {lost} missing - 1 NaN"
    assert str(missing) in caplog.text and "non-finite" in caplog.text

    hmr = tmp_path / "hmr"
    shutil.copytree(data["raw"]["hmr_images"], hmr)
    name = str(np.load(hmr / "npz" / "3dpw_test.npz")["imgname"][0])
    (hmr / "images" / "3dpw_test" / name).write_bytes(b"not an image")
    prepare("hmr_images", str(hmr), str(tmp_path / "tfds"))
    assert (
        len(_read("hmr_images", str(tmp_path / "tfds"), "3dpw_test"))
        == len(_read("hmr_images", data["data_dir"], "3dpw_test")) - 1
    )
    assert name in caplog.text


def test_empty_or_missing_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is empty"):
        prepare("hmr_images", str(tmp_path / "empty"), str(tmp_path / "tfds"))
    (tmp_path / "empty" / "notes.txt").write_text("no data here")
    with pytest.raises(FileNotFoundError, match="no npz"):
        prepare("hmr_images", str(tmp_path / "empty"), str(tmp_path / "tfds"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare("spg", str(tmp_path / "nowhere"), str(tmp_path / "tfds"))
    (tmp_path / "llava").mkdir()
    (tmp_path / "llava" / "llava_instruct_150k.json").write_text(json.dumps([{"id": 1, "conversations": "bad"}]))
    with pytest.raises(FileNotFoundError, match="no readable record"):
        prepare("llava_instruct", str(tmp_path / "llava"), str(tmp_path / "tfds"))
