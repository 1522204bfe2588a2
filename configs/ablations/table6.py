"""Table 6 of the paper: which training data ChatPose needs (LLaVA-1.5-13B, PA-MPJPE in mm).

Each row is a set of config overrides. `full` rows start from `FULL_CONFIG` (the paper's 13B);
`tiny` rows from configs/tiny.py on the synthetic data. Run with

    python launch/ablate.py --table 6 --scale tiny --workdir /tmp/ablate
    python launch/ablate.py --table 6 --scale full --workdir gs://BUCKET/ablate --target tpu-vm --dry_run
"""

TITLE = "Table 6: training data (PA-MPJPE mm, lower is better; PoseScript mRecall %, higher is better)"
FULL_CONFIG = "configs/backbones/llava15_13b_hf.py:chatpose"  # the paper's data ablation is on 13B
TINY_CONFIG = "configs/tiny.py"
FULL_CHECKPOINT = "llava-1.5-13b-hf"  # under --init_root
# (benchmark, metric in metrics.json, column title); the paper reports the image benchmarks only.
COLUMNS = (
    ("3dpw", "pa_mpjpe_mm", "3DPW PA-MPJPE"),
    ("h36m", "pa_mpjpe_mm", "H36M PA-MPJPE"),
    ("rpe", "pa_mpjpe_mm", "RPE PA-MPJPE"),
    ("posescript", "mrecall", "PoseScript mRecall"),
)
VQA, TEXT2POSE, IMAGE2POSE = "llava_instruct", "posescript", "hmr_images"

ROWS = (
    dict(
        name="vqa_only",
        label="VQA only",
        overrides={"data.datasets": (VQA,), "data.ratios": (1.0,)},
        paper={},  # not in the paper's table: no pose data, no <POSE>
    ),
    dict(
        name="vqa_text2pose",
        label="VQA + Text2Pose (w/o Image2Pose)",
        overrides={"data.datasets": (TEXT2POSE, VQA), "data.ratios": (1.0, 1.0)},
        paper={"3dpw": 115.1, "h36m": 121.6, "rpe": 123.7},
    ),
    dict(
        name="vqa_image2pose",
        label="VQA + Image2Pose (w/o Text2Pose)",
        overrides={"data.datasets": (VQA, IMAGE2POSE), "data.ratios": (1.0, 2.0)},
        paper={"3dpw": 87.8, "h36m": 89.2, "rpe": 109.8},
    ),
    dict(
        name="all",
        label="VQA + Text2Pose + Image2Pose",
        overrides={"data.datasets": (TEXT2POSE, VQA, IMAGE2POSE), "data.ratios": (1.0, 1.0, 2.0)},
        paper={"3dpw": 81.9, "h36m": 82.4, "rpe": 101.8},
    ),
)
