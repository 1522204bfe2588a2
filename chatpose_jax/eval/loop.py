"""`evaluate(...)`: every requested benchmark end to end, what `chatpose-eval` runs.

Per benchmark: read its test split through the training builder; on every process decode that
host's slice with the model, as one global batch sharded over the mesh's data axes
(`mesh_decode.MeshDecoder`), or read another method's predictions file; gather the poses on
process 0; score them with the benchmark's protocol (image: SPIN's or 4D-Humans' MPJPE /
PA-MPJPE; text: retrieval recalls and FID), score the mean-pose baseline the same way, and write
OUT/predictions_<name>.npz, OUT/gallery_<name>.png, OUT/metrics.json and OUT/metrics.md.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.experimental import multihost_utils

from chatpose_jax import paths
from chatpose_jax.eval import benchmarks, gallery, image_protocol, report
from chatpose_jax.eval import predictions as preds_lib
from chatpose_jax.eval.keypoint_poses import POSE_SOURCES, KeypointLifter
from chatpose_jax.eval.mesh_decode import MeshDecoder
from chatpose_jax.eval.retrieval_metrics import frechet_distance, recalls
from chatpose_jax.parallel.mesh import MeshConfig
from chatpose_jax.retrieval import data as rdata
from chatpose_jax.retrieval.train import encode, load_retrieval


class EvalError(ValueError):
    """A run that cannot start: a missing input named with the flag or folder at fault."""


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    batch_size: int = 8  # prompts decoded together per host (rounded up to its share of the data axes)
    max_new_tokens: int = 32  # answer budget ("Sure, it is <POSE>." takes a handful)
    force_pose_answer: bool = False  # teacher-force "Sure, it is <POSE>." (the pose head alone)
    gallery_size: int = 6  # samples in gallery_<name>.png (0: none)
    progress: bool = True
    mesh: tuple[int, int, int] = (-1, 1, 1)  # (data, fsdp, tensor) of the decoding mesh; -1 fills
    protocol: str = "spin"  # image benchmarks: "spin" (SPIN's eval) or "hmr2" (4D-Humans' eval)
    limit: int = 0  # score only the first `limit` samples of each benchmark (0: all; quick runs)
    pose_from: str = "pose_token"  # "keypoints": the keypoint question, SMPLify on the answer (keypoint_poses)
    smplify_prior: str = ""  # SMPLify's gmm_08.pkl (pose_from="keypoints")

    def mesh_config(self) -> MeshConfig:
        data, fsdp, tensor = self.mesh
        return MeshConfig(data=data, fsdp=fsdp, tensor=tensor)


def _gather(local: preds_lib.Predictions, full_ids: np.ndarray, answer_bytes: int = 1024) -> preds_lib.Predictions:
    """Every host's slice (host_range order) -> all predictions, on every process."""
    count = jax.process_count()
    if count == 1:
        return local

    n = len(full_ids)
    width = max(b - a for a, b in (benchmarks.host_range(n, i, count) for i in range(count)))
    pad = width - len(local)
    answers = np.zeros((width, answer_bytes), np.uint8)
    for i, text in enumerate(local.answer):
        data = str(text).encode()[:answer_bytes]
        answers[i, : len(data)] = np.frombuffer(data, np.uint8)
    local_arrays = {
        "global_orient": np.concatenate([local.global_orient, np.zeros((pad, 3), np.float32)]),
        "body_pose": np.concatenate([local.body_pose, np.zeros((pad, 69), np.float32)]),
        "has_pose": np.concatenate([local.has_pose, np.zeros(pad, bool)]).astype(np.int32),
        "answer": answers,
    }
    gathered = multihost_utils.process_allgather(local_arrays)  # each: [count, width, ...]
    parts = []
    for i in range(count):
        a, b = benchmarks.host_range(n, i, count)
        text = [bytes(row[row > 0]).decode(errors="replace") for row in gathered["answer"][i, : b - a]]
        parts.append(preds_lib.Predictions(
            full_ids[a:b], gathered["global_orient"][i, : b - a], gathered["body_pose"][i, : b - a],
            np.asarray(text, dtype=str).reshape(b - a), gathered["has_pose"][i, : b - a].astype(bool),
        ))  # fmt: skip
    return preds_lib.Predictions.concatenate(parts)


def _read(name: str, data_dir: str, options: EvalOptions, **kwargs) -> benchmarks.BenchmarkData:
    return benchmarks.read_benchmark(name, data_dir, protocol=options.protocol, limit=options.limit, **kwargs)


