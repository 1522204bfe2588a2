"""Reading the official SMPL / SMPL-H / SMPL-X files into a `BodyModel`.

Formats: SMPL `.pkl` (Python 2 pickles holding chumpy objects and a scipy sparse `J_regressor`),
SMPL / SMPL-H / SMPL-X `.npz`, and a folder laid out as the `smplx` package expects
(`smpl/SMPL_NEUTRAL.pkl`, `smplx/SMPLX_NEUTRAL.npz`, ...). chumpy is not needed: it no longer
imports with current numpy, so its objects are read through a stand-in that keeps their value.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.sparse

from chatpose_jax import paths
from chatpose_jax.body import skeletons
from chatpose_jax.body.model import BodyModel, StaticArray

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")

# smplx's shape-space sizes: a SMPL-X `shapedirs` holds 300 shape then 100 expression directions
# (or 10 + 10 in the first release), and the split point follows from its width.
_SMPLX_FULL_SHAPE, _SMPLX_FULL_EXPRESSION = 300, 100
_SMPLX_SHORT_SHAPE, _SMPLX_SHORT_EXPRESSION = 10, 10


class _ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling; keeps the pickled state.

    chumpy objects pickle their `__dict__`, whose `x` entry is the array value.
    """

    def __init__(self, *args, **kwargs):
        self.state: dict[str, Any] = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"state": state}


