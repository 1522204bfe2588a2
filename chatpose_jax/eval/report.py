"""metrics.json and metrics.md: per benchmark our row, the mean-pose baseline and the paper's row.

Paper figures (ChatPose-13B; REFERENCE.md): 3DPW / H36M / RPE MPJPE and PA-MPJPE in mm; SPG
recalls at k = 5, 10, 20; PoseScript recalls at k = 5, 10 (with the journal-version retrieval
model, so they are not comparable with our retrieval model's).
"""

from __future__ import annotations

import json

from chatpose_jax import paths

PAPER = {
    "3dpw": {"mpjpe_mm": 163.6, "pa_mpjpe_mm": 81.9},
    "h36m": {"mpjpe_mm": 126.0, "pa_mpjpe_mm": 82.4},
    "rpe": {"mpjpe_mm": 275.0, "pa_mpjpe_mm": 101.8},
    "spg": {"r_p2t@5": 8.6, "r_p2t@10": 14.2, "r_p2t@20": 20.8, "r_t2p@5": 10.9, "r_t2p@10": 16.9, "r_t2p@20": 25.3},
    "posescript": {"r_p2t@5": 17.6, "r_p2t@10": 25.3, "r_t2p@5": 28.0, "r_t2p@10": 39.0},
}
RECALL_KS = {"posescript": (1, 5, 10), "spg": (5, 10, 20)}
RETRIEVAL_NOTE = (
    "Recalls and FID use our retrieval model (chatpose_jax/retrieval: PoseScript's recipe with a text encoder "
    "trained from scratch on the project's tokenizer, not DistilBERT), so they are not the paper's numbers; "
    "the paper's PoseScript row used the journal-version retrieval model."
)
SHAPE_NOTE = "ChatPose predicts no body shape: predictions use zero betas on the neutral model, which costs MPJPE."
PROTOCOL_NOTES = {
    "spin": "Image benchmarks: SPIN's protocol (14 joints from J_regressor_h36m, centred on the regressed pelvis).",
    "hmr2": "Image benchmarks: 4D-Humans' protocol (joints [25..37, 43] from SMPL_to_J19, centred on joint 39); "
    "3DPW and H36M read from 4D-Humans' evaluation files, scored against their 3D keypoints.",
}


def columns(name: str) -> list[str]:
    if name in RECALL_KS:
        ks = RECALL_KS[name]
        return [f"r_p2t@{k}" for k in ks] + [f"r_t2p@{k}" for k in ks] + ["mrecall", "fid", "no_pose_rate", "n"]
    return ["mpjpe_mm", "pa_mpjpe_mm", "no_pose_rate", "n"]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"


def markdown(metrics: dict, label: str = "ours") -> str:
    """The metrics.md text: one table per benchmark (rows: ours, mean pose, paper)."""
    lines = ["# Evaluation", ""]
    for name, entry in metrics["benchmarks"].items():
        cols = columns(name)
        lines += [f"## {name} (n = {entry['ours']['n']})", ""]
        lines.append("| method | " + " | ".join(cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        rows = [(label, entry["ours"]), ("mean pose", entry.get("mean_pose", {})), ("ChatPose-13B (paper)",
                                                                                   PAPER.get(name, {}))]  # fmt: skip
        for row_name, row in rows:
            lines.append(f"| {row_name} | " + " | ".join(_cell(row.get(c)) for c in cols) + " |")
        lines.append("")
    notes = metrics.get("notes", {})
    lines += [f"- {note}" for note in (notes.get("protocol"), SHAPE_NOTE, RETRIEVAL_NOTE) if note] + [""]
    return "\n".join(lines)


def write(out: str, metrics: dict, label: str = "ours") -> tuple[str, str]:
    """Writes OUT/metrics.json (the full dict) and OUT/metrics.md; returns their paths."""
    paths.path(out).mkdir(parents=True, exist_ok=True)  # local or gs://
    json_path, md_path = paths.join(out, "metrics.json"), paths.join(out, "metrics.md")
    paths.path(json_path).write_text(json.dumps(metrics, indent=1, sort_keys=False), encoding="utf-8")
    paths.path(md_path).write_text(markdown(metrics, label), encoding="utf-8")
    return json_path, md_path
