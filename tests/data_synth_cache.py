"""Small synthetic raw datasets and their prepared TFDS copies, made once per test session (all workers)."""

from __future__ import annotations

import os

from tests.session_cache import once

SIZES = dict(num_poses=60, num_hmr_images=30, num_vqa_images=16, num_spg=10, num_rpe=6)


def _build(folder) -> dict:
    import data_pipelines  # noqa: F401  (registers the builders)
    from data_pipelines.prepare import prepare
    from data_pipelines.synthetic.writers import synthesize

    root = str(folder)
    raw = synthesize(os.path.join(root, "raw"), seed=0, **SIZES)
    data_dir = os.path.join(root, "tfds")
    for name in ("posescript", "hmr_images", "llava_instruct", "spg", "rpe"):
        prepare(name, raw[name], data_dir)
    # 4D-Humans' evaluation files too (chatpose-eval --protocol hmr2): nobody writes into data_dir later.
    prepare("hmr_images", raw["hmr_images"], data_dir, config="hmr2")
    return {"raw": raw, "data_dir": data_dir, "root": root}


def synthetic_data(tmp_path_factory) -> dict:
    """{'raw': {name: manual folder, 'tokenizer', 'body_model'}, 'data_dir': prepared TFDS dir, 'root'}."""
    return once(tmp_path_factory, "synthetic_data", _build)
