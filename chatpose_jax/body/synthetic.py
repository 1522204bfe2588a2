"""Synthetic SMPL / SMPL-H / SMPL-X model files, written in the official formats.

The real files cannot be downloaded here, so tests, benchmarks and the demo use these. They have
the real sizes (6890 vertices for SMPL and SMPL-H, 10475 for SMPL-X), the real kinematic trees, a
human-proportioned T-pose skeleton (metres, y up, facing +z, the body's left on +x), a closed
mesh of tapered capsules and ellipsoids around the bones (every part a closed surface, so the whole
mesh is watertight), smooth skinning weights, plausible shape directions (height, girth, leg
length, shoulder width, belly, plus smooth random fields), small smooth pose correctives, a joint
regressor that reproduces the skeleton from the mesh, an H36M-style 17-joint regressor and a
4D-Humans-style 19-joint one (`SMPL_to_J19.pkl`). SMPL's and SMPL-H's vertices are numbered so that
the ids keypoint layouts read for the nose, eyes, ears, toes and heels (`skeletons.SMPL_VERTEX_IDS`)
sit there on the synthetic head and feet.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.spatial

from chatpose_jax.body import skeletons

NUM_VERTICES = {"smpl": 6890, "smplh": 6890, "smplx": 10475}
# The official kintree tables store the root's parent as uint32(-1).
ROOT_PARENT = 4294967295

# --- skeleton -------------------------------------------------------------------------------------
# Rest joints of the left side and the midline (metres); right-side joints mirror x.
_BODY_JOINTS = {
    "pelvis": (0.0, -0.23, 0.02),
    "left_hip": (0.065, -0.32, 0.01),
    "spine1": (0.0, -0.12, 0.0),
    "left_knee": (0.10, -0.70, 0.01),
    "spine2": (0.0, 0.01, 0.01),
    "left_ankle": (0.09, -1.11, -0.03),
    "spine3": (0.0, 0.07, 0.03),
    "left_foot": (0.115, -1.17, 0.09),
    "neck": (0.0, 0.29, -0.01),
    "left_collar": (0.075, 0.20, 0.0),
    "head": (0.0, 0.36, 0.04),
    "left_shoulder": (0.185, 0.23, -0.01),
    "left_elbow": (0.44, 0.21, -0.03),
    "left_wrist": (0.69, 0.22, -0.02),
    "left_hand": (0.775, 0.21, -0.025),
    "jaw": (0.0, 0.40, 0.05),
    "left_eye_smplhf": (0.032, 0.465, 0.100),
}
# Finger joints 1..3 and the tip, left hand (T-pose: palm down, fingers along +x, index in front).
_FINGER_CHAINS = {
    "index": ((0.785, 0.215, 0.028), (0.825, 0.215, 0.030), (0.850, 0.214, 0.031), (0.872, 0.213, 0.031)),
    "middle": ((0.790, 0.215, 0.007), (0.835, 0.215, 0.007), (0.862, 0.214, 0.007), (0.886, 0.213, 0.007)),
    "ring": ((0.785, 0.213, -0.013), (0.826, 0.213, -0.014), (0.852, 0.212, -0.015), (0.874, 0.211, -0.015)),
    "pinky": ((0.775, 0.210, -0.031), (0.806, 0.209, -0.034), (0.826, 0.208, -0.035), (0.843, 0.207, -0.036)),
    "thumb": ((0.715, 0.205, 0.030), (0.742, 0.200, 0.055), (0.765, 0.198, 0.072), (0.785, 0.197, 0.085)),
}
_FINGER_RADIUS = {"index": 0.0085, "middle": 0.009, "ring": 0.0085, "pinky": 0.0075, "thumb": 0.0095}


def _joint_position(name: str) -> np.ndarray:
    """Rest position of a joint by its smplx name (left or right, body, face or finger)."""
    side = -1.0 if name.startswith("right") else 1.0
    left_name = name.replace("right_", "left_")
    if left_name in _BODY_JOINTS:
        pos = np.array(_BODY_JOINTS[left_name])
    else:
        finger, phalanx = left_name.split("_")[1][:-1], int(left_name[-1])
        pos = np.array(_FINGER_CHAINS[finger][phalanx - 1])
    return pos * np.array([side, 1.0, 1.0])


def rest_joints(model_type: str) -> np.ndarray:
    """The synthetic skeleton: float[J, 3] metres in the smplx joint order of `model_type`."""
    return np.stack([_joint_position(n) for n in skeletons.JOINT_NAMES[model_type]])


# --- mesh parts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Part:
    """A closed surface around some bones.

    kind 'capsule': tapered capsule from a to b with radii ra, rb; its cross-section is scaled by
    `flat` along `thin` (a world direction). kind 'ellipsoid': centre a, semi-axes radii (x, y, z).
    joints: the joints whose bones may skin it; sigma: skinning falloff (metres); share: relative
    vertex density (faces and hands get more).
    """

    name: str
    kind: str
    a: tuple
    b: tuple = (0.0, 0.0, 0.0)
    ra: float = 0.0
    rb: float = 0.0
    thin: tuple = (0.0, 0.0, 1.0)
    flat: float = 1.0
    radii: tuple = (0.0, 0.0, 0.0)
    joints: tuple = ()
    sigma: float = 0.04
    density: float = 1.0


# Capsules, one row each: the ends a and b (a joint, or a point "x,y,z" in metres), their radii ra and
# rb (metres), the cross-section scaled by flat along thin (a world axis), the skinning falloff sigma
# (metres), the vertex density, then the joints whose bones may skin it. Rows with {side} are built
# for the left side as written and for the right mirrored in x.
_TRUNK = """
name         a                b               ra     rb     flat  thin  sigma  density  joints
lower_torso  0.0,-0.28,0.015  0.0,-0.02,0.01  0.145  0.13   0.68  z     0.06   1.0      pelvis spine1 spine2 left_hip right_hip
chest        0.0,-0.02,0.01   0.0,0.19,0.0    0.135  0.155  0.62  z     0.06   1.0      spine2 spine3 neck left_collar right_collar
neck         0.0,0.20,-0.005  0.0,0.375,0.02  0.058  0.05   1.0   z     0.04   1.0      spine3 neck head
"""
_LIMBS = """
name              a                     b                   ra     rb     flat  thin  sigma  density  joints
{side}_deltoid    {side}_collar         {side}_shoulder     0.07   0.062  0.85  z     0.045  1.0      {side}_collar {side}_shoulder spine3
{side}_upper_arm  {side}_shoulder       {side}_elbow        0.056  0.043  1.0   z     0.04   1.0      {side}_collar {side}_shoulder {side}_elbow
{side}_forearm    {side}_elbow          {side}_wrist        0.043  0.03   0.8   y     0.035  1.0      {side}_shoulder {side}_elbow {side}_wrist
{side}_thigh      0.08,-0.30,0.015      {side}_knee         0.088  0.056  1.0   z     0.05   1.0      pelvis {side}_hip {side}_knee
{side}_shin       {side}_knee           {side}_ankle        0.054  0.036  1.0   z     0.045  1.0      {side}_hip {side}_knee {side}_ankle
{side}_foot       0.09,-1.155,-0.075    0.118,-1.16,0.155   0.043  0.037  0.8   y     0.035  1.0      {side}_knee {side}_ankle {side}_foot
"""
_SMPL_HAND = """
name              a                     b                   ra     rb     flat  thin  sigma  density  joints
{side}_hand       {side}_wrist          0.865,0.21,-0.02    0.038  0.03   0.42  y     0.03   1.5      {side}_elbow {side}_wrist {side}_hand
"""
_PALM = """
name              a                     b                   ra     rb     flat  thin  sigma  density  joints
{side}_palm       {side}_wrist          0.775,0.213,-0.004  0.036  0.04   0.45  y     0.03   2.0      {side}_wrist {side}_index1 {side}_middle1 {side}_ring1 {side}_pinky1
"""
_AXES = {"y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def _capsules(table: str, joints: dict, side: str = "left") -> list[_Part]:
    """The rows of a capsule table for one side ("left" as written, "right" mirrored in x)."""
    mirror = 1.0 if side == "left" else -1.0

    def end(cell: str) -> tuple:
        if "," not in cell:
            return joints[cell]
        x, y, z = (float(v) for v in cell.split(","))
        return (mirror * x, y, z)

    parts = []
    for line in table.strip().splitlines()[1:]:
        name, a, b, ra, rb, flat, thin, sigma, density, *skinned = line.format(side=side).split()
        ends = dict(a=end(a), b=end(b), ra=float(ra), rb=float(rb), thin=_AXES[thin], flat=float(flat))
        parts.append(_Part(name, "capsule", **ends, joints=tuple(skinned), sigma=float(sigma), density=float(density)))
    return parts


def _parts(model_type: str) -> list[_Part]:
    """The synthetic body's parts; the head is last (it takes whatever vertex count is left)."""
    J = {n: tuple(_joint_position(n)) for n in skeletons.JOINT_NAMES[model_type]}
    parts = _capsules(_TRUNK, J)
    for side in ("left", "right"):
        parts += _capsules(_LIMBS, J, side)
        if model_type == "smpl":
            parts += _capsules(_SMPL_HAND, J, side)
            continue
        parts += _capsules(_PALM, J, side)
        mirror = np.array([1.0 if side == "left" else -1.0, 1.0, 1.0])
        for finger, chain in _FINGER_CHAINS.items():
            base, tip = np.array(chain[0]), np.array(chain[3])
            start = base - 0.3 * (np.array(chain[1]) - base)  # reach back into the palm
            radius = _FINGER_RADIUS[finger]
            skinned = (f"{side}_wrist",) + tuple(f"{side}_{finger}{k}" for k in (1, 2, 3))
            ends = dict(a=tuple(start * mirror), b=tuple(tip * mirror), ra=radius, rb=0.85 * radius)
            parts.append(_Part(f"{side}_{finger}", "capsule", **ends, joints=skinned, sigma=0.014, density=3.0))
    if model_type == "smplx":
        for side in ("left", "right"):
            eye = f"{side}_eye_smplhf"
            parts.append(_Part(f"{side}_eye", "ellipsoid", J[eye], radii=(0.014,) * 3, joints=(eye,), density=3.0))
    head_joints = ("neck", "head", "jaw") if model_type == "smplx" else ("neck", "head")
    parts.append(
        _Part("head", "ellipsoid", (0.0, 0.45, 0.03), radii=(0.082, 0.112, 0.097), joints=head_joints, sigma=0.035)
    )
    return parts


