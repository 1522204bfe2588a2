"""The ChatPose supplement's pose representations (Sec. 3): the `<POSE>` token against keypoints as text.

The keypoint row is LLaVA*: the same backbone trained with the `keypoints` recipe (VQA and the HMR people
asked for their visible OpenPose keypoints as text), evaluated with `chatpose-eval --pose_from=keypoints`:
the answer's keypoints are parsed and lifted to SMPL by SMPLify (its GMM prior: `--smplify_prior`, or at
tiny scale one the runner fits to the synthetic poses). The `<POSE>` row trains the same data sources'
image part as pose answers (VQA + Image2Pose), so the rows differ in the representation only. The paper's
figures are not in this project's references, so the table shows ours alone.

    python launch/ablate.py --table representation --scale tiny --workdir /tmp/ablate
    python launch/ablate.py --table representation --scale full --workdir gs://BUCKET/ablate --target tpu-vm \
        --smplify_prior gs://BUCKET/smplify/gmm_08.pkl --dry_run
"""

TITLE = "Pose representation: the <POSE> token against keypoints as text + SMPLify (PA-MPJPE mm, lower is better)"
FULL_CONFIG = "configs/backbones/llava15_13b_hf.py:chatpose"
TINY_CONFIG = "configs/tiny.py"
FULL_CHECKPOINT = "llava-1.5-13b-hf"  # under --init_root
COLUMNS = (
    ("3dpw", "pa_mpjpe_mm", "3DPW PA-MPJPE"),
    ("h36m", "pa_mpjpe_mm", "H36M PA-MPJPE"),
    ("rpe", "pa_mpjpe_mm", "RPE PA-MPJPE"),
    ("3dpw", "no_pose_rate", "3DPW no pose"),
)
VQA, IMAGE2POSE = "llava_instruct", "hmr_images"

ROWS = (
    dict(
        name="pose_token",
        label="<POSE> token (VQA + Image2Pose)",
        overrides={"data.datasets": (VQA, IMAGE2POSE), "data.ratios": (1.0, 2.0)},
        paper={},
    ),
    dict(
        name="keypoints",
        label="keypoints as text + SMPLify (LLaVA*)",
        tiny_config="configs/tiny.py:keypoints",
        full_config="configs/backbones/llava15_13b_hf.py:keypoints",
        full_overrides={},
        overrides={},
        eval_flags={"pose_from": "keypoints", "smplify_prior": "", "max_new_tokens": 320},
        paper={},
    ),
)