def model_predictions(
    decoder: MeshDecoder,
    name: str,
    data_dir: str,
    full: benchmarks.BenchmarkData,
    mean,
    options: EvalOptions,
    lifter: KeypointLifter | None = None,
):
    """The model's predictions for every sample of `full`: each host decodes its slice as its rows of
    a batch sharded over the mesh (poses lifted from keypoint answers by `lifter` when given); every
    host's rows are gathered."""
    index, count = jax.process_index(), jax.process_count()
    shard = _read(name, data_dir, options, shard=(index, count))
    widest = max(b - a for a, b in (benchmarks.host_range(len(full), i, count) for i in range(count)))
    local = preds_lib.predict_benchmark(
        decoder, shard, mean, max_new_tokens=options.max_new_tokens, force_pose_answer=options.force_pose_answer,
        progress=options.progress and index == 0, num_steps=-(-widest // decoder.rows_per_host), lifter=lifter,
    )  # fmt: skip
    return _gather(local, full.ids)


def score_image(preds: preds_lib.Predictions, data, bodies, protocol: str = "spin") -> tuple[dict, dict]:
    scored = image_protocol.score(preds.global_orient, preds.body_pose, data, bodies, protocol)
    summary = {**scored["summary"], "no_pose_rate": float(np.mean(~preds.has_pose)) if len(preds) else 0.0}
    return summary, scored["per_sample"]


class RetrievalScorer:
    """Features of a trained retrieval model for a text benchmark's descriptions and poses."""

    def __init__(self, workdir: str):
        self.config, self.variables, self.info = load_retrieval(workdir)
        folder = paths.join(workdir, "tokenizer")
        if not paths.path(folder).is_dir():
            folder = self.config.tokenizer
        if not folder or not paths.path(folder).is_dir():
            raise EvalError(f"retrieval model {workdir}: no tokenizer folder (expected {workdir}/tokenizer)")
        self.tokens = rdata.TextTokens(folder, self.config.max_text_length)

    def features(self, texts, global_orient, body_pose) -> tuple[np.ndarray, np.ndarray]:
        tokens, mask = self.tokens(list(texts))
        return encode(self.config, self.variables, rdata.body_pose_to_joints(global_orient, body_pose), tokens, mask)


def score_text(preds: preds_lib.Predictions, data, scorer: RetrievalScorer, ks) -> dict:
    text, real = scorer.features(data.texts, data.global_orient, data.body_pose)
    _, generated = scorer.features(data.texts, preds.global_orient, preds.body_pose)
    out = {"n": len(data), **recalls(text, generated, ks), "fid": frechet_distance(real, generated)}
    out["no_pose_rate"] = float(np.mean(~preds.has_pose)) if len(preds) else 0.0
    return out


def _neutral_joints_error(preds, data, bodies) -> np.ndarray:
    """Per-sample MPJPE (mm) of text-benchmark poses, both through the neutral model (for the gallery)."""
    zeros = np.zeros((len(data), 10), np.float32)
    gt = image_protocol.smpl_lsp14(bodies.model("n"), bodies.h36m_regressor, data.global_orient, data.body_pose, zeros)
    pred = image_protocol.predicted_joints(preds.global_orient, preds.body_pose, bodies)
    return image_protocol.errors_mm(pred, gt)["mpjpe_mm"]


def write_gallery(out: str, name: str, data, preds, errors_mm: np.ndarray, bodies, size: int) -> str | None:
    if bodies is None or size <= 0 or not len(data):
        return None
    rows = gallery.pick(errors_mm, size)
    neutral = bodies.model("n")
    pred_v = image_protocol.posed_vertices(neutral, preds.global_orient[rows], preds.body_pose[rows])
    samples = []
    for k, i in enumerate(rows):
        gt_v = None
        if data.ground_truth != "joints" or np.any(data.body_pose[i]):
            model = bodies.model(str(data.gender[i]))
            sl = slice(i, i + 1)
            gt_v = image_protocol.posed_vertices(model, data.global_orient[sl], data.body_pose[sl], data.betas[sl])[0]
        image = None
        if data.images is not None:
            image = gallery.crop_image(data.images[i], data.crops[i])
        samples.append({
            "id": str(data.ids[i])[-28:], "input_image": image, "input_text": data.texts[i],
            "pred_vertices": np.asarray(pred_v[k]), "gt_vertices": gt_v, "error": f"MPJPE {errors_mm[i]:.0f} mm",
        })  # fmt: skip
    return gallery.render_gallery(paths.join(out, f"gallery_{name}.png"), samples, neutral.faces, title=name)


def evaluate(
    out: str,
    names: list[str],
    data_dir: str,
    *,
    model=None,
    predictions: dict[str, str] | None = None,
    body_model_dir: str | None = None,
    retrieval_dir: str | None = None,
    options: EvalOptions = EvalOptions(),
    label: str = "ours",
    j19_regressor: str | None = None,
) -> dict:
    """Runs benchmarks `names`; returns the metrics dict (also written to OUT on process 0).

    model: a `ChatModel`, or a `MeshDecoder` already placed on its mesh (needed unless `predictions`
    names a file for every benchmark); predictions: {benchmark: npz path} of another method;
    body_model_dir: smpl/SMPL_{NEUTRAL,MALE,FEMALE} + J_regressor_h36m.npy (+ SMPL_to_J19.pkl for the
    hmr2 protocol; or name it with `j19_regressor`) (needed by the image benchmarks); retrieval_dir:
    a retrieval workdir (needed by the text benchmarks).

    Raises:
      EvalError, BenchmarkError, PredictionsFileError: naming the input at fault, before decoding.
    """
    predictions = predictions or {}
    unknown = [n for n in names if n not in benchmarks.BENCHMARKS]
    if unknown:
        raise EvalError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(benchmarks.BENCHMARKS)}")
    if options.protocol not in benchmarks.PROTOCOLS:
        raise EvalError(f"unknown protocol {options.protocol!r}; known: {', '.join(benchmarks.PROTOCOLS)}")
    kinds = {benchmarks.BENCHMARKS[n][2] for n in names}
    if options.pose_from not in POSE_SOURCES:
        raise EvalError(f"unknown pose source {options.pose_from!r}; known: {', '.join(POSE_SOURCES)}")
    keypoints = options.pose_from == "keypoints"
    if keypoints and "text" in kinds:
        raise EvalError(
            "--pose_from=keypoints scores image benchmarks only (3dpw, h36m, rpe); drop "
            + ", ".join(n for n in names if benchmarks.BENCHMARKS[n][2] == "text")
        )
    if "image" in kinds and not body_model_dir:
        raise EvalError("image benchmarks need --body_model_dir (smpl/SMPL_*.pkl and J_regressor_h36m.npy)")
    if "text" in kinds and not retrieval_dir:
        raise EvalError("text benchmarks need --retrieval WORKDIR (chatpose-train --config configs/retrieval.py)")
    if model is None and any(n not in predictions for n in names):
        raise EvalError("no --checkpoint, and no --predictions file for " + ", ".join(n for n in names
                                                                                    if n not in predictions))  # fmt: skip
    bodies = None
    if body_model_dir:
        try:
            bodies = image_protocol.load_body_models(body_model_dir, j19_regressor=j19_regressor)
        except ValueError as e:
            raise EvalError(f"--body_model_dir: {e}") from e
        if options.protocol == "hmr2" and "image" in kinds and bodies.j19_regressor is None:
            raise EvalError(
                f"--protocol=hmr2 needs 4D-Humans' {image_protocol.J19_FILE} in --body_model_dir {body_model_dir} "
                "(or --j19_regressor FILE)"
            )
    lifter = None
    if keypoints and model is not None:
        try:
            lifter = KeypointLifter.load(body_model_dir, options.smplify_prior)
        except (ValueError, KeyError) as e:
            raise EvalError(str(e)) from e
    scorer = RetrievalScorer(retrieval_dir) if "text" in kinds else None
    full = {n: _read(n, data_dir, options, with_images=False) for n in names}  # checks all first
    loaded = {n: preds_lib.load_predictions(predictions[n], full[n].ids) for n in names if n in predictions}
    decoder = model
    if model is not None and not isinstance(model, MeshDecoder) and any(n not in loaded for n in names):
        try:
            decoder = MeshDecoder.create(model, options.batch_size, options.mesh_config())
        except ValueError as e:
            raise EvalError(f"decoding mesh {options.mesh}: {e}") from e
    results = {"benchmarks": {}, "protocol": options.protocol,
               "notes": {"retrieval": report.RETRIEVAL_NOTE, "shape": report.SHAPE_NOTE,
                         "protocol": report.PROTOCOL_NOTES[options.protocol]},
               "options": dataclasses.asdict(options)}  # fmt: skip
    if retrieval_dir and scorer is not None:
        results["retrieval_model"] = {"workdir": retrieval_dir, "val": scorer.info.get("val", {})}
    for name in names:
        data, kind = full[name], benchmarks.BENCHMARKS[name][2]
        mean = benchmarks.mean_pose(kind, data_dir)
        if name in loaded:
            preds = loaded[name]
        else:
            preds = model_predictions(decoder, name, data_dir, data, mean, options, lifter)
        if jax.process_index() != 0:
            continue
        baseline = preds_lib.mean_predictions(data.ids, mean)
        if kind == "image":
            ours, per = score_image(preds, data, bodies, options.protocol)
            base, _ = score_image(baseline, data, bodies, options.protocol)
            errors = per["mpjpe_mm"]
        else:
            ks = report.RECALL_KS[name]
            ours, base = score_text(preds, data, scorer, ks), score_text(baseline, data, scorer, ks)
            errors = _neutral_joints_error(preds, data, bodies) if bodies is not None else np.zeros(len(data))
        base["no_pose_rate"] = 0.0
        results["benchmarks"][name] = {"ours": ours, "mean_pose": base}
        preds_lib.save_predictions(paths.join(out, f"predictions_{name}.npz"), preds)
        if options.gallery_size and bodies is not None:
            rows = gallery.pick(errors, options.gallery_size)
            with_images = _read(name, data_dir, options, image_rows=rows) if kind == "image" else data
            write_gallery(out, name, with_images, preds, errors, bodies, options.gallery_size)
    if jax.process_index() == 0:
        report.write(out, results, label)
    return results
