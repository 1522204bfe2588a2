"""A retrieval model trained briefly on the session's synthetic PoseScript data, and a random-init pose
checkpoint (each made once per session, for all workers)."""

from __future__ import annotations

import os

from chatpose_jax.config_files import repo_config
from tests.data_synth_cache import synthetic_data
from tests.session_cache import once

STEPS = 150


def tiny_model_config(num_layers: int | None = None):
    """The ModelConfig of configs/tiny.py (with `num_layers` decoder and tower layers when given)."""
    from chatpose_jax.experiment import load_experiment

    c = repo_config("tiny")
    if num_layers:
        c.model.text.num_layers = c.model.vision.num_layers = num_layers
    return load_experiment(c, 1).model


def random_pose_checkpoint(tmp_path_factory) -> str:
    """A model checkpoint of a random-init 2-layer tiny ChatPose on the synthetic data's tokenizer.

    No training: the LM-head column of <POSE> becomes 2x the column of the token X that greedy
    decoding gives first after the 3DPW question, so answers say <POSE> where X would lead and the
    pose head reads real decoder states (as chat_fixtures.pose_checkpoint does for a trained model).
    """

    def build(folder):
        import dataclasses

        import jax

        from chatpose_jax.convert import checkpoint_io
        from chatpose_jax.eval.benchmarks import question_for
        from chatpose_jax.inference import prompt
        from chatpose_jax.inference.session import ChatModel, load_chat_tokenizer
        from chatpose_jax.model import chatpose
        from chatpose_jax.model.config import LoraConfig

        config = tiny_model_config(num_layers=2)
        config = dataclasses.replace(config, lora=LoraConfig(rank=0))
        params, _ = chatpose.init_params(config, jax.random.key(7))
        tokenizer = load_chat_tokenizer(synthetic_data(tmp_path_factory)["raw"]["tokenizer"], config)
        plain = ChatModel(config, params, None, tokenizer)
        ids = plain.encode([], prompt.user_turn(question_for("3dpw", ""), False))
        x = int(plain.stream(ids, max_new_tokens=1).tokens[0])
        kernel = params["lm_head"]["kernel"]
        params = {**params, "lm_head": {"kernel": kernel.at[:, config.pose_token_id].set(2.0 * kernel[:, x])}}
        path = str(folder / "model")
        checkpoint_io.save_model_checkpoint(path, config, jax.device_get(params), tokenizer)
        return path

    return once(tmp_path_factory, "random_pose_checkpoint", build)


def retrieval_config(data_dir: str, tokenizer: str, steps: int = STEPS):
    c = repo_config("retrieval", "tiny")
    c.data.data_dir, c.data.tokenizer = data_dir, tokenizer
    c.train.num_steps, c.train.batch_size, c.train.eval_every, c.train.checkpoint_every = steps, 16, 0, steps
    c.mesh.data = -1
    return c


def retrieval_workdir(tmp_path_factory) -> str:
    """WORKDIR of `chatpose-train --config configs/retrieval.py:tiny` run in-process for STEPS steps."""

    def build(folder):
        from chatpose_jax.experiment import load_experiment
        from chatpose_jax.retrieval.task import RetrievalTask
        from chatpose_jax.train.loop import train_and_evaluate

        data = synthetic_data(tmp_path_factory)
        workdir = str(folder / "w")
        experiment = load_experiment(retrieval_config(data["data_dir"], data["raw"]["tokenizer"]))
        train_and_evaluate(experiment, workdir, RetrievalTask(), progress=False)
        assert os.path.exists(os.path.join(workdir, "retrieval_best", "info.json"))
        return workdir

    return once(tmp_path_factory, "retrieval_workdir", build)