def _frame(axis: np.ndarray, thin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (wide, thin) across `axis`, thin as close to the given direction as possible."""
    thin = thin - np.dot(thin, axis) * axis
    if np.linalg.norm(thin) < 1e-6:
        thin = np.cross(axis, [1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.cross(axis, [0.0, 1.0, 0.0])
    thin = thin / np.linalg.norm(thin)
    return np.cross(thin, axis), thin


def _capsule_grid(part: _Part, spacing: float) -> tuple[int, int]:
    """(rings, segments) of a capsule for a target edge length."""
    length = np.linalg.norm(np.subtract(part.b, part.a))
    meridian = 0.5 * np.pi * (part.ra + part.rb) + np.hypot(length, part.rb - part.ra)
    spacing = spacing / np.sqrt(part.density)
    segments = max(8, int(round(2 * np.pi * 0.5 * (part.ra + part.rb) * (1 + part.flat) / 2 / spacing)))
    rings = max(4, int(round(meridian / spacing)) - 1)
    return rings, segments


def _capsule_mesh(part: _Part, rings: int, segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, faces and per-vertex axis points of a tapered capsule: rings x segments + 2 poles."""
    a, b = np.asarray(part.a, float), np.asarray(part.b, float)
    length = np.linalg.norm(b - a)
    axis = (b - a) / length
    wide, thin = _frame(axis, np.asarray(part.thin, float))
    ra, rb = part.ra, part.rb
    cap_a, side = 0.5 * np.pi * ra, np.hypot(length, rb - ra)
    total = cap_a + side + 0.5 * np.pi * rb
    s = np.linspace(0.0, total, rings + 2)[1:-1]
    z, r = np.empty_like(s), np.empty_like(s)
    lower, upper = s < cap_a, s > cap_a + side
    mid = ~(lower | upper)
    z[lower], r[lower] = -ra * np.cos(s[lower] / ra), ra * np.sin(s[lower] / ra)
    t = (s[mid] - cap_a) / side
    z[mid], r[mid] = t * length, ra + t * (rb - ra)
    beta = (s[upper] - cap_a - side) / rb
    z[upper], r[upper] = length + rb * np.sin(beta), rb * np.cos(beta)
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    cross = np.cos(phi)[:, None] * wide + part.flat * np.sin(phi)[:, None] * thin  # [S, 3]
    ring_pts = a + z[:, None, None] * axis + r[:, None, None] * cross[None]  # [R, S, 3]
    verts = np.concatenate([(a - ra * axis)[None], ring_pts.reshape(-1, 3), (b + rb * axis)[None]])
    axis_pts = np.concatenate([a[None], (a + np.clip(z, 0, length)[:, None] * axis).repeat(segments, 0), b[None]])
    idx = 1 + np.arange(rings * segments).reshape(rings, segments)
    nxt = np.roll(idx, -1, axis=1)
    faces = [np.stack([np.zeros(segments, int), nxt[0], idx[0]], 1)]
    faces.append(np.stack([idx[:-1], nxt[:-1], nxt[1:]], -1).reshape(-1, 3))
    faces.append(np.stack([idx[:-1], nxt[1:], idx[1:]], -1).reshape(-1, 3))
    faces.append(np.stack([np.full(segments, len(verts) - 1), idx[-1], nxt[-1]], 1))
    return verts, np.concatenate(faces), axis_pts


def _ellipsoid_mesh(part: _Part, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An ellipsoid with exactly `count` vertices (a Fibonacci sphere; its convex hull gives 2N-4 faces)."""
    k = np.arange(count) + 0.5
    y = 1.0 - 2.0 * k / count
    rad = np.sqrt(1.0 - y * y)
    theta = np.pi * (1.0 + np.sqrt(5.0)) * k
    unit = np.stack([rad * np.cos(theta), y, rad * np.sin(theta)], 1)
    faces = scipy.spatial.ConvexHull(unit).simplices
    centre = np.asarray(part.a, float)
    verts = centre + unit * np.asarray(part.radii)
    return verts, faces, np.repeat(centre[None], count, 0)


def _orient_outwards(verts: np.ndarray, faces: np.ndarray, axis_pts: np.ndarray) -> np.ndarray:
    """Flip faces whose normal points towards the part's axis (hull and grid orders are arbitrary)."""
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    outward = tri.mean(1) - axis_pts[faces].mean(1)
    flip = np.sum(normal * outward, axis=1) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces


@dataclass
class _Mesh:
    verts: np.ndarray  # [V, 3]
    faces: np.ndarray  # [F, 3]
    axis_pts: np.ndarray  # [V, 3] the bone-axis point each vertex was grown from
    part_of: np.ndarray  # [V] index into parts
    parts: list


def build_mesh(model_type: str) -> _Mesh:
    """The synthetic body surface with exactly NUM_VERTICES[model_type] vertices."""
    parts = _parts(model_type)
    target = NUM_VERTICES[model_type]
    head_share = 0.16 if model_type == "smplx" else 0.1

    def others(spacing):
        return sum(r * s + 2 for r, s in (_capsule_grid(p, spacing) for p in parts[:-1] if p.kind == "capsule"))

    fixed_eyes = sum(400 for p in parts[:-1] if p.kind == "ellipsoid")
    # Bisect the edge length so that the head (which takes any count) gets about its share.
    lo, hi = 0.002, 0.2
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        if others(mid) + fixed_eyes > target * (1 - head_share):
            lo = mid
        else:
            hi = mid
    spacing = hi
    verts, faces, axis_pts, part_of = [], [], [], []
    offset = 0
    for i, part in enumerate(parts):
        if part.kind == "capsule":
            v, f, ax = _capsule_mesh(part, *_capsule_grid(part, spacing))
        elif part is parts[-1]:
            v, f, ax = _ellipsoid_mesh(part, target - offset)
        else:
            v, f, ax = _ellipsoid_mesh(part, 400)
        f = _orient_outwards(v, f, ax)
        verts.append(v)
        faces.append(f + offset)
        axis_pts.append(ax)
        part_of.append(np.full(len(v), i))
        offset += len(v)
    mesh = _Mesh(np.concatenate(verts), np.concatenate(faces), np.concatenate(axis_pts), np.concatenate(part_of), parts)
    assert len(mesh.verts) == target, (len(mesh.verts), target)
    if model_type in ("smpl", "smplh"):  # SMPL's mesh ids: its named surface points where their names say
        mesh = _renumbered(mesh, _named_vertices(mesh))
    return mesh


def _named_points() -> dict[str, tuple[str, np.ndarray]]:
    """Where each of SMPL's named surface points (skeletons.SMPL_VERTEX_IDS) lies on the synthetic body:
    (part name, rest-pose target in metres, y up, facing +z; the body's left is +x)."""
    head_centre, rx, rz = np.array([0.0, 0.45, 0.03]), 0.082, 0.097  # the head ellipsoid (_parts), x and z radii
    heel, toe, foot_radius = np.array([0.09, -1.155, -0.075]), np.array([0.118, -1.16, 0.155]), 0.04  # _LIMBS' foot
    points = {"nose": ("head", head_centre + [0.0, -0.01, rz])}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        mirror = np.array([sign, 1.0, 1.0])
        points[f"{side}_eye"] = ("head", head_centre + [sign * 0.032, 0.03, 0.9 * rz])
        points[f"{side}_ear"] = ("head", head_centre + [sign * rx, 0.0, 0.0])
        points[f"{side}_big_toe"] = (f"{side}_foot", mirror * (toe + [-0.02, -0.01, foot_radius]))
        points[f"{side}_small_toe"] = (f"{side}_foot", mirror * (toe + [0.02, -0.01, 0.8 * foot_radius]))
        points[f"{side}_heel"] = (f"{side}_foot", mirror * (heel + [0.0, -0.02, -foot_radius]))
    return points


def _named_vertices(mesh: _Mesh) -> dict[int, int]:
    """{SMPL vertex id: index of the synthetic vertex nearest its named point, on its part}."""
    names = [p.name for p in mesh.parts]
    chosen = {}
    for name, (part, target) in _named_points().items():
        on_part = np.flatnonzero(mesh.part_of == names.index(part))
        nearest = on_part[np.argmin(np.linalg.norm(mesh.verts[on_part] - target, axis=1))]
        chosen[skeletons.SMPL_VERTEX_IDS[name]] = int(nearest)
    assert len(set(chosen.values())) == len(chosen), "two named points on one vertex"
    return chosen


def _renumbered(mesh: _Mesh, moves: dict[int, int]) -> _Mesh:
    """The same surface with vertex `source` renumbered `target` for each {target: source} (the vertices
    they displace take the freed numbers); faces follow."""
    order = np.arange(len(mesh.verts))  # order[new id] = old id
    for target, source in moves.items():
        at = int(np.flatnonzero(order == source)[0])
        order[target], order[at] = order[at], order[target]
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))
    return _Mesh(mesh.verts[order], new_id[mesh.faces], mesh.axis_pts[order], mesh.part_of[order], mesh.parts)


