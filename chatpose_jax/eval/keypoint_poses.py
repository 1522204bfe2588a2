"""Poses from keypoint answers: the ChatPose supplement's LLaVA* protocol (Sec. 3, "Representations of
Human Pose"), keypoints written as text, parsed, then lifted to SMPL by SMPLify.

An image benchmark's question becomes the supplement's keypoint question (`data_pipelines.keypoint_text`;
RPE's description goes before it, our choice: the supplement gives no RPE keypoint prompt), the
greedy answer is parsed into OpenPose BODY_25 keypoints in the crop's pixels, and SMPLify
(`chatpose_jax.fitting.smplify`) fits SMPL to them under the crop's camera. The fitted pose, its
root in the OpenCV camera frame like the `<POSE>` head's, is then scored with the same protocol.
An answer with no usable keypoint gets the mean pose and counts in `no_pose_rate`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from chatpose_jax import paths
from chatpose_jax.body import load_body_model
from chatpose_jax.body.model import BodyModel
from chatpose_jax.eval import benchmarks
from chatpose_jax.fitting import prior as prior_lib
from chatpose_jax.fitting import smplify

POSE_SOURCES = ("pose_token", "keypoints")  # where an answer's pose comes from: the <POSE> head, or keypoints
# SPIN's crop camera: 5000 px focal length for a 224 px crop, scaled with the crop's side.
SPIN_FOCAL_LENGTH, SPIN_CROP_SIZE = 5000.0, 224
# From the prior's mean pose, a larger step than SPIN's 0.01 (which starts from a network's guess);
# BENCHMARKS.md, "SMPLify": 30 + 100 iterations at 0.05 fit as well as 50 + 300.
EVAL_SMPLIFY = smplify.SmplifyConfig(learning_rate=0.05, camera_iterations=30, body_iterations=100)


def keypoints_question(name: str, text: str) -> str:
    """The keypoint question of image benchmark `name` for a sample's description `text` (RPE's, else empty)."""
    from data_pipelines import keypoint_text  # lazy: data_pipelines loads TensorFlow

    if benchmarks.BENCHMARKS[name][2] != "image":
        raise ValueError(f"benchmark {name}: keypoint answers are scored on image benchmarks only")
    return f"{text.rstrip(' .')}. {keypoint_text.KEYPOINTS_QUESTION}" if text else keypoint_text.KEYPOINTS_QUESTION


def crop_camera(crop_size: int) -> tuple[float, tuple[float, float]]:
    """(focal length, principal point) in pixels of the person crop the model sees (pixel centres at
    integers, as `keypoint_text.to_crop_pixels` writes keypoints): SPIN's camera scaled to the crop."""
    centre = (crop_size - 1) / 2.0
    return SPIN_FOCAL_LENGTH * crop_size / SPIN_CROP_SIZE, (centre, centre)


@dataclasses.dataclass(frozen=True)
class KeypointLifter:
    """SMPLify on parsed answers: an SMPL body, the GMM pose prior and the fit's settings."""

    body: BodyModel
    pose_prior: prior_lib.MaxMixturePrior
    config: smplify.SmplifyConfig = EVAL_SMPLIFY

    @classmethod
    def load(cls, body_model_dir: str, gmm_prior: str) -> KeypointLifter:
        """The neutral SMPL of an smplx-style folder and SMPLify's `gmm_08.pkl` (ValueError naming a missing one)."""
        if not gmm_prior:
            raise ValueError("--pose_from=keypoints needs --smplify_prior (SMPLify's gmm_08.pkl)")
        if not paths.path(gmm_prior).exists():
            raise ValueError(f"--smplify_prior {gmm_prior} does not exist")
        local = paths.local_copy(body_model_dir)
        prior = prior_lib.load_max_mixture_prior(str(paths.local_copy(gmm_prior)))
        return cls(load_body_model(local, model_type="smpl", gender="neutral"), prior)

    def lift(self, answers: list[str], crop_size: int, mean: tuple[np.ndarray, np.ndarray]):
        """Answers -> (global_orient float32[N, 3], body_pose float32[N, 69], has_pose bool[N]).

        Each answer is parsed into BODY_25 keypoints (crop pixels at `crop_size`); those with at least one
        keypoint are fitted together (one batch of N, so a step's shape never changes), the rest get `mean`.
        """
        from data_pipelines.keypoint_text import parse_keypoints_answer  # lazy: data_pipelines loads TensorFlow

        n = len(answers)
        keypoints = np.stack([parse_keypoints_answer(a) for a in answers]) if n else np.zeros((0, 25, 3))
        usable = keypoints[..., 2].sum(-1) > 0
        global_orient = np.tile(np.asarray(mean[0], np.float32)[None], (n, 1))
        body_pose = np.tile(np.asarray(mean[1], np.float32)[None], (n, 1))
        if usable.any():
            filled = keypoints.copy()
            filled[~usable] = keypoints[np.flatnonzero(usable)[0]]  # fitted and dropped: one shape per step
            focal, centre = crop_camera(crop_size)
            fit = smplify.fit_smplify(
                self.body, self.pose_prior, filled, "body25", focal_length=focal, principal_point=centre,
                config=self.config,
            )  # fmt: skip
            global_orient[usable] = np.asarray(fit.global_orient)[usable]
            body_pose[usable] = np.asarray(fit.body_pose)[usable]
        return global_orient, body_pose, usable
