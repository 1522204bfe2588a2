"""LLaVA-Instruct (150k, or the 665k mix) JSON + COCO images -> multi-turn conversations.

Examples: id str, image (encoded bytes, b'' for a text-only conversation), has_image,
image_name, turns [2k] str (human, assistant, human, ...; `<image>` kept where the file puts it).
"""

from __future__ import annotations

import glob
import os

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders import common

JSON_NAMES = ("llava_instruct_150k.json", "llava_v1_5_mix665k.json")
IMAGE_ROOTS = ("", "coco/train2017", "train2017", "images")  # where `image` paths are looked up


class LlavaInstruct(tfds.core.GeneratorBasedBuilder):
    """Visual instruction-following conversations."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    MANUAL_DIR/llava_instruct_150k.json (or llava_v1_5_mix665k.json, or pass json_name=...) and the
    images it names, under MANUAL_DIR itself or MANUAL_DIR/coco/train2017/ (COCO train2017).
    """

    def __init__(self, *, strict: bool = False, json_name: str | None = None, **kwargs):
        self._strict, self._json_name = strict, json_name
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "id": tfds.features.Text(),
                    "image": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "has_image": np.bool_,
                    "image_name": tfds.features.Text(),
                    "turns": tfds.features.Sequence(tfds.features.Text()),
                }
            ),
            description="LLaVA visual instruction conversations.",
        )

    def _split_generators(self, dl_manager):
        manual = os.fspath(dl_manager.manual_dir)
        names = (self._json_name,) if self._json_name else JSON_NAMES
        path = common.first_existing(*(os.path.join(manual, n) for n in names))
        if path is None and not self._json_name:
            found = sorted(glob.glob(os.path.join(manual, "*.json")))
            path = found[0] if len(found) == 1 else None
        if path is None:
            raise FileNotFoundError(f"llava_instruct: none of {', '.join(names)} in {manual}")
        records = common.read_json(path)
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of conversations, got {type(records).__name__}")
        return {
            "train": self._generate_examples(path, records, manual, common.BadRecords("llava_instruct", self._strict))
        }

    def _generate_examples(self, path, records, manual, bad):
        count = 0
        for i, record in enumerate(records):
            where = f"{path} entry {i}"
            try:
                turns = [(t["from"], t["value"]) for t in record["conversations"]]
                rid = str(record.get("id", i))
            except (KeyError, TypeError) as e:
                bad.skip("malformed entry", where, f"{type(e).__name__}: {e}")
                continue
            roles = [r for r, _ in turns]
            if (
                len(turns) < 2
                or len(turns) % 2
                or any(r != ("human" if k % 2 == 0 else "gpt") for k, r in enumerate(roles))
            ):
                bad.skip("malformed entry", where, f"turns must alternate human/gpt; got roles {roles}")
                continue
            image, name = b"", str(record.get("image", "") or "")
            if name:
                image_path = common.first_existing(*(os.path.join(manual, root, name) for root in IMAGE_ROOTS))
                if image_path is None:
                    bad.skip("missing image", os.path.join(manual, name), where)
                    continue
                image = common.read_image_bytes(image_path, bad)
                if image is None:
                    continue
            count += 1
            yield (
                f"{i}",
                {
                    "id": rid,
                    "image": image,
                    "has_image": bool(name),
                    "image_name": name,
                    "turns": [str(v) for _, v in turns],
                },
            )
        common.require_records("llava_instruct", "train", count, path)
