"""Small synthetic raw datasets and their prepared TFDS copies, made once per test session."""

from __future__ import annotations

import os

_CACHE: dict[str, dict] = {}

SIZES = dict(num_poses=60, num_hmr_images=30, num_vqa_images=16, num_spg=10, num_rpe=6)


def synthetic_data(tmp_path_factory) -> dict:
    """{'raw': {name: manual folder, 'tokenizer', 'body_model'}, 'data_dir': prepared TFDS dir, 'info': writer outputs}."""
    if "data" not in _CACHE:
        import data_pipelines  # noqa: F401  (registers the builders)
        from data_pipelines.prepare import prepare
        from data_pipelines.synthetic.writers import synthesize

        root = str(tmp_path_factory.mktemp("synth"))
        raw = synthesize(os.path.join(root, "raw"), seed=0, **SIZES)
        data_dir = os.path.join(root, "tfds")
        for name in ("posescript", "hmr_images", "llava_instruct", "spg", "rpe"):
            prepare(name, raw[name], data_dir)
        _CACHE["data"] = {"raw": raw, "data_dir": data_dir, "root": root}
    return _CACHE["data"]
