"""The typed experiment: one frozen object per config section, validated before any work.

`configs/*.py` return ml_collections ConfigDicts (every field overridable from the command line);
`load_experiment(config, num_devices)` turns one into an `Experiment` and checks that it fits the
devices, failing with a `ConfigError` that names the field at fault. Functions receive only the
section they need (`experiment.model`, `experiment.optimizer`, ...), never the whole config.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from chatpose_jax.config_types import ConfigError, from_config_dict
from chatpose_jax.model.config import ModelConfig
from chatpose_jax.parallel.mesh import MeshConfig, data_parallel_size, resolve_mesh_shape
from chatpose_jax.retrieval.config import RetrievalConfig


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """L = ce_weight * CE(answer tokens) + pose_weight * L1(rotmats) (+ optional body terms)."""

    ce_weight: float = 1.0  # cross-entropy on the assistant's answer tokens
    pose_weight: float = 0.1  # L1 on the 24 rotation matrices (global orient + body pose), ChatPose's recipe
    # "released": ChatPose's mean over the 23 body matrices + mean over the root's, per pose;
    # "flat": one mean over all 24 x 9 entries (the root weighs 24 times less).
    pose_loss: Literal["released", "flat"] = "released"
    joints_weight: float = 0.0  # L2 on SMPL joints through the body model (metres)
    vertices_weight: float = 0.0  # L1 on SMPL vertices through the body model (metres)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Length and batching of the run, and its bookkeeping."""

    num_steps: int  # optimizer steps
    batch_size: int  # global batch, over all hosts and devices, per optimizer step
    grad_accum_steps: int = 1  # micro-batches per optimizer step
    max_text_length: int = 512  # text tokens per sequence, image tokens come on top (unless ...)
    # ... length_counts_image: then max_text_length counts the image's positions too, as LISA's
    # model_max_length does (a sample with an image keeps max_text_length - image tokens text tokens).
    length_counts_image: bool = False
    seed: int = 0  # of the initialisation, dropout and data order
    log_every: int = 10  # steps between metric lines
    checkpoint_every: int = 500  # steps between checkpoints
    keep_checkpoints: int = 3  # newest checkpoints kept
    # What learns: LoRA + pose head + the <POSE> rows / + full embeddings and LM head (LISA) / everything
    # (models trained from scratch, like the tiny demo's, which has no pretrained base to keep).
    trainable: Literal["lora_and_new_rows", "lora_and_full_embeddings", "all"] = "lora_and_full_embeddings"
    loss: LossConfig = LossConfig()
    eval_every: int = 500  # steps between held-out evaluations; 0 = at the end only
    eval_batches: int = 4  # held-out batches per evaluation
    max_nonfinite_in_row: int = 10  # skipped (non-finite) updates in a row that stop the run
    # SMPL .pkl/.npz or smplx-style folder for pose metrics and body losses; "" = none (no MPJPE in the
    # training logs); "synthetic" = a generated stand-in body, for the tiny demo only.
    body_model: str = ""

    def __post_init__(self):
        if self.num_steps < 0:
            raise ValueError(f"train.num_steps={self.num_steps} must be >= 0")
        if self.batch_size < 1 or self.grad_accum_steps < 1:
            raise ValueError("train.batch_size and train.grad_accum_steps must be >= 1")
        body_terms = {"joints_weight": self.loss.joints_weight, "vertices_weight": self.loss.vertices_weight}
        for name, weight in body_terms.items():
            if weight > 0 and not self.body_model:
                raise ValueError(
                    f"train.loss.{name}={weight} needs a body model, but train.body_model is empty: give a SMPL "
                    f"file or folder, or 'synthetic', or set train.loss.{name}=0"
                )
        if self.batch_size % self.grad_accum_steps:
            raise ValueError(
                f"train.batch_size={self.batch_size} is not divisible by train.grad_accum_steps={self.grad_accum_steps}"
            )

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.grad_accum_steps


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with warm-up then decay, global-norm clipping (LISA's recipe by default)."""

    lr: float = 3e-4  # peak learning rate
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 100  # linear warm-up from 0
    schedule: Literal["linear", "cosine", "constant"] = "linear"  # decay after warm-up, to end_lr_ratio * lr
    end_lr_ratio: float = 0.0  # final lr = end_lr_ratio * lr
    clip_norm: float = 1.0  # global-norm clipping; 0 disables it


@dataclasses.dataclass(frozen=True)
class HmrAugmentConfig:
    """Augmentation of HMR person crops and their poses (data_pipelines.augment), 4D-Humans' defaults.

    4D-Humans' training dataset, which ChatPose's release reads, augments by default; the ChatPose
    supplement says the model was trained without augmentation: off unless `enabled`.
    """

    enabled: bool = False
    scale_factor: float = 0.3  # box side times 1 + scale_factor * clip(N(0, 1), -1, 1)
    rotation_degrees: float = 30.0  # a turn of rotation_degrees * clip(N(0, 1), -2, 2) ...
    rotation_rate: float = 0.6  # ... with this probability
    flip_rate: float = 0.5  # left-right flip (left / right joints swapped, rotations mirrored)
    colour_scale: float = 0.2  # each channel times U(1 - colour_scale, 1 + colour_scale)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which conversation datasets feed training and in what proportion."""

    data_dir: str = ""  # TFDS data_dir of prepared datasets (required: `chatpose-data prepare` writes one)
    tokenizer: str = ""  # folder with tokenizer files ("" = the checkpoint's own)
    datasets: tuple[str, ...] = ("posescript", "llava_instruct", "hmr_images")  # conversation sources
    ratios: tuple[float, ...] = (1.0, 1.0, 2.0)  # sampling weights, one per dataset: ChatPose's 1:1:2
    image_aspect: Literal["none", "pad"] = "none"  # "pad": LLaVA-1.5's pad-to-square with the mean colour
    extra_templates: bool = False  # add our paraphrases to the supplement's Tables 1-3 (verbatim otherwise)
    hmr_augment: HmrAugmentConfig = HmrAugmentConfig()  # off: the paper trained without augmentation
    # VQA records kept by their image's source (the first folder of its path; a bare file name is
    # LLaVA-Instruct's COCO): COCO, GQA and VG, as ChatPose's release filters mix665k. () keeps all,
    # text-only records too.
    vqa_image_sources: tuple[str, ...] = ("coco", "gqa", "vg")
    shuffle_buffer: int = 1000  # examples in tf.data's shuffle buffer
    # Packed rows: several conversations per batch row (greedy first fit, in stream order) instead of
    # one padded to its bucket, each its own attention segment with positions from 0 (segment_ids,
    # positions in the batch). A row holds at most one image conversation and at most
    # model.pose_head.max_poses <POSE> tokens (raise it, e.g. to 8, or rows close early).
    # The LM head then runs on every position (train.max_text_length no longer bounds a row's text).
    pack: bool = False
    pack_length: int = 0  # length of a packed row; 0 = the longest bucket (train.max_text_length + one image)

    def __post_init__(self):
        if len(self.datasets) != len(self.ratios):
            raise ValueError(f"data.ratios has {len(self.ratios)} entries for {len(self.datasets)} data.datasets")
        if any(r < 0 for r in self.ratios) or not any(r > 0 for r in self.ratios):
            raise ValueError(f"data.ratios {self.ratios} must be >= 0 with at least one > 0")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A whole validated experiment config."""

    name: str
    model: ModelConfig
    mesh: MeshConfig
    train: TrainConfig
    optimizer: OptimizerConfig
    data: DataConfig
    init_checkpoint: str = ""  # orbax checkpoint or HF folder to start from ("" = random init)
    task: Literal["chatpose", "retrieval"] = "chatpose"  # which model the training loop trains
    retrieval: RetrievalConfig = RetrievalConfig()  # the text-pose retrieval model (task "retrieval")


def load_experiment(config, num_devices: int | None = None) -> Experiment:
    """Validates `config` (a ConfigDict) into an `Experiment`.

    Args:
      config: the experiment ConfigDict, after command-line overrides.
      num_devices: devices of the global mesh; when given, the mesh and the batch are checked
        against it (the mesh must use every device, the micro-batch must split over the
        data-parallel axes).

    Raises:
      ConfigError: naming the field at fault, before any work starts.
    """
    experiment = from_config_dict(Experiment, config)
    image_tokens = experiment.model.vision.num_image_tokens
    if experiment.train.length_counts_image and experiment.train.max_text_length <= image_tokens:
        raise ConfigError(
            f"config.train.max_text_length={experiment.train.max_text_length} with train.length_counts_image leaves "
            f"no text beside the {image_tokens} image tokens of model.vision: raise it or set length_counts_image=False"
        )
    if num_devices is not None:
        sizes = resolve_mesh_shape(experiment.mesh, num_devices)
        dp = data_parallel_size(sizes)
        micro = experiment.train.micro_batch_size
        if micro % dp:
            raise ConfigError(
                f"config.train.batch_size={experiment.train.batch_size} (micro-batch {micro} after "
                f"grad_accum_steps={experiment.train.grad_accum_steps}) does not divide over the data axes "
                f"data={sizes['data']} x fsdp={sizes['fsdp']} = {dp}"
            )
        text = experiment.model.text
        for axis, dim, what in (
            ("tensor", text.num_heads, "model.text.num_heads"),
            ("tensor", text.num_kv_heads, "model.text.num_kv_heads"),
            ("tensor", text.intermediate_size, "model.text.intermediate_size"),
        ):
            if dim % sizes[axis]:
                raise ConfigError(f"config.{what}={dim} does not split over mesh.{axis}={sizes[axis]}")
    return experiment
