"""Orbax checkpoints of a training run: asynchronous, the last K kept, resumed from the latest.

Layout under `WORKDIR/checkpoints/STEP/`:
  state/   the TrainState (trainable params, optimizer state, step, rng, non-finite counters)
  data/    the input iterator's state (JSON), so a resumed run reads the same next batches
  config/  the experiment config (JSON); a resume checks the model section against the run's
Orbax writes each step to a temporary folder and renames it only when complete, and lists only
committed steps, so a torn (interrupted) checkpoint is never taken as the latest.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from chatpose_jax import paths
from chatpose_jax.body import frames


class CheckpointMismatchError(ValueError):
    """A checkpoint's shapes or config do not fit the run that tries to resume from it."""


def experiment_to_json(experiment) -> dict:
    """The frozen experiment as plain JSON (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(experiment)))


def make_manager(workdir: str, keep: int, async_save: bool = True) -> ocp.CheckpointManager:
    """The manager of `WORKDIR/checkpoints` (`workdir` local, relative or absolute, or `gs://`), keeping `keep`."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=async_save, create=True, cleanup_tmp_directories=True
    )
    handlers = {
        "state": ocp.StandardCheckpointHandler(),
        "data": ocp.JsonCheckpointHandler(),
        "config": ocp.JsonCheckpointHandler(),
    }
    # An epath.Path: orbax writes local folders and gs:// buckets alike, but refuses relative local paths.
    folder = paths.path(paths.absolute(workdir)) / "checkpoints"
    return ocp.CheckpointManager(folder, options=options, item_handlers=handlers)


def save(manager: ocp.CheckpointManager, step: int, state, data_state: dict, config_json: dict, force=False) -> bool:
    """Starts saving (asynchronously); returns whether a save was started."""
    return manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data_state),
            config=ocp.args.JsonSave(config_json),
        ),
        force=force,
    )


def _first_difference(saved: Any, current: Any, path: str) -> str | None:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            if key not in saved or key not in current:
                return f"{path}.{key}"
            found = _first_difference(saved[key], current[key], f"{path}.{key}")
            if found:
                return found
        return None
    return None if saved == current else path


def check_config(saved_json: dict, current_json: dict) -> None:
    """Raises CheckpointMismatchError naming the first model field that differs."""
    diff = _first_difference(saved_json.get("model"), current_json.get("model"), "config.model")
    if diff:

        def pick(tree, dotted):
            for key in dotted.split(".")[2:]:
                tree = tree.get(key) if isinstance(tree, dict) else None
            return tree

        raise CheckpointMismatchError(
            f"the checkpoint was written with {diff}={pick(saved_json.get('model'), diff)!r}, "
            f"this run has {diff}={pick(current_json.get('model'), diff)!r}; use another --workdir "
            "or the checkpoint's config"
        )


def _path_name(path) -> str:
    """'trainable/lora/...' for a key path, whether the tree holds dicts or dataclasses."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def check_shapes(manager: ocp.CheckpointManager, step: int, abstract_state) -> None:
    """Raises CheckpointMismatchError naming the first array whose stored shape or dtype differs."""
    stored = manager.item_metadata(step)["state"]
    stored_tree = getattr(stored, "tree", stored)
    stored_leaves = {_path_name(p): m for p, m in jax.tree_util.tree_leaves_with_path(stored_tree)}
    wanted = {_path_name(p): w for p, w in jax.tree_util.tree_leaves_with_path(abstract_state)}
    for key, want in wanted.items():
        if key not in stored_leaves:
            raise CheckpointMismatchError(f"checkpoint step {step} has no array at state/{key}")
        got = stored_leaves[key]
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointMismatchError(
                f"checkpoint step {step}: state/{key} has shape {tuple(got.shape)}, the run expects {tuple(want.shape)}"
            )
    extra = sorted(set(stored_leaves) - set(wanted))
    if extra:
        raise CheckpointMismatchError(f"checkpoint step {step} holds state/{extra[0]}, which the run lacks")


def check_saved_config(manager: ocp.CheckpointManager, step: int, current_config_json: dict) -> None:
    """Raises CheckpointMismatchError (or the pose-frame error) when `step` was written by another model.

    Reads only the checkpoint's config, so a run can call it before it builds any weights.
    """
    saved_config = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
    frames.require_pose_frame(
        (saved_config.get("model") or {}).get("pose_frame"),
        f"checkpoint step {step} (config.model.pose_frame)",
        "its pose head learnt roots in another frame; start a new --workdir",
    )
    check_config(saved_config, current_config_json)


def restore(manager: ocp.CheckpointManager, step: int, abstract_state, current_config_json: dict):
    """(state, data_state) of `step`, after checking its config and shapes against the run."""
    check_saved_config(manager, step, current_config_json)
    check_shapes(manager, step, abstract_state)
    restored = manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()),
    )
    return restored["state"], restored["data"]


def abstract_like(tree):
    """ShapeDtypeStructs with the shardings of `tree` (for restoring straight into place)."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=getattr(x, "sharding", None)), tree
    )
