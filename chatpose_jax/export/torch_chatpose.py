"""ChatPose in PyTorch: an export-hf folder run by transformers' LLaVA, with the pose head on top.

    from chatpose_jax.export.torch_chatpose import TorchChatPose
    model = TorchChatPose.from_pretrained("/export/chatpose-13b-hf", dtype=torch.bfloat16, device="cuda")
    out = model.generate(input_ids, pixel_values, max_new_tokens=128)
    out.pose.body_pose   # float32[B, P, 69] SMPL axis-angle, radians (smplx's `body_pose`)

Importing this module imports torch and transformers; nothing else in chatpose_jax does.

The pose is read exactly as in the JAX model (model/pose_head.py): the last decoder hidden state
(after the final norm) at the position t whose next token input_ids[t + 1] is `<POSE>` (for a
generated `<POSE>`, the state that produced it) goes through fc1 - ReLU - fc2 to 24 x 6D (HMR2.0
layout), then Gram-Schmidt to rotation matrices, then axis-angle. Joint 0 is `global_orient`,
joints 1..23 the SMPL `body_pose`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import torch
from torch import nn

POSE_HEAD_FILE = "pose_head.safetensors"
POSE_HEAD_JSON = "pose_head.json"


# ---------------------------------------------------------------------------------------------
# Rotations (torch versions of chatpose_jax.body.rotations)


def rot6d_hmr2_to_rotmat(rot6d: torch.Tensor) -> torch.Tensor:
    """float[..., 6] (HMR2.0 layout: (2, 3) rows are the columns a1, a2) -> float[..., 3, 3] by Gram-Schmidt."""
    pair = rot6d.reshape(*rot6d.shape[:-1], 2, 3)
    a1, a2 = pair[..., 0, :], pair[..., 1, :]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_to_quat(rotmat: torch.Tensor) -> torch.Tensor:
    """float[..., 3, 3] -> unit quaternion (w, x, y, z) float[..., 4], from the largest of the four
    candidate denominators so that no branch divides by a number near zero."""
    m = rotmat
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = torch.stack(
        [
            torch.stack(
                [
                    1 + m00 + m11 + m22,
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + m00 - m11 - m22,
                    m[..., 1, 0] + m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] + m[..., 0, 1],
                    1 - m00 + m11 - m22,
                    m[..., 2, 1] + m[..., 1, 2],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 2, 1] + m[..., 1, 2],
                    1 - m00 - m11 + m22,
                ],
                -1,
            ),
        ],
        dim=-2,
    )  # [..., 4, 4]: row k is 4 q_k q, exact when q_k is the largest component
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = diag.argmax(-1, keepdim=True)
    q = torch.gather(candidates, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    return q / q.norm(dim=-1, keepdim=True)


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """float[..., 3, 3] -> axis-angle float[..., 3] (radians, angle in [0, pi]), stable at 0 and pi."""
    q = rotmat_to_quat(rotmat)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    sin_half = v.norm(dim=-1)
    angle = 2 * torch.atan2(sin_half, w)
    # angle / sin(angle / 2) -> 2 / w near the identity (its series: 2 / w * (1 - s^2 / (3 w^2))).
    small = sin_half < 1e-6
    safe = torch.where(small, torch.ones_like(sin_half), sin_half)
    scale = torch.where(small, 2 / w * (1 - sin_half**2 / (3 * w * w)), angle / safe)
    return v * scale[..., None]


# ---------------------------------------------------------------------------------------------
# Pose head


class PoseHead(nn.Module):
    """float[..., d] -> rot6d float32[..., num_joints, 6]: fc1 (d -> d), ReLU, fc2 (d -> num_joints * 6)."""

    def __init__(self, hidden_size: int, num_joints: int = 24):
        super().__init__()
        self.num_joints = num_joints
        self.fc1 = nn.Linear(hidden_size, hidden_size)
        self.fc2 = nn.Linear(hidden_size, num_joints * 6)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.fc2(torch.relu(self.fc1(hidden.to(self.fc1.weight.dtype))))
        return x.float().reshape(*x.shape[:-1], self.num_joints, 6)


def load_pose_head(folder: str) -> tuple[PoseHead, dict]:
    """(PoseHead with the weights of `folder`/pose_head.safetensors, the pose_head.json description)."""
    from safetensors.torch import load_file  # lazy: PyTorch

    with open(os.path.join(folder, POSE_HEAD_JSON)) as f:
        spec = json.load(f)
    head = PoseHead(spec["hidden_size"], spec["num_joints"])
    state = load_file(os.path.join(folder, POSE_HEAD_FILE))
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        raise ValueError(f"{folder}/{POSE_HEAD_FILE}: tensors {found}, expected {expected}")
    head.load_state_dict(state)
    return head.to(state["fc1.weight"].dtype), spec


# ---------------------------------------------------------------------------------------------
# Model


@dataclasses.dataclass
class TorchPose:
    """The pose at each of the first P `<POSE>` tokens of a row (float32; zeros where not valid)."""

    rot6d: torch.Tensor  # [B, P, J, 6], HMR2.0 layout
    rotmat: torch.Tensor  # [B, P, J, 3, 3]
    axis_angle: torch.Tensor  # [B, P, J, 3] radians
    valid: torch.Tensor  # bool[B, P]
    positions: torch.Tensor  # int64[B, P], index t of the state read (token t + 1 is <POSE>)

    @property
    def global_orient(self) -> torch.Tensor:
        """float32[B, P, 3]: joint 0, smplx's `global_orient`."""
        return self.axis_angle[..., 0, :]

    @property
    def body_pose(self) -> torch.Tensor:
        """float32[B, P, 69]: joints 1..23 flattened, smplx's `body_pose`."""
        return self.axis_angle[..., 1:, :].flatten(-2)


