"""Writers of the raw dataset formats, filled from the synthetic body model.

Each writer takes a folder (the dataset's manual folder) and writes exactly what the real
release holds there; `synthesize` writes all of them plus the body model and a tokenizer.

    OUT/body_models/smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl  the synthetic SMPL (three differing genders)
    OUT/body_models/J_regressor_h36m.npy     the 17 H36M joints of the synthetic mesh
    OUT/body_models/SMPL_to_J19.pkl          4D-Humans' 19 extra joints of the synthetic mesh
    OUT/tokenizer/                           1000 pieces + <image>, <pad>, <POSE>
    OUT/posescript/posescript_release/*.json PoseScript V2 (and V1) release files
    OUT/posescript/AMASS/<set>/<subj>/*.npz  AMASS SMPL-H sequences (`poses` (frames, 156), z-up)
    OUT/hmr_images/npz/*.npz + images/<set>/ SPIN-style annotation files and their images, with the
                                             evaluation files 3dpw_test.npz, h36m_valid_protocol2.npz
    OUT/hmr_images/hmr2_evaluation_data/     4D-Humans' evaluation files 3dpw_test.npz, h36m_val_p2.npz
                                             (same people and images as SPIN's)
    OUT/hmr_images/tars/*.tar                4D-Humans webdataset shards (jpg + data.pyd)
    OUT/llava_instruct/llava_instruct_150k.json + coco/train2017/*.jpg
    OUT/spg/spg.json                         text + pose pairs
    OUT/rpe/rpe.json + rpe/images/*.jpg      image + description + pose
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile

import numpy as np
from PIL import Image

from data_pipelines.orientation import (
    CAMERA_TO_Y_UP,
    Z_UP_TO_Y_UP,
    change_frame,
    chatpose_orientation,
    euler_xyz_to_rotmat,
    rotmat_to_axis_angle,
)
from data_pipelines.synthetic import posecodes, poses, scenes

AUTO_VERSIONS = "ABCDEF"  # PoseScript V1's automatic caption files
HMR2_EVAL_FOLDER = "hmr2_evaluation_data"  # 4D-Humans' evaluation files (hmr_images config 'hmr2')


def _dump_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def _save_jpeg(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path, quality=92)


def _y_up_to_amass_root(global_orient_y_up: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An AMASS (z-up) root whose ChatPose handling gives back a y-up root with some yaw.

    The y-up root R maps to the z-up root Rz(yaw) (Z_UP_TO_Y_UP^T R): a random heading, which
    PoseScript's yaw removal takes off again.
    """
    yaw = rng.uniform(-np.pi, np.pi)
    z_up = change_frame(global_orient_y_up, Z_UP_TO_Y_UP.T)
    heading = euler_xyz_to_rotmat(np.zeros(()), np.zeros(()), np.asarray(yaw))
    return change_frame(z_up, heading)


