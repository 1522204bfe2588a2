"""Tiny checkpoints for the chat / predict tests, made once per test session.

`tiny_workdir`: a 2-layer tiny ChatPose trained 2 steps on random batches
(tests/train_random_run.py) with the synthetic tokenizer copied to WORKDIR/tokenizer.

`pose_checkpoint`: the same weights (LoRA merged) saved as a model checkpoint, with one change
so that answers hold `<POSE>`: a trained model that has seen two random batches never says it. The
LM-head column of `<POSE>` becomes 3x the column of the token X that greedy decoding picks at
answer step 2 of `POSE_PROMPT`; the logit of `<POSE>` is then 3x that of X, so wherever X leads with
a positive logit `<POSE>` wins instead. Nothing else changes, so the pose head reads a state the
model really produced, and the pose tests compare real model outputs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POSE_PROMPT = "Could you generate the SMPL pose of a person who is sitting with arms raised?"
CORPUS_EXTRA = [
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.",
    "USER: ASSISTANT: hello there, what is the pose? and now? describe a person sitting with arms raised.",
]
_CACHE: dict[str, str] = {}


def tiny_tokenizer(tmp_path_factory) -> str:
    """A folder with the synthetic tokenizer: 1000 pieces, <image> 1000, <pad> 1001, <POSE> 1002."""
    if "tokenizer" not in _CACHE:
        from data_pipelines import templates
        from data_pipelines.tokenizer import make_synthetic_tokenizer

        out_dir = str(tmp_path_factory.mktemp("chat_tokenizer") / "tokenizer")
        texts = [*templates.IMAGE_TO_POSE_QUESTIONS, *templates.POSE_ANSWERS, *templates.TEXT_TO_POSE_QUESTIONS]
        make_synthetic_tokenizer(out_dir, texts + CORPUS_EXTRA)
        _CACHE["tokenizer"] = out_dir
    return _CACHE["tokenizer"]


def tiny_workdir(tmp_path_factory) -> str:
    """A training workdir with checkpoints/2 and tokenizer/."""
    if "workdir" not in _CACHE:
        root = tmp_path_factory.mktemp("chat_ckpt")
        workdir = str(root / "workdir")
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
        # Train in a subprocess while this one builds the tokenizer.
        train = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "train_random_run.py"), workdir, "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        tokenizer = tiny_tokenizer(tmp_path_factory)
        log, _ = train.communicate(timeout=300)
        assert train.returncode == 0 and "RUN FINISHED" in log, log[-3000:]
        shutil.copytree(tokenizer, os.path.join(workdir, "tokenizer"))
        _CACHE["workdir"] = workdir
    return _CACHE["workdir"]


def pose_checkpoint(tmp_path_factory) -> str:
    """A model checkpoint (config + params + tokenizer) whose greedy answer to POSE_PROMPT holds `<POSE>`."""
    if "pose" not in _CACHE:
        import jax

        from chatpose_jax.convert import checkpoint_io
        from chatpose_jax.inference import prompt
        from chatpose_jax.inference.session import ChatModel
        from chatpose_jax.model.config import LoraConfig
        from chatpose_jax.model.lora import merge_lora

        model = ChatModel.load(tiny_workdir(tmp_path_factory))
        config = dataclasses.replace(model.config, lora=LoraConfig(rank=0))
        params = merge_lora(model.params, model.lora, model.config.lora)
        merged = ChatModel(config, params, None, model.tokenizer)
        ids = merged.encode([], prompt.user_turn(POSE_PROMPT, False))
        before = merged.stream(ids, max_new_tokens=6).tokens
        x = int(before[2])
        kernel = params["lm_head"]["kernel"]
        params = {**params, "lm_head": {"kernel": kernel.at[:, config.pose_token_id].set(3.0 * kernel[:, x])}}
        forced = ChatModel(config, params, None, model.tokenizer).stream(ids, max_new_tokens=6)
        assert config.pose_token_id in forced.tokens.tolist(), f"forcing failed: {before} -> {forced.tokens}"
        path = str(tmp_path_factory.mktemp("pose_ckpt") / "model")
        checkpoint_io.save_model_checkpoint(path, config, jax.device_get(params), model.tokenizer)
        _CACHE["pose"] = path
    return _CACHE["pose"]
