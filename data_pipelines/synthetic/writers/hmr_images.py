"""HMR data: SPIN-style npz files with images, 4D-Humans tars, and the 3DPW / H36M evaluation files."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
from PIL import Image

from data_pipelines.keypoints_2d import NUM_BODY, to_spin_part
from data_pipelines.synthetic import scenes
from data_pipelines.synthetic.keypoints import scene_keypoints_2d
from data_pipelines.synthetic.writers.common import draw_scenes, save_jpeg

HMR2_EVAL_FOLDER = "hmr2_evaluation_data"  # 4D-Humans' evaluation files (hmr_images config 'hmr2')
# People in the pose datasets' crops turn at most this far from the camera (radians of yaw), as
# in most HMR crops; the VQA and RPE scenes face every way.
HMR_YAW_RANGE = np.pi / 3


def h36m_s_array(body_model, h36m_regressor: np.ndarray, global_orient, body_pose, betas) -> np.ndarray:
    """SPIN's `S` float[N, 24, 4] of posed bodies: LSP joints 0..12 and the H36M head (index 18),
    centred on the regressed pelvis (index 14, at 0), in the frame of `global_orient`; column 3 = 1."""
    from chatpose_jax.eval.metrics import lsp14_joints

    verts, _ = scenes.pose_bodies(
        body_model,
        np.asarray(global_orient, np.float32),
        np.asarray(body_pose, np.float32),
        np.asarray(betas, np.float32),
    )
    lsp = np.asarray(lsp14_joints(verts, h36m_regressor))  # [N, 14, 3] pelvis-centred
    s = np.zeros((len(lsp), 24, 4))
    s[:, :13, :3] = lsp[:, :13]
    s[:, 18, :3] = lsp[:, 13]
    s[:, list(range(13)) + [14, 18], 3] = 1.0
    return s


def j19_keypoints(body_model, j19_regressor: np.ndarray, global_orient, body_pose, betas) -> np.ndarray:
    """4D-Humans' `extra_keypoints_3d` float[N, 19, 4] of posed bodies: `SMPL_to_J19` joints in the
    frame of `global_orient` (metres, not centred), column 3 = 1 (confidence)."""
    verts, _ = scenes.pose_bodies(
        body_model,
        np.asarray(global_orient, np.float32),
        np.asarray(body_pose, np.float32),
        np.asarray(betas, np.float32),
    )
    out = np.ones((len(verts), 19, 4))
    out[..., :3] = np.einsum("jv,nvc->njc", np.asarray(j19_regressor, np.float64), verts)
    return out


def write_hmr2_npz(
    path: str, imgname, center, scale, pose, betas, keypoints_3d, gender=None, keypoints_2d=None
) -> None:
    """One 4D-Humans evaluation file: imgname, center, scale (pixels), body_pose (N, 72) + has_body_pose,
    betas (N, 10) + has_betas, body/extra_keypoints_2d (N, 25|19, 3), body/extra_keypoints_3d
    (N, 25|19, 4), optional gender. `pose` / `betas` None: zeros with has_* = 0 (H36M ships no SMPL).
    keypoints_2d: float[N, 44, 3] (4D-Humans' layout, pixels + confidence) split into body/extra; None: zeros."""
    n = len(imgname)
    kp2d = np.zeros((n, 44, 3)) if keypoints_2d is None else np.asarray(keypoints_2d, np.float64)
    arrays = dict(
        imgname=np.asarray(imgname),
        center=np.asarray(center, np.float64),
        scale=np.asarray(scale) * 200.0,
        body_pose=np.zeros((n, 72)) if pose is None else np.asarray(pose, np.float64),
        has_body_pose=np.zeros(n) if pose is None else np.ones(n),
        betas=np.zeros((n, 10)) if betas is None else np.asarray(betas, np.float64),
        has_betas=np.zeros(n) if betas is None else np.ones(n),
        body_keypoints_2d=kp2d[:, :NUM_BODY],
        extra_keypoints_2d=kp2d[:, NUM_BODY:],
        body_keypoints_3d=np.zeros((n, 25, 4)),
        extra_keypoints_3d=np.asarray(keypoints_3d, np.float64),
    )
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
    no SMPL, extra_keypoints_3d from the J19 regressor, body/extra_keypoints_2d of the pictures
    (`scene_keypoints_2d`). Both share the images.
    """
    shown = draw_scenes(body_model, num_images, seed, HMR_YAW_RANGE)
    go = np.stack([s.global_orient for s in shown])
    bp = np.stack([s.body_pose for s in shown])
    betas = np.stack([s.betas for s in shown])
    s_array = h36m_s_array(body_model, h36m_regressor, go, bp, betas)
    imgnames = []
    for i, s in enumerate(shown):
        imgname = f"images/S9_Posing.60457274_{i:06d}.jpg"
        for stem in ("h36m_valid_protocol2", "h36m_val_p2"):
            save_jpeg(os.path.join(root, "images", stem, imgname), s.image)
        imgnames.append(imgname)
    center = np.stack([s.center for s in shown]).astype(np.float64)
    scale = np.array([s.scale for s in shown])
    os.makedirs(os.path.join(root, "npz"), exist_ok=True)
    np.savez(
        os.path.join(root, "npz", "h36m_valid_protocol2.npz"),
        imgname=np.asarray(imgnames),
        center=center,
        scale=scale,
        S=s_array,
    )
    if j19_regressor is not None:
        keypoints = j19_keypoints(body_model, j19_regressor, go, bp, betas)
        write_hmr2_npz(
            os.path.join(root, HMR2_EVAL_FOLDER, "h36m_val_p2.npz"), imgnames, center, scale, None, None, keypoints,
            keypoints_2d=scene_keypoints_2d(body_model, j19_regressor, shown),
        )  # fmt: skip
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
    has_smpl, part (24, 3), openpose (25, 3), as SPIN's COCO file holds them), npz/3dpw_test.npz (SPIN's
    eval keys with gender), and tars/*.tar whose samples are `KEY.jpg` + `KEY.data.pyd` (a pickled list
    of one dict per person: center, scale, body_pose (72), betas, has_body_pose, has_betas,
    keypoints_2d (44, 3), keypoints_3d (44, 4) zeros). The 2D keypoints are each picture's own
    (`data_pipelines.synthetic.keypoints.scene_keypoints_2d`: pixels of the full image, confidence 1
    inside it); without `j19_regressor` the 19 extra joints (and SPIN's part rows 0-18) are zeros.
    Images go to images/<npz stem>/; a third of the scenes each. With `h36m_regressor` (float[17, V])
    the H36M evaluation files of `write_h36m_eval` are written too, from max(2, num_images // 6) more people.
    With `j19_regressor` (float[19, V]) 4D-Humans' evaluation files go to hmr2_evaluation_data/:
    3dpw_test.npz (the same people and images as SPIN's, 3D keypoints through the gendered models of
    `gendered_models` {'m', 'f'}, else the neutral one; 2D keypoints of the body the picture shows) and
    h36m_val_p2.npz.
    """
    all_scenes = draw_scenes(body_model, num_images, seed, HMR_YAW_RANGE)
    keypoints_2d = scene_keypoints_2d(body_model, j19_regressor, all_scenes)  # [N, 44, 3], the rendered body
    thirds = np.array_split(np.arange(num_images), 3)
    counts = {}
    for name, idx in (("synth_train", thirds[0]), ("3dpw_test", thirds[1])):
        imgnames, arrays = [], {k: [] for k in ("center", "scale", "pose", "shape", "gender")}
        for i in idx:
            s = all_scenes[i]
            imgname = f"imageFiles/seq{i // 20:03d}/image_{i:05d}.jpg"
            save_jpeg(os.path.join(root, "images", name, imgname), s.image)
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
            out["part"] = to_spin_part(keypoints_2d[idx])
            out["openpose"] = keypoints_2d[idx, :NUM_BODY].astype(np.float64)
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
                keypoints[rows] = j19_keypoints(
                    model, j19_regressor, out["pose"][rows, :3], out["pose"][rows, 3:], out["shape"][rows]
                )
            write_hmr2_npz(
                os.path.join(root, HMR2_EVAL_FOLDER, "3dpw_test.npz"),
                out["imgname"],
                out["center"],
                out["scale"],
                out["pose"],
                out["shape"],
                keypoints,
                out["gender"],
                keypoints_2d[idx],
            )
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
                    "keypoints_2d": keypoints_2d[i],
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
