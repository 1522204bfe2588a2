"""Chat with a trained ChatPose: load a checkpoint, stream an answer token by token, read its poses.

`ChatModel` owns the model, its tokenizer and the jitted prefill / decode step; `ChatModel.stream`
decodes one prompt in a Python loop (so text can be printed as it comes) and returns an `Answer`
whose poses are the pose head applied to the decoder state that produced each `<POSE>`, exactly
what `decoding.generate` reads. `ChatSession` keeps the turns of one conversation and its image.

Prompts are left-padded to a multiple of `length_bucket` tokens and the cache has room for the
padded prompt plus `max_new_tokens`, so a conversation compiles the prefill once per bucket and
the decode step once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from chatpose_jax import image_tokens
from chatpose_jax.inference import images, prompt
from chatpose_jax.model import chatpose, decoding
from chatpose_jax.model.config import ModelConfig
from chatpose_jax.model.pose_head import PoseHead, rot6d_hmr2_to_rotmat
from chatpose_jax.pose_token import strip_space_before_pose
from chatpose_jax.train.trained_model import load_trained


class CheckpointLoadError(ValueError):
    """A checkpoint or its tokenizer cannot be loaded or does not fit the model."""


class PromptTooLongError(ValueError):
    """A prompt that leaves no room in the model's context for an answer."""


@dataclasses.dataclass(frozen=True)
class Pose:
    """One `<POSE>` read by the pose head (joint 0 global orientation, joints 1..23 SMPL body pose)."""

    rot6d: np.ndarray  # float32[J, 6], HMR2.0 6D layout
    rotmat: np.ndarray  # float32[J, 3, 3]
    position: int  # index t in prompt ids + answer tokens of the state read: sequence[t + 1] == <POSE>


@dataclasses.dataclass(frozen=True)
class Answer:
    text: str  # the decoded answer, `</s>` excluded, special tokens such as <POSE> kept
    tokens: np.ndarray  # int32[N] generated tokens, the closing `</s>` included when reached
    poses: tuple[Pose, ...]  # one per `<POSE>`, at most config.pose_head.max_poses
    prompt_length: int  # real prompt tokens (image tokens included)
    stop_reason: str  # "eos" | "max_new_tokens" | "context"


@functools.partial(jax.jit, static_argnums=(0,))
def pose_from_states(config: ModelConfig, params: dict, states: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The pose head on decoder states float[P, d] -> (rot6d float32[P, J, 6], rotmat float32[P, J, 3, 3])."""
    dtype, param_dtype = chatpose.DTYPES[config.dtype], chatpose.DTYPES[config.param_dtype]
    head = PoseHead(config.pose_head, config.text.hidden_size, dtype, param_dtype)
    rot6d = head.apply({"params": params["pose_head"]}, states)
    return rot6d, rot6d_hmr2_to_rotmat(rot6d)


_prefill = jax.jit(decoding.prefill, static_argnums=(0, 6))
_decode_step = jax.jit(decoding.decode_step, static_argnums=(0,))
_sample = jax.jit(decoding.sample_token, static_argnames=("temperature", "top_p"))


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def left_pad(rows: Sequence[np.ndarray], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token rows -> (input_ids int32[B, length], attention_mask bool[B, length]), padded on the left."""
    ids = np.full((len(rows), length), pad_id, np.int32)
    mask = np.zeros((len(rows), length), bool)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = row
        mask[i, length - len(row) :] = True
    return ids, mask


def load_chat_tokenizer(folder: str, config: ModelConfig):
    """AutoTokenizer from `folder`, `<POSE>` appended when missing; its special ids must be the model's."""
    from transformers import AutoTokenizer  # lazy: transformers loads PyTorch

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # transformers raises OSError, ValueError or others for a bad folder
        raise CheckpointLoadError(f"cannot load the tokenizer in {folder}: {e}") from e
    if prompt.POSE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [prompt.POSE_TOKEN]}, replace_extra_special_tokens=False
        )
    strip_space_before_pose(tokenizer)  # split as training does (chatpose_jax.pose_token)
    if config.mm_use_im_start_end:  # the checkpoint writes images <im_start><image><im_end>
        ids = image_tokens.add_start_end_tokens(tokenizer)
        for token, token_id in zip((image_tokens.IM_START, image_tokens.IM_END), ids, strict=True):
            if token_id >= config.text.vocab_size:
                raise CheckpointLoadError(
                    f"tokenizer {folder}: {token} has id {token_id}, beyond the model's {config.text.vocab_size} "
                    "rows (the checkpoint says mm_use_im_start_end)"
                )
    for token, want in ((prompt.IMAGE_TOKEN, config.image_token_id), (prompt.POSE_TOKEN, config.pose_token_id)):
        got = tokenizer.convert_tokens_to_ids(token)
        if got != want:
            raise CheckpointLoadError(f"tokenizer {folder} gives {token} id {got}; the model expects {want}")
    return tokenizer