def write_posescript(root: str, body_model, num_poses: int = 300, seed: int = 0, versions=("v2", "v1")) -> dict:
    """PoseScript release files and AMASS sequences for `num_poses` poses.

    Poses are sampled facing +z (the yaw is put into the AMASS root, as in real captures), so
    the descriptions, made from the yaw-free y-up joints, match what the builder returns.
    Returns {'ids': [...], 'texts': {id: [human + automatic texts]}, 'global_orient': the roots the
    builder gives back (OpenCV camera frame), ...} for tests and the tokenizer.
    """
    rng = np.random.default_rng(seed)
    go, bp = poses.sample_poses(num_poses, seed, yaw_range=0.0)
    # The canonical (yaw-free) root that the builder reconstructs (camera frame), and the same
    # body standing in the y-up world the descriptions are made in.
    amass_roots = np.stack([_y_up_to_amass_root(g, rng) for g in go])
    canonical = np.stack([chatpose_orientation(r) for r in amass_roots]).astype(np.float32)
    canonical_y_up = change_frame(canonical, CAMERA_TO_Y_UP).astype(np.float32)
    _, joints = scenes.pose_bodies(body_model, canonical_y_up, bp, np.zeros((num_poses, 10), np.float32))
    frames_per_seq = 10
    index, human, auto = {}, {}, {}
    v1_auto = {v: {} for v in AUTO_VERSIONS}
    all_texts = {}
    for start in range(0, num_poses, frames_per_seq):
        seq = start // frames_per_seq
        rel = f"SynthMocap/subject{seq % 7:02d}/seq{seq:04d}_poses.npz"
        count = min(frames_per_seq, num_poses - start)
        smplh = np.zeros((count, 156), np.float32)
        smplh[:, :3] = amass_roots[start : start + count]
        smplh[:, 3:66] = bp[start : start + count, :63]
        smplh[:, 66:69] = bp[start : start + count, 63:66]  # left hand root (first left finger joint)
        smplh[:, 111:114] = bp[start : start + count, 66:69]  # right hand root (first right finger joint)
        path = os.path.join(root, "AMASS", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.savez(path, poses=smplh, trans=np.zeros((count, 3), np.float32), betas=np.zeros(16, np.float32),
                 gender=np.array("neutral"), mocap_framerate=np.array(120.0))  # fmt: skip
        for k in range(count):
            pid = start + k
            index[str(pid)] = ["AMASS", rel, k]
            autos = [posecodes.describe(joints[pid], rng) for _ in AUTO_VERSIONS]
            auto[str(pid)] = autos
            for v, text in zip(AUTO_VERSIONS, autos, strict=True):
                v1_auto[v][str(pid)] = text
            texts = list(autos)
            if rng.random() < 0.4:  # human captions cover a subset, as in the release
                human[str(pid)] = posecodes.describe(joints[pid], rng, human=True)
                texts.insert(0, human[str(pid)])
            all_texts[pid] = texts
    ids = rng.permutation(num_poses).tolist()
    n_val, n_test = max(1, num_poses // 10), max(1, num_poses // 10)
    splits = {"val": ids[:n_val], "test": ids[n_val : n_val + n_test], "train": ids[n_val + n_test :]}
    release = os.path.join(root, "posescript_release")
    if "v2" in versions:
        _dump_json(os.path.join(release, "ids_2_dataset_sequence_and_frame_index_100k.json"), index)
        for split, split_ids in splits.items():
            _dump_json(os.path.join(release, f"{split}_ids_100k.json"), sorted(split_ids))
        _dump_json(os.path.join(release, "posescript_human_6293.json"), human)
        _dump_json(os.path.join(release, "posescript_auto_100k.json"), auto)
    if "v1" in versions:
        _dump_json(os.path.join(release, "ids_2_dataset_sequence_and_frame_index.json"), index)
        for split, split_ids in splits.items():
            _dump_json(os.path.join(release, f"{split}_ids.json"), sorted(split_ids))
        _dump_json(os.path.join(release, "human3893.json"), human)
        for v in AUTO_VERSIONS:
            _dump_json(os.path.join(release, f"automatic_{v}.json"), v1_auto[v])
    return {
        "ids": list(range(num_poses)),
        "texts": all_texts,
        "splits": splits,
        "body_pose": bp,
        "global_orient": canonical,
    }


# People in the pose datasets' crops turn at most this far from the camera (radians of yaw), as
# in most HMR crops; the VQA and RPE scenes face every way.
HMR_YAW_RANGE = np.pi / 3


def _scenes(body_model, num: int, seed: int, yaw_range: float = np.pi) -> list[scenes.Scene]:
    go, bp = poses.sample_poses(num, seed, yaw_range=yaw_range)
    betas = poses.sample_betas(num, seed + 1)
    return scenes.render_scenes(body_model, go, bp, betas, seed + 2)


def h36m_s_array(body_model, h36m_regressor: np.ndarray, global_orient, body_pose, betas) -> np.ndarray:
    """SPIN's `S` float[N, 24, 4] of posed bodies: LSP joints 0..12 and the H36M head (index 18),
    centred on the regressed pelvis (index 14, at 0), in the frame of `global_orient`; column 3 = 1."""
    from chatpose_jax.eval.metrics import lsp14_joints

    verts, _ = scenes.pose_bodies(body_model, np.asarray(global_orient, np.float32),
                                  np.asarray(body_pose, np.float32), np.asarray(betas, np.float32))  # fmt: skip
    lsp = np.asarray(lsp14_joints(verts, h36m_regressor))  # [N, 14, 3] pelvis-centred
    s = np.zeros((len(lsp), 24, 4))
    s[:, :13, :3] = lsp[:, :13]
    s[:, 18, :3] = lsp[:, 13]
    s[:, list(range(13)) + [14, 18], 3] = 1.0
    return s


def j19_keypoints(body_model, j19_regressor: np.ndarray, global_orient, body_pose, betas) -> np.ndarray:
    """4D-Humans' `extra_keypoints_3d` float[N, 19, 4] of posed bodies: `SMPL_to_J19` joints in the
    frame of `global_orient` (metres, not centred), column 3 = 1 (confidence)."""
    verts, _ = scenes.pose_bodies(body_model, np.asarray(global_orient, np.float32),
                                  np.asarray(body_pose, np.float32), np.asarray(betas, np.float32))  # fmt: skip
    out = np.ones((len(verts), 19, 4))
    out[..., :3] = np.einsum("jv,nvc->njc", np.asarray(j19_regressor, np.float64), verts)
    return out


def write_hmr2_npz(path: str, imgname, center, scale, pose, betas, keypoints_3d, gender=None) -> None:
    """One 4D-Humans evaluation file: imgname, center, scale (pixels), body_pose (N, 72) + has_body_pose,
    betas (N, 10) + has_betas, body/extra_keypoints_2d (N, 25|19, 3), body/extra_keypoints_3d
    (N, 25|19, 4), optional gender. `pose` / `betas` None: zeros with has_* = 0 (H36M ships no SMPL)."""
    n = len(imgname)
    arrays = dict(
        imgname=np.asarray(imgname), center=np.asarray(center, np.float64), scale=np.asarray(scale) * 200.0,
        body_pose=np.zeros((n, 72)) if pose is None else np.asarray(pose, np.float64),
        has_body_pose=np.zeros(n) if pose is None else np.ones(n),
        betas=np.zeros((n, 10)) if betas is None else np.asarray(betas, np.float64),
        has_betas=np.zeros(n) if betas is None else np.ones(n),
        body_keypoints_2d=np.zeros((n, 25, 3)), extra_keypoints_2d=np.zeros((n, 19, 3)),
        body_keypoints_3d=np.zeros((n, 25, 4)), extra_keypoints_3d=np.asarray(keypoints_3d, np.float64),
    )  # fmt: skip
    if gender is not None:
        arrays["gender"] = np.asarray(gender)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, **arrays)


def write_h36m_eval(
    root: str, body_model, h36m_regressor: np.ndarray, num_images: int, seed: int, j19_regressor=None
) -> dict:
    """H36M protocol-2 style evaluation files from `num_images` rendered people (camera frame).

    npz/h36m_valid_protocol2.npz: SPIN's keys imgname, center, scale (box / 200), S (N, 24, 4).
    hmr2_evaluation_data/h36m_val_p2.npz (with `j19_regressor`): 4D-Humans' layout (`write_hmr2_npz`),
    no SMPL, extra_keypoints_3d from the J19 regressor. Both share the images.
    """
    shown = _scenes(body_model, num_images, seed, HMR_YAW_RANGE)
    go = np.stack([s.global_orient for s in shown])
    bp = np.stack([s.body_pose for s in shown])
    betas = np.stack([s.betas for s in shown])
    s_array = h36m_s_array(body_model, h36m_regressor, go, bp, betas)
    imgnames = []
    for i, s in enumerate(shown):
        imgname = f"images/S9_Posing.60457274_{i:06d}.jpg"
        for stem in ("h36m_valid_protocol2", "h36m_val_p2"):
            _save_jpeg(os.path.join(root, "images", stem, imgname), s.image)
        imgnames.append(imgname)
    center = np.stack([s.center for s in shown]).astype(np.float64)
    scale = np.array([s.scale for s in shown])
    os.makedirs(os.path.join(root, "npz"), exist_ok=True)
    np.savez(os.path.join(root, "npz", "h36m_valid_protocol2.npz"), imgname=np.asarray(imgnames), center=center,
             scale=scale, S=s_array)  # fmt: skip
    if j19_regressor is not None:
        keypoints = j19_keypoints(body_model, j19_regressor, go, bp, betas)
        write_hmr2_npz(os.path.join(root, HMR2_EVAL_FOLDER, "h36m_val_p2.npz"), imgnames, center, scale, None, None,
                       keypoints)  # fmt: skip
    return {"S": s_array, "scenes": shown}


def write_hmr_images(
    root: str,
    body_model,
    num_images: int = 200,
    seed: int = 1,
    num_tar_shards: int = 2,
    h36m_regressor=None,
    j19_regressor=None,
    gendered_models: dict | None = None,
) -> dict:
    """SPIN-style npz files with images, and 4D-Humans webdataset tars.

    npz/synth_train.npz (SPIN training keys: imgname, center, scale, pose (72), shape (10),
    has_smpl, part (24, 3)), npz/3dpw_test.npz (SPIN's eval keys with gender), and tars/*.tar
    whose samples are `KEY.jpg` + `KEY.data.pyd` (a pickled list of one dict per person:
    center, scale, body_pose (72), betas, has_body_pose, has_betas, keypoints_2d, keypoints_3d).
    Images go to images/<npz stem>/; a third of the scenes each. With `h36m_regressor` (float[17, V])
    the H36M evaluation files of `write_h36m_eval` are written too, from max(2, num_images // 6) more people.
    With `j19_regressor` (float[19, V]) 4D-Humans' evaluation files go to hmr2_evaluation_data/:
    3dpw_test.npz (the same people and images as SPIN's, keypoints through the gendered models of
    `gendered_models` {'m', 'f'}, else the neutral one) and h36m_val_p2.npz.
    """
    all_scenes = _scenes(body_model, num_images, seed, HMR_YAW_RANGE)
    thirds = np.array_split(np.arange(num_images), 3)
    counts = {}
    for name, idx in (("synth_train", thirds[0]), ("3dpw_test", thirds[1])):
        imgnames, arrays = [], {k: [] for k in ("center", "scale", "pose", "shape", "gender")}
        for i in idx:
            s = all_scenes[i]
            imgname = f"imageFiles/seq{i // 20:03d}/image_{i:05d}.jpg"
            _save_jpeg(os.path.join(root, "images", name, imgname), s.image)
            imgnames.append(imgname)
            arrays["center"].append(s.center)
            arrays["scale"].append(s.scale)
            arrays["pose"].append(np.concatenate([s.global_orient, s.body_pose]))
            arrays["shape"].append(s.betas)
            arrays["gender"].append("m" if i % 2 else "f")
        out = {k: np.asarray(v) for k, v in arrays.items()}
        out["imgname"] = np.asarray(imgnames)
        out["center"] = out["center"].astype(np.float64)
        if name == "synth_train":
            out["has_smpl"] = np.ones(len(idx))
            out["part"] = np.zeros((len(idx), 24, 3))
            del out["gender"]
        path = os.path.join(root, "npz", f"{name}.npz")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.savez(path, **out)
        counts[name] = len(idx)
        if name == "3dpw_test" and j19_regressor is not None:
            keypoints = np.zeros((len(idx), 19, 4))
            for g in np.unique(out["gender"]):
                rows = np.flatnonzero(out["gender"] == g)
                model = (gendered_models or {}).get(str(g), body_model)
                keypoints[rows] = j19_keypoints(model, j19_regressor, out["pose"][rows, :3], out["pose"][rows, 3:],
                                                out["shape"][rows])  # fmt: skip
            write_hmr2_npz(os.path.join(root, HMR2_EVAL_FOLDER, "3dpw_test.npz"), out["imgname"], out["center"],
                           out["scale"], out["pose"], out["shape"], keypoints, out["gender"])  # fmt: skip
    tar_idx = np.array_split(thirds[2], num_tar_shards)
    os.makedirs(os.path.join(root, "tars"), exist_ok=True)
    for shard, idx in enumerate(tar_idx):
        with tarfile.open(os.path.join(root, "tars", f"{shard:06d}.tar"), "w") as tar:
            for i in idx:
                s = all_scenes[i]
                key = f"synth_{i:06d}"
                buf = io.BytesIO()
                Image.fromarray(s.image).save(buf, format="JPEG", quality=92)
                person = {
                    "center": s.center.astype(np.float32),
                    "scale": np.float32(s.scale),
                    "body_pose": np.concatenate([s.global_orient, s.body_pose]).astype(np.float32),
                    "betas": s.betas,
                    "has_body_pose": np.float32(1.0),
                    "has_betas": np.float32(1.0),
                    "keypoints_2d": np.zeros((44, 3), np.float32),
                    "keypoints_3d": np.zeros((44, 4), np.float32),
                }
                for name, payload in ((f"{key}.jpg", buf.getvalue()), (f"{key}.data.pyd", pickle.dumps([person]))):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    counts["tars"] = len(thirds[2])
    if h36m_regressor is not None:
        counts["h36m"] = max(2, num_images // 6)
        write_h36m_eval(root, body_model, h36m_regressor, counts["h36m"], seed + 100, j19_regressor)
    return {"counts": counts, "scenes": all_scenes}


_YES_NO = ("Yes.", "No.")


def vqa_turns(scene: scenes.Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    """2-3 question / answer rounds about a scene, each answer true of its picture."""
    codes = posecodes.posecodes(scene.joints)
    facing = abs(scene.yaw) < np.radians(60)
    away = abs(scene.yaw) > np.radians(120)
    side = rng.choice(["left", "right"])
    hand_up = codes.get(f"{side}_hand") == "above the head"
    pool = [
        ("What colour is the background?", f"The background is {scene.background}."),
        ("What colour is the person?", f"The person is {scene.body_color}."),
        (
            "Is the person facing the camera?",
            "Yes, the person faces the camera."
            if facing
            else ("No, the person faces away from the camera." if away else "The person is turned to the side."),
        ),  # fmt: skip
        (f"Is the person's {side} hand above their head?", _YES_NO[0] if hand_up else _YES_NO[1]),
        ("Describe the person's pose.", posecodes.describe(scene.joints, rng, human=True)),
    ]
    order = rng.permutation(len(pool))[: rng.integers(2, 4)]
    return [pool[i] for i in order]


def write_llava_instruct(root: str, body_model, num_images: int = 120, seed: int = 2) -> dict:
    """LLaVA-Instruct JSON (id, image, conversations [{from, value}]) and COCO-named images."""
    rng = np.random.default_rng(seed)
    records = []
    for i, scene in enumerate(_scenes(body_model, num_images, seed)):
        image = f"{100000 + i:012d}.jpg"
        _save_jpeg(os.path.join(root, "coco", "train2017", image), scene.image)
        conversation = []
        for k, (q, a) in enumerate(vqa_turns(scene, rng)):
            value = (f"<image>\n{q}" if rng.random() < 0.5 else f"{q}\n<image>") if k == 0 else q
            conversation += [{"from": "human", "value": value}, {"from": "gpt", "value": a}]
        records.append({"id": f"{100000 + i:012d}", "image": image, "conversations": conversation})
    _dump_json(os.path.join(root, "llava_instruct_150k.json"), records)
    return {"records": records}


def write_spg(root: str, body_model, num_pairs: int = 60, seed: int = 3) -> dict:
    """SPG-style pairs: {id, description, global_orient (OpenCV camera frame), body_pose} in spg.json."""
    rng = np.random.default_rng(seed)
    go, bp = poses.sample_poses(num_pairs, seed, yaw_range=0.0)
    _, joints = scenes.pose_bodies(body_model, go, bp, np.zeros((num_pairs, 10), np.float32))
    go_camera = change_frame(go, CAMERA_TO_Y_UP.T).astype(np.float32)  # as ChatPose's PoseScript handling gives
    records = [
        {"id": i, "description": posecodes.describe(joints[i], rng, human=True),
         "global_orient": go_camera[i].tolist(), "body_pose": bp[i].tolist()}
        for i in range(num_pairs)
    ]  # fmt: skip
    _dump_json(os.path.join(root, "spg.json"), records)
    return {"records": records}


def write_rpe(root: str, body_model, num_pairs: int = 40, seed: int = 4) -> dict:
    """RPE-style samples: an image, a description of the person, the pose, in rpe.json + images/."""
    rng = np.random.default_rng(seed)
    records = []
    for i, s in enumerate(_scenes(body_model, num_pairs, seed)):
        image = f"images/rpe_{i:05d}.jpg"
        _save_jpeg(os.path.join(root, image), s.image)
        records.append(
            {
                "id": i,
                "image": image,
                "description": posecodes.describe(s.joints, rng, human=True),
                "center": s.center.tolist(),
                "scale": s.scale,
                "global_orient": s.global_orient.tolist(),  # OpenCV camera frame, as 3DPW
                "body_pose": s.body_pose.tolist(),
                "betas": s.betas.tolist(),
                "gender": "m" if i % 2 else "f",
            }
        )
    _dump_json(os.path.join(root, "rpe.json"), records)
    return {"records": records}


def synthesize(
    out: str,
    *,
    num_poses: int = 300,
    num_hmr_images: int = 150,
    num_vqa_images: int = 90,
    num_spg: int = 60,
    num_rpe: int = 30,
    seed: int = 0,
    body_model_path: str | None = None,
) -> dict[str, str]:
    """Writes every synthetic raw dataset, the body model and the tokenizer under `out`.

    Returns {name: folder}: 'body_model' (the neutral .pkl), 'body_model_dir' (smpl/ + the H36M
    and J19 regressors), 'tokenizer', and one manual folder per
    dataset ('posescript', 'hmr_images', 'llava_instruct', 'spg', 'rpe').
    """
    from chatpose_jax.body import load_body_model
    from chatpose_jax.body.synthetic import write_h36m_regressor, write_j19_regressor, write_smpl_pkl
    from data_pipelines.conversation import SYSTEM_PROMPT
    from data_pipelines.templates import all_template_texts
    from data_pipelines.tokenizer import make_synthetic_tokenizer

    if body_model_path is None:
        body_model_path = write_smpl_pkl(os.path.join(out, "body_models", "smpl", "SMPL_NEUTRAL.pkl"), seed=seed)
        for gender in ("male", "female"):
            write_smpl_pkl(os.path.join(out, "body_models", "smpl", f"SMPL_{gender.upper()}.pkl"), seed=seed,
                           gender=gender)  # fmt: skip
    regressor_path = os.path.join(os.path.dirname(os.path.dirname(body_model_path)), "J_regressor_h36m.npy")
    if not os.path.exists(regressor_path):
        write_h36m_regressor(regressor_path)
    j19_path = os.path.join(os.path.dirname(regressor_path), "SMPL_to_J19.pkl")
    if not os.path.exists(j19_path):
        write_j19_regressor(j19_path)
    with open(j19_path, "rb") as f:
        j19_regressor = np.asarray(pickle.load(f, encoding="latin1"))
    body_model = load_body_model(body_model_path)
    gendered = {}
    for letter, gender in (("m", "MALE"), ("f", "FEMALE")):
        path = os.path.join(os.path.dirname(body_model_path), f"SMPL_{gender}.pkl")
        if os.path.exists(path):
            gendered[letter] = load_body_model(path)
    paths = {"body_model": body_model_path, "body_model_dir": os.path.dirname(os.path.dirname(body_model_path))}
    for name in ("posescript", "hmr_images", "llava_instruct", "spg", "rpe"):
        paths[name] = os.path.join(out, name)
    ps = write_posescript(paths["posescript"], body_model, num_poses, seed)
    write_hmr_images(paths["hmr_images"], body_model, num_hmr_images, seed + 1, h36m_regressor=np.load(regressor_path),
                     j19_regressor=j19_regressor, gendered_models=gendered)  # fmt: skip
    llava = write_llava_instruct(paths["llava_instruct"], body_model, num_vqa_images, seed + 2)
    spg = write_spg(paths["spg"], body_model, num_spg, seed + 3)
    rpe = write_rpe(paths["rpe"], body_model, num_rpe, seed + 4)
    # The fixed texts occur in every sample: weight them so BPE gives their words whole pieces.
    corpus = [SYSTEM_PROMPT, "USER: ASSISTANT:", *all_template_texts()] * 50
    corpus += [t for texts in ps["texts"].values() for t in texts]
    corpus += [turn["value"].replace("<image>", "") for r in llava["records"] for turn in r["conversations"]]
    corpus += [r["description"] for r in spg["records"] + rpe["records"]]
    paths["tokenizer"] = os.path.join(out, "tokenizer")
    make_synthetic_tokenizer(paths["tokenizer"], corpus)
    return paths


__all__ = [
    "rotmat_to_axis_angle",
    "synthesize",
    "write_hmr_images",
    "write_llava_instruct",
    "write_posescript",
    "write_rpe",
    "write_spg",
]
