"""The keypoint-text recipe's data (the supplement's LLaVA*): HMR people asked for their visible keypoints and
answered with the keypoints of their own crop; the recipes that train it."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from data_synth_cache import synthetic_data

from chatpose_jax.experiment import HmrAugmentConfig, load_experiment
from data_pipelines import conversation, keypoint_text, pipeline
from data_pipelines.tokenizer import load_tokenizer

SIZE = 112  # the tiny model's image size: the crop the keypoints are written in


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_data(tmp_path_factory)


def _config(data, **kw):
    fields = dict(
        data_dir=data["data_dir"], datasets=("hmr_keypoints",), ratios=(1.0,), batch_size=4, max_text_length=384,
        image_size=SIZE, num_image_tokens=64, shuffle_buffer=8, seed=0,
    )  # fmt: skip
    fields.update(kw)
    return pipeline.PipelineConfig(**fields)


def test_hmr_people_are_asked_for_the_keypoints_of_their_crop(data):
    people = {}
    for ex in tfds.as_numpy(tfds.builder("hmr_images", data_dir=data["data_dir"]).as_dataset(split="train")):
        crop = ex["keypoints_2d"][:25].astype(np.float64)
        center, side = ex["center"].astype(np.float64), 200.0 * float(ex["scale"])
        # Independently of keypoint_text: SPIN's box of side 200 * scale, pixel centres at integers.
        crop[:, :2] = (crop[:, :2] - center) * SIZE / side + (SIZE - 1) / 2
        people[(*np.round(ex["center"], 3), round(float(ex["scale"]), 5))] = crop
    seen = [
        p for p in people.values() if np.any((p[:, 2] > 0) & np.all(np.abs(p[:, :2] - SIZE / 2 + 0.5) < SIZE / 2, 1))
    ]
    elements = list(tfds.as_numpy(pipeline.source_stream(_config(data), 0, 0, 1).take(len(seen))))
    assert len(seen) >= 5, "the synthetic HMR data should hold people with keypoints"
    for el in elements:
        assert el["kind"] == conversation.IMAGE_TO_KEYPOINTS and el["has_crop"] and not el["has_pose"]
        answer = el["texts"].decode()
        assert answer.startswith(keypoint_text.ANSWER_PREFIX), answer
        truth = people[(*np.round(el["crop"][:2], 3), round(float(el["crop"][2]), 5))]
        visible = (truth[:, 2] > 0) & np.all(
            (np.floor(truth[:, :2] + 0.5) >= 0) & (np.floor(truth[:, :2] + 0.5) < SIZE), 1
        )
        parsed = keypoint_text.parse_keypoints_answer(answer)
        np.testing.assert_array_equal(parsed[:, 2] > 0, visible)
        np.testing.assert_array_equal(parsed[visible, :2], np.floor(truth[visible, :2] + 0.5))


def test_keypoint_batches_learn_the_answer_and_hold_no_pose(data):
    tokenizer = load_tokenizer(data["raw"]["tokenizer"])
    batch = next(pipeline.BatchIterator(_config(data), tokenizer, 0, 1))
    assert not batch["pose_mask"].any() and batch["has_image"].all()
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        learned = tokenizer.decode(labels[labels >= 0], skip_special_tokens=True)
        assert learned.startswith(keypoint_text.ANSWER_PREFIX.strip()), learned
        prompt = tokenizer.decode(ids[labels < 0], skip_special_tokens=True)
        assert keypoint_text.KEYPOINTS_QUESTION.split(",")[0] in prompt, prompt


def test_keypoint_answers_refuse_augmented_crops(data):
    with pytest.raises(ValueError, match="data.hmr_augment.enabled=False"):
        pipeline.source_stream(_config(data, hmr_augment=HmrAugmentConfig(enabled=True)), 0, 0, 1)


def test_keypoint_recipes_train_vqa_and_keypoints():
    from chatpose_jax.config_files import repo_config
    from chatpose_jax.default_config import KEYPOINT_DATASETS

    for config in (repo_config("tiny", "keypoints"), repo_config("llava15_7b", "keypoints")):
        experiment = load_experiment(config, 8)
        assert experiment.data.datasets == KEYPOINT_DATASETS == ("llava_instruct", "hmr_keypoints")
        assert not experiment.data.hmr_augment.enabled
    with pytest.raises(ValueError, match="configs/tiny.py:joints"):
        repo_config("tiny", "joints")
