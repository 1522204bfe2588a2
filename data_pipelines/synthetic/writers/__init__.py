"""Writers of the raw dataset formats, filled from the synthetic body model: one module per dataset.

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

import os
import pickle

import numpy as np

from data_pipelines.synthetic.writers.hmr_images import write_hmr_images
from data_pipelines.synthetic.writers.llava_instruct import write_llava_instruct
from data_pipelines.synthetic.writers.posescript import write_posescript
from data_pipelines.synthetic.writers.rpe import write_rpe
from data_pipelines.synthetic.writers.spg import write_spg


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
            write_smpl_pkl(
                os.path.join(out, "body_models", "smpl", f"SMPL_{gender.upper()}.pkl"), seed=seed, gender=gender
            )
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
    write_hmr_images(
        paths["hmr_images"],
        body_model,
        num_hmr_images,
        seed + 1,
        h36m_regressor=np.load(regressor_path),
        j19_regressor=j19_regressor,
        gendered_models=gendered,
    )
    llava = write_llava_instruct(paths["llava_instruct"], body_model, num_vqa_images, seed + 2)
    spg = write_spg(paths["spg"], body_model, num_spg, seed + 3)
    rpe = write_rpe(paths["rpe"], body_model, num_rpe, seed + 4)
    # The fixed texts occur in every sample: weight them so BPE gives their words whole pieces.
    corpus = [SYSTEM_PROMPT, "USER: ASSISTANT:", *all_template_texts()] * 50
    corpus += [t for texts in ps["texts"].values() for t in texts]
    corpus += [turn["value"].replace("<image>", "") for r in llava["records"] for turn in r["conversations"]]
    corpus += [r["description"] for r in spg["records"] + rpe["records"]]
    corpus += keypoint_text_corpus(np.random.default_rng(seed + 5))
    paths["tokenizer"] = os.path.join(out, "tokenizer")
    make_synthetic_tokenizer(paths["tokenizer"], corpus)
    return paths


__all__ = ["synthesize", "write_hmr_images", "write_llava_instruct", "write_posescript", "write_rpe", "write_spg"]


def keypoint_text_corpus(rng: np.random.Generator, answers: int = 100) -> list[str]:
    """The keypoint-text conversation's words (the supplement's question, keypoint names, integer pixel
    coordinates) for the tokenizer, so that an answer takes a few pieces per keypoint, not one per byte."""
    from data_pipelines import keypoint_text

    texts = [keypoint_text.KEYPOINTS_QUESTION] * 50
    for _ in range(answers):
        keypoints = np.concatenate([rng.integers(0, 336, (keypoint_text.NUM_KEYPOINTS, 2)), np.ones((25, 1))], 1)
        texts.append(keypoint_text.keypoints_answer(keypoints, 336))
    return texts
