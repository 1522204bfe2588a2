"""The full 7B recipe compiles for a TPU v5p-64 slice on this CPU host and fits (its own file: about
two minutes of compiling, which `make test`'s other worker overlaps with the rest of the suite)."""

import pytest

pytest.importorskip("libtpu", reason="the [aot] extra (libtpu) is not installed")

from tests.tpu_compile import compile_cli  # noqa: E402


@pytest.mark.slow
def test_llava15_7b_compiles_for_v5p_64():
    result = compile_cli(
        "--config=configs/llava15_7b.py",
        "--topology=v5p-64",
        "--nodecode",
        "--text_length=448",
        "--config.train.batch_size=64",
        "--config.train.grad_accum_steps=1",
        "--config.mesh.fsdp=-1",
        "--config.mesh.data=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "32 devices" in result.stdout and "fits" in result.stdout
