"""The inputs of a launch, the same for every target: what to run, where the code comes from, on what.

`LaunchSpec` is validated once when built; targets read it and render commands, never the flags.
"""

from __future__ import annotations

import dataclasses
import math
import re

PROGRAMS = ("train", "eval", "check")

# gcloud's runtime version for each TPU generation (Cloud TPU's software versions page).
TPU_RUNTIME_VERSIONS = {
    "v4": "tpu-ubuntu2204-base",
    "v5e": "v2-alpha-tpuv5-lite",
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",
}
# GKE's node label for each generation's slices.
GKE_TPU_ACCELERATORS = {
    "v4": "tpu-v4-podslice",
    "v5e": "tpu-v5-lite-podslice",
    "v5p": "tpu-v5p-slice",
    "v6e": "tpu-v6e-slice",
}
# How gcloud spells the generation in accelerator types.
GCLOUD_TPU_PREFIX = {"v4": "v4", "v5e": "v5litepod", "v5p": "v5p", "v6e": "v6e"}
TWO_CORES_PER_CHIP = ("v4", "v5p")  # their slice names count TensorCores
TORUS_3D = ("v4", "v5p")
# Single-host slices of v5e/v6e hold up to 8 chips on one VM; larger slices have 4 chips per VM.
MAX_CHIPS_ONE_VM = {"v4": 4, "v5e": 8, "v5p": 4, "v6e": 8}
CHIPS_PER_VM_MULTIHOST = 4

GPU_TYPES = {"h100-80gb-8": ("nvidia-h100-80gb", 8), "h100-mega-80gb-8": ("nvidia-h100-mega-80gb", 8)}


class SpecError(ValueError):
    """A launch input that cannot work, named with the flag that sets it."""


