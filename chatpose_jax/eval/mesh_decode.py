"""Benchmark decoding on the device mesh: each host's rows, one global batch over the data axes.

Every process encodes only the prompts of its own slice of a benchmark (`benchmarks.host_range`).
A decoding step's global batch is `rows_per_host x process_count` rows, laid over the mesh's
data-parallel axes (`parallel.mesh.batch_sharding`: data x fsdp) with
`jax.make_array_from_process_local_data`, so no host builds another host's rows. The parameters
are placed by the model's logical-axis rules (replicated on a data-only mesh; split over fsdp /
tensor when the mesh has those axes). The computation is the chat path's: `decoding.generate`
(greedy, KV cache), or `decoding.prefill` + the pose head when the answer is teacher-forced. Each
process reads its own rows back; `loop._gather` brings every host's rows to process 0.

Hosts step in lockstep: all run the same number of steps (a host with fewer rows fills its batch
with copies of its first row) and agree on each step's padded prompt length, so every process
runs the same compiled program on every step.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from jax.experimental import multihost_utils

from chatpose_jax.body import rotations
from chatpose_jax.inference import prompt
from chatpose_jax.inference.session import ChatModel, left_pad, pose_from_states, round_up
from chatpose_jax.model import chatpose, decoding
from chatpose_jax.parallel.axes import DEFAULT_LOGICAL_AXIS_RULES, traced_under
from chatpose_jax.parallel.mesh import MeshConfig, batch_sharding, make_mesh

FORCED_ANSWER_PREFIX = " Sure, it is"  # + "<POSE>." : the first answer of the supplement's Table 2


def _place(tree, shardings):
    """Host copies of `tree`'s leaves laid out by `shardings` (works when the mesh spans processes)."""

    def put(x, sharding):
        host = np.asarray(jax.device_get(x))
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree, shardings)


def _agreed_max(value: int) -> int:
    """The largest `value` over all processes (every process must call this at the same point)."""
    if jax.process_count() == 1:
        return int(value)

    return int(np.max(multihost_utils.process_allgather(np.asarray([value], np.int32))))


def _generate(config, max_new_tokens: int, max_length: int, params, lora, input_ids, pixel_values, mask):
    out = decoding.generate_unjitted(
        config, params, lora, input_ids, pixel_values, mask, jax.random.key(0),
        max_new_tokens=max_new_tokens, max_length=max_length,
    )  # fmt: skip
    # The first <POSE> of each answer is the benchmark's prediction.
    return {
        "tokens": out.tokens,
        "lengths": out.lengths,
        "axis_angle": rotations.rotmat_to_axis_angle(out.pose.rotmat[:, 0]),
        "has_pose": out.pose.valid[:, 0],
    }


def _forced(config, length: int, params, lora, input_ids, pixel_values, mask):
    (_, hidden), _ = decoding.prefill(config, params, lora, input_ids, pixel_values, mask, length)
    _, rotmat = pose_from_states(config, params, hidden)
    return rotations.rotmat_to_axis_angle(rotmat)


