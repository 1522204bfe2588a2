"""Mixed conversation streams in tf.data, batched in the layout of `data_pipelines.batch`.

Flow, per host (process) h of H:

  source s: TFDS split -> host shard (`tfds.even_splits`, disjoint, together complete) -> common
            element (kind, texts, image bytes, crop, pose) -> shuffle (seed, reshuffled each epoch)
            -> repeat
  mixture:  `sample_from_datasets(streams, ratios, seed)` -> enumerate (element index)
            -> images (decode, person crop, pad-to-square, CLIP resize + normalise; parallel,
               deterministic) -> chunks of 64 -> prefetch. Then, in Python (no callback inside
               tf.data, whose iterators deadlock on destruction when one is in flight):
               conversation templates + tokenisation (one batched tokenizer call per chunk; a
               sample whose `<POSE>` would be truncated is dropped and counted) -> local batch
  host:     pad length to the smallest bucket that fits (agreed across hosts) -> numpy dict;
            `global_batch` assembles the hosts' parts into `jax.Array`s sharded over the mesh's
            data axes.

Determinism and resume: every random choice is seeded (per-source shuffles, the mixture, and
each sample's templates from (seed, element index)), and tf.data keeps the order, so the
stream is a pure function of the seed and the host. Every batch carries the index of its last
element; the iterator's state is {next element index, seed, host, ...} (a small JSON-able
dict), and `restore` rebuilds the stream and skips that many elements before any image is
decoded or any text tokenised (skipping reads records only).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from data_pipelines import augment, conversation, images, keypoint_text, prepared, templates
from data_pipelines.tokenizer import special_ids

SEPARATOR = "\x1f"  # joins a sample's texts into one string between tf.data and the tokenizer
TOKENIZE_CHUNK = 64
STATE_VERSION = 1
# Which split each dataset trains on.
TRAIN_SPLITS = {"posescript": "train", "hmr_images": "train", "hmr_keypoints": "train", "llava_instruct": "train",
                "spg": "test", "rpe": "test"}  # fmt: skip
# Training sources that read another dataset: the HMR people asked for their keypoints as text (the
# supplement's LLaVA*) instead of their SMPL pose.
BUILDER_OF = {"hmr_keypoints": "hmr_images"}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline needs, from the experiment's data / train / model sections.

    batch_size is global (all hosts); the host's part is batch_size / process_count.
    buckets: lengths a batch may be padded to (sorted; default 4 even steps up to the longest).
    """

    data_dir: str
    datasets: tuple[str, ...]
    ratios: tuple[float, ...]
    batch_size: int
    max_text_length: int
    image_size: int
    num_image_tokens: int
    max_poses: int = 1
    image_aspect: str = "none"
    extra_templates: bool = False  # our paraphrases besides the supplement's Tables 1-3
    hmr_augment: object = None  # chatpose_jax.experiment.HmrAugmentConfig; None = no augmentation
    vqa_image_sources: tuple[str, ...] = ("coco", "gqa", "vg")  # VQA records kept; () = all, text-only too
    length_counts_image: bool = False  # max_text_length counts image positions (LISA's model_max_length)
    image_start_end: bool = False  # images written <im_start><image><im_end> (model.mm_use_im_start_end)
    shuffle_buffer: int = 1000
    seed: int = 0
    buckets: tuple[int, ...] = ()
    splits: tuple[str, ...] = ()  # per dataset; default TRAIN_SPLITS
    pack: bool = False  # several conversations per row (`pack_rows`); max_poses then bounds a row's <POSE>s
    pack_length: int = 0  # length of a packed row; 0 = the longest bucket

    @property
    def max_length(self) -> int:
        """Positions per sequence: max_text_length, plus one image's tokens unless it counts them already."""
        return self.max_text_length + (0 if self.length_counts_image else self.num_image_tokens)

    @property
    def bucket_lengths(self) -> tuple[int, ...]:
        if self.buckets:
            return tuple(sorted(self.buckets))
        step = -(-self.max_length // 4)
        return tuple(sorted({min(self.max_length, -(-step * k // 8) * 8) for k in range(1, 5)} | {self.max_length}))


def pipeline_config(experiment, **overrides) -> PipelineConfig:
    """The PipelineConfig of a validated `chatpose_jax.experiment.Experiment` (read by attribute only)."""
    vision = experiment.model.vision
    fields = dict(
        data_dir=experiment.data.data_dir,
        datasets=tuple(experiment.data.datasets),
        ratios=tuple(experiment.data.ratios),
        batch_size=experiment.train.batch_size,
        max_text_length=experiment.train.max_text_length,
        image_size=vision.image_size,
        num_image_tokens=(vision.image_size // vision.patch_size) ** 2,
        max_poses=experiment.model.pose_head.max_poses,
        image_aspect=experiment.data.image_aspect,
        extra_templates=experiment.data.extra_templates,
        hmr_augment=experiment.data.hmr_augment,
        vqa_image_sources=tuple(experiment.data.vqa_image_sources),
        length_counts_image=experiment.train.length_counts_image,
        image_start_end=experiment.model.mm_use_im_start_end,
        shuffle_buffer=experiment.data.shuffle_buffer,
        seed=experiment.train.seed,
        pack=experiment.data.pack,
        pack_length=experiment.data.pack_length,
    )
    fields.update(overrides)
    return PipelineConfig(**fields)


# ---- sources -------------------------------------------------------------------------------------


def _element(kind, texts, image, has_image, crop, has_crop, global_orient, body_pose, betas, has_pose, source,
             num_human=0):  # fmt: skip
    """The common element every source is mapped to (before images and tokens); the first `num_human`
    texts are human-written captions (PoseScript), the others automatic."""
    return {
        "num_human": tf.cast(num_human, tf.int32),
        "kind": tf.cast(kind, tf.int32),
        "texts": tf.strings.reduce_join(texts, separator=SEPARATOR),
        "image": image,
        "has_image": tf.cast(has_image, tf.bool),
        "crop": tf.cast(crop, tf.float32),
        "has_crop": tf.cast(has_crop, tf.bool),
        "global_orient": tf.cast(global_orient, tf.float32),
        "body_pose": tf.cast(body_pose, tf.float32),
        "betas": tf.cast(betas, tf.float32),
        "has_pose": tf.cast(has_pose, tf.bool),
        "source": tf.constant(source, tf.int32),
    }


def _keypoint_answer(image_size: int):
    """(keypoints_2d float32[44, 3] full-image pixels, center float32[2], scale) -> the keypoint answer for
    the person crop at `image_size` (bytes), b"" when no BODY_25 keypoint lands on the crop."""

    def answer(keypoints, center, scale):
        crop = keypoint_text.to_crop_pixels(keypoints[: keypoint_text.NUM_KEYPOINTS], center, scale, image_size)
        if not keypoint_text.on_crop(crop, image_size).any():
            return b""
        return keypoint_text.keypoints_answer(crop, image_size).encode()

    return answer


def _adapter(name: str, source: int, image_size: int = 0):
    """TFDS example of dataset `name` -> common element (`image_size`: the crop keypoints are written for)."""
    no_crop, no_betas, none = tf.zeros([3]), tf.zeros([10]), tf.constant(b"")
    if name == "posescript":
        return lambda ex: _element(
            conversation.TEXT_TO_POSE, tf.concat([ex["texts_human"], ex["texts_automatic"]], 0), none, False,
            no_crop, False, ex["global_orient"], ex["body_pose"], no_betas, True, source,
            num_human=tf.size(ex["texts_human"]),
        )  # fmt: skip
    if name == "spg":
        return lambda ex: _element(
            conversation.TEXT_TO_POSE, ex["description"][None], none, False, no_crop, False,
            ex["global_orient"], ex["body_pose"], no_betas, True, source,
        )  # fmt: skip
    if name in ("hmr_images", "rpe"):

        def adapt(ex):  # fmt: skip
            texts = ex["description"][None] if name == "rpe" else tf.zeros([0], tf.string)
            crop = tf.concat([ex["center"], ex["scale"][None]], 0)
            return _element(conversation.IMAGE_TO_POSE, texts, ex["image"], True, crop, True,
                            ex["global_orient"], ex["body_pose"], ex["betas"], True, source)  # fmt: skip

        return adapt
    if name == "hmr_keypoints":
        answer_fn = _keypoint_answer(image_size)

        def adapt_keypoints(ex):
            answer = tf.numpy_function(answer_fn, [ex["keypoints_2d"], ex["center"], ex["scale"]], tf.string,
                                       stateful=False)  # fmt: skip
            crop = tf.concat([ex["center"], ex["scale"][None]], 0)
            return _element(conversation.IMAGE_TO_KEYPOINTS, tf.reshape(answer, [1]), ex["image"], True, crop, True,
                            tf.zeros([3]), tf.zeros([69]), no_betas, False, source)  # fmt: skip

        return adapt_keypoints
    if name == "llava_instruct":
        return lambda ex: _element(
            conversation.VQA, ex["turns"], ex["image"], ex["has_image"], no_crop, False,
            tf.zeros([3]), tf.zeros([69]), no_betas, False, source,
        )  # fmt: skip
    raise KeyError(f"no pipeline adapter for dataset {name!r}; known: {', '.join(TRAIN_SPLITS)}")


def vqa_source_filter(sources: Sequence[str]):
    """llava_instruct example -> whether its image comes from one of `sources` (ChatPose keeps COCO, GQA, VG).

    The source is the first folder of `image_name` (mix665k: 'coco/train2017/...', 'gqa/images/...',
    'vg/VG_100K/...', 'ocr_vqa/...', 'textvqa/...'); a bare file name is LLaVA-Instruct-150k's COCO
    train2017. Records without an image are dropped.
    """
    wanted = tf.constant([s.lower() for s in sources])

    def keep(ex):
        name = ex["image_name"]
        first = tf.strings.lower(tf.strings.split(name, "/")[0])
        source = tf.where(tf.strings.regex_full_match(name, "[^/]+"), tf.constant("coco"), first)
        return ex["has_image"] & tf.reduce_any(tf.equal(source, wanted))

    return keep


def host_split(split: str, num_examples: int, process_index: int, process_count: int) -> str:
    """This host's part of `split`: contiguous, disjoint across hosts, together the whole split."""
    if num_examples < process_count:
        raise ValueError(f"split {split!r} has {num_examples} examples for {process_count} hosts")
    return tfds.even_splits(split, n=process_count, drop_remainder=False)[process_index]


def source_stream(config: PipelineConfig, source: int, process_index: int, process_count: int) -> tf.data.Dataset:
    """One dataset's endless, shuffled stream of common elements for this host."""
    name = config.datasets[source]
    split = config.splits[source] if config.splits else TRAIN_SPLITS.get(name, "train")
    if name == "hmr_keypoints" and config.hmr_augment is not None and config.hmr_augment.enabled:
        raise ValueError(
            "hmr_keypoints: keypoint answers are written for the unaugmented person crop; set "
            "data.hmr_augment.enabled=False"
        )
    builder = prepared.open_builder(BUILDER_OF.get(name, name), config.data_dir)
    if split not in builder.info.splits:
        raise FileNotFoundError(
            f"{name}: no split {split!r} in {config.data_dir} (prepare it with chatpose-data prepare)"
        )
    num = builder.info.splits[split].num_examples
    if num == 0:
        raise FileNotFoundError(f"{name}: split {split!r} in {config.data_dir} has no examples")
    decoders = {"image": tfds.decode.SkipDecoding()} if "image" in builder.info.features else None
    if name == "llava_instruct":
        decoders = None  # its image is raw bytes already
    ds = builder.as_dataset(
        split=host_split(split, num, process_index, process_count),
        shuffle_files=False,
        decoders=decoders,
        read_config=tfds.ReadConfig(add_tfds_id=False, try_autocache=False),
    )
    if name == "hmr_images":
        ds = ds.filter(lambda ex: ex["has_smpl"])
    if name == "llava_instruct" and config.vqa_image_sources:
        ds = ds.filter(vqa_source_filter(config.vqa_image_sources))
    ds = ds.map(_adapter(name, source, config.image_size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if name == "hmr_keypoints":  # people with no keypoint on their crop have nothing to answer
        ds = ds.filter(lambda el: tf.strings.length(el["texts"]) > 0)
    seed = np.random.SeedSequence([config.seed, source, process_index]).generate_state(1)[0]
    return ds.shuffle(config.shuffle_buffer, seed=int(seed), reshuffle_each_iteration=True).repeat()


def mixed_elements(config: PipelineConfig, process_index: int, process_count: int, skip: int = 0) -> tf.data.Dataset:
    """(element index, common element) of the mixture, from index `skip` on."""
    active = [i for i, r in enumerate(config.ratios) if r > 0]
    streams = [source_stream(config, i, process_index, process_count) for i in active]
    weights = [float(config.ratios[i]) / sum(config.ratios[j] for j in active) for i in active]
    seed = int(np.random.SeedSequence([config.seed, 1_000_003, process_index]).generate_state(1)[0])
    mixed = streams[0] if len(streams) == 1 else tf.data.Dataset.sample_from_datasets(streams, weights, seed=seed)
    return mixed.enumerate().skip(skip)


# ---- images and tokens ---------------------------------------------------------------------------


def image_fn(image_size: int, pad_square: bool, hmr_augment=None, seed: int = 0):
    """(index, element) -> (index, element + pixel_values float32[3, S, S]), zeros without an image.

    With `hmr_augment.enabled` (chatpose_jax.experiment.HmrAugmentConfig), person crops and their
    poses are augmented (`data_pipelines.augment`), each by choices drawn from (seed, element index).
    """
    aug = hmr_augment if hmr_augment is not None and hmr_augment.enabled else None

    def load(index, el):
        choice = aug and augment.draw(aug, tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)]))
        augmented = aug is not None and el["has_crop"]  # a Python bool when off, so nothing is traced

        def person(image):
            scale = el["crop"][2] * choice["scale"] if aug else el["crop"][2]
            crop = images.crop_person(image, el["crop"][:2], scale)
            return augment.augment_crop(crop, choice) if aug else crop

        def process():
            image = images.decode(el["image"])
            image = tf.cond(el["has_crop"], lambda: person(image), lambda: tf.cast(image, tf.float32))
            return images.clip_preprocess(image, image_size, pad_square=pad_square)

        pixels = tf.cond(el["has_image"], process, lambda: tf.zeros([3, image_size, image_size], tf.float32))
        out = dict(el)
        del out["image"]
        out["pixel_values"] = tf.ensure_shape(pixels, [3, image_size, image_size])
        if aug is not None:
            go, bp = augment.augment_pose(el["global_orient"], el["body_pose"], choice)
            out["global_orient"] = tf.where(augmented, go, el["global_orient"])
            out["body_pose"] = tf.where(augmented, bp, el["body_pose"])
        return index, out

    return load


class Tokenize:
    """Chunk of elements -> token arrays; counts dropped samples (thread-safe)."""

    def __init__(self, tokenizer, config: PipelineConfig):
        self.tokenizer, self.config = tokenizer, config
        self.ids = special_ids(tokenizer)
        self.templates = templates.template_set(config.extra_templates)
        self.dropped: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, index, kind, texts, has_image, num_human=None):
        conversations = []
        num_human = np.zeros(len(index), np.int32) if num_human is None else num_human
        for i, k, t, img, h in zip(index, kind, texts, has_image, num_human, strict=True):
            rng = np.random.default_rng([self.config.seed, int(i)])
            parts = [p for p in t.decode("utf-8").split(SEPARATOR)] if t else []
            conversations.append(conversation.make_turns(int(k), parts, rng, bool(img), self.templates, int(h)))
        enc = conversation.encode(
            self.tokenizer,
            conversations,
            self.config.num_image_tokens,
            self.config.max_text_length,
            self.config.max_length,
            length_counts_image=self.config.length_counts_image,
            image_start_end=self.config.image_start_end,
        )
        num_pose = (enc.input_ids == self.ids["pose"]).sum(axis=1)
        keep = enc.keep & (num_pose <= self.config.max_poses)
        with self._lock:
            for reason in enc.drop_reason:
                if reason:
                    self.dropped[reason] = self.dropped.get(reason, 0) + 1
            extra = int((enc.keep & ~keep).sum())
            if extra:
                self.dropped["too_many_poses"] = self.dropped.get("too_many_poses", 0) + extra
        return enc.input_ids, enc.labels, enc.attention_mask, keep, num_pose.astype(np.int32)


ROW_KEYS = ("index", "pixel_values", "has_image", "global_orient", "body_pose", "betas", "has_pose", "source")


def element_chunks(config: PipelineConfig, process_index: int, process_count: int, skip: int) -> tf.data.Dataset:
    """The host's tf.data stream of image-processed elements in chunks of TOKENIZE_CHUNK (no Python inside).

    Tokenisation runs in Python on the chunks this yields (`BatchIterator`): a Python callback
    inside tf.data (py_function / numpy_function in a parallel map) deadlocks when an iterator is
    destroyed mid-stream, which resuming and evaluation do.
    """
    ds = mixed_elements(config, process_index, process_count, skip)
    load = image_fn(config.image_size, config.image_aspect == "pad", config.hmr_augment, config.seed)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(lambda index, el: {"index": index, **{k: v for k, v in el.items() if k not in ("crop", "has_crop")}})
    ds = ds.batch(TOKENIZE_CHUNK)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def tokenize_chunk(tokenize: Tokenize, chunk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A chunk of elements -> the kept rows with input_ids / labels / attention_mask / num_pose added."""
    ids, labels, mask, keep, num_pose = tokenize(
        chunk["index"], chunk["kind"], chunk["texts"], chunk["has_image"], chunk["num_human"]
    )
    rows = {k: chunk[k][keep] for k in ROW_KEYS}
    rows.update(input_ids=ids[keep], labels=labels[keep], attention_mask=mask[keep], num_pose=num_pose[keep])
    return rows


def to_layout(el: dict, length: int, max_poses: int) -> dict[str, np.ndarray]:
    """A local tf.data batch (numpy) -> the batch layout, sequences cut to `length`."""
    b = el["input_ids"].shape[0]
    pose_mask = np.zeros((b, max_poses), bool)
    pose_mask[:, 0] = el["has_pose"] & (el["num_pose"] > 0)
    poses = {}
    for key, width in (("global_orient", 3), ("body_pose", 69), ("betas", 10)):
        out = np.zeros((b, max_poses, width), np.float32)
        out[:, 0] = el[key]
        poses[f"pose_{key}"] = out * pose_mask[..., None]
    return {
        "input_ids": np.ascontiguousarray(el["input_ids"][:, :length]),
        "attention_mask": np.ascontiguousarray(el["attention_mask"][:, :length]),
        "labels": np.ascontiguousarray(el["labels"][:, :length]),
        "pixel_values": el["pixel_values"],
        "has_image": el["has_image"].astype(bool),
        **poses,
        "pose_mask": pose_mask,
        "source": el["source"].astype(np.int32),
    }


PACK_SCAN = 8  # a packed batch scans at most this many samples a row
PACKED_CUT = ("input_ids", "attention_mask", "labels", "segment_ids", "positions")


def pack_rows(
    lengths: np.ndarray, num_pose: np.ndarray, has_image: np.ndarray, rows: int, length: int, max_poses: int
) -> list[int]:
    """Greedy packing in stream order: the row of each sample, -1 for one that fits no row (skipped).

    Each sample goes into the least filled of `rows` rows that has room for its tokens (rows of
    `length`), its `<POSE>` tokens (at most `max_poses` a row) and, if it has an image, has no
    image yet (one image a row); least filled first keeps the rows even, since a batch is cut to
    its fullest row. A sample that fits no row is skipped (-1) and left for the next batch. The
    scan ends after `rows` misfits in a row (the rows are full) or at the end of the samples.

    Returns:
      the row of each sample scanned (-1 = skipped); samples after the last entry were not scanned.
    """
    used = np.zeros(rows, np.int64)
    poses = np.zeros(rows, np.int64)
    image = np.zeros(rows, bool)
    placed = []
    misfits = 0
    for n, k, img in zip(lengths, num_pose, has_image, strict=True):
        fits = (used + n <= length) & (poses + k <= max_poses) & ~(image & bool(img))
        if not fits.any():
            placed.append(-1)
            misfits += 1
            if misfits >= rows:
                break
            continue
        misfits = 0
        r = int(np.argmin(np.where(fits, used, np.iinfo(np.int64).max)))
        used[r] += n
        poses[r] += k
        image[r] |= bool(img)
        placed.append(r)
    return placed


def to_packed_layout(
    el: dict, rows: list[int], num_rows: int, length: int, max_poses: int, pad_id: int
) -> dict[str, np.ndarray]:
    """Samples (tokenised, right-padded) packed by `pack_rows` -> the batch layout of packed rows.

    Row r holds its samples one after the other, each a segment: `segment_ids` int32[B, T] numbers
    them 1.. in the row (0 = padding), `positions` int32[B, T] counts from 0 in each. A row's image
    is its image sample's (zeros if none); pose slot p of a row is its p-th `<POSE>` token, the
    first slot of a sample holding the sample's target as in `to_layout`. `source` is the first
    sample's.
    """
    b, t = num_rows, length
    out = {
        "input_ids": np.full((b, t), pad_id, np.int32),
        "attention_mask": np.zeros((b, t), np.int32),
        "labels": np.full((b, t), -100, np.int32),
        "segment_ids": np.zeros((b, t), np.int32),
        "positions": np.zeros((b, t), np.int32),
        "pixel_values": np.zeros((b, *el["pixel_values"].shape[1:]), np.float32),
        "has_image": np.zeros(b, bool),
        "pose_global_orient": np.zeros((b, max_poses, 3), np.float32),
        "pose_body_pose": np.zeros((b, max_poses, 69), np.float32),
        "pose_betas": np.zeros((b, max_poses, 10), np.float32),
        "pose_mask": np.zeros((b, max_poses), bool),
        "source": np.full(b, -1, np.int32),
    }
    used = np.zeros(b, np.int64)
    segments = np.zeros(b, np.int64)
    poses = np.zeros(b, np.int64)
    lengths = el["attention_mask"].sum(axis=1)
    for i, r in enumerate(rows):
        n, at = int(lengths[i]), int(used[r])
        segments[r] += 1
        out["input_ids"][r, at : at + n] = el["input_ids"][i, :n]
        out["attention_mask"][r, at : at + n] = 1
        out["labels"][r, at : at + n] = el["labels"][i, :n]
        out["segment_ids"][r, at : at + n] = segments[r]
        out["positions"][r, at : at + n] = np.arange(n)
        if el["has_image"][i]:
            out["pixel_values"][r] = el["pixel_values"][i]
            out["has_image"][r] = True
        if el["has_pose"][i] and el["num_pose"][i] > 0:
            p = int(poses[r])
            out["pose_mask"][r, p] = True
            for key in ("global_orient", "body_pose", "betas"):
                out[f"pose_{key}"][r, p] = el[key][i]
        if out["source"][r] < 0:
            out["source"][r] = el["source"][i]
        used[r] += n
        poses[r] += int(el["num_pose"][i])
    out["source"] = np.maximum(out["source"], 0)
    return out


class BatchIterator:
    """Endless iterator of this host's batches (numpy dicts in the batch layout) with resumable state.

        it = BatchIterator(config, tokenizer)
        batch = next(it)                   # host-local numpy arrays
        state = it.state()                 # JSON-able; save with the checkpoint
        it = BatchIterator(config, tokenizer, state=state)   # or it.restore(state)

    Use `global_batch(batch, mesh)` for the sharded global arrays. `dropped` counts the samples
    the tokenizer dropped (e.g. 'pose_truncated') in the elements produced so far.

    With `config.pack` each row holds as many conversations as `pack_rows` fits into
    `config.pack_length` (default the longest bucket) and the batch adds `segment_ids` and
    `positions` (`to_packed_layout`); its length is the smallest bucket that holds the fullest row.
    """

    def __init__(
        self,
        config: PipelineConfig,
        tokenizer,
        process_index: int | None = None,
        process_count: int | None = None,
        state: dict | None = None,
    ):
        if process_index is None or process_count is None:
            import jax

            process_index, process_count = jax.process_index(), jax.process_count()
        if len(config.ratios) != len(config.datasets):
            raise ValueError(f"{len(config.ratios)} ratios for {len(config.datasets)} datasets")
        self.config, self.tokenizer = config, tokenizer
        self.process_index, self.process_count = process_index, process_count
        self._tokenize = Tokenize(tokenizer, config)
        self._next_index = 0
        self._consumed: set[int] = set()  # packing: samples at or after _next_index already in a batch
        self._iterator = None
        if state is not None:
            self.restore(state)

    @property
    def dropped(self) -> dict[str, int]:
        return dict(self._tokenize.dropped)

    def _ensure(self):
        if self._iterator is None:
            if self.config.batch_size % self.process_count:
                raise ValueError(f"batch_size={self.config.batch_size} does not split over {self.process_count} hosts")
            ds = element_chunks(self.config, self.process_index, self.process_count, self._next_index)
            self._iterator = ds.as_numpy_iterator()
            self._buffer = []

    def __iter__(self):
        return self

    def _take_rows(self, count: int) -> dict[str, np.ndarray]:
        """The next `count` kept rows, tokenising further chunks as needed."""
        while sum(len(rows["index"]) for rows in self._buffer) < count:
            self._buffer.append(tokenize_chunk(self._tokenize, next(self._iterator)))
        merged = {k: np.concatenate([rows[k] for rows in self._buffer]) for k in self._buffer[0]}
        rest = {k: v[count:] for k, v in merged.items()}
        self._buffer = [rest] if len(rest["index"]) else []
        return {k: v[:count] for k, v in merged.items()}

    def _packed(self, rows: int) -> tuple[dict[str, np.ndarray], list[int], int]:
        """The samples `pack_rows` places into `rows` rows: (samples, their rows, row length).

        It scans at most PACK_SCAN * rows samples from the front of the buffer (tokenising chunks
        as needed); those it skips stay in the buffer, in order, for the next batch.
        """
        length = self.config.pack_length or self.config.bucket_lengths[-1]
        if length < self.config.max_length:
            raise ValueError(f"pack_length={length} is shorter than a sample may be ({self.config.max_length})")
        scan = PACK_SCAN * rows
        while sum(len(r["index"]) for r in self._buffer) < scan:
            chunk = tokenize_chunk(self._tokenize, next(self._iterator))
            if self._consumed:  # resumed: samples after the resume point that an earlier batch took
                keep = ~np.isin(chunk["index"], list(self._consumed))
                chunk = {k: v[keep] for k, v in chunk.items()}
            self._buffer.append(chunk)
        merged = {k: np.concatenate([r[k] for r in self._buffer]) for k in self._buffer[0]}
        head = {k: v[:scan] for k, v in merged.items()}
        placed = np.array(
            pack_rows(head["attention_mask"].sum(axis=1), head["num_pose"], head["has_image"], rows, length,
                      self.config.max_poses),
            np.int64,
        )  # fmt: skip
        taken = np.zeros(len(merged["index"]), bool)
        taken[: len(placed)] = placed >= 0
        self._buffer = [{k: v[~taken] for k, v in merged.items()}]
        el = {k: v[taken] for k, v in merged.items()}
        # Resume point: the first sample not taken (earlier ones are all consumed); the samples after
        # it that some batch took are remembered, so that a restored iterator skips them.
        rest = self._buffer[0]["index"]
        resume = int(rest[0]) if len(rest) else int(merged["index"].max()) + 1
        self._consumed = {i for i in self._consumed | set(el["index"].tolist()) if i >= resume}
        self._next_index = resume
        return el, placed[placed >= 0].tolist(), length

    def __next__(self) -> dict[str, np.ndarray]:
        self._ensure()
        rows = self.config.batch_size // self.process_count
        if self.config.pack:
            el, placed, length = self._packed(rows)
            batch = to_packed_layout(el, placed, rows, length, self.config.max_poses, self._tokenize.ids["pad"])
            longest = int(batch["attention_mask"].sum(axis=1).max())
        else:
            el = self._take_rows(rows)
            self._next_index = int(el["index"].max()) + 1
            longest = int(el["attention_mask"].sum(axis=1).max())
        if self.process_count > 1:
            from jax.experimental import multihost_utils

            longest = int(np.max(multihost_utils.process_allgather(np.int32(longest))))
        buckets = self.config.bucket_lengths
        if self.config.pack:
            buckets = tuple(b for b in buckets if b < length) + (length,)
            length = next(b for b in buckets if b >= longest)
            return {k: v[:, :length] if k in PACKED_CUT else v for k, v in batch.items()}
        length = next(b for b in buckets if b >= longest)
        return to_layout(el, length, self.config.max_poses)

    def state(self) -> dict:
        """{'version', 'next_index', 'seed', 'datasets', 'ratios', 'process_index', 'process_count'}.

        Packed batches skip samples that fit no row and take them later, so with `config.pack` the
        state adds 'consumed': the samples after next_index that a batch already took.
        """
        extra = {"consumed": sorted(self._consumed)} if self.config.pack else {}
        return {
            **extra,
            "version": STATE_VERSION,
            "next_index": self._next_index,
            "seed": self.config.seed,
            "datasets": list(self.config.datasets),
            "ratios": [float(r) for r in self.config.ratios],
            "process_index": self.process_index,
            "process_count": self.process_count,
        }

    def restore(self, state: dict) -> None:
        """Continues after the last batch consumed when `state` was taken (same config and hosts)."""
        mine = self.state()
        for key in ("version", "seed", "datasets", "ratios", "process_index", "process_count"):
            if list(np.atleast_1d(state.get(key))) != list(np.atleast_1d(mine[key])):
                raise ValueError(f"iterator state has {key}={state.get(key)!r}; this pipeline has {mine[key]!r}")
        self._next_index = int(state["next_index"])
        self._consumed = {int(i) for i in state.get("consumed", ())}
        self._iterator = None


def global_batch(batch: dict[str, np.ndarray], mesh) -> dict:
    """Host-local numpy batch -> global `jax.Array`s, batch axis sharded over the mesh's data axes."""
    import jax

    from chatpose_jax.parallel.mesh import batch_sharding

    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


__all__ = ["BatchIterator", "PipelineConfig", "global_batch", "pipeline_config", "Sequence"]
