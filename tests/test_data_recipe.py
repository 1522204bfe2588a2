"""ChatPose's data recipe: PoseScript caption odds, VQA sources, length with the image, HMR augmentation."""

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from _body_files import model_file

from chatpose_jax.body import load_body_model, skeletons
from chatpose_jax.experiment import HmrAugmentConfig
from data_pipelines import augment, conversation
from data_pipelines.pipeline import image_fn, vqa_source_filter


def test_posescript_caption_is_an_automatic_one_then_the_human_one_with_equal_odds():
    human, automatic = ["written by a person"], [f"automatic {v}" for v in "ABCDEF"]
    draws = [conversation.pick_caption(human + automatic, 1, np.random.default_rng(i)) for i in range(6000)]
    share = {t: draws.count(t) / len(draws) for t in human + automatic}
    assert abs(share[human[0]] - 0.5) < 0.03, share  # was 1 in 7 when all captions were drawn alike
    for t in automatic:
        assert abs(share[t] - 0.5 / 6) < 0.02, share
    only_auto = {conversation.pick_caption(automatic, 0, np.random.default_rng(i)) for i in range(200)}
    assert only_auto == set(automatic)
    assert conversation.pick_caption(human, 1, np.random.default_rng(0)) == human[0]


def test_vqa_keeps_coco_gqa_and_vg_images_only():
    names = [
        "coco/train2017/000000033471.jpg", "gqa/images/2354786.jpg", "vg/VG_100K_2/1.jpg", "000000100000.jpg",
        "ocr_vqa/images/1.jpg", "textvqa/train_images/1.jpg", "",
    ]  # fmt: skip
    ds = tf.data.Dataset.from_tensor_slices({"image_name": names, "has_image": [n != "" for n in names]})
    kept = [x["image_name"].decode() for x in ds.filter(vqa_source_filter(("coco", "gqa", "vg"))).as_numpy_iterator()]
    assert kept == names[:4], "COCO (a bare name is LLaVA-Instruct's COCO), GQA, VG; not OCR-VQA, TextVQA or text-only"
    only_gqa = [x["image_name"].decode() for x in ds.filter(vqa_source_filter(("gqa",))).as_numpy_iterator()]
    assert only_gqa == ["gqa/images/2354786.jpg"]


def test_text_budget_counts_the_image_positions_as_lisas_model_max_length(tmp_path):
    from data_pipelines.tokenizer import load_tokenizer, make_synthetic_tokenizer

    long = "The left arm is raised and the right knee is bent. " * 8
    corpus = [conversation.SYSTEM_PROMPT, "USER: ASSISTANT:", long, "The background is blue."] * 20
    make_synthetic_tokenizer(tmp_path, corpus)
    tokenizer = load_tokenizer(tmp_path)
    turns = [[("<image>\n" + long, "The background is blue.")], [(long, "The background is blue.")]]
    image_tokens, max_length = 16, 60
    enc = conversation.encode(tokenizer, turns, image_tokens, max_length, length_counts_image=True)
    assert enc.input_ids.shape[1] == max_length
    lengths = enc.attention_mask.sum(1)
    assert lengths.tolist() == [max_length, max_length], "both fill the budget, the image's positions included"
    assert (enc.input_ids[0] == 1000).sum() == image_tokens
    assert (enc.input_ids[0] != 1000).sum() == max_length - image_tokens and (enc.input_ids[1] != 1000).sum() == 60
    on_top = conversation.encode(tokenizer, turns, image_tokens, max_length)
    assert on_top.attention_mask.sum(1).tolist() == [max_length + image_tokens, max_length]


def _joints(body, global_orient, body_pose):
    from chatpose_jax.body.rotations import axis_angle_to_rotmat

    aa = np.concatenate([global_orient, body_pose]).reshape(1, 24, 3).astype(np.float32)
    rotmat = axis_angle_to_rotmat(jnp.asarray(aa))
    out = body(global_orient=rotmat[:, :1], body_pose=rotmat[:, 1:])
    return np.asarray(out.joints[0, :24], np.float64)


def _mirror_permutation():
    """Left <-> right by SMPL joint name, written independently of SMPL_FLIP_PERMUTATION."""
    names = list(skeletons.JOINT_NAMES["smpl"][:24])
    swap = {"left": "right", "right": "left"}
    return [names.index("_".join(swap.get(w, w) for w in n.split("_"))) for n in names]


