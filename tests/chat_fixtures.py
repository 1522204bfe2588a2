"""Tiny checkpoints for the chat / predict / export tests, made once per test session (all workers).

`tiny_workdir`: a 2-layer tiny ChatPose trained 4 steps on random batches of 8 (tests/train_random_run.py,
run in-process on the 8 test devices: LoRA, new rows and pose head all move) with the synthetic tokenizer
copied to WORKDIR/tokenizer.

`pose_checkpoint`: the same weights (LoRA merged) saved as a model checkpoint, with one change
so that answers hold `<POSE>`: a model that has seen four random batches never says it. The
LM-head column of `<POSE>` becomes 3x the column of the token X that greedy decoding picks at
answer step 2 of `POSE_PROMPT`; the logit of `<POSE>` is then 3x that of X, so wherever X leads with
a positive logit `<POSE>` wins instead. Nothing else changes, so the pose head reads a state the
model really produced, and the pose tests compare real model outputs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from tests.session_cache import once

REPO = Path(__file__).resolve().parent.parent
POSE_PROMPT = "Could you generate the SMPL pose of a person who is sitting with arms raised?"
CORPUS_EXTRA = [
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.",
    "USER: ASSISTANT: hello there, what is the pose? and now? describe a person sitting with arms raised.",
]
STEPS = 4


def tiny_tokenizer(tmp_path_factory) -> str:
    """A folder with the synthetic tokenizer: 1000 pieces, <image> 1000, <pad> 1001, <POSE> 1002."""

    def build(folder):
        from data_pipelines import templates
        from data_pipelines.tokenizer import make_synthetic_tokenizer

        out_dir = str(folder / "tokenizer")
        texts = [*templates.IMAGE_TO_POSE_QUESTIONS, *templates.POSE_ANSWERS, *templates.TEXT_TO_POSE_QUESTIONS]
        make_synthetic_tokenizer(out_dir, texts + CORPUS_EXTRA)
        return out_dir

    return once(tmp_path_factory, "chat_tokenizer", build)


def tiny_workdir(tmp_path_factory) -> str:
    """A training workdir with checkpoints/2, checkpoints/4 and tokenizer/ (trained in this process)."""

    def build(folder):
        from chatpose_jax.experiment import load_experiment
        from chatpose_jax.train.chatpose_task import ChatPoseTask
        from chatpose_jax.train.loop import train_and_evaluate
        from tests.train_random_run import make_source, small_tiny_config

        workdir = str(folder / "workdir")
        # Batch 8: one row per test device (mesh.data=-1).
        experiment = load_experiment(small_tiny_config(STEPS, ["train.batch_size=8"]))
        train_and_evaluate(experiment, workdir, ChatPoseTask(), make_source=make_source, progress=False)
        assert os.path.isdir(os.path.join(workdir, "checkpoints", str(STEPS)))
        shutil.copytree(tiny_tokenizer(tmp_path_factory), os.path.join(workdir, "tokenizer"))
        return workdir

    return once(tmp_path_factory, "chat_workdir", build)


def pose_checkpoint(tmp_path_factory) -> str:
    """A model checkpoint (config + params + tokenizer) whose greedy answer to POSE_PROMPT holds `<POSE>`."""

    def build(folder):
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
        path = str(folder / "model")
        checkpoint_io.save_model_checkpoint(path, config, jax.device_get(params), model.tokenizer)
        return path

    return once(tmp_path_factory, "chat_pose_checkpoint", build)