@dataclasses.dataclass
class TorchChatPoseOutput:
    logits: torch.Tensor  # float[B, T, V]
    hidden_states: torch.Tensor  # float[B, T, d], last layer after the final norm
    pose: TorchPose


@dataclasses.dataclass
class TorchGenerateOutput:
    sequences: torch.Tensor  # int64[B, T + N]: prompt and new tokens (pad after </s>)
    new_tokens: torch.Tensor  # int64[B, N]
    pose: TorchPose  # at the state that produced each of the first P generated <POSE> tokens


def first_positions(mask: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """bool[B, T] -> (positions int64[B, count] of its first `count` True entries (0 where fewer), valid)."""
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)[:, :count]
    valid = torch.gather(mask, 1, order)
    if order.shape[1] < count:
        pad = count - order.shape[1]
        order = nn.functional.pad(order, (0, pad))
        valid = nn.functional.pad(valid, (0, pad))
    return torch.where(valid, order, torch.zeros_like(order)), valid


class TorchChatPose(nn.Module):
    """transformers' `LlavaForConditionalGeneration` + the ChatPose pose head."""

    def __init__(self, llava, pose_head: PoseHead, pose_token_id: int, max_poses: int = 1, tokenizer=None):
        super().__init__()
        self.llava = llava
        self.pose_head = pose_head
        self.pose_token_id = pose_token_id
        self.max_poses = max_poses
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, folder: str, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"):
        """Loads an export-hf folder: the LLaVA weights, the pose head and (when present) the tokenizer."""
        from transformers import AutoTokenizer, LlavaForConditionalGeneration  # lazy: transformers loads PyTorch

        llava = LlavaForConditionalGeneration.from_pretrained(folder, dtype=dtype or "auto").eval()
        head, spec = load_pose_head(folder)
        if dtype is not None:
            head = head.to(dtype)
        tokenizer = None
        if any(os.path.exists(os.path.join(folder, f)) for f in ("tokenizer.json", "tokenizer.model")):
            tokenizer = AutoTokenizer.from_pretrained(folder)
            found = tokenizer.convert_tokens_to_ids(spec["pose_token"])
            if found != spec["pose_token_id"]:
                raise ValueError(
                    f"{folder}: tokenizer has {spec['pose_token']} at {found}, pose_head.json says {spec['pose_token_id']}"
                )
        model = cls(llava, head, spec["pose_token_id"], spec.get("max_poses", 1), tokenizer)
        return model.to(device)

    def pose_from_states(self, states: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor) -> TorchPose:
        """Hidden states float[B, P, d] at the positions before `<POSE>` -> TorchPose."""
        rot6d = self.pose_head(states)
        rotmat = rot6d_hmr2_to_rotmat(rot6d)
        return TorchPose(rot6d, rotmat, rotmat_to_axis_angle(rotmat), valid, positions)

    @torch.no_grad()
    def forward(self, input_ids, pixel_values=None, attention_mask=None) -> TorchChatPoseOutput:
        """Teacher-forced pass over int64[B, T]; the pose is read before each `<POSE>` already in `input_ids`."""
        out = self.llava(
            input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask, output_hidden_states=True
        )
        hidden = out.hidden_states[-1]
        before = nn.functional.pad(input_ids[:, 1:] == self.pose_token_id, (0, 1))
        positions, valid = first_positions(before, self.max_poses)
        states = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
        return TorchChatPoseOutput(out.logits, hidden, self.pose_from_states(states, valid, positions))

    @torch.no_grad()
    def generate(
        self, input_ids, pixel_values=None, attention_mask=None, max_new_tokens: int = 64, **generate_kwargs
    ) -> TorchGenerateOutput:
        """Greedy by default (pass transformers generate kwargs to sample); prompts left-padded when batched."""
        out = self.llava.generate(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            output_hidden_states=True,
            return_dict_in_generate=True,
            **{"do_sample": False, **generate_kwargs},
        )
        prompt_len = input_ids.shape[1]
        new = out.sequences[:, prompt_len:]
        # hidden_states[j][-1]: last layer (after the norm) of step j; its final position produced new token j.
        states = torch.stack([step[-1][:, -1] for step in out.hidden_states], dim=1)  # [B, N, d]
        eos = self.llava.generation_config.eos_token_id
        eos = torch.as_tensor(eos if isinstance(eos, list) else [eos], device=new.device)
        ended_before = torch.cumsum(torch.isin(new, eos).long(), dim=1) - torch.isin(new, eos).long() > 0
        is_pose = (new == self.pose_token_id) & ~ended_before
        steps, valid = first_positions(is_pose, self.max_poses)
        picked = torch.gather(states, 1, steps[..., None].expand(-1, -1, states.shape[-1]))
        positions = torch.where(valid, prompt_len - 1 + steps, torch.zeros_like(steps))
        return TorchGenerateOutput(out.sequences, new, self.pose_from_states(picked, valid, positions))
