"""SMPLify in JAX: accuracy on posed synthetic bodies, and people fitted per second beside PyTorch.

    python -m chatpose_jax.benchmarks.smplify [--people 64] [--batches 1 64] [--repeats 3]
        [--camera_iterations 30] [--body_iterations 100] [--learning_rate 0.05] [--model PATH]

Bodies: the synthetic 6890-vertex SMPL (or PATH), poses from `data_pipelines.synthetic.poses`
(turned by up to `--yaw` rad from facing the camera: SMPLify's start faces the camera and does not
try the turned-around guess), betas from its `sample_betas` at spread 0.5, about 45 m from a
5000 px camera (SPIN's crop camera), OpenPose BODY_25 keypoints. The GMM prior (`gmm_08.pkl`
format) is fitted to 4000 other poses of the same sampler. Accuracy: PA-MPJPE of the 24 SMPL
joints, fitted from exact projections and from projections with Gaussian pixel noise, beside the
mean pose's (the prior's mean, zero betas, true orientation). Speed: people fitted per second,
whole fits (both stages, same iterations), ours jitted and warmed up, beside a plain PyTorch
implementation of the same objective, start and Adam optimiser written below (both read the joints
and the 11 keypoint vertices only); PyTorch on one thread and on every core, the ratio against the
faster of the two (XLA uses every core); best of `--repeats` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from chatpose_jax.benchmarks.timing import best_time

PEOPLE_DISTANCE_M = (40.0, 55.0)
FOCAL, CENTRE = 5000.0, 112.0


def camera_frame_poses(num: int, seed: int, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """(global_orient float[N, 3] in the camera frame, body_pose float[N, 69]) radians."""
    from data_pipelines.orientation import CAMERA_TO_Y_UP, change_frame
    from data_pipelines.synthetic.poses import sample_poses

    global_orient, body_pose = sample_poses(num, seed, yaw_range=yaw)
    # The sampler's frame is y up, facing +z; the camera's is y down, z away (a half turn about x).
    return change_frame(global_orient, CAMERA_TO_Y_UP.T).astype(np.float32), body_pose


def make_people(model, layout, num: int, seed: int, yaw: float, noise_px: float) -> dict[str, np.ndarray]:
    """Posed people and their BODY_25 keypoints float[N, 25, 3] (pixels, confidence 1), noisy by noise_px."""
    import jax

    from chatpose_jax.fitting.body_keypoints import layout_keypoints
    from data_pipelines.synthetic.poses import sample_betas

    global_orient, body_pose = camera_frame_poses(num, seed, yaw)
    betas = sample_betas(num, seed + 1, spread=0.5)
    rng = np.random.default_rng(seed + 2)
    translation = np.stack(
        [rng.uniform(-0.1, 0.1, num), rng.uniform(-0.1, 0.1, num), rng.uniform(*PEOPLE_DISTANCE_M, num)], axis=1
    )
    points, joints = jax.jit(layout_keypoints, static_argnums=1)(model, layout, global_orient, body_pose, betas)
    points = np.asarray(points, np.float64) + translation[:, None]
    pixels = FOCAL * points[..., :2] / points[..., 2:] + CENTRE
    pixels = pixels + noise_px * rng.normal(size=pixels.shape)
    keypoints = np.concatenate([pixels, np.ones(pixels.shape[:2] + (1,))], axis=-1).astype(np.float32)
    return {
        "global_orient": global_orient,
        "body_pose": body_pose,
        "joints": np.asarray(joints),
        "keypoints": keypoints,
    }


class TorchSmplify:
    """The same fit in plain PyTorch: same keypoints, start, losses, stages and Adam steps as ours."""

    def __init__(self, model, pose_prior, layout, config):
        import torch

        from chatpose_jax.body import lbs

        self.torch, self.config, self.layout = torch, config, layout
        ids = np.asarray(layout.vertex_ids)
        t = lambda x: torch.tensor(np.array(x), dtype=torch.float32)  # noqa: E731
        self.parents = model.parents
        joint_dirs = np.einsum("kcv,jv->kjc", np.asarray(model.shapedirs), np.asarray(model.J_regressor))
        self.template_joints = t(np.asarray(model.J_regressor) @ np.asarray(model.v_template).T)  # [24, 3]
        self.joint_dirs = t(joint_dirs.reshape(joint_dirs.shape[0], -1))  # [10, 72]
        self.v_template = t(np.asarray(model.v_template)[:, ids].T)  # [V', 3]
        self.shapedirs = t(np.asarray(model.shapedirs)[:, :, ids].transpose(0, 2, 1).reshape(10, -1))  # [10, V'*3]
        self.posedirs = t(np.asarray(model.posedirs)[:, :, ids].transpose(0, 2, 1).reshape(207, -1))  # [207, V'*3]
        self.lbs_weights = t(np.asarray(model.lbs_weights)[:, ids].T)  # [V', 24]
        self.keypoint_weights = t(layout.weights)  # [K, 24 + V']
        self.means, self.precisions = t(pose_prior.means), t(pose_prior.precisions)
        self.constants, self.mean_pose = t(pose_prior.constants), t(pose_prior.mean_pose)
        self.levels = lbs.kinematic_levels(self.parents)

    def rodrigues(self, axis_angle):
        torch = self.torch
        angle = torch.sqrt(torch.sum(axis_angle**2, dim=-1, keepdim=True) + 1e-12)[..., None]
        x, y, z = (axis_angle / angle[..., 0]).unbind(-1)
        zero = torch.zeros_like(x)
        k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*x.shape, 3, 3)
        eye = torch.eye(3, dtype=axis_angle.dtype)
        return eye + torch.sin(angle) * k + (1 - torch.cos(angle)) * (k @ k)

    def keypoints(self, global_orient, body_pose, betas):
        """float[B, K, 3] metres and float[B, 24, 3] joints, body frame."""
        torch = self.torch
        batch = betas.shape[0]
        rotmat = self.rodrigues(torch.cat([global_orient, body_pose], dim=-1).reshape(batch, 24, 3))
        rest = self.template_joints + (betas @ self.joint_dirs).reshape(batch, 24, 3)
        rotations, positions = [rotmat[:, 0]], [rest[:, 0]]
        for j in range(1, 24):  # forward kinematics joint by joint, parents first (smplx's order)
            p = self.parents[j]
            rotations.append(rotations[p] @ rotmat[:, j])
            positions.append(positions[p] + (rotations[p] @ (rest[:, j] - rest[:, p])[..., None])[..., 0])
        global_rot, joints = torch.stack(rotations, 1), torch.stack(positions, 1)
        shift = joints - (global_rot @ rest[..., None])[..., 0]
        features = (rotmat[:, 1:] - torch.eye(3)).reshape(batch, -1)
        v_posed = self.v_template + (betas @ self.shapedirs + features @ self.posedirs).reshape(batch, -1, 3)
        blended_rot = torch.einsum("vj,bjrc->bvrc", self.lbs_weights, global_rot)
        blended_shift = torch.einsum("vj,bjc->bvc", self.lbs_weights, shift)
        vertices = (blended_rot @ v_posed[..., None])[..., 0] + blended_shift
        sources = torch.cat([joints, vertices], dim=1)
        return torch.einsum("ks,bsc->bkc", self.keypoint_weights, sources), joints

    @staticmethod
    def project(points, translation):
        camera_points = points + translation[:, None]
        return FOCAL * camera_points[..., :2] / camera_points[..., 2:] + CENTRE

    def initial_translation(self, points, keypoints_2d):
        """`camera.initial_translation` with every keypoint detected (confidence 1, torso seen)."""
        shoulders, hips = list(self.layout.torso[:2]), list(self.layout.torso[2:])

        def torso_height(x):
            return (x[:, shoulders].mean(1) - x[:, hips].mean(1)).norm(dim=-1)

        depth = FOCAL * torso_height(points) / torso_height(keypoints_2d)
        body_centre, image_centre = points.mean(1), keypoints_2d.mean(1)
        xy = (image_centre - CENTRE) * (depth + body_centre[:, 2])[:, None] / FOCAL - body_centre[:, :2]
        return self.torch.cat([xy, depth[:, None]], dim=-1)

    def fit(self, keypoints: np.ndarray):
        torch, config = self.torch, self.config
        from chatpose_jax.fitting import prior

        keypoints_2d = torch.as_tensor(keypoints[..., :2])
        conf = torch.as_tensor(keypoints[..., 2])
        batch = keypoints_2d.shape[0]
        global_orient = torch.tensor([[np.pi, 0.0, 0.0]]).repeat(batch, 1)
        body_pose = self.mean_pose[None].repeat(batch, 1)
        betas = torch.zeros(batch, 10)
        with torch.no_grad():
            start, _ = self.keypoints(global_orient, body_pose, betas)
            start_translation = self.initial_translation(start, keypoints_2d)
        torso = torch.zeros(keypoints_2d.shape[1])
        torso[list(self.layout.torso)] = 1.0
        torso_weights = torso * conf**2

        global_orient = global_orient.clone().requires_grad_(True)
        translation = start_translation.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([global_orient, translation], lr=config.learning_rate)
        for _ in range(config.camera_iterations):
            points, _ = self.keypoints(global_orient, body_pose, betas)
            error = ((self.project(points, translation) - keypoints_2d) ** 2).sum(-1)
            depth = config.depth_weight**2 * (translation[:, 2] - start_translation[:, 2]) ** 2
            loss = ((torso_weights * error).sum(-1) + depth).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        translation = translation.detach()
        body_pose = body_pose.clone().requires_grad_(True)
        betas = betas.requires_grad_(True)
        optimizer = torch.optim.Adam([global_orient, body_pose, betas], lr=config.learning_rate)
        signs = torch.tensor(prior.BENDING_SIGNS)
        for _ in range(config.body_iterations):
            points, _ = self.keypoints(global_orient, body_pose, betas)
            residual = self.project(points, translation) - keypoints_2d
            gm = config.sigma**2 * residual**2 / (config.sigma**2 + residual**2)
            reprojection = (conf**2 * gm.sum(-1)).sum(-1)
            diff = body_pose[:, None] - self.means
            quadratic = torch.einsum("bmi,mij,bmj->bm", diff, self.precisions, diff)
            gmm = (0.5 * quadratic + self.constants).min(dim=1).values
            bending = torch.exp(body_pose[:, list(prior.BENDING_INDICES)] * signs).pow(2).sum(-1)
            loss = (
                reprojection
                + config.pose_prior_weight**2 * gmm
                + config.angle_prior_weight**2 * bending
                + config.shape_prior_weight**2 * (betas**2).sum(-1)
            ).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return global_orient.detach(), body_pose.detach(), betas.detach()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=64, help="people scored for accuracy")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--camera_iterations", type=int, default=30)
    parser.add_argument("--body_iterations", type=int, default=100)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--noise_px", type=float, default=5.0)
    parser.add_argument("--yaw", type=float, default=0.6, help="largest turn from facing the camera, radians")
    parser.add_argument("--model", default=None, help="an SMPL file; default: a synthetic full-size one")
    args = parser.parse_args()

    import jax
    import torch

    from chatpose_jax.body import load_body_model, synthetic
    from chatpose_jax.eval.metrics import pa_mpjpe
    from chatpose_jax.fitting import gmm_file, prior, smplify
    from chatpose_jax.fitting.body_keypoints import layout_keypoints
    from chatpose_jax.fitting.keypoint_layouts import get_layout

    # One thread for the accuracy runs: on a busy machine PyTorch's threads wait on each other (measured
    # on the 2-core dev machine at load 5-6: a whole fit at batch 1 took 0.6 s on one thread, 10 s on two).
    torch.set_num_threads(1)
    folder = tempfile.mkdtemp(prefix="smplify_bench_")
    path = args.model or synthetic.write_smpl_pkl(os.path.join(folder, "SMPL_NEUTRAL.pkl"))
    model = load_body_model(path)
    layout = get_layout("body25")
    _, prior_poses = camera_frame_poses(4000, seed=100, yaw=args.yaw)
    pose_prior = prior.load_max_mixture_prior(gmm_file.write_gmm_pkl(os.path.join(folder, "gmm_08.pkl"), prior_poses))
    config = smplify.SmplifyConfig(
        learning_rate=args.learning_rate,
        camera_iterations=args.camera_iterations,
        body_iterations=args.body_iterations,
    )
    print(
        f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores; jax {jax.__version__}, torch {torch.__version__}"
    )
    print(f"model {path}; {config}")
    print("load average before the runs (other jobs on the machine): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))

    joints_of = jax.jit(lambda m, go, bp, b: layout_keypoints(m, layout, go, bp, b)[1])
    score = jax.jit(lambda pred, target: 1000 * pa_mpjpe(pred, target))
    torch_fit = TorchSmplify(model, pose_prior, layout, config)
    print(f"| keypoints ({args.people} people) | ours PA-MPJPE | PyTorch PA-MPJPE | mean pose PA-MPJPE |")
    print("|---|---|---|---|")
    for noise in (0.0, args.noise_px):
        people = make_people(model, layout, args.people, seed=1, yaw=args.yaw, noise_px=noise)
        fit = smplify.fit_smplify(model, pose_prior, people["keypoints"], layout, config=config)
        ours = score(joints_of(model, fit.global_orient, fit.body_pose, fit.betas), people["joints"])
        go, bp, b = torch_fit.fit(people["keypoints"])
        theirs = score(joints_of(model, go.numpy(), bp.numpy(), b.numpy()), people["joints"])
        mean_pose = np.broadcast_to(np.asarray(pose_prior.mean_pose), (args.people, 69))
        start = score(
            joints_of(model, people["global_orient"], mean_pose, np.zeros((args.people, 10))), people["joints"]
        )
        label = "exact" if noise == 0 else f"{noise:g} px noise"
        print(
            f"| {label} | {np.mean(ours):.1f} mm | {np.mean(theirs):.1f} mm | {np.mean(start):.1f} mm |",
            flush=True,
        )

    cores = os.cpu_count() or 1
    thread_counts = sorted({1, cores})
    torch_columns = " | ".join(f"PyTorch people/s, {n} thread{'s' * (n > 1)}" for n in thread_counts)
    print(f"| batch | ours people/s | {torch_columns} | ours / best PyTorch |")
    print("|---" * (3 + len(thread_counts)) + "|")
    for batch in args.batches:
        keypoints = make_people(model, layout, batch, seed=2, yaw=args.yaw, noise_px=args.noise_px)["keypoints"]
        ours = best_time(
            lambda k=keypoints: jax.block_until_ready(smplify.fit_smplify(model, pose_prior, k, layout, config=config)),
            args.repeats,
            warmups=1,
        )
        theirs = {}
        for threads in thread_counts:
            torch.set_num_threads(threads)
            theirs[threads] = best_time(lambda k=keypoints: torch_fit.fit(k), args.repeats, warmups=1)
        torch_rates = " | ".join(f"{batch / theirs[n]:.1f}" for n in thread_counts)
        print(f"| {batch} | {batch / ours:.1f} | {torch_rates} | {min(theirs.values()) / ours:.1f} |", flush=True)


if __name__ == "__main__":
    main()
