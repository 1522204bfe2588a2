"""SMPL / SMPL-H / SMPL-X in JAX: file loading, linear blend skinning, rotations, mesh output."""

from chatpose_jax.body import lbs, rotations, skeletons
from chatpose_jax.body.loading import load_body_model, read_model_arrays, resolve_model_file
from chatpose_jax.body.model import BodyModel, BodyOutput

__all__ = [
    "BodyModel",
    "BodyOutput",
    "lbs",
    "load_body_model",
    "read_model_arrays",
    "resolve_model_file",
    "rotations",
    "skeletons",
]