@dataclasses.dataclass
class MeshDecoder:
    """A `ChatModel` placed on a mesh, decoding host-local rows as one sharded global batch.

    rows_per_host: rows each process contributes per step (the requested batch rounded up to a
    multiple of the process's share of the data axes); length_bucket: prompts are left-padded to a
    multiple of it (one compiled shape per bucket; small, since a batch pads to its longest prompt).
    """

    model: ChatModel
    mesh: jax.sharding.Mesh
    params: dict
    lora: dict | None
    rows_per_host: int
    length_bucket: int = 16
    rules: tuple = DEFAULT_LOGICAL_AXIS_RULES  # logical axis rules of the activation constraints

    @classmethod
    def create(
        cls,
        model: ChatModel,
        batch_size: int = 8,
        mesh_config: MeshConfig | None = None,
        devices=None,
        length_bucket: int = 16,
    ):
        """Places `model` on the mesh of `mesh_config` (default: every device on the data axis).

        Raises:
          ValueError: when the data axes (data x fsdp) do not split evenly over the processes.
        """
        mesh_config = mesh_config or MeshConfig()
        mesh = make_mesh(mesh_config, devices)
        batch_axes = batch_sharding(mesh).spec[0]
        batch_axes = (batch_axes,) if isinstance(batch_axes, str) else tuple(batch_axes)
        data_parallel = int(np.prod([mesh.shape[a] for a in batch_axes]))
        processes = len({d.process_index for d in mesh.devices.flat})
        if data_parallel % processes:
            raise ValueError(
                f"the mesh's data axes (data x fsdp = {data_parallel}) do not split over its {processes} processes; "
                "each process decodes its own rows"
            )
        rows = round_up(batch_size, data_parallel // processes)
        shardings = chatpose.variable_shardings(model.config, mesh, mesh_config.logical_axis_rules)
        params = _place(model.params, shardings["params"])
        lora = _place(model.lora, shardings["lora"]) if model.lora else None
        return cls(model, mesh, params, lora, rows, length_bucket, mesh_config.logical_axis_rules)

    @functools.cached_property
    def _batch(self):
        return batch_sharding(self.mesh)

    # The config is bound rather than static: hashing it on every call costs milliseconds.
    @functools.cached_property
    def _generate(self):
        return jax.jit(
            traced_under(functools.partial(_generate, self.model.config), self.mesh, self.rules),
            static_argnums=(0, 1),
            out_shardings=self._batch,
        )

    @functools.cached_property
    def _forced(self):
        return jax.jit(
            traced_under(functools.partial(_forced, self.model.config), self.mesh, self.rules),
            static_argnums=(0,),
            out_shardings=self._batch,
        )

    def encode(self, question: str, has_image: bool, forced: bool = False) -> np.ndarray:
        """int32[T] prompt ids of a one-turn question (image tokens expanded); with `forced`, the
        teacher-forced answer prefix " Sure, it is" follows, so the last state is the one before <POSE>."""
        model = self.model
        turn = prompt.user_turn(question, has_image)
        if not forced:
            ids = model.encode([], turn)
            model.check_length(ids)
            return ids
        return model.encode_text(prompt.generation_prompt([], turn) + FORCED_ANSWER_PREFIX)

    def _global_inputs(self, rows: list[np.ndarray], pixels: np.ndarray | None):
        """This host's rows (filled to rows_per_host) -> global (ids, pixels, mask) and the padded length."""
        if not 0 < len(rows) <= self.rows_per_host:
            raise ValueError(f"{len(rows)} rows for a step of {self.rows_per_host} per host")
        filled = list(rows) + [rows[0]] * (self.rows_per_host - len(rows))
        length = _agreed_max(round_up(max(len(r) for r in filled), self.length_bucket))
        ids, mask = left_pad(filled, length, self.model.config.pad_token_id)
        put = functools.partial(jax.make_array_from_process_local_data, self._batch)
        if pixels is not None:
            pixels = np.concatenate([pixels, np.repeat(pixels[:1], self.rows_per_host - len(rows), axis=0)])
            pixels = put(pixels.astype(np.float32))
        return put(ids), pixels, put(mask), length

    def _local(self, tree, count: int):
        if jax.process_count() > 1:
            tree = multihost_utils.global_array_to_host_local_array(tree, self.mesh, self._batch.spec)
        return jax.tree.map(lambda x: np.asarray(x)[:count], tree)

    def generate(self, rows: list[np.ndarray], pixels: np.ndarray | None, max_new_tokens: int) -> dict:
        """Greedy answers of this host's prompts `rows` (int32[T_i] each; pixels float32[R, 3, S, S] or None).

        Returns host arrays for the R rows: tokens int32[R, N], lengths int32[R], axis_angle
        float32[R, 24, 3] (radians; joint 0 the global orientation) of the first <POSE>, has_pose bool[R].
        """
        ids, pixels, mask, length = self._global_inputs(rows, pixels)
        budget = max(1, min(max_new_tokens, self.model.context_length - length))
        out = self._generate(budget, length + budget, self.params, self.lora, ids, pixels, mask)
        return self._local(out, len(rows))

    def forced(self, rows: list[np.ndarray], pixels: np.ndarray | None) -> np.ndarray:
        """float32[R, 24, 3] axis-angle: the pose head at the last state of each teacher-forced prompt of `rows`."""
        ids, pixels, mask, length = self._global_inputs(rows, pixels)
        out = self._forced(length, self.params, self.lora, ids, pixels, mask)
        return self._local(out, len(rows))
