"""Package seams: the library runs without TensorFlow; the data side hides accelerators from TF."""

import subprocess
import sys


def python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_library_does_not_import_tensorflow():
    code = (
        "import sys, chatpose_jax.experiment, chatpose_jax.parallel.mesh, chatpose_jax.cli.common\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets', 'data_pipelines')]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = python(code)
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_data_pipelines_hides_accelerators_from_tensorflow():
    code = (
        "import data_pipelines, tensorflow as tf\n"
        "assert tf.config.get_visible_devices('GPU') == [], tf.config.get_visible_devices('GPU')\n"
        "assert all(d.device_type == 'CPU' for d in tf.config.get_visible_devices())\n"
        "print('ok')"
    )
    result = python(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_chatpose_is_importable_from_the_model_package():
    from chatpose_jax.model import ChatPose, ModelConfig, chatpose

    assert ChatPose is chatpose.ChatPose and ModelConfig is chatpose.ModelConfig


def test_load_llava_says_it_computes_in_bfloat16_and_how_to_get_float32():
    from chatpose_jax.convert.hf import load_llava
    from chatpose_jax.model.config import ModelConfig

    assert ModelConfig.__dataclass_fields__["dtype"].default == "bfloat16"
    doc = " ".join(load_llava.__doc__.split())
    assert "computes in bfloat16" in doc and 'dtype="float32"' in doc
