"""The retrieval model as a task of the project's training loop: state, step, batches, evaluation.

The state is the loop's `TrainState`; its `trainable` holds {'params', 'batch_stats'}: Adam
(lr from the optimizer config, no weight decay) updates the params, the step writes the new
BatchNorm statistics. Evaluation ranks the whole validation split (one text per pose) and keeps
the parameters of the best validation mRecall in WORKDIR/retrieval_best/ (`load_retrieval` reads them).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization
from jax.sharding import NamedSharding, PartitionSpec

from chatpose_jax import paths
from chatpose_jax.body import frames
from chatpose_jax.eval.retrieval_metrics import recalls
from chatpose_jax.parallel.mesh import batch_sharding
from chatpose_jax.retrieval import data as rdata
from chatpose_jax.retrieval.config import RetrievalConfig
from chatpose_jax.retrieval.model import RetrievalModel, info_nce, init_variables
from chatpose_jax.train import state as state_lib
from chatpose_jax.train.optimizer import learning_rate_schedule
from chatpose_jax.train.trained_model import load_trained

BEST_DIR = "retrieval_best"
EVAL_BATCH = 256


def make_optimizer(optimizer_cfg, num_steps: int) -> optax.GradientTransformation:
    """Adam on 'params' (PoseScript: no weight decay), nothing on 'batch_stats' (the step sets them)."""
    adam = optax.adam(learning_rate_schedule(optimizer_cfg, num_steps), b1=optimizer_cfg.b1, b2=optimizer_cfg.b2)
    return optax.multi_transform({"adam": adam, "none": optax.set_to_zero()}, {"params": "adam", "batch_stats": "none"})


def train_step(state: state_lib.TrainState, batch: dict, *, config: RetrievalConfig, optimizer):
    """One Adam step on the symmetric InfoNCE loss. batch: poses float[B, 22, 3], tokens int[B, L], mask bool[B, L]."""
    model = RetrievalModel(config)
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
        (text, pose, scale), updates = model.apply(
            {"params": params, "batch_stats": state.trainable["batch_stats"]},
            batch["poses"], batch["tokens"], batch["mask"], train=True,
            rngs={"dropout": rng}, mutable=["batch_stats"],
        )  # fmt: skip
        return info_nce(text, pose, scale), (updates["batch_stats"], scale)

    (loss, (stats, scale)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.trainable["params"])
    grads = {"params": grads, "batch_stats": jax.tree.map(jnp.zeros_like, stats)}
    updates, opt_state = optimizer.update(grads, state.opt_state, state.trainable)
    finite = jnp.isfinite(loss)
    new = optax.apply_updates(state.trainable, updates)
    new = {"params": new["params"], "batch_stats": stats}
    trainable = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state.trainable)
    in_row = jnp.where(finite, 0, state.nonfinite_in_row + 1)
    state = state.replace(
        step=state.step + 1,
        trainable=trainable,
        opt_state=jax.tree.map(lambda a, b: jnp.where(finite, a, b), opt_state, state.opt_state),
        nonfinite_in_row=in_row,
        nonfinite_total=state.nonfinite_total + (~finite).astype(jnp.int32),
    )
    metrics = {"loss": loss, "logit_scale": scale, "nonfinite_in_row": in_row}
    return state, metrics


@functools.partial(jax.jit, static_argnums=(0,))
def _encode(config: RetrievalConfig, variables, poses, tokens, mask):
    model = RetrievalModel(config)
    text = model.apply(variables, tokens, mask, method=RetrievalModel.encode_texts)
    pose = model.apply(variables, poses, method=RetrievalModel.encode_poses)
    return text, pose


def encode(config: RetrievalConfig, variables, poses: np.ndarray, tokens: np.ndarray, mask: np.ndarray):
    """(text features float32[N, D], pose features float32[N, D]) in fixed batches of EVAL_BATCH."""
    n, texts, pose_feats = len(poses), [], []
    for start in range(0, n, EVAL_BATCH):
        sl = slice(start, min(start + EVAL_BATCH, n))
        pad = EVAL_BATCH - (sl.stop - sl.start)

        def padded(x, sl=sl, pad=pad):
            return np.concatenate([x[sl], np.zeros((pad, *x.shape[1:]), x.dtype)])

        m = padded(mask)
        m[sl.stop - sl.start :, 0] = True  # padding rows attend to one token: no empty softmax
        t, p = _encode(config, variables, padded(poses), padded(tokens), m)
        texts.append(np.asarray(t)[: sl.stop - sl.start])
        pose_feats.append(np.asarray(p)[: sl.stop - sl.start])
    return np.concatenate(texts), np.concatenate(pose_feats)


@dataclasses.dataclass
class RetrievalTrainer:
    """A retrieval run on a mesh: what the loop needs (`state`, `step`, `evaluate_split`)."""

    config: RetrievalConfig
    mesh: Any
    state: state_lib.TrainState
    step_fn: Any
    tokens: rdata.TextTokens
    data_dir: str
    best: float = -1.0

    def step(self, batch: dict):
        self.state, metrics = self.step_fn(self.state, batch)
        return metrics

    def variables(self) -> dict:
        return jax.device_get(self.state.trainable)

    def evaluate_split(self, split: str) -> dict:
        poses, texts, _ = rdata.load_pairs(self.data_dir, split, self.config.texts)
        tokens, mask = self.tokens([t[0] for t in texts])
        text, pose = encode(self.config, self.variables(), poses, tokens, mask)
        return {**recalls(text, pose), "n": float(len(poses))}


def tokenizer_dir(experiment, workdir: str) -> str:
    folder = experiment.retrieval.tokenizer or experiment.data.tokenizer
    if not folder:
        kept = paths.join(workdir, "tokenizer")
        if paths.path(kept).is_dir():
            return kept
        raise FileNotFoundError("retrieval: no tokenizer; set config.retrieval.tokenizer or config.data.tokenizer")
    return folder


def build_trainer(experiment, mesh, workdir: str) -> RetrievalTrainer:
    cfg = experiment.retrieval
    tokens = rdata.TextTokens(tokenizer_dir(experiment, workdir), cfg.max_text_length)
    if tokens.vocab_size > cfg.vocab_size:
        raise ValueError(
            f"config.retrieval.vocab_size={cfg.vocab_size} is below the tokenizer's {tokens.vocab_size} tokens"
        )
    variables = init_variables(cfg, experiment.train.seed)
    if cfg.init_embeddings:
        variables = _embeddings_from(cfg, variables, cfg.init_embeddings)
    optimizer = make_optimizer(experiment.optimizer, experiment.train.num_steps)
    replicated = NamedSharding(mesh, PartitionSpec())
    trainable = jax.device_put(dict(variables), replicated)
    state = jax.jit(
        lambda t: state_lib.init_train_state(t, optimizer, experiment.train.seed), out_shardings=replicated
    )(trainable)
    step = functools.partial(train_step, config=cfg, optimizer=optimizer)
    step_fn = jax.jit(step, in_shardings=(replicated, batch_sharding(mesh)), out_shardings=(replicated, replicated),
                      donate_argnums=(0,))  # fmt: skip
    trainer = RetrievalTrainer(cfg, mesh, state, step_fn, tokens, experiment.data.data_dir)
    info = paths.path(workdir) / BEST_DIR / "info.json"
    if info.exists():  # a resumed run keeps the best it has seen
        trainer.best = float(json.loads(info.read_text())["val"]["mrecall"])
    return trainer


def _embeddings_from(cfg: RetrievalConfig, variables, checkpoint: str):
    """Token embeddings started from a ChatPose checkpoint's table (projected by its first embed_dim columns)."""
    table = np.asarray(load_trained(checkpoint).params["language_model"]["embed_tokens"]["embedding"])
    if table.shape[1] < cfg.embed_dim:
        raise ValueError(f"{checkpoint}: embedding width {table.shape[1]} < retrieval.embed_dim={cfg.embed_dim}")
    params = dict(variables["params"])
    text = dict(params["text_encoder"])
    emb = np.asarray(text["token_embedding"]["embedding"]).copy()
    rows = min(len(emb), len(table))
    emb[:rows] = table[:rows, : cfg.embed_dim]
    text["token_embedding"] = {"embedding": jnp.asarray(emb)}
    params["text_encoder"] = text
    return {**variables, "params": params}