class _BodyModelUnpickler(pickle.Unpickler):
    """Unpickler for body-model files: chumpy mapped to the stand-in, and only array classes allowed.

    A body-model pickle needs numpy, scipy.sparse and the pickle protocol's own helpers; refusing
    every other class means a foreign pickle fails with a clear message instead of running code.
    """

    _SAFE_BUILTINS = frozenset({"object", "set", "frozenset", "slice", "complex", "bytearray", "list", "dict", "tuple"})

    def find_class(self, module: str, name: str):
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        if module == "numpy" or module.startswith("numpy."):
            return super().find_class(module, name)
        if module.startswith("scipy.sparse"):
            # Old pickles name private modules (scipy.sparse.csc); the classes live on scipy.sparse.
            if hasattr(scipy.sparse, name):
                return getattr(scipy.sparse, name)
            return super().find_class(module, name)
        # Protocol-2 pickles rebuild bytes with _codecs.encode and plain objects through copyreg.
        if (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        if module in ("copyreg", "copy_reg") and name in ("_reconstructor", "__newobj__"):
            return super().find_class(module, name)
        if module in ("builtins", "__builtin__") and name in self._SAFE_BUILTINS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a body-model file")


def _read_pickle(path: str) -> Mapping[str, Any]:
    try:
        with open(path, "rb") as f:
            data = _BodyModelUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a body-model pickle ({err})") from err
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: not a body-model pickle (holds a {type(data).__name__}, expected a dict of arrays)")
    return data


def _read_npz(path: str) -> Mapping[str, Any]:
    try:
        # allow_pickle stays off: the arrays the model needs are plain, and keys are read lazily.
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a body-model .npz ({err})") from err


def _as_array(value: Any, key: str, path: str) -> np.ndarray:
    """A file entry as a dense numpy array (chumpy stand-ins give their `x`, sparse matrices densify)."""
    if isinstance(value, _ChumpyStandIn):
        if "x" not in value.state:
            raise ValueError(
                f"{path}: key {key!r} is a chumpy object without a stored value 'x' (found {sorted(value.state)})"
            )
        value = value.state["x"]
    if hasattr(value, "toarray"):
        value = value.toarray()
    try:
        return np.asarray(value)
    except ValueError as err:  # e.g. an object array that numpy refuses to load without pickles
        raise ValueError(f"{path}: key {key!r} is not an array ({err})") from err


def _get(data: Mapping[str, Any], key: str, path: str) -> np.ndarray:
    if key not in data:
        raise ValueError(f"{path}: missing key {key!r} (a body-model file holds {', '.join(REQUIRED_KEYS)})")
    return _as_array(data[key], key, path)


def _check_shape(array: np.ndarray, expected: tuple, key: str, path: str) -> None:
    """Raise unless `array.shape` matches `expected` (None entries match any size)."""
    ok = array.ndim == len(expected) and all(e is None or e == s for s, e in zip(array.shape, expected, strict=True))
    if not ok:
        shown = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{path}: key {key!r} has shape {tuple(array.shape)}; expected {shown}")


def resolve_model_file(path: str, model_type: str | None = None, gender: str = "neutral") -> str:
    """The model file a path names: the file itself, or the one inside an smplx-style folder.

    A folder may hold `{model_type}/{PREFIX}_{GENDER}.{npz,pkl}` or the file directly; with
    model_type None the folder must hold exactly one model type of that gender.
    """
    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise ValueError(f"{path}: no such body-model file or folder")
        return path
    types = [model_type] if model_type else list(skeletons.FILE_PREFIX)
    found = []
    for kind in types:
        if kind not in skeletons.FILE_PREFIX:
            raise ValueError(f"{path}: unknown model_type {kind!r}; expected one of {sorted(skeletons.FILE_PREFIX)}")
        stem = f"{skeletons.FILE_PREFIX[kind]}_{gender.upper()}"
        for folder in (os.path.join(path, kind), path):
            for ext in ("npz", "pkl"):
                candidate = os.path.join(folder, f"{stem}.{ext}")
                if os.path.isfile(candidate):
                    found.append(candidate)
                    break
            else:
                continue
            break
    if not found:
        wanted = ", ".join(f"{k}/{skeletons.FILE_PREFIX[k]}_{gender.upper()}.npz|pkl" for k in types)
        raise ValueError(f"{path}: no body-model file in the folder; expected one of {wanted}")
    if len(found) > 1:
        raise ValueError(f"{path}: several model types found ({', '.join(found)}); pass model_type")
    return found[0]


def read_model_arrays(path: str) -> dict[str, np.ndarray]:
    """Every array entry of a model file (pkl or npz), densified, keyed as in the file."""
    data = _read_pickle(path) if path.endswith(".pkl") else _read_npz(path)
    out = {}
    for key in data.keys():
        try:
            out[key] = _as_array(data[key], key, path)
        except ValueError:
            continue  # object entries (e.g. SMPL-X part names) are not needed to pose the body
    missing = [k for k in REQUIRED_KEYS if k not in out]
    if missing:
        raise ValueError(f"{path}: missing key {missing[0]!r} (a body-model file holds {', '.join(REQUIRED_KEYS)})")
    return out


def load_body_model(
    path: str,
    num_betas: int = 10,
    dtype=jnp.float32,
    *,
    model_type: str | None = None,
    gender: str = "neutral",
    num_expression_coeffs: int = 10,
    flat_hand_mean: bool = False,
) -> BodyModel:
    """Load an official SMPL / SMPL-H / SMPL-X file (or smplx-style folder) as a `BodyModel`.

    num_betas: shape coefficients kept (at most what the file holds); num_expression_coeffs: SMPL-X
    expression coefficients kept; flat_hand_mean: hands at rest are flat (True) or the file's mean
    hand pose (False, smplx's default). The model type follows from the number of joints (24, 52, 55);
    model_type, when given, must agree. Raises ValueError naming the file, key and shapes on bad input.
    """
    path = paths.local_copy(os.fspath(path))  # gs://: the pickle and npz readers need a local file
    file = resolve_model_file(path, model_type, gender)
    data = _read_pickle(file) if file.endswith(".pkl") else _read_npz(file)

    kintree = _get(data, "kintree_table", file)
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise ValueError(f"{file}: key 'kintree_table' has shape {tuple(kintree.shape)}; expected (2, J)")
    num_joints = kintree.shape[1]
    found_type = skeletons.MODEL_TYPE_BY_NUM_JOINTS.get(num_joints)
    if found_type is None:
        expected = ", ".join(f"{n} ({t})" for t, n in skeletons.NUM_JOINTS.items())
        raise ValueError(f"{file}: key 'kintree_table' has shape (2, {num_joints}); expected J in {expected}")
    if model_type is not None and model_type != found_type:
        raise ValueError(
            f"{file}: key 'kintree_table' has shape (2, {num_joints}), a {found_type} model; "
            f"expected (2, {skeletons.NUM_JOINTS.get(model_type, '?')}) for model_type {model_type!r}"
        )
    parents = tuple(int(p) for p in kintree[0].astype(np.int64))
    parents = (-1,) + parents[1:]  # the root's parent is stored as 2**32 - 1
    for joint, parent in enumerate(parents[1:], start=1):
        if not 0 <= parent < joint:
            raise ValueError(
                f"{file}: key 'kintree_table' gives joint {joint} the parent {parent}; expected 0..{joint - 1}"
            )

    v_template = _get(data, "v_template", file)
    _check_shape(v_template, (None, 3), "v_template", file)
    num_verts = v_template.shape[0]
    shapedirs = _get(data, "shapedirs", file)
    if shapedirs.ndim == 2:
        shapedirs = shapedirs[:, :, None]
    _check_shape(shapedirs, (num_verts, 3, None), "shapedirs", file)
    posedirs = _get(data, "posedirs", file)
    _check_shape(posedirs, (num_verts, 3, 9 * (num_joints - 1)), "posedirs", file)
    J_regressor = _get(data, "J_regressor", file)
    _check_shape(J_regressor, (num_joints, num_verts), "J_regressor", file)
    weights = _get(data, "weights", file)
    _check_shape(weights, (num_verts, num_joints), "weights", file)
    faces = _get(data, "f", file)
    _check_shape(faces, (None, 3), "f", file)
    if faces.size and (faces.min() < 0 or faces.max() >= num_verts):
        raise ValueError(f"{file}: key 'f' indexes vertex {int(faces.max())}; expected indices in [0, {num_verts})")

    if found_type == "smplx":
        total = shapedirs.shape[-1]
        full = total >= _SMPLX_FULL_SHAPE + _SMPLX_FULL_EXPRESSION
        shape_dim = _SMPLX_FULL_SHAPE if full else _SMPLX_SHORT_SHAPE
        expr_dim = _SMPLX_FULL_EXPRESSION if full else _SMPLX_SHORT_EXPRESSION
        if total < shape_dim + 1:
            raise ValueError(
                f"{file}: key 'shapedirs' has shape {tuple(shapedirs.shape)}; expected ({num_verts}, 3, >= 11) "
                "(shape then expression directions)"
            )
        shape_part = shapedirs[:, :, : min(num_betas, shape_dim)]
        expr_part = shapedirs[:, :, shape_dim : shape_dim + min(num_expression_coeffs, expr_dim)]
    else:
        shape_part = shapedirs[:, :, :num_betas]
        expr_part = shapedirs[:, :, :0]

    pose_mean = np.zeros((num_joints, 3))
    hand_pcs = {"left": np.zeros((0, 45)), "right": np.zeros((0, 45))}
    hand_first = {name: first for name, first, _ in skeletons.POSE_ARGUMENTS[found_type]}
    for side, suffix in (("left", "l"), ("right", "r")):
        if found_type == "smpl":
            break
        if f"hands_components{suffix}" in data:
            hand_pcs[side] = _get(data, f"hands_components{suffix}", file).reshape(-1, 45)
        if not flat_hand_mean and f"hands_mean{suffix}" in data:
            mean = _get(data, f"hands_mean{suffix}", file)
            _check_shape(mean.reshape(-1), (45,), f"hands_mean{suffix}", file)
            first = hand_first[f"{side}_hand_pose"]
            pose_mean[first : first + 15] = mean.reshape(15, 3)

    def coordinate_major(dirs: np.ndarray) -> jnp.ndarray:
        return jnp.asarray(np.ascontiguousarray(np.transpose(dirs, (2, 1, 0))), dtype)

    return BodyModel(
        v_template=jnp.asarray(np.ascontiguousarray(v_template.T), dtype),
        shapedirs=coordinate_major(shape_part),
        exprdirs=coordinate_major(expr_part),
        posedirs=coordinate_major(posedirs),
        J_regressor=jnp.asarray(J_regressor, dtype),
        lbs_weights=jnp.asarray(np.ascontiguousarray(weights.T), dtype),
        pose_mean=jnp.asarray(pose_mean, dtype),
        hands_components_left=jnp.asarray(hand_pcs["left"], dtype),
        hands_components_right=jnp.asarray(hand_pcs["right"], dtype),
        model_type=found_type,
        parents=parents,
        faces_static=StaticArray(faces.astype(np.int32)),
        source=file,
    )
