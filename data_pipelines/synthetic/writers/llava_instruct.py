"""LLaVA-Instruct JSON with COCO-named pictures, and its questions about each scene."""

from __future__ import annotations

import os

import numpy as np

from data_pipelines.synthetic import posecodes, scenes
from data_pipelines.synthetic.writers.common import draw_scenes, dump_json, save_jpeg

_YES_NO = ("Yes.", "No.")


def vqa_turns(scene: scenes.Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    """2-3 question / answer rounds about a scene, each answer true of its picture."""
    codes = posecodes.posecodes(scene.joints)
    facing = abs(scene.yaw) < np.radians(60)
    away = abs(scene.yaw) > np.radians(120)
    side = rng.choice(["left", "right"])
    hand_up = codes.get(f"{side}_hand") == "above the head"
    pool = [
        ("What colour is the background?", f"The background is {scene.background}."),
        ("What colour is the person?", f"The person is {scene.body_color}."),
        (
            "Is the person facing the camera?",
            "Yes, the person faces the camera."
            if facing
            else ("No, the person faces away from the camera." if away else "The person is turned to the side."),
        ),
        (f"Is the person's {side} hand above their head?", _YES_NO[0] if hand_up else _YES_NO[1]),
        ("Describe the person's pose.", posecodes.describe(scene.joints, rng, human=True)),
    ]
    order = rng.permutation(len(pool))[: rng.integers(2, 4)]
    return [pool[i] for i in order]


def write_llava_instruct(root: str, body_model, num_images: int = 120, seed: int = 2) -> dict:
    """LLaVA-Instruct JSON (id, image, conversations [{from, value}]) and COCO-named images."""
    rng = np.random.default_rng(seed)
    records = []
    for i, scene in enumerate(draw_scenes(body_model, num_images, seed)):
        image = f"{100000 + i:012d}.jpg"
        save_jpeg(os.path.join(root, "coco", "train2017", image), scene.image)
        conversation = []
        for k, (q, a) in enumerate(vqa_turns(scene, rng)):
            value = (f"<image>\n{q}" if rng.random() < 0.5 else f"{q}\n<image>") if k == 0 else q
            conversation += [{"from": "human", "value": value}, {"from": "gpt", "value": a}]
        records.append({"id": f"{100000 + i:012d}", "image": image, "conversations": conversation})
    dump_json(os.path.join(root, "llava_instruct_150k.json"), records)
    return {"records": records}
