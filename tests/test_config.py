"""Experiment configs: the shipped ones validate, overrides apply, bad ones name the field."""

import dataclasses
from pathlib import Path

import ml_collections
import pytest

from chatpose_jax.config_files import repo_config
from chatpose_jax.config_types import ConfigError
from chatpose_jax.default_config import apply_recipe, base_config, defaults
from chatpose_jax.experiment import Experiment, load_experiment

REPO = Path(__file__).resolve().parent.parent
CONFIGS = ["tiny.py", "llava15_7b.py", "llava15_13b.py"]


load = repo_config


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_validate_on_8_devices(name):
    experiment = load_experiment(load(name), num_devices=8)
    assert (
        experiment.model.vision.num_image_tokens
        == (experiment.model.vision.image_size // experiment.model.vision.patch_size) ** 2
    )


def test_llava15_configs_have_the_published_shapes():
    e7 = load_experiment(load("llava15_7b.py"))
    e13 = load_experiment(load("llava15_13b.py"))
    for e in (e7, e13):
        assert (e.model.vision.image_size, e.model.vision.patch_size, e.model.vision.hidden_size) == (336, 14, 1024)
        assert (e.model.vision.num_layers, e.model.vision.num_heads, e.model.vision.feature_layer) == (24, 16, -2)
        assert e.model.vision.num_image_tokens == 576
        assert e.model.text.vocab_size == 32064 and e.model.image_token_id == 32000
    t7, t13 = e7.model.text, e13.model.text
    assert (t7.hidden_size, t7.num_layers, t7.num_heads, t7.intermediate_size) == (4096, 32, 32, 11008)
    assert (t13.hidden_size, t13.num_layers, t13.num_heads, t13.intermediate_size) == (5120, 40, 40, 13824)


def test_recipes_by_name_differ_as_published():
    lisa = load_experiment(load("llava15_13b.py", "lisa"))
    chatpose = load_experiment(load("llava15_13b.py", "chatpose"))
    assert (lisa.model.lora.rank, lisa.model.lora.alpha, lisa.train.max_text_length) == (8, 16.0, 512)
    assert (chatpose.model.lora.rank, chatpose.model.lora.alpha, chatpose.train.max_text_length) == (128, 256.0, 1024)
    assert chatpose.data.ratios == (1.0, 1.0, 2.0)
    # The released script's 1024 positions count the image's 576; the paper trained without augmentation.
    assert chatpose.train.length_counts_image and not lisa.train.length_counts_image
    assert chatpose.model.mm_use_im_start_end and lisa.model.mm_use_im_start_end  # LISA's use_mm_start_end
    assert not chatpose.data.hmr_augment.enabled and chatpose.data.vqa_image_sources == ("coco", "gqa", "vg")
    config = load("llava15_13b.py", "chatpose")
    config.train.max_text_length = 576
    with pytest.raises(ConfigError, match=r"train\.max_text_length=576 with train\.length_counts_image leaves no text"):
        load_experiment(config)
    with pytest.raises(ValueError, match="unknown recipe 'lissa'"):
        apply_recipe(base_config(), "lissa")


@pytest.mark.parametrize("recipe", ["lisa", "chatpose"])
@pytest.mark.parametrize("name", ["llava15_7b.py", "llava15_13b.py"])
def test_full_configs_use_no_generated_body(name, recipe):
    """A full run must not report MPJPE on the synthetic stand-in body; only the tiny demo uses it."""
    assert load_experiment(load(name, recipe)).train.body_model == ""
    assert load_experiment(load("tiny.py")).train.body_model == "synthetic"


def _leaves(section, prefix=""):
    out = {}
    for key in section.keys():
        value = section[key]
        if isinstance(value, ml_collections.ConfigDict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_base_config_takes_its_defaults_from_the_dataclasses():
    """One source of defaults: base_config departs from the dataclasses only where it chooses to, by name."""
    config, typed = _leaves(base_config()), _leaves(defaults(Experiment))
    assert not set(typed) - set(config), f"fields base_config lacks: {sorted(set(typed) - set(config))}"
    departs = {k: (config[k], typed[k]) for k in typed if config[k] != typed[k]}
    # A 7B run: remat on, LISA's 160 sequences in 10 micro-batches. Anything else must equal its dataclass default.
    assert set(departs) == {"model.remat_policy", "train.grad_accum_steps"}, departs
    # What the dataclasses leave open, base_config fills: it validates as it is.
    experiment = load_experiment(base_config())
    assert (experiment.model.pad_token_id, experiment.train.eval_every) == (32001, 500)
    assert experiment.retrieval == Experiment.__dataclass_fields__["retrieval"].default


def test_defaults_leave_out_fields_without_a_default():
    section = defaults(Experiment)
    assert "name" not in section and "num_steps" not in section.train and "hidden_size" not in section.model.text
    assert section.model.text.rope_theta == 10000.0 and section.mesh.data == -1
    with pytest.raises(ConfigError, match=r"config\.name: missing field"):
        load_experiment(section)


def test_result_is_frozen():
    experiment = load_experiment(load("tiny.py"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        experiment.train.num_steps = 3


def test_unknown_field_is_named():
    config = load("tiny.py")
    with config.unlocked():
        config.optimizer.lrr = 1e-4
    with pytest.raises(ConfigError, match=r"config\.optimizer\.lrr: unknown field"):
        load_experiment(config)


def test_wrong_type_is_named():
    config = load("tiny.py").to_dict()  # ConfigDict itself refuses this; JSON or dict configs do not
    config["train"]["num_steps"] = 2.5
    with pytest.raises(ConfigError, match=r"config\.train\.num_steps: expected an integer"):
        load_experiment(config)


def test_literal_outside_choices_is_named():
    config = load("tiny.py")
    config.optimizer.schedule = "exponential"
    with pytest.raises(ConfigError, match=r"config\.optimizer\.schedule: 'exponential' is not one of"):
        load_experiment(config)


def test_mesh_that_does_not_divide_devices_fails():
    config = load("tiny.py")
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 3, 1, 1
    with pytest.raises(ConfigError, match=r"config\.mesh: data=3 x fsdp=1 x tensor=1 = 3 devices, but 8 are present"):
        load_experiment(config, num_devices=8)
    config.mesh.data = -1
    config.mesh.tensor = 3
    with pytest.raises(ConfigError, match=r"config\.mesh: .*does not divide the 8 devices"):
        load_experiment(config, num_devices=8)


def test_batch_that_does_not_divide_data_axes_fails():
    config = load("tiny.py")
    config.train.batch_size = 12
    config.mesh.data, config.mesh.fsdp = 2, 4
    with pytest.raises(ConfigError, match=r"config\.train\.batch_size=12 .* data=2 x fsdp=4 = 8"):
        load_experiment(config, num_devices=8)
    config.mesh.fsdp, config.mesh.tensor = 2, 2
    assert load_experiment(config, num_devices=8).train.micro_batch_size == 12


def test_heads_must_split_over_tensor_axis():
    config = load("tiny.py")  # 4 heads, 2 kv heads
    config.mesh.data, config.mesh.tensor = 2, 4
    config.train.batch_size = 8
    with pytest.raises(ConfigError, match=r"config\.model\.text\.num_kv_heads=2 does not split over mesh\.tensor=4"):
        load_experiment(config, num_devices=8)


def test_grad_accum_must_divide_batch():
    config = load("tiny.py")
    config.train.grad_accum_steps = 3
    with pytest.raises(
        ConfigError, match=r"config\.train: train\.batch_size=8 is not divisible by train\.grad_accum_steps=3"
    ):
        load_experiment(config)


def test_body_losses_need_a_body_model():
    config = load("tiny.py")
    config.train.loss.joints_weight = 0.0  # tiny's joints term would be named first
    config.train.loss.vertices_weight = 1.0
    config.train.body_model = ""
    with pytest.raises(
        ConfigError, match=r"train\.loss\.vertices_weight=1\.0 needs a body model, but train\.body_model is empty"
    ):
        load_experiment(config)


def test_model_token_ids_must_fit_vocabulary():
    config = load("tiny.py")
    config.model.pose_token_id = 5000
    with pytest.raises(ConfigError, match=r"model\.pose_token_id 5000 is outside the vocabulary of 1024"):
        load_experiment(config)


def test_plain_dicts_convert_too():
    config = load("tiny.py").to_dict()
    assert load_experiment(ml_collections.ConfigDict(config)).model.text.num_kv_heads == 2


def _train_cli(*args):
    """chatpose-train ARGS through its `main` in this process (8 test devices)."""
    from tests.cli_in_process import run_console

    return run_console("chatpose-train", *args)


def test_command_line_override_reaches_the_typed_config(tmp_path):
    result = _train_cli(
        f"--config={REPO / 'configs/tiny.py'}",
        f"--workdir={tmp_path}",
        "--config.optimizer.lr=1e-4",
        "--config.mesh.tensor=3",
    )
    # Eight test devices: tensor=3 cannot fit, and the message names the mesh.
    assert result.returncode == 1, result.stderr
    assert "invalid config: config.mesh: data=-1, fsdp=1, tensor=3 does not divide the 8 devices" in result.stderr


def test_command_line_unknown_field_fails_before_work(tmp_path):
    result = _train_cli(f"--config={REPO / 'configs/tiny.py'}", f"--workdir={tmp_path}", "--config.optimizer.lrr=1e-4")
    assert result.returncode != 0
    assert "lrr" in result.stderr


def test_a_config_file_that_is_missing_or_has_no_get_config_is_named(tmp_path):
    from chatpose_jax.config_files import load_config_file

    with pytest.raises(FileNotFoundError, match=f"config file {tmp_path / 'nope.py'} does not exist"):
        load_config_file(tmp_path / "nope.py")
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(AttributeError, match=f"config file {tmp_path / 'empty.py'} defines no get_config"):
        load_config_file(tmp_path / "empty.py")
    assert repo_config("retrieval", "tiny").name == load_config_file(REPO / "configs" / "retrieval.py", "tiny").name