def image_aspect_of(checkpoint: str, experiment=None) -> str:
    """'pad' or 'none': the training run's `data.image_aspect`, else an original LLaVA config's
    `image_aspect_ratio`, else an export-hf folder's image processor (`do_pad`), else 'none'
    (ChatPose's own preprocessing)."""
    if experiment is not None:
        return experiment.data.image_aspect
    path = os.path.join(checkpoint, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            if json.load(f).get("image_aspect_ratio") == "pad":
                return "pad"
    path = os.path.join(checkpoint, "preprocessor_config.json")
    if os.path.exists(path):
        with open(path) as f:
            return "pad" if json.load(f).get("do_pad") else "none"
    return "none"


class ChatModel:
    """A loaded model with its tokenizer; turns prompts into ids and ids into streamed answers."""

    def __init__(
        self,
        config: ModelConfig,
        params: dict,
        lora: dict | None,
        tokenizer,
        image_aspect: str = "none",
        length_bucket: int = 64,
        trained_body_model: str = "",
        trained_data_dir: str = "",
    ):
        self.config = config
        self.params = params
        self.lora = lora or None
        self.tokenizer = tokenizer
        self.pad_square = image_aspect == "pad"
        self.length_bucket = length_bucket
        # The training run's train.body_model ("" when unknown): "synthetic" marks the demo's models.
        self.trained_body_model = trained_body_model
        self.trained_data_dir = trained_data_dir  # the training run's data.data_dir ("" when unknown)

    @classmethod
    def load(cls, checkpoint: str, tokenizer_dir: str | None = None, image_aspect: str | None = None, **kwargs):
        """Any checkpoint form `load_trained` reads (training workdir or step, model checkpoint, HF folder).

        Raises:
          CheckpointLoadError: one line naming the checkpoint and what is wrong with it.
        """
        try:
            trained = load_trained(checkpoint)
        except FileNotFoundError as e:
            raise CheckpointLoadError(str(e)) from e
        except Exception as e:  # orbax, safetensors and JSON readers each raise their own kinds
            raise CheckpointLoadError(f"cannot load checkpoint {checkpoint}: {type(e).__name__}: {e}") from e
        folder = tokenizer_dir or trained.tokenizer_dir
        if folder is None:
            raise CheckpointLoadError(f"no tokenizer found with checkpoint {checkpoint}; pass --tokenizer")
        if not os.path.isdir(folder):
            raise CheckpointLoadError(f"tokenizer folder {folder} does not exist")
        tokenizer = load_chat_tokenizer(folder, trained.config)
        aspect = image_aspect or image_aspect_of(checkpoint, trained.experiment)
        experiment = trained.experiment
        body = experiment.train.body_model if experiment is not None else ""
        data_dir = experiment.data.data_dir if experiment is not None else ""
        return cls(
            trained.config,
            trained.params,
            trained.lora,
            tokenizer,
            aspect,
            trained_body_model=body,
            trained_data_dir=data_dir,
            **kwargs,
        )

    @property
    def context_length(self) -> int:
        return self.config.text.max_position_embeddings

    def pixel_values(self, path: str) -> np.ndarray:
        """float32[3, S, S] for the image at `path` (ImageError when it cannot be read)."""
        return images.preprocess_file(path, self.config.vision.image_size, self.pad_square)

    def encode(self, history: Sequence[tuple[str, str]], question: str) -> np.ndarray:
        """int32[T] ids of the generation prompt, `<s>` first, each `<image>` repeated per image token."""
        return self.encode_text(prompt.generation_prompt(history, question))

    def encode_text(self, text: str) -> np.ndarray:
        """int32[T] ids of a prompt text, `<s>` first, images written as the checkpoint was trained
        (`<im_start><image><im_end>` under mm_use_im_start_end), `<image>` repeated per image token."""
        text = image_tokens.wrap_images(text, self.config.mm_use_im_start_end)
        ids = np.asarray(self.tokenizer(text, add_special_tokens=True)["input_ids"], np.int32)
        is_image = ids == self.config.image_token_id
        return np.repeat(ids, np.where(is_image, self.config.vision.num_image_tokens, 1))

    def check_length(self, ids: np.ndarray) -> None:
        if len(ids) >= self.context_length:
            raise PromptTooLongError(
                f"the prompt has {len(ids)} tokens (image tokens included); the model's context holds "
                f"{self.context_length}, so no room is left for an answer"
            )

    def decode(self, tokens: Sequence[int]) -> str:
        """Answer text of generated tokens; stops before `</s>`, keeps `<POSE>`."""
        tokens = [int(t) for t in tokens]
        if self.config.eos_token_id in tokens:
            tokens = tokens[: tokens.index(self.config.eos_token_id)]
        return self.tokenizer.decode(tokens, skip_special_tokens=False)

    def poses(self, states: Sequence[jax.Array], positions: Sequence[int]) -> tuple[Pose, ...]:
        if not states:
            return ()
        rot6d, rotmat = pose_from_states(self.config, self.params, jnp.stack(states))
        rot6d, rotmat = np.asarray(rot6d), np.asarray(rotmat)
        return tuple(Pose(rot6d[i], rotmat[i], int(p)) for i, p in enumerate(positions))

    def stream(
        self,
        ids: np.ndarray,
        pixel_values: np.ndarray | None = None,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        on_text: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answers the prompt int32[T] token by token; `on_text` receives each new piece of text.

        Token k is drawn from the logits with rng fold_in(key(seed), k), as `decoding.generate`
        does, so the answer equals `generate`'s row for the same prompt and key.
        """
        cfg = self.config
        self.check_length(ids)
        budget = min(max_new_tokens, self.context_length - len(ids))
        padded = round_up(len(ids), self.length_bucket)
        input_ids, mask = left_pad([ids], padded, cfg.pad_token_id)
        pix = None if pixel_values is None else jnp.asarray(pixel_values)[None]
        (logits, hidden), state = _prefill(
            cfg, self.params, self.lora, jnp.asarray(input_ids), pix, jnp.asarray(mask), padded + max_new_tokens
        )
        rng = jax.random.key(seed)
        tokens, states, positions, shown = [], [], [], ""
        stop_reason = "max_new_tokens" if budget == max_new_tokens else "context"
        for step in range(budget):
            token = _sample(logits, jax.random.fold_in(rng, step), temperature=temperature, top_p=top_p)
            token_id = int(token[0])
            tokens.append(token_id)
            # The state that produced <POSE> is the one the pose head reads (as in training).
            if token_id == cfg.pose_token_id and len(states) < cfg.pose_head.max_poses:
                states.append(hidden[0])
                positions.append(len(ids) - 1 + step)
            if on_text is not None:
                text = self.decode(tokens)
                if text.startswith(shown) and not text.endswith("\ufffd"):  # wait for whole characters
                    on_text(text[len(shown) :])
                    shown = text
            if token_id == cfg.eos_token_id:
                stop_reason = "eos"
                break
            if step + 1 < budget:
                (logits, hidden), state = _decode_step(cfg, self.params, self.lora, token, state)
        text = self.decode(tokens)
        if on_text is not None and text != shown:
            on_text(text[len(shown) :] if text.startswith(shown) else "\n" + text)
        return Answer(text, np.asarray(tokens, np.int32), self.poses(states, positions), len(ids), stop_reason)

    def answer(self, question: str, image: str | None = None, **kwargs) -> Answer:
        """One-turn answer to `question` (about the image at `image`, when given); kwargs as `stream`."""
        pixel_values = None if image is None else self.pixel_values(image)
        ids = self.encode([], prompt.user_turn(question, pixel_values is not None))
        return self.stream(ids, pixel_values, **kwargs)


class ChatSession:
    """One conversation: its (user, answer) turns and its image (LLaVA holds one image per conversation)."""

    def __init__(self, model: ChatModel, **generation):
        self.model = model
        self.generation = generation  # max_new_tokens, temperature, top_p, seed: see ChatModel.stream
        self.history: list[tuple[str, str]] = []
        self.pixel_values: np.ndarray | None = None
        self.image_pending = False  # attached but not yet placed in a user turn
        self.turns_answered = 0  # counts across resets, so turn_K files never overwrite each other

    def attach_image(self, path: str) -> bool:
        """Loads the image for the next turn; returns True when this restarted the conversation
        (its earlier turns were about another image). Raises ImageError and changes nothing
        when the image cannot be read."""
        pixel_values = self.model.pixel_values(path)
        restarted = self.pixel_values is not None and bool(self.history)
        if restarted:
            self.history = []
        self.pixel_values, self.image_pending = pixel_values, True
        return restarted

    def reset(self) -> None:
        """Forgets the turns and the image."""
        self.history, self.pixel_values, self.image_pending = [], None, False

    def ask(self, text: str, on_text: Callable[[str], None] | None = None) -> Answer:
        """Answers `text` after the turns so far and records the turn. A prompt that does not fit
        the context raises PromptTooLongError and leaves the conversation as it was."""
        question = prompt.user_turn(text, self.image_pending)
        ids = self.model.encode(self.history, question)
        self.model.check_length(ids)
        answer = self.model.stream(ids, self.pixel_values, on_text=on_text, **self.generation)
        self.history.append((question, answer.text))
        self.image_pending = False
        self.turns_answered += 1
        return answer
