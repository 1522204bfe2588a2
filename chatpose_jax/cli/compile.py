"""`chatpose-compile --config configs/X.py --topology v5p-128 [--num_slices 2] [--config.field=value ...]`.

Compiles the real train step and decode step for a TPU slice on this machine (libtpu, no TPU
needed) and prints per device: memory against the chip's HBM, FLOPs, the bytes of each kind of
collective over ICI and DCN (and the weights' all-gathers against the FSDP ideal), and a roofline
step-time estimate with the MFU it implies. `--hlo_out FILE` writes the partitioned train step
(the decode step's goes to FILE with `.decode` before the suffix). Exits with status 1 when a
step does not fit, naming the largest buffers.
"""

import os

from absl import flags

from chatpose_jax import paths
from chatpose_jax.cli import common

_CONFIG = common.define_config_flag()
_TOPOLOGY = flags.DEFINE_string("topology", None, "TPU slice, e.g. v5p-128, v5e-256, v4-64, v6e-64.", required=True)
_NUM_SLICES = flags.DEFINE_integer(
    "num_slices", 1, "Slices (multislice); the data axis spans them unless config.mesh.dcn_* say otherwise."
)
_DECODE = flags.DEFINE_boolean("decode", True, "Also compile one decoding step.")
_DECODE_BATCH = flags.DEFINE_integer("decode_batch", 0, "Decode batch (default: one row per data-parallel device).")
_TEXT_LENGTH = flags.DEFINE_integer("text_length", 0, "Text tokens per sequence (default: train.max_text_length).")
_HLO_OUT = common.define_path("hlo_out", None, "Write the partitioned train step's HLO here (local path or gs://).")


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from chatpose_jax.parallel.mesh import data_parallel_size, resolve_mesh_shape
    from chatpose_jax.parallel.topology import compile_only_devices
    from chatpose_jax.train import aot

    try:
        tpu, devices = compile_only_devices(_TOPOLOGY.value, _NUM_SLICES.value)
    except (ValueError, RuntimeError) as e:
        common.fail(str(e))
    config = _CONFIG.value
    dcn = config.mesh.dcn_data * config.mesh.dcn_fsdp * config.mesh.dcn_tensor
    if _NUM_SLICES.value > 1 and dcn == 1:
        config.mesh.dcn_data = _NUM_SLICES.value  # the data axis across the slices, as in training
    experiment = common.validated_experiment(config, devices=devices)
    chip = tpu.generation
    print(
        f"{_TOPOLOGY.value} x{_NUM_SLICES.value}: {len(devices)} devices ({devices[0].device_kind}), "
        f"topology {tpu.topology_name}, {chip.hbm_bytes / 1024**3:.0f} GiB HBM per chip "
        f"(chip figures: {chip.source})"
    )
    try:
        reports = [aot.compile_train_step(experiment, devices, chip, _TEXT_LENGTH.value or None)]
        print(aot.format_report(reports[-1]), flush=True)
        if _HLO_OUT.value:
            write_text(_HLO_OUT.value, reports[-1].hlo)
        if _DECODE.value:
            dp = data_parallel_size(resolve_mesh_shape(experiment.mesh, len(devices)))
            seq = experiment.model.vision.num_image_tokens + (_TEXT_LENGTH.value or experiment.train.max_text_length)
            reports.append(aot.compile_decode_step(experiment, devices, _DECODE_BATCH.value or dp, seq, chip))
            print(aot.format_report(reports[-1]), flush=True)
            if _HLO_OUT.value:
                write_text(decode_hlo_path(_HLO_OUT.value), reports[-1].hlo)
    except aot.DoesNotFitError as e:
        print(e)
        common.fail("the step does not fit in HBM (see the largest buffers above)")
    if not all(r.fits for r in reports):
        common.fail("the step does not fit in HBM (see the largest buffers above)")


def decode_hlo_path(train_path: str) -> str:
    """`step.hlo` -> `step.decode.hlo`; a name without a suffix gets `.decode` appended."""
    root, dot, suffix = train_path.rpartition(".")
    return f"{root}.decode.{suffix}" if dot and "/" not in suffix else f"{train_path}.decode"


def write_text(path: str, text: str) -> None:
    target = paths.path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {path}")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