def make_source(experiment, mesh, split: str, workdir: str = ""):
    cfg = experiment.retrieval
    tokens = rdata.TextTokens(tokenizer_dir(experiment, workdir), cfg.max_text_length)
    poses, texts, _ = rdata.load_pairs(experiment.data.data_dir, "train" if split == "train" else "val", cfg.texts)
    seed = experiment.train.seed + (0 if split == "train" else 10_000)
    return rdata.RetrievalBatches(poses, texts, tokens, experiment.train.batch_size, batch_sharding(mesh), seed,
                                  cfg.flip_prob if split == "train" else 0.0)  # fmt: skip


def evaluate(trainer: RetrievalTrainer, workdir: str, step: int) -> dict:
    """Validation recalls; the best-mRecall parameters so far are written to WORKDIR/retrieval_best/."""
    metrics = trainer.evaluate_split("val")
    if metrics["mrecall"] > trainer.best and jax.process_index() == 0:
        trainer.best = metrics["mrecall"]
        save_best(paths.join(workdir, BEST_DIR), trainer.config, trainer.variables(), step, metrics)
    return metrics


def save_best(folder: str, config: RetrievalConfig, variables, step: int, metrics: dict) -> str:
    where = paths.path(folder)
    where.mkdir(parents=True, exist_ok=True)
    (where / "variables.msgpack").write_bytes(serialization.msgpack_serialize(jax.tree.map(np.asarray, variables)))
    # The poses it embeds have their roots in the builders' frame (OpenCV camera): stored, checked on load.
    info = {"config": dataclasses.asdict(config), "step": step, "val": metrics, "pose_frame": frames.POSE_FRAME}
    (where / "info.json").write_text(json.dumps(info, indent=1))
    return folder


