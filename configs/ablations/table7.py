"""Table 7 of the paper: the multimodal backbone (PA-MPJPE in mm), plus our rows on newer backbones.

`full` rows start from their `configs/backbones/` config (initialised from the public checkpoint
at `--init_root/<checkpoint>`); `tiny` rows are configs/tiny.py with the same family at tiny sizes.

    python launch/ablate.py --table 7 --scale tiny --workdir /tmp/ablate
"""

TITLE = "Table 7: multimodal backbone (PA-MPJPE mm, lower is better; PoseScript mRecall %, higher is better)"
TINY_CONFIG = "configs/tiny.py"
COLUMNS = (
    ("3dpw", "pa_mpjpe_mm", "3DPW PA-MPJPE"),
    ("h36m", "pa_mpjpe_mm", "H36M PA-MPJPE"),
    ("rpe", "pa_mpjpe_mm", "RPE PA-MPJPE"),
    ("posescript", "mrecall", "PoseScript mRecall"),
)
_SIGLIP_TINY = {  # SigLIP at tiny width: no CLS, no pre-norm, patch bias, tanh GELU, last layer, 120 px (8 x 8)
    "model.vision.class_token": False,
    "model.vision.pre_layernorm": False,
    "model.vision.patch_bias": True,
    "model.vision.hidden_act": "gelu_tanh",
    "model.vision.layer_norm_eps": 1e-6,
    "model.vision.feature_layer": -1,
    "model.vision.feature_select": "full",
    "model.vision.image_size": 120,
}
_QWEN2_TINY = {
    "model.text.qkv_bias": True,
    "model.text.rope_theta": 1e6,
    "model.text.rms_norm_eps": 1e-6,
}

ROWS = (
    dict(
        name="llava15_7b",
        label="LLaVA-1.5-7B",
        full_config="configs/backbones/llava15_7b_hf.py:chatpose",
        checkpoint="llava-1.5-7b-hf",
        overrides={},
        paper={"3dpw": 84.5, "h36m": 82.9, "rpe": 102.5},
    ),
    dict(
        name="llava15_13b",
        label="LLaVA-1.5-13B",
        full_config="configs/backbones/llava15_13b_hf.py:chatpose",
        checkpoint="llava-1.5-13b-hf",
        overrides={"model.text.hidden_size": 192, "model.text.num_layers": 6, "model.text.intermediate_size": 512},
        paper={"3dpw": 81.9, "h36m": 82.4, "rpe": 101.8},
    ),
    dict(
        name="bakllava",
        label="bakLlava (Mistral-7B, ours)",
        full_config="configs/backbones/bakllava_v1_hf.py:chatpose",
        checkpoint="bakLlava-v1-hf",
        overrides={"model.text.sliding_window": 48, "model.text.intermediate_size": 448},  # window < sequence
        paper={},
    ),
    dict(
        name="interleave_qwen_7b",
        label="llava-interleave-qwen-7b (Qwen2 + SigLIP, ours)",
        full_config="configs/backbones/llava_interleave_qwen_7b_hf.py:chatpose",
        checkpoint="llava-interleave-qwen-7b-hf",
        overrides={**_QWEN2_TINY, **_SIGLIP_TINY},
        paper={},
    ),
)
