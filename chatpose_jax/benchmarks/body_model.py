"""The JAX body model against `smplx` (PyTorch), forward and forward + backward, on a full-size SMPL.

    python -m chatpose_jax.benchmarks.body_model [--batches 1 64 512] [--repeats 7] [--model PATH]

Both run in this process on the same synthetic 6890-vertex SMPL file (or PATH), float32, with as
many threads as cores. Ours is jitted and warmed up; each time is the best of `--repeats` runs
(the best is the least disturbed by other jobs on the machine), ours and smplx interleaved.
forward+backward is the gradient of sum(vertices^2) + sum(joints^2) with respect to betas,
body_pose, global_orient and transl. The matrix-work bound is the FLOPs of the pose correctives
and the skinning (forward: 2 B P 3V + 2 B 12 J V; the backward repeats both products once for
the input gradients) over the measured float32 matmul rate (jit, 2048^3). With an accelerator,
it also prints bodies/s at batch 4096 (ours only).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from chatpose_jax.benchmarks.timing import best_time

MATMUL_N = 2048


def matmul_rate(repeats: int) -> float:
    """Measured float32 matmul rate in FLOP/s (jit, 2048 x 2048 x 2048)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (MATMUL_N, MATMUL_N), jnp.float32)
    product = jax.jit(lambda x: x @ x)
    seconds = best_time(lambda: product(a).block_until_ready(), repeats)
    return 2 * MATMUL_N**3 / seconds


def matrix_flops(batch: int, num_verts: int, num_joints: int) -> tuple[float, float]:
    """(forward, forward+backward) FLOPs of the pose-corrective and skinning products."""
    pose = 2 * batch * 9 * (num_joints - 1) * 3 * num_verts
    skinning = 2 * batch * 12 * num_joints * num_verts
    return pose + skinning, 2 * (pose + skinning)


def make_inputs(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "betas": rng.normal(size=(batch, 10)).astype(np.float32),
        "body_pose": (0.5 * rng.normal(size=(batch, 69))).astype(np.float32),
        "global_orient": rng.normal(size=(batch, 3)).astype(np.float32),
        "transl": rng.normal(size=(batch, 3)).astype(np.float32),
    }


def jax_functions(model):
    import jax
    import jax.numpy as jnp

    def forward(m, x):
        out = m(**x)
        return out.vertices, out.joints

    def loss(x, m):
        out = m(**x)
        return jnp.sum(out.vertices**2) + jnp.sum(out.joints**2)

    return jax.jit(forward), jax.jit(jax.grad(loss))


def torch_functions(path: str):
    import smplx
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    reference = smplx.SMPL(model_path=path)

    def forward(x):
        with torch.no_grad():
            out = reference(**x)
        return out.vertices, out.joints

    def forward_backward(x):
        leaves = {k: v.clone().requires_grad_(True) for k, v in x.items()}
        out = reference(**leaves)
        (torch.sum(out.vertices**2) + torch.sum(out.joints**2)).backward()
        return [v.grad for v in leaves.values()]

    return forward, forward_backward


def run(model_path: str, batches: list[int], repeats: int) -> list[dict]:
    import jax
    import torch

    from chatpose_jax.body import load_body_model

    model = load_body_model(model_path)
    forward, grad = jax_functions(model)
    torch_forward, torch_forward_backward = torch_functions(model_path)
    rows = []
    for batch in batches:
        x = make_inputs(batch)
        jx = jax.device_put(x)
        tx = {k: torch.from_numpy(v) for k, v in x.items()}
        row = {"batch": batch}
        row["ours_fwd"] = best_time(lambda jx=jx: jax.block_until_ready(forward(model, jx)), repeats)
        row["smplx_fwd"] = best_time(lambda tx=tx: torch_forward(tx), repeats)
        row["ours_fwd_bwd"] = best_time(lambda jx=jx: jax.block_until_ready(grad(jx, model)), repeats)
        row["smplx_fwd_bwd"] = best_time(lambda tx=tx: torch_forward_backward(tx), max(3, repeats // 2))
        rows.append(row)
    return rows


def accelerator_throughput(model_path: str, batch: int = 4096, repeats: int = 10) -> float | None:
    """Bodies per second of the jitted forward at `batch` on an accelerator, or None on CPU."""
    import jax

    from chatpose_jax.body import load_body_model

    if jax.default_backend() == "cpu":
        return None
    model = load_body_model(model_path)
    forward, _ = jax_functions(model)
    x = jax.device_put(make_inputs(batch))
    return batch / best_time(lambda: jax.block_until_ready(forward(model, x)), repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 512])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--model", default=None, help="an SMPL file; default: a synthetic full-size one")
    args = parser.parse_args()

    path = args.model
    if path is None:
        from chatpose_jax.body import synthetic

        path = synthetic.write_smpl_pkl(os.path.join(tempfile.mkdtemp(prefix="body_bench_"), "SMPL_NEUTRAL.pkl"))
    import jax

    from chatpose_jax.body import load_body_model

    model = load_body_model(path)
    rate = matmul_rate(args.repeats)
    print(f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores; model {path}")
    print(f"float32 matmul rate (jit, {MATMUL_N}^3): {rate / 1e9:.0f} GFLOP/s")
    rows = run(path, args.batches, args.repeats)
    header = (
        "| batch | ours fwd | smplx fwd | ratio | bound fwd | ours fwd+bwd | smplx fwd+bwd | ratio | bound fwd+bwd |"
    )
    print(header)
    print("|---" * 9 + "|")
    for row in rows:
        flops_fwd, flops_both = matrix_flops(row["batch"], model.num_vertices, model.num_joints)
        ms = {k: 1e3 * v for k, v in row.items() if k != "batch"}
        print(
            f"| {row['batch']} | {ms['ours_fwd']:.2f} ms | {ms['smplx_fwd']:.2f} ms | {ms['ours_fwd'] / ms['smplx_fwd']:.2f} "
            f"| {1e3 * flops_fwd / rate:.2f} ms | {ms['ours_fwd_bwd']:.2f} ms | {ms['smplx_fwd_bwd']:.2f} ms "
            f"| {ms['ours_fwd_bwd'] / ms['smplx_fwd_bwd']:.2f} | {1e3 * flops_both / rate:.2f} ms |"
        )
    throughput = accelerator_throughput(path)
    if throughput is None:
        print("bodies/s at batch 4096: no accelerator here (CPU only)")
    else:
        print(f"bodies/s at batch 4096 on {jax.devices()[0].device_kind}: {throughput:,.0f}")


if __name__ == "__main__":
    main()