def load_retrieval(workdir: str) -> tuple[RetrievalConfig, dict, dict]:
    """(config, variables, info) of the best checkpoint in a retrieval workdir (or its retrieval_best/ folder).

    Loads strictly: every array of a fresh model must be present with its shape (no silent partial load).
    Raises FileNotFoundError / ValueError naming the file at fault.
    """
    root = paths.path(workdir)
    folder = root if (root / "info.json").exists() else root / BEST_DIR
    info_path = folder / "info.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{workdir}: no retrieval model ({BEST_DIR}/info.json); train one with "
                                "chatpose-train --config configs/retrieval.py")  # fmt: skip
    info = json.loads(info_path.read_text())
    frames.require_pose_frame(
        info.get("pose_frame"),
        f"retrieval model {info_path}",
        "its pose encoder learnt roots in another frame; train it again (chatpose-train --config configs/retrieval.py)",
    )
    config = RetrievalConfig(**info["config"])
    template = jax.eval_shape(lambda: init_variables(config))  # shapes of a fresh model, nothing computed
    loaded = serialization.msgpack_restore((folder / "variables.msgpack").read_bytes())
    flat_t = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(template)}
    flat_l = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(loaded)}
    missing, extra = sorted(set(flat_t) - set(flat_l)), sorted(set(flat_l) - set(flat_t))
    if missing or extra:
        raise ValueError(f"{folder}/variables.msgpack: missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in flat_t.items():
        if np.shape(flat_l[k]) != np.shape(v):
            raise ValueError(f"{folder}/variables.msgpack: {k} has shape {np.shape(flat_l[k])}; expected {np.shape(v)}")
    return config, serialization.from_state_dict(template, jax.tree.map(np.asarray, loaded)), info