# --- skinning, regressors, blend shapes -----------------------------------------------------------
def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point (float[N, 3]) to the segment a-b."""
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def _bone_ends(joints: np.ndarray, parents: tuple) -> np.ndarray:
    """Each joint's bone runs to the mean of its children, or half a parent-bone onwards for leaves."""
    ends = joints.copy()
    for j in range(len(parents)):
        children = [c for c, p in enumerate(parents) if p == j]
        if children:
            ends[j] = joints[children].mean(0)
        elif parents[j] >= 0:
            ends[j] = joints[j] + 0.5 * (joints[j] - joints[parents[j]])
    return ends


def skinning_weights(mesh: _Mesh, model_type: str) -> np.ndarray:
    """float[V, J]: softmax over each part's joints of -d^2 / (2 sigma^2), d = distance to the bone."""
    names = skeletons.JOINT_NAMES[model_type]
    joints, parents = rest_joints(model_type), skeletons.PARENTS[model_type]
    ends = _bone_ends(joints, parents)
    weights = np.zeros((len(mesh.verts), len(names)))
    for i, part in enumerate(mesh.parts):
        rows = np.flatnonzero(mesh.part_of == i)
        cols = [names.index(n) for n in part.joints]
        dist = np.stack([_segment_distance(mesh.verts[rows], joints[c], ends[c]) for c in cols], 1)
        logits = -(dist**2) / (2 * part.sigma**2)
        w = np.exp(logits - logits.max(1, keepdims=True))
        weights[np.ix_(rows, cols)] = w / w.sum(1, keepdims=True)
    return weights


