"""chatpose-jax: ChatPose (LLaVA-1.5 with a `<POSE>` head) in JAX and Flax.

The library never imports TensorFlow: only `data_pipelines` does, so the model, the body model
and the train step run where TensorFlow is absent (a GPU box, a TPU VM without tf).
"""

import glob as _glob
import importlib.util as _importlib_util
import os as _os

__version__ = "0.1.0"


def _skip_absent_tpu() -> None:
    """With libtpu installed (the [aot] extra) on a host without TPU chips, JAX would probe for
    TPUs at start and print cloud-metadata errors; name the platforms that exist instead.
    A TPU host, or an explicit JAX_PLATFORMS, is left alone."""
    if _os.environ.get("JAX_PLATFORMS") or _importlib_util.find_spec("libtpu") is None:
        return
    if _glob.glob("/dev/accel*") or _glob.glob("/dev/vfio/[0-9]*") or _os.environ.get("TPU_WORKER_HOSTNAMES"):
        return
    platforms = ["cpu"]
    if any(_importlib_util.find_spec(p) for p in ("jax_cuda12_plugin", "jax_cuda13_plugin")):
        platforms.insert(0, "cuda")
    _os.environ["JAX_PLATFORMS"] = ",".join(platforms)


_skip_absent_tpu()
