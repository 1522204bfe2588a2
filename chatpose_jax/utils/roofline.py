"""A roofline step-time estimate from a compiled step's FLOPs, memory traffic and collective traffic.

Each resource alone gives a floor on the step time: the FLOPs a device executes (rematerialised
passes included, read from the program) over its peak, the bytes it reads and writes over its HBM
bandwidth, the ring traffic of its collectives over the
chip's ICI bandwidth (all links together: an optimistic floor, since a collective over one mesh
axis drives only the links along it) and across slices over DCN. With perfect overlap the step
takes the largest floor; with none, their sum. MFU counts only the model's FLOPs (MaxText's
convention: no recompute) over the estimated time at peak.
"""

from __future__ import annotations

import dataclasses

from chatpose_jax.utils.hlo import CollectiveBytes


@dataclasses.dataclass(frozen=True)
class Roofline:
    model_s: float  # the model's FLOPs (no recompute) at peak: the time MFU measures against
    compute_s: float
    hbm_s: float
    ici_s: float
    dcn_s: float | None  # None: nothing crosses slices, or the chip publishes no per-chip DCN bandwidth

    @property
    def floors(self) -> dict[str, float]:
        out = {"compute": self.compute_s, "HBM": self.hbm_s, "ICI": self.ici_s}
        if self.dcn_s is not None:
            out["DCN"] = self.dcn_s
        return out

    @property
    def step_s(self) -> float:
        """The step time with compute, memory and network fully overlapped."""
        return max(self.floors.values())

    @property
    def serial_step_s(self) -> float:
        """The step time with nothing overlapped."""
        return sum(self.floors.values())

    @property
    def bound(self) -> str:
        return max(self.floors, key=self.floors.get)

    @property
    def mfu(self) -> float:
        """Model FLOPs utilisation the overlapped estimate implies."""
        return self.model_s / self.step_s if self.step_s else 0.0

    @property
    def serial_mfu(self) -> float:
        """Model FLOPs utilisation with nothing overlapped."""
        return self.model_s / self.serial_step_s if self.serial_step_s else 0.0


def estimate(
    model_flops: float,
    executed_flops: float,
    num_devices: int,
    bytes_accessed: float,
    network: CollectiveBytes,
    peak_flops: float,
    hbm_bytes_per_s: float,
    ici_bytes_per_s: float,
    dcn_bytes_per_s: float | None,
) -> Roofline:
    """The floors of one step: `model_flops` over all devices; executed FLOPs, bytes and traffic per device
    (executed FLOPs of 0: unknown, the model's share per device is used)."""
    # A DCN floor only where the program crosses slices (and the chip publishes its DCN bandwidth).
    dcn = network.dcn_traffic / dcn_bytes_per_s if dcn_bytes_per_s and network.dcn_traffic else None
    model_s = model_flops / (num_devices * peak_flops)
    return Roofline(
        model_s=model_s,
        compute_s=executed_flops / peak_flops if executed_flops else model_s,
        hbm_s=bytes_accessed / hbm_bytes_per_s,
        ici_s=network.ici_traffic / ici_bytes_per_s,
        dcn_s=dcn,
    )
