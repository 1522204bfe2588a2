"""Train state: what changes each step, apart from the frozen base that lives once.

The model's params split in two trees:
  frozen:    the base (vision tower, projector, decoder weights, and the embeddings unless trained),
             sharded once (FSDP over the frozen weights is what lets 13B fit) and never donated;
  trainable: {"lora": LoRA tree, "params": the trained subtrees of the params tree}, which the
             optimizer sees. With `trainable="lora_and_full_embeddings"` (LISA) the whole
             `language_model/embed_tokens` and `lm_head` are trained; with `"lora_and_new_rows"`
             only the rows of the added `<POSE>` token are, held as `new_rows/{embedding, lm_head}`.
With `"all"` (models trained from scratch, such as the tiny demo) nothing is frozen.
`join_params` rebuilds (params, lora) for `model.chatpose.apply` without copying the frozen arrays
(except, for "new_rows", the embedding and LM head with their rows written in).
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

EMBEDDING_PATH = ("language_model", "embed_tokens", "embedding")
LM_HEAD_PATH = ("lm_head", "kernel")
POSE_HEAD_PATH = ("pose_head",)


class TrainState(flax.struct.PyTreeNode):
    """Everything a step updates; checkpointed with the data-iterator state."""

    step: jax.Array  # int32[]
    trainable: Any  # {"lora": ..., "params": ...}
    opt_state: optax.OptState
    rng: jax.Array  # uint32[2], the run's base key (per-step keys are folded from it)
    nonfinite_in_row: jax.Array  # int32[], updates skipped in a row for a non-finite loss/gradient
    nonfinite_total: jax.Array  # int32[], updates skipped in the whole run


def get_path(tree: dict, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def has_path(tree: dict, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def set_path(tree: dict, path: tuple[str, ...], value) -> dict:
    """A copy of the dict spine along `path` with `value` at its end; leaves are shared."""
    if not path:
        return value
    out = dict(tree)
    out[path[0]] = set_path(tree.get(path[0], {}), path[1:], value)
    return out


def pop_path(tree: dict, path: tuple[str, ...]) -> dict:
    """A copy of the dict spine without the subtree at `path` (empty parents removed)."""
    out = dict(tree)
    if len(path) == 1:
        out.pop(path[0])
        return out
    child = pop_path(tree[path[0]], path[1:])
    if child:
        out[path[0]] = child
    else:
        out.pop(path[0])
    return out


def merge_trees(a: dict, b: dict) -> dict:
    """Union of two nested dicts with disjoint leaves (shallow copies of the spine only)."""
    out = dict(a)
    for key, value in b.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = merge_trees(out[key], value)
        elif key in out:
            raise KeyError(f"both trees hold a leaf at {key!r}")
        else:
            out[key] = value
    return out


def trained_paths(params: dict) -> list[tuple[str, ...]]:
    """Subtrees of the params tree trained in full: pose head, embeddings and LM head when present."""
    return [p for p in (POSE_HEAD_PATH, EMBEDDING_PATH, LM_HEAD_PATH) if has_path(params, p)]


def split_params(params: dict, lora: dict, mode: str, new_token_ids: tuple[int, ...]) -> tuple[dict, dict]:
    """(frozen, trainable) from the model's (params, lora) trees; see the module docstring."""
    if mode == "all":
        # Models trained from scratch (the tiny demo has no pretrained base): every weight learns.
        return {}, {"lora": lora, "params": params}
    frozen = params
    trained: dict = {}
    paths = [POSE_HEAD_PATH] if mode == "lora_and_new_rows" else trained_paths(params)
    for path in paths:
        trained = set_path(trained, path, get_path(params, path))
        frozen = pop_path(frozen, path)
    if mode == "lora_and_new_rows":
        ids = jnp.asarray(new_token_ids, jnp.int32)
        rows = {"embedding": get_path(params, EMBEDDING_PATH)[ids]}
        if has_path(params, LM_HEAD_PATH):
            rows["lm_head"] = get_path(params, LM_HEAD_PATH)[:, ids]
        trained["new_rows"] = rows
    elif mode != "lora_and_full_embeddings":
        raise ValueError(f"unknown train.trainable mode {mode!r}")
    return frozen, {"lora": lora, "params": trained}


def join_params(frozen: dict, trainable: dict, new_token_ids: tuple[int, ...] = ()) -> tuple[dict, dict]:
    """(params, lora) for the model from the two halves."""
    trained = dict(trainable["params"])
    new_rows = trained.pop("new_rows", None)
    params = merge_trees(frozen, trained)
    if new_rows is not None:
        ids = jnp.asarray(new_token_ids, jnp.int32)
        embedding = get_path(params, EMBEDDING_PATH)
        params = set_path(params, EMBEDDING_PATH, embedding.at[ids].set(new_rows["embedding"].astype(embedding.dtype)))
        if "lm_head" in new_rows:
            kernel = get_path(params, LM_HEAD_PATH)
            params = set_path(params, LM_HEAD_PATH, kernel.at[:, ids].set(new_rows["lm_head"].astype(kernel.dtype)))
    return params, trainable["lora"]


def init_train_state(trainable: dict, optimizer: optax.GradientTransformation, seed: int) -> TrainState:
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        trainable=trainable,
        opt_state=optimizer.init(trainable),
        rng=jax.random.PRNGKey(seed),
        nonfinite_in_row=jnp.zeros((), jnp.int32),
        nonfinite_total=jnp.zeros((), jnp.int32),
    )