def _regress_point(verts: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse non-negative weights (summing to 1) of vertices around `target` that average to it.

    Vertices are taken in 26 directions around the target (the nearest few in each cone), so the
    target lies inside their hull; a bounded least-squares fit then makes the average exact while
    staying close to uniform weights (a smooth regressor, like the real one).
    """
    offsets = verts - target
    dist = np.linalg.norm(offsets, axis=1) + 1e-12
    dirs = np.array([(x, y, z) for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1) if (x, y, z) != (0, 0, 0)])
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    chosen = set()
    cosine = (offsets / dist[:, None]) @ dirs.T
    for d in range(len(dirs)):
        cone = np.flatnonzero(cosine[:, d] > 0.85)
        chosen.update(cone[np.argsort(dist[cone])[:3]].tolist())
    idx = np.array(sorted(chosen))
    n = len(idx)
    prior = np.full(n, 1.0 / n)
    big = 1e3
    lhs = np.concatenate([big * np.vstack([verts[idx].T, np.ones((1, n))]), 0.05 * np.eye(n)])
    rhs = np.concatenate([big * np.append(target, 1.0), 0.05 * prior])
    w = scipy.optimize.lsq_linear(lhs, rhs, bounds=(0.0, 1.0), method="bvls").x
    w = w / w.sum()
    return idx, w


def joint_regressor(verts: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """float[N, V]: rows sum to 1 and `regressor @ verts` reproduces `targets` (float[N, 3])."""
    out = np.zeros((len(targets), len(verts)))
    for j, target in enumerate(targets):
        idx, w = _regress_point(verts, target)
        out[j, idx] = w
    return out


# H36M joints in the order of `J_regressor_h36m.npy` as SPIN's H36M_TO_J14 reads it
# (1-3 the left leg, 4-6 the right leg, 11-13 the left arm, 14-16 the right arm).
H36M_JOINT_NAMES = (
    "pelvis",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_hip",
    "right_knee",
    "right_ankle",
    "spine",
    "thorax",
    "nose",
    "head_top",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)


def h36m_targets(model_type: str) -> np.ndarray:
    """float[17, 3] metres: where the synthetic H36M regressor puts its joints on the rest mesh."""
    names = skeletons.JOINT_NAMES[model_type]
    joints = rest_joints(model_type)

    def at(name):
        return joints[names.index(name)]

    special = {
        "pelvis": 0.5 * (at("left_hip") + at("right_hip")),
        "spine": 0.5 * (at("spine1") + at("spine2")),
        "thorax": 0.5 * (at("spine3") + at("neck")) + np.array([0.0, 0.03, 0.0]),
        "nose": np.array([0.0, 0.44, 0.115]),
        "head_top": np.array([0.0, 0.55, 0.03]),
    }
    return np.stack([special[n] if n in special else at(n) for n in H36M_JOINT_NAMES])


# 4D-Humans' `SMPL_to_J19.pkl` rows, SPIN's first 19 joints (LSP 0-13, MPII pelvis and thorax,
# H36M spine, jaw and head). Its hips, neck and pelvis sit apart from the H36M regressor's, as the
# real regressors' do, so the two protocols give different numbers for the same bodies.
J19_JOINT_NAMES = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
    "pelvis",
    "thorax",
    "spine",
    "jaw",
    "head",
)


def j19_targets(model_type: str) -> np.ndarray:
    """float[19, 3] metres: where the synthetic `SMPL_to_J19` regressor puts its joints on the rest mesh."""
    names = skeletons.JOINT_NAMES[model_type]
    joints = rest_joints(model_type)

    def at(name):
        return joints[names.index(name)]

    lsp_hip = np.array([0.015, -0.035, 0.0])  # LSP hips: lower and wider than SMPL's
    special = {
        "right_hip": at("right_hip") + lsp_hip * np.array([-1.0, 1.0, 1.0]),
        "left_hip": at("left_hip") + lsp_hip,
        "neck": at("neck") + np.array([0.0, -0.02, 0.01]),
        "head_top": np.array([0.0, 0.54, 0.02]),
        "pelvis": 0.5 * (at("left_hip") + at("right_hip")) + np.array([0.0, -0.03, 0.0]),
        "thorax": 0.5 * (at("spine3") + at("neck")),
        "spine": 0.5 * (at("spine1") + at("spine2")),
        "jaw": np.array([0.0, 0.40, 0.08]),
        "head": np.array([0.0, 0.55, 0.03]),
    }
    return np.stack([special[n] if n in special else at(n) for n in J19_JOINT_NAMES])


def _smooth_field(points: np.ndarray, rng: np.random.Generator, num: int, width: float, amp: float) -> np.ndarray:
    """A smooth random displacement field: float[N, 3], a sum of `num` Gaussian bumps."""
    lo, hi = points.min(0), points.max(0)
    centres = rng.uniform(lo, hi, size=(num, 3))
    vectors = rng.normal(size=(num, 3)) * amp
    bumps = np.exp(-np.sum((points[:, None] - centres[None]) ** 2, -1) / (2 * width**2))
    return bumps @ vectors


def shape_directions(mesh: _Mesh, model_type: str, num: int, rng: np.random.Generator) -> np.ndarray:
    """float[V, 3, num] metres per unit beta: height, girth, leg length, shoulders, belly, then random."""
    v = mesh.verts
    joints = rest_joints(model_type)
    pelvis = joints[0]
    hip_y = joints[1, 1]
    dirs = np.zeros((len(v), 3, num))
    named = [
        0.07 * (v - pelvis) * np.array([0.25, 1.0, 0.25]),  # height
        0.22 * (v - mesh.axis_pts),  # girth: out from each part's axis
        0.07 * np.stack([np.zeros(len(v)), np.minimum(v[:, 1] - hip_y, 0.0), np.zeros(len(v))], 1),  # legs
        0.08
        * np.stack([v[:, 0], np.zeros(len(v)), np.zeros(len(v))], 1)
        / (1 + np.exp(-(v[:, 1] - 0.12) / 0.03))[:, None],
        0.04
        * np.exp(-np.sum((v - np.array([0.0, -0.1, 0.09])) ** 2, 1) / (2 * 0.08**2))[:, None]
        * np.array([0.0, 0.0, 1.0]),  # belly
    ]
    for k in range(num):
        dirs[:, :, k] = named[k] if k < len(named) else _smooth_field(v, rng, 8, 0.15, 0.012)
    return dirs


def expression_directions(mesh: _Mesh, num: int, rng: np.random.Generator) -> np.ndarray:
    """float[V, 3, num]: smooth random offsets on the front of the head only (a few millimetres)."""
    head = len(mesh.parts) - 1
    face = (mesh.part_of == head) & (mesh.verts[:, 2] > 0.05)
    out = np.zeros((len(mesh.verts), 3, num))
    for k in range(num):
        field = _smooth_field(mesh.verts, rng, 6, 0.03, 0.004)
        out[:, :, k] = field * face[:, None]
    return out


def pose_directions(mesh: _Mesh, model_type: str, rng: np.random.Generator) -> np.ndarray:
    """float[V, 3, 9 (J - 1)]: small smooth correctives near each joint (a centimetre per unit feature)."""
    joints = rest_joints(model_type)
    out = np.zeros((len(mesh.verts), 3, 9 * (len(joints) - 1)))
    for j in range(1, len(joints)):
        rel = mesh.verts - joints[j]
        falloff = np.exp(-np.sum(rel**2, 1) / (2 * 0.08**2))  # [V]
        base = rng.normal(size=(9, 3)) * 0.01
        slope = rng.normal(size=(9, 3, 3)) * 0.01 / 0.1
        field = base[None] + np.einsum("fcd,vd->vfc", slope, rel)  # [V, 9, 3]
        out[:, :, 9 * (j - 1) : 9 * j] = np.transpose(field * falloff[:, None, None], (0, 2, 1))
    return out


# The template of a gendered file is the neutral one moved along its first shape directions, so the
# three files share every array but the template (and J): the same betas pose different bodies.
GENDER_SHAPE_OFFSETS = {"neutral": (0.0, 0.0), "male": (1.5, 1.0), "female": (-1.5, -1.0)}


def build_model_arrays(
    model_type: str = "smpl",
    num_betas: int = 10,
    num_expression_coeffs: int = 10,
    seed: int = 0,
    gender: str = "neutral",
) -> dict[str, np.ndarray]:
    """The arrays of a synthetic model file, under the official keys (float64, as the real files).

    SMPL-X's shapedirs holds num_betas shape then num_expression_coeffs expression directions
    (use 10 + 10, or 300 + 100, the two widths smplx knows how to split). gender: 'neutral',
    'male' (taller, broader) or 'female' (smaller): v_template += shapedirs[..., :2] . offset.
    """
    if gender not in GENDER_SHAPE_OFFSETS:
        raise ValueError(f"unknown gender {gender!r}; expected one of {sorted(GENDER_SHAPE_OFFSETS)}")
    if model_type not in NUM_VERTICES:
        raise ValueError(f"unknown model_type {model_type!r}; expected one of {sorted(NUM_VERTICES)}")
    rng = np.random.default_rng(seed)
    mesh = build_mesh(model_type)
    joints = rest_joints(model_type)
    parents = skeletons.PARENTS[model_type]
    shapedirs = shape_directions(mesh, model_type, num_betas, rng)
    if model_type == "smplx":
        shapedirs = np.concatenate([shapedirs, expression_directions(mesh, num_expression_coeffs, rng)], axis=2)
    kintree = np.array([[ROOT_PARENT] + list(parents[1:]), list(range(len(parents)))], dtype=np.int64)
    offset = np.asarray(GENDER_SHAPE_OFFSETS[gender])
    arrays = {
        "v_template": mesh.verts + shapedirs[:, :, : len(offset)] @ offset,
        "shapedirs": shapedirs,
        "posedirs": pose_directions(mesh, model_type, rng),
        "J_regressor": joint_regressor(mesh.verts, joints),
        "weights": skinning_weights(mesh, model_type),
        "kintree_table": kintree,
        "f": mesh.faces.astype(np.uint32),
    }
    arrays["J"] = arrays["J_regressor"] @ arrays["v_template"]
    if model_type in ("smplh", "smplx"):
        for suffix in ("l", "r"):
            basis, _ = np.linalg.qr(rng.normal(size=(45, 45)))
            arrays[f"hands_components{suffix}"] = basis.T
            # A slight curl of every finger, as the real mean hands have.
            arrays[f"hands_mean{suffix}"] = (
                np.tile([0.0, 0.0, 0.15 if suffix == "l" else -0.15], 15) + rng.normal(size=45) * 0.03
            )
    if model_type == "smplx":
        head = len(mesh.parts) - 1
        face_faces = np.flatnonzero((mesh.part_of[mesh.faces[:, 0]] == head) & (mesh.verts[mesh.faces[:, 0], 2] > 0.06))
        arrays["lmk_faces_idx"] = rng.choice(face_faces, 51, replace=False).astype(np.int64)
        arrays["lmk_bary_coords"] = np.full((51, 3), 1.0 / 3.0)
        arrays["dynamic_lmk_faces_idx"] = rng.choice(face_faces, (79, 17)).astype(np.int64)
        arrays["dynamic_lmk_bary_coords"] = np.full((79, 17, 3), 1.0 / 3.0)
    return arrays


# --- writers --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _chumpy_classes():
    """A stand-in `chumpy.ch.Ch`, importable only while pickling, so the file names the real class.

    Real SMPL pickles hold chumpy objects: protocol 2 writes them as NEWOBJ of `chumpy.ch.Ch` plus
    their `__dict__`, whose 'x' entry is the value. The stand-in pickles exactly so; whatever
    `sys.modules` held under those names before is put back afterwards.
    """
    names = ("chumpy", "chumpy.ch")
    saved = {n: sys.modules[n] for n in names if n in sys.modules}
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    package.ch = module
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        yield Ch
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def write_smpl_pkl(
    path: str,
    *,
    chumpy: bool = False,
    sparse_regressor: bool = True,
    num_betas: int = 10,
    seed: int = 0,
    gender: str = "neutral",
) -> str:
    """Write a synthetic SMPL `.pkl` like the official one (J_regressor scipy-sparse, optionally chumpy).

    With chumpy=True, v_template, shapedirs, weights and J are chumpy `Ch` objects as in the real files.
    gender: see `build_model_arrays` (the male and female files differ from the neutral one).
    """
    arrays = build_model_arrays("smpl", num_betas=num_betas, seed=seed, gender=gender)
    data: dict = dict(arrays, bs_style="lbs", bs_type="lrotmin")
    if sparse_regressor:
        data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if chumpy:
        with _chumpy_classes() as ch_class:
            for key in ("v_template", "shapedirs", "weights", "J"):
                data[key] = ch_class(data[key])
            with open(path, "wb") as f:
                pickle.dump(data, f, protocol=2)
    else:
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=2)
    return path


def write_npz(
    path: str,
    model_type: str,
    *,
    num_betas: int = 10,
    num_expression_coeffs: int = 10,
    seed: int = 0,
    gender: str = "neutral",
) -> str:
    """Write a synthetic SMPL / SMPL-H / SMPL-X `.npz` with the official keys (gender: see `build_model_arrays`)."""
    arrays = build_model_arrays(
        model_type, num_betas=num_betas, num_expression_coeffs=num_expression_coeffs, seed=seed, gender=gender
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, **arrays)
    return path


def write_h36m_regressor(path: str, model_type: str = "smpl") -> str:
    """Write a (17, V) `J_regressor_h36m.npy` for the synthetic mesh of `model_type`."""
    mesh = build_mesh(model_type)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.save(path, joint_regressor(mesh.verts, h36m_targets(model_type)))
    return path


def write_j19_regressor(path: str, model_type: str = "smpl") -> str:
    """Write a (19, V) `SMPL_to_J19.pkl` (a pickled float array, as 4D-Humans ships it) for the synthetic mesh."""
    mesh = build_mesh(model_type)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(joint_regressor(mesh.verts, j19_targets(model_type)), f, protocol=2)
    return path


def write_model_folder(root: str, model_types=("smpl", "smplh", "smplx"), gender: str = "neutral") -> str:
    """Write an smplx-style folder: smpl/SMPL_NEUTRAL.pkl, smplh/SMPLH_NEUTRAL.npz, smplx/SMPLX_NEUTRAL.npz.

    gender: 'neutral', 'male', 'female' (files named accordingly, with differing templates), or 'all'.
    """
    genders = tuple(GENDER_SHAPE_OFFSETS) if gender == "all" else (gender,)
    for model_type in model_types:
        for g in genders:
            stem = os.path.join(root, model_type, f"{skeletons.FILE_PREFIX[model_type]}_{g.upper()}")
            if model_type == "smpl":
                write_smpl_pkl(stem + ".pkl", gender=g)
            else:
                write_npz(stem + ".npz", model_type, gender=g)
    return root
