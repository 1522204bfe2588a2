"""export-hf: a trained tiny model as a Hugging Face folder that transformers runs with our logits, and back."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from chatpose_jax.convert.hf import load_llava
from chatpose_jax.export.hf_export import ExportError, export_checkpoint, export_hf
from chatpose_jax.model import chatpose
from chatpose_jax.model.lora import merge_lora
from chatpose_jax.train.trained_model import load_trained
from tests import chat_fixtures, jit_model
from tests.cli_in_process import run_console

pytestmark = pytest.mark.slow  # make test-fast leaves this file out (make test runs it)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from data_pipelines.tokenizer import make_synthetic_tokenizer

    folder = str(tmp_path_factory.mktemp("tok"))
    corpus = [f"the person raises the {s} arm and bends the {k} knee" for s in ("left", "right") for k in "ab"]
    make_synthetic_tokenizer(folder, corpus * 50)
    return folder


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The tiny config (2 layers) trained 4 steps on random batches: LoRA, rows and pose head all moved
    (the session's chat_fixtures.tiny_workdir, shared with the chat tests)."""
    return chat_fixtures.tiny_workdir(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(workdir):
    return load_trained(workdir)


@pytest.fixture(scope="module")
def exported(workdir, tokenizer_dir, tmp_path_factory):
    """export-hf of the training workdir, in shards of at most 300 kB (the CLI's own path)."""
    out = str(tmp_path_factory.mktemp("export") / "hf")
    export_checkpoint(workdir, out, tokenizer_dir, max_shard_bytes=300_000)
    return out


def _inputs(config, batch=2, seed=0):
    """int32[B, T] with <s>, text, the image placeholders, text, <POSE>, text; pixels float32[B, 3, H, W]."""
    rng = np.random.RandomState(seed)
    n = config.vision.num_image_tokens
    ids = rng.randint(3, 1000, size=(batch, 5 + n + 8)).astype(np.int64)
    ids[:, 0] = config.bos_token_id
    ids[:, 3 : 3 + n] = config.image_token_id
    ids[:, 3 + n + 4] = config.pose_token_id
    px = rng.randn(batch, 3, config.vision.image_size, config.vision.image_size).astype(np.float32)
    return ids, px


def test_export_loads_in_transformers_with_our_logits(trained, exported):
    from transformers import AutoTokenizer, LlavaForConditionalGeneration

    model, info = LlavaForConditionalGeneration.from_pretrained(exported, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    config = trained.config
    ids, px = _inputs(config)
    ours = jit_model.apply(config, trained.params, trained.lora, jnp.asarray(ids), jnp.asarray(px))
    with torch.no_grad():
        ref = model.float().eval()(input_ids=torch.from_numpy(ids), pixel_values=torch.from_numpy(px)).logits.numpy()
    assert ref.shape == ours.logits.shape
    err = np.abs(np.asarray(ours.logits) - ref).max()
    assert err < 1e-4, f"logits differ by {err}"

    tokenizer = AutoTokenizer.from_pretrained(exported)
    assert tokenizer.convert_tokens_to_ids("<POSE>") == config.pose_token_id == 1002
    assert tokenizer("bend <POSE>")["input_ids"][-1] == config.pose_token_id


def test_export_folder_layout(trained, exported):
    with open(os.path.join(exported, "model.safetensors.index.json")) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1, shards
    sizes = [os.path.getsize(os.path.join(exported, s)) for s in shards]
    # 300 kB of tensor data per shard unless one tensor alone is larger (the 1024 x 128 float32 rows).
    assert all(s < 300_000 + 20_000 or s < 1024 * 128 * 4 + 20_000 for s in sizes), sizes
    assert index["metadata"]["total_size"] == sum(sizes) - sum(_header_bytes(os.path.join(exported, s)) for s in shards)
    with open(os.path.join(exported, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["text_config"]["vocab_size"] == trained.config.text.vocab_size == 1024
    assert cfg["pose_token_id"] == 1002 and cfg["image_token_index"] == 1000
    with open(os.path.join(exported, "generation_config.json")) as f:
        assert json.load(f)["eos_token_id"] == trained.config.eos_token_id
    with open(os.path.join(exported, "pose_head.json")) as f:
        head = json.load(f)
    assert (head["num_joints"], head["hidden_size"], head["pose_token_id"]) == (24, 128, 1002)


def _header_bytes(path):
    with open(path, "rb") as f:
        return 8 + int.from_bytes(f.read(8), "little")


def test_import_of_export_is_exact(trained, exported):
    config, params = load_llava(exported, dtype=trained.config.dtype, param_dtype=trained.config.param_dtype)
    ref = merge_lora(trained.params, trained.lora, trained.config.lora)
    for field in ("vision", "text", "projector", "pose_head", "image_token_id", "pose_token_id", "pad_token_id"):
        assert getattr(config, field) == getattr(trained.config, field), field
    assert jax.tree.structure(params) == jax.tree.structure(ref)

    def same(path, a, b):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and np.array_equal(a, b), jax.tree_util.keystr(path)

    jax.tree.map_with_path(same, params, ref)


def test_lora_export_equals_export_of_merged_params(trained, tmp_path):
    config = trained.config
    with_lora = export_hf(config, trained.params, str(tmp_path / "a"), lora=trained.lora)
    merged = export_hf(config, merge_lora(trained.params, trained.lora, config.lora), str(tmp_path / "b"))
    assert with_lora == merged
    assert (
        np.abs(np.asarray(trained.lora["language_model"]["layers_0"]["self_attn"]["q_proj"]["lora"]["lora_b"])).max()
        > 0
    )
    for name in sorted(set(with_lora.values())) + ["pose_head.safetensors"]:
        with open(tmp_path / "a" / name, "rb") as fa, open(tmp_path / "b" / name, "rb") as fb:
            assert fa.read() == fb.read(), name


def test_scanned_layers_export_like_unrolled(trained, exported, tmp_path):
    import dataclasses

    config, params = load_llava(exported, dtype="float32")
    scan_config = dataclasses.replace(config, scan_layers=True)
    scan_params = dict(params)
    for part, depth in (("language_model", config.text.num_layers), ("vision_tower", config.vision.num_layers)):
        layers = params[part]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[layers[f"layers_{i}"] for i in range(depth)])
        scan_params[part] = {k: v for k, v in layers.items() if not k.startswith("layers_")}
        scan_params[part]["layers"] = stacked
    export_hf(scan_config, scan_params, str(tmp_path / "scan"))
    _, again = load_llava(str(tmp_path / "scan"), dtype="float32")
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), again, params)


def test_existing_folder_and_wrong_tokenizer_are_refused(trained, exported, tokenizer_dir, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite"):
        export_hf(trained.config, trained.params, exported)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.add_tokens(["<extra>"], special_tokens=True)  # 1003 tokens, but <POSE> must sit at 1002
    import dataclasses

    moved = dataclasses.replace(trained.config, pose_token_id=1003)
    with pytest.raises(ExportError, match="<POSE> has id 1002, the model's pose_token_id is 1003"):
        export_hf(moved, trained.params, str(tmp_path / "x"), tokenizer=tokenizer)
    again = run_console("chatpose-convert", "export-hf", "--checkpoint", exported, "--out", exported)
    assert again.returncode == 1 and "exists and is not empty" in again.stderr, again.stderr[-2000:]


def test_export_of_params_sharded_over_devices_is_the_same(trained, tmp_path):
    """Arrays split over a (fsdp 4, tensor 2) mesh are gathered leaf by leaf into the same files."""
    from chatpose_jax.parallel.mesh import DEFAULT_LOGICAL_AXIS_RULES, MeshConfig, make_mesh

    if jax.device_count() < 8:
        pytest.skip("needs 8 (CPU) devices")
    config = trained.config
    mesh = make_mesh(MeshConfig(data=1, fsdp=4, tensor=2), jax.devices()[:8])
    shardings = chatpose.variable_shardings(config, mesh, DEFAULT_LOGICAL_AXIS_RULES)
    params = jax.device_put(trained.params, shardings["params"])
    lora = jax.device_put(trained.lora, shardings["lora"])
    split = params["language_model"]["layers_0"]["mlp"]["gate_proj"]["kernel"]
    assert len({str(s.index) for s in split.addressable_shards}) == 8, split.sharding
    a = export_hf(config, params, str(tmp_path / "sharded"), lora=lora)
    b = export_hf(config, trained.params, str(tmp_path / "single"), lora=trained.lora)
    assert a == b
    for name in sorted(set(a.values())) + ["pose_head.safetensors"]:
        with open(tmp_path / "sharded" / name, "rb") as fa, open(tmp_path / "single" / name, "rb") as fb:
            assert fa.read() == fb.read(), name


def _photo(path, height=90, width=150, seed=0):
    """A random RGB image that is not square, so the processor resizes and crops."""
    from PIL import Image

    Image.fromarray(np.random.RandomState(seed).randint(0, 256, (height, width, 3), np.uint8)).save(path)
    return str(path)


def test_auto_processor_builds_our_inputs_and_generate_gives_our_greedy_tokens(trained, exported, tmp_path):
    """transformers alone (AutoProcessor + LlavaForConditionalGeneration) answers an image prompt as we do."""
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from chatpose_jax.inference import prompt
    from chatpose_jax.inference.session import ChatModel, load_chat_tokenizer

    config = trained.config
    processor = AutoProcessor.from_pretrained(exported)
    question = "the person raises the left arm and bends the right knee"
    image = [{"type": "image"}, {"type": "text", "text": question}]
    text = processor.apply_chat_template([{"role": "user", "content": image}], add_generation_prompt=True)
    assert text == prompt.generation_prompt([], prompt.user_turn(question, True))
    history = [
        {"role": "user", "content": "bend <POSE>"},
        {"role": "assistant", "content": [{"type": "text", "text": "Sure, it is <POSE>."}]},
        {"role": "user", "content": [{"type": "text", "text": question}]},
    ]
    again = processor.apply_chat_template(history, add_generation_prompt=True)
    assert again == prompt.generation_prompt([("bend <POSE>", "Sure, it is <POSE>.")], question)

    path = _photo(tmp_path / "person.png")
    inputs = processor(images=Image.open(path), text=text, return_tensors="pt")
    ids = inputs["input_ids"][0].numpy().astype(np.int32)
    patches = (config.vision.image_size // config.vision.patch_size) ** 2
    assert int((ids == config.image_token_id).sum()) == patches == config.vision.num_image_tokens == 64
    ours = ChatModel(config, trained.params, trained.lora, load_chat_tokenizer(exported, config))
    np.testing.assert_array_equal(ids, ours.encode([], prompt.user_turn(question, True)))
    pixels = ours.pixel_values(path)
    # Both resize with PIL's bicubic on uint8, then the same float32 arithmetic.
    np.testing.assert_allclose(inputs["pixel_values"][0].numpy(), pixels, atol=1e-5)

    model = LlavaForConditionalGeneration.from_pretrained(exported).float().eval()
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)[0, len(ids) :].tolist()
    answer = ours.stream(ids, pixels, max_new_tokens=4)
    assert generated == answer.tokens.tolist() and len(generated) >= 1


def test_pad_trained_models_export_llava_pad_to_square(trained, tmp_path):
    """data.image_aspect="pad" (LLaVA-1.5's expand2square) is LlavaImageProcessor's do_pad, and reads back."""
    from PIL import Image
    from transformers import AutoImageProcessor

    from chatpose_jax.export.hf_processor import write_processor_files
    from chatpose_jax.inference import images
    from chatpose_jax.inference.session import image_aspect_of

    write_processor_files(str(tmp_path), trained.config, "pad")
    processor = AutoImageProcessor.from_pretrained(str(tmp_path))
    size = trained.config.vision.image_size
    for k, (height, width) in enumerate(((90, 150), (150, 90))):
        path = _photo(tmp_path / f"{k}.png", height, width, seed=k)
        got = processor(images=Image.open(path), return_tensors="np")["pixel_values"][0]
        np.testing.assert_allclose(got, images.preprocess_file(path, size, pad_square=True), atol=1e-5)
    assert image_aspect_of(str(tmp_path)) == "pad"
    with pytest.raises(ValueError, match="image_aspect 'square'"):
        write_processor_files(str(tmp_path), trained.config, "square")