def test_flipped_pose_posed_through_the_body_model_is_the_mirror_of_the_original():
    body = load_body_model(model_file("smpl"))
    rng = np.random.default_rng(0)
    global_orient = np.array([np.pi, 0.0, 0.0]) + 0.3 * rng.normal(size=3)  # about upright, camera frame
    body_pose = 0.4 * rng.normal(size=69)
    joints = _joints(body, global_orient, body_pose)
    flipped = augment.flip_pose(tf.constant(global_orient, tf.float32), tf.constant(body_pose, tf.float32))
    flipped_joints = _joints(body, flipped[0].numpy(), flipped[1].numpy())
    perm = _mirror_permutation()
    assert perm == list(augment.SMPL_FLIP_PERMUTATION)
    rel = joints - joints[0]  # pelvis-relative: the rest pelvis sits off the mirror plane by a hair
    mirrored = rel[perm] * np.array([-1.0, 1.0, 1.0])
    err = np.abs((flipped_joints - flipped_joints[0]) - mirrored).max()
    assert err < 2e-3, f"flipped pose's joints differ from the mirrored joints by {err * 1000:.2f} mm"
    assert np.abs(rel - mirrored).max() > 0.05, "the pose is not its own mirror"


def test_root_round_trips_through_matrices_at_every_angle():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(1)
    axes = rng.normal(size=(40, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    for axis, angle in zip(axes, np.linspace(0.0, np.pi, 40), strict=True):
        matrix = Rotation.from_rotvec(axis * angle).as_matrix().astype(np.float32)
        back = augment.rotmat_to_axis_angle(tf.constant(matrix)).numpy()
        np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), matrix, atol=2e-5, err_msg=f"{angle}")


def test_rotated_picture_and_rotated_root_turn_alike():
    size, angle = 65, 0.4
    picture = np.zeros((size, size, 3), np.float32)
    centre = (size - 1) / 2
    dot = np.array([centre + 20.0, centre + 5.0])  # (x right, y down)
    picture[int(dot[1]), int(dot[0])] = 255.0
    turned = augment.rotate_image(tf.constant(picture), tf.constant(angle)).numpy()
    y, x = np.unravel_index(np.argmax(turned[..., 0]), turned.shape[:2])
    c, s = np.cos(angle), np.sin(angle)
    want = np.array([[c, -s], [s, c]]) @ (dot - centre) + centre
    assert np.abs(np.array([x, y]) - want).max() <= 1.0, (x, y, want)
    # The body seen in that picture: camera-frame joints turned by Rz(angle) project to the turned pixels.
    body = load_body_model(model_file("smpl"))
    root, pose = np.array([np.pi, 0.0, 0.0]), np.zeros(69)
    joints = _joints(body, root, pose)
    turned_root = augment.rotate_root(tf.constant(root, tf.float32), tf.constant(angle)).numpy()
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    got = _joints(body, turned_root, pose)
    np.testing.assert_allclose(got - got[0], (joints - joints[0]) @ rz.T, atol=1e-4)


def test_augmentation_is_off_by_default_and_flips_the_pose_with_the_picture(tmp_path):
    from PIL import Image

    image = np.zeros((120, 160, 3), np.uint8)
    image[30:90, 50:70] = (250, 40, 40)  # a red bar left of the centre
    Image.fromarray(image).save(tmp_path / "p.png")
    global_orient, body_pose = np.array([np.pi, 0.1, 0.0], np.float32), (0.1 * np.arange(69) % 0.7).astype(np.float32)
    el = {
        "image": tf.constant((tmp_path / "p.png").read_bytes()), "has_image": tf.constant(True),
        "crop": tf.constant([80.0, 60.0, 0.5]), "has_crop": tf.constant(True),
        "global_orient": tf.constant(global_orient), "body_pose": tf.constant(body_pose),
    }  # fmt: skip
    _, plain = image_fn(32, False)(tf.constant(0, tf.int64), el)
    np.testing.assert_array_equal(plain["global_orient"].numpy(), global_orient)
    flip_only = HmrAugmentConfig(enabled=True, scale_factor=0.0, rotation_rate=0.0, flip_rate=1.0, colour_scale=0.0)
    _, out = image_fn(32, False, flip_only)(tf.constant(0, tf.int64), el)
    np.testing.assert_allclose(out["pixel_values"].numpy(), plain["pixel_values"].numpy()[:, :, ::-1], atol=1e-4)
    want = augment.flip_pose(tf.constant(global_orient), tf.constant(body_pose))
    np.testing.assert_allclose(
        augment.axis_angle_to_rotmat(out["global_orient"]).numpy(),
        augment.axis_angle_to_rotmat(want[0]).numpy(),
        atol=1e-5,
    )
    np.testing.assert_allclose(out["body_pose"].numpy(), want[1].numpy(), atol=1e-6)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(out["body_pose"].numpy(), body_pose)