@dataclasses.dataclass(frozen=True)
class TpuSlice:
    """One TPU slice as users name it (`v5p-128`, `v5e-256`)."""

    generation: str
    size: int  # the number in the name

    @property
    def chips(self) -> int:
        return self.size // 2 if self.generation in TWO_CORES_PER_CHIP else self.size

    @property
    def vms(self) -> int:
        """Hosts per slice: every one runs one process."""
        if self.chips <= MAX_CHIPS_ONE_VM[self.generation]:
            return 1
        return self.chips // CHIPS_PER_VM_MULTIHOST

    @property
    def chips_per_vm(self) -> int:
        return self.chips // self.vms

    @property
    def gcloud_type(self) -> str:
        return f"{GCLOUD_TPU_PREFIX[self.generation]}-{self.size}"

    @property
    def runtime_version(self) -> str:
        return TPU_RUNTIME_VERSIONS[self.generation]

    @property
    def gke_accelerator(self) -> str:
        return GKE_TPU_ACCELERATORS[self.generation]

    @property
    def topology(self) -> str:
        """GKE's topology label: chips as evenly spread as the torus allows, e.g. 64 -> 4x4x4, 256 -> 16x16."""
        dims = 3 if self.generation in TORUS_3D else 2
        exponent = self.chips.bit_length() - 1
        exps = [exponent // dims] * dims
        for i in range(exponent % dims):
            exps[dims - 1 - i] += 1
        shape = sorted(2**e for e in exps)
        shape = [s for s in shape if s != 1] + [s for s in shape if s == 1]
        return "x".join(map(str, shape))


def parse_tpu(name: str) -> TpuSlice:
    """`v5p-128`, `v5e-256` or `v5litepod-256` -> TpuSlice. Raises SpecError for unknown names."""
    match = re.fullmatch(r"(v\d+[a-z]?|v5litepod)-(\d+)", name.strip().lower())
    generation = {"v5litepod": "v5e"}.get(match.group(1), match.group(1)) if match else None
    if generation not in TPU_RUNTIME_VERSIONS:
        raise SpecError(f"--accelerator={name!r}: expected a TPU slice such as v4-64, v5p-128, v5e-256, v6e-64")
    size = int(match.group(2))
    chips = size // 2 if generation in TWO_CORES_PER_CHIP else size
    if chips < 1 or chips & (chips - 1) or (generation in TWO_CORES_PER_CHIP and size % 2):
        raise SpecError(f"--accelerator={name!r}: TPU slices hold a power-of-two number of chips")
    return TpuSlice(generation, size)


def parse_gpu(name: str) -> tuple[str, int]:
    """`h100-80gb-8` -> (GKE accelerator label, GPUs per node)."""
    if name not in GPU_TYPES:
        raise SpecError(f"--accelerator={name!r}: GPU node types are {', '.join(GPU_TYPES)}")
    return GPU_TYPES[name]


def is_tpu(name: str) -> bool:
    return bool(re.match(r"v\d", name.strip().lower()))


@dataclasses.dataclass(frozen=True)
class CodeSource:
    """Where workers get the project: a git commit (a checkout, so `configs/` is there) or a built wheel.

    With a wheel, the config file travels inside the rendered setup (`config_text`), since the wheel
    does not carry `configs/`. On GKE and xpk the code is the Docker image's.
    """

    kind: str  # git | wheel
    location: str  # clone URL, or the wheel's gs:// URI / path on a shared file system
    commit: str = ""  # git only
    config_text: str = ""  # wheel only: the config file's content

    def __post_init__(self):
        if self.kind not in ("git", "wheel"):
            raise SpecError(f"--code: {self.kind!r} is neither git nor wheel")
        if self.kind == "git" and not re.fullmatch(r"[0-9a-f]{7,40}", self.commit):
            raise SpecError(f"--commit={self.commit!r}: a git commit hash (pushed where {self.location} serves it)")
        if self.kind == "wheel" and not self.location.endswith(".whl"):
            raise SpecError(f"--wheel={self.location!r}: expected a .whl file")


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """Everything a target renders from. Built by `launch.py`; tests build it directly."""

    target: str
    name: str  # job / TPU / workload name: lower case, digits and '-'
    workdir: str = ""  # checkpoints and logs; gs:// on clouds
    config: str = ""  # `configs/X.py` or `configs/X.py:recipe`, passed through unchanged
    overrides: tuple[str, ...] = ()  # `--config.field=value`, passed through unchanged
    extra_args: tuple[str, ...] = ()  # after `--`: more flags of the program
    program: str = "train"  # train | eval | check
    code: CodeSource | None = None
    accelerator: str = "cpu"  # v5p-128, v5e-256, h100-80gb-8, cpu
    num_slices: int = 1  # TPU slices (multislice when > 1)
    num_nodes: int = 1  # GPU nodes
    gpus_per_node: int = 8
    zone: str = ""
    project: str = ""
    spot: bool = False
    reserved: bool = False
    cluster: str = ""  # GKE / xpk cluster
    docker_image: str = ""  # GKE / xpk: the image holds the code, its working directory the repo root
    max_restarts: int = 3
    partition: str = ""  # SLURM
    time_limit: str = ""  # SLURM, e.g. 2-00:00:00
    code_dir: str = "chatpose-jax"  # where the code is checked out, relative to $HOME (SLURM, TPU VMs)
    init_timeout_s: int = 1800  # cold starts after preemption need more than JAX's 300 s
    heartbeat_timeout_s: int = 600  # long compiles stall heartbeats
    env: tuple[tuple[str, str], ...] = ()  # more variables for the program
    num_processes: int = 2  # local
    devices_per_process: int = 1  # local
    python: str = "python3"

    def __post_init__(self):
        if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", self.name) or len(self.name) > 40:
            raise SpecError(f"--name={self.name!r}: lower-case letters, digits and '-', at most 40 characters")
        if self.program not in PROGRAMS:
            raise SpecError(f"--program={self.program!r}: one of {', '.join(PROGRAMS)}")
        if self.program == "train" and not (self.config and self.workdir):
            raise SpecError("chatpose-train needs --config and --workdir")
        for override in self.overrides:
            if not override.startswith("--config."):
                raise SpecError(f"{override!r}: config overrides look like --config.field=value")
        if min(self.num_slices, self.num_nodes, self.num_processes, self.devices_per_process) < 1:
            raise SpecError("--num_slices, --num_nodes, --num_processes and --devices_per_process are >= 1")
        if self.spot and self.reserved:
            raise SpecError("--spot and --reserved exclude each other")
        if is_tpu(self.accelerator):
            self._check_mesh_across_slices()
        for key, _ in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise SpecError(f"--env {key!r}: not a variable name")

    def _check_mesh_across_slices(self) -> None:
        """The mesh checks of the job's start that the overrides alone decide, made before any TPU is created."""
        mesh = {}
        for override in self.overrides:
            match = re.fullmatch(r"--config\.mesh\.(data|fsdp|tensor|dcn_data|dcn_fsdp|dcn_tensor)=(-?\d+)", override)
            if match:
                mesh[match.group(1)] = int(match.group(2))
        dcn = {k: v for k, v in mesh.items() if k.startswith("dcn_")}
        if dcn and math.prod(dcn.values()) != self.num_slices:
            given = " x ".join(f"{k}={v}" for k, v in dcn.items())
            raise SpecError(
                f"--config.mesh: {given} lays the mesh over {math.prod(dcn.values())} slices, "
                f"but --num_slices={self.num_slices}"
            )
        if not dcn:  # several slices and no dcn field: the data axis is laid across them
            dcn = {"dcn_data": self.num_slices}
        for axis in ("data", "fsdp", "tensor"):
            parts = dcn.get(f"dcn_{axis}", 1)
            if mesh.get(axis, -1) != -1 and mesh[axis] % parts:
                raise SpecError(
                    f"--config.mesh.{axis}={mesh[axis]} does not split over {parts} slices "
                    f"(dcn_{axis}={parts}; --num_slices={self.num_slices})"
                )

    @property
    def config_file(self) -> str:
        """The config's file path, without a `:recipe` suffix."""
        return self.config.split(":", 1)[0]

    @property
    def tpu(self) -> TpuSlice:
        return parse_tpu(self.accelerator)
