"""Test setup: 8 forced CPU devices before jax is imported, so every mesh test runs here; one XLA
compilation cache kept between runs, shared by the xdist workers and the processes tests start."""

import os
from pathlib import Path

import pytest

# XLA:CPU without LLVM's most expensive passes: tests compare numbers, and a cold run spends much of its time
# compiling. The backend's optimisation level stays at its default: at level 0 programs compiled ~25% faster
# but ran ~2.6x slower (the tiny train step: 0.32 instead of 0.12 s; the retrieval step 0.22 instead of
# 0.08 s), and with the compile cache below most programs of a run are not compiled at all. Results may
# differ from another build's in the last bit, so a test comparing two computations bit for bit runs both
# with these flags.
CPU_FLAGS = " --xla_force_host_platform_device_count=8 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + CPU_FLAGS).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Programs compiled in several tests or processes (the tiny train step, the decoding steps) compile
# once, and once only across runs: JAX's persistent cache (pytest_configure below), keyed by the
# program, the XLA flags and the jax version, so a changed program compiles afresh. Processes that
# tests start inherit these variables.
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
XLA_CACHE_BYTES = 4 * 1024**3  # least recently used entries go first beyond this
os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(XLA_CACHE_BYTES)

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def xla_cache_folder() -> Path:
    """$CHATPOSE_TEST_XLA_CACHE, else ~/.cache/chatpose_jax/test-xla (`XDG_CACHE_HOME` honoured).

    `CHATPOSE_TEST_XLA_CACHE=fresh` gives each session an empty one (a cold run's timing).
    """
    if os.environ.get("CHATPOSE_TEST_XLA_CACHE", "") not in ("", "fresh"):
        return Path(os.environ["CHATPOSE_TEST_XLA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chatpose_jax" / "test-xla"


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path plugin has set up the session's base temp folder
def pytest_configure(config):
    if "PYTEST_XDIST_WORKER" not in os.environ:
        # The controlling process (or a run without xdist); xdist's workers start later and inherit it.
        if os.environ.get("CHATPOSE_TEST_XLA_CACHE") == "fresh":
            folder = config._tmp_path_factory.getbasetemp() / "xla_cache"
        else:
            folder = xla_cache_folder()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_compilation_cache_max_size", XLA_CACHE_BYTES)


# The files that take longest (seconds of `pytest --durations=0` on two busy cores, summed per file, in the
# last measured run), in the order that run used: the longest first, roughly (the 7B compile, a subprocess,
# starts beside the ablation's in-process training). `make test` hands whole files to its two workers in
# collection order (`--dist loadfile --no-loadscope-reorder`); starting with these keeps one worker from
# being left with a long file while the other has finished (one worker 100 s longer than the other before
# this order, 5 s in the last run: 433 / 428 s busy).
LONGEST_FIRST = (
    "test_aot_llava15.py",  # 95
    "test_ablate.py",  # 100
    "test_aot.py",  # 90
    "test_train_loop.py",  # 61
    "test_eval_cli.py",  # 82
    "test_train_two_processes.py",  # 37
    "test_retrieval.py",  # 18
    "test_body_model.py",  # 33
    "test_chat.py",  # 30
    "test_train_step.py",  # 29
    "test_attention_kernels.py",  # 25
    "test_web.py",  # 20
    "test_relative_paths.py",  # 16
)


def pytest_collection_modifyitems(config, items):
    """Files in LONGEST_FIRST first, in its order; every other file after them, as collected."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
