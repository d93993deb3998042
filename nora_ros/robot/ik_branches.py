"""The closed-form IK's candidates: every branch of the WidowX's joint solutions for a pose.

The arm's structure makes every solution writable (:mod:`nora_ros.robot.ik` says why and picks
among them): waist from the wrist centre's azimuth (front or back), shoulder and elbow from a
planar two-link triangle (elbow up or down), the wrist from x-y-x Euler angles (two flips, plus
the seed-keeping pair at the wrist singularity). :func:`ik_geometry` derives the link geometry
from the screw axes and refuses a model without that structure.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from nora_ros.errors import ConfigurationError


class ArmChain(Protocol):
    """What the IK reads of an arm model (:class:`nora_ros.robot.kinematics.WidowXModel` is one):
    joints and limits, the home pose and screw-axis constants, FK for its checks."""

    name: str
    joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    home_pose: np.ndarray
    position_tolerance: float
    rotation_tolerance: float
    _consts: dict

    @property
    def n_joints(self) -> int: ...

    @property
    def full_pose(self) -> bool: ...

    def fk(self, joints: np.ndarray) -> np.ndarray: ...

    def limits_box(self, margin: float) -> tuple[tuple[float, ...], tuple[float, ...]]: ...


def branches(
    model: ArmChain, t: list[list[float]], seed: list[float], lo: list[float] | None, hi: list[float] | None,
    pitch_offset: float = 0.0,
) -> tuple[list[tuple[list[float], bool]], str]:
    """Closed-form joint solutions of every branch: ``[(joints, exact), ...]`` and why there are none.

    ``t``: the target pose as nested float lists. Branches: waist front/back, elbow up/down,
    and for wx250s the wrist flip plus two solutions that keep one roll joint at its seed
    (``exact`` False: the only sensible ones at or near the wrist singularity, where forearm
    roll and wrist rotate share an axis). Valid for the geometry checked in
    :func:`ik_geometry`: waist about z through the origin; shoulder, elbow and wrist angle
    about y in the plane y = 0; the roll joints about x through the wrist centre. With
    ``lo``/``hi``, a branch is dropped as soon as a joint leaves that box, before the wrist
    is solved (in a control loop the step bound leaves one branch of eight, and the waist or
    the arm prunes most of the rest). ``pitch_offset`` (wx250 only) tilts the gripper's pitch
    away from the nearest reachable orientation (see :func:`nora_ros.robot.ik.solve_ik`). Scalar math on
    purpose: numpy's per-call overhead dominates 3x3 work.
    """
    g = ik_geometry(model)
    if lo is None or hi is None:
        lo = [-math.inf] * model.n_joints
        hi = [math.inf] * model.n_joints
    r0, r1, r2 = t[0], t[1], t[2]
    px, py, pz = r0[3], r1[3], r2[3]
    d = g["offset"]  # wrist centre -> end effector along the gripper's x axis
    sx, sz = g["s"]
    full = g["full"]
    out: list[tuple[list[float], bool]] = []
    why = ""
    if full:
        wcx, wcy, wcz = px - d * r0[0], py - d * r1[0], pz - d * r2[0]
        base = math.atan2(wcy, wcx) if math.hypot(wcx, wcy) > 1e-9 else float(seed[0])
    else:
        base = math.atan2(py, px) if math.hypot(px, py) > 1e-9 else float(seed[0])
    for waist in (base, _wrap(base + math.pi)):
        if not lo[0] <= waist <= hi[0]:
            continue
        cw, sw = math.cos(waist), math.sin(waist)
        # a = Rz(-waist) R_target: the target orientation in the arm's plane frame (rows;
        # the third is the target's). Computed only when a branch needs it.
        a0 = a1 = None
        if not full:
            a0 = [cw * r0[j] + sw * r1[j] for j in range(3)]
            a1 = [-sw * r0[j] + cw * r1[j] for j in range(3)]
            beta, gamma = _nearest_pitch_roll((a0, a1, r2))
            if pitch_offset:
                beta += pitch_offset
                gamma = _best_roll((a0, a1, r2), beta)
            cb = math.cos(beta)
            wcx, wcy, wcz = px - d * cw * cb, py - d * sw * cb, pz + d * math.sin(beta)
        x = cw * wcx + sw * wcy
        arms = _planar_two_link(x - sx, wcz - sz, g)
        if not arms:
            why = (f"position out of reach: the wrist centre ({wcx:.4f}, {wcy:.4f}, {wcz:.4f}) m is "
                   f"{math.hypot(x - sx, wcz - sz):.4f} m from the shoulder axis "
                   f"(reach {g['reach_min']:.4f}..{g['reach_max']:.4f} m)")
            continue
        for q1, q2 in arms:
            if not (lo[1] <= q1 <= hi[1] and lo[2] <= q2 <= hi[2]):
                continue
            if not full:
                q4, q5 = _wrap(beta - q1 - q2), _wrap(gamma)
                if lo[3] <= q4 <= hi[3] and lo[4] <= q5 <= hi[4]:
                    out.append(([waist, q1, q2, q4, q5], True))
                continue
            if a0 is None:
                a0 = [cw * r0[0] + sw * r1[0], cw * r0[1] + sw * r1[1], cw * r0[2] + sw * r1[2]]
                a1 = [-sw * r0[0] + cw * r1[0], -sw * r0[1] + cw * r1[1], -sw * r0[2] + cw * r1[2]]
            cp, sp = math.cos(q1 + q2), math.sin(q1 + q2)
            # rw = Ry(q1 + q2)^T a = Rx(q3) Ry(q4) Rx(q5)
            rw = (
                [cp * a0[0] - sp * r2[0], cp * a0[1] - sp * r2[1], cp * a0[2] - sp * r2[2]],
                a1,
                [sp * a0[0] + cp * r2[0], sp * a0[1] + cp * r2[1], sp * a0[2] + cp * r2[2]],
            )
            for q3, q4, q5, exact in _xyx_solutions(rw, seed[3], seed[5]):
                if lo[3] <= q3 <= hi[3] and lo[4] <= q4 <= hi[4] and lo[5] <= q5 <= hi[5]:
                    out.append(([waist, q1, q2, q3, q4, q5], exact))
    return out, why

def ik_geometry(model: ArmChain) -> dict:
    """Link geometry for the closed-form IK, derived from the screw axes (cached)."""
    c = model._consts
    if "geometry" in c:
        return c["geometry"]
    idx = {n: i for i, n in enumerate(model.joint_names)}
    w, pts = c["w"], c["point"]
    ey, ex, ez = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    expect = {"waist": ez, "shoulder": ey, "elbow": ey, "wrist_angle": ey, "wrist_rotate": ex, "forearm_roll": ex}
    for name, i in idx.items():
        if not np.allclose(w[i], expect[name]):
            raise ConfigurationError(f"{model.name}: closed-form IK expects {name} about {expect[name]}, got {w[i]}")
    s = pts[idx["shoulder"]][[0, 2]]
    e = pts[idx["elbow"]][[0, 2]]
    wr = pts[idx["wrist_angle"]][[0, 2]]
    u, t = e - s, wr - e
    l1, l2 = float(np.hypot(*u)), float(np.hypot(*t))
    a = float(u[0] * t[0] + u[1] * t[1])
    b = float(u[0] * t[1] - u[1] * t[0])
    wc = np.array([wr[0], 0.0, wr[1]])
    offset = model.home_pose[:3, 3] - wc  # wrist centre -> end effector at home
    if not (np.allclose(model.home_pose[:3, :3], np.eye(3)) and abs(offset[1]) < 1e-12 and abs(offset[2]) < 1e-12):
        raise ConfigurationError(f"{model.name}: closed-form IK expects the home pose M to be a pure x offset from the wrist centre")
    for name in ("forearm_roll", "wrist_rotate"):
        if name in idx and not (abs(pts[idx[name]][1]) < 1e-12 and abs(pts[idx[name]][2] - wr[1]) < 1e-12):
            raise ConfigurationError(f"{model.name}: closed-form IK expects {name}'s axis through the wrist centre")
    if not np.allclose(pts[idx["waist"]][:2], 0.0):
        raise ConfigurationError(f"{model.name}: closed-form IK expects the waist axis through the origin")
    # Python floats, not numpy scalars: the IK's scalar math is several times faster on them.
    g = {
        "s": tuple(map(float, s)), "u": tuple(map(float, u)), "t": tuple(map(float, t)),
        "l1": l1, "l2": l2, "k": math.hypot(a, b), "psi": math.atan2(b, a),
        "reach_min": abs(l1 - l2), "reach_max": l1 + l2,
        "offset": float(offset[0]),
        "full": model.full_pose,
        # _fk_error: per joint (a, b, point_a, point_b): its rotation turns e_a towards e_b
        # (a, b follow the axis cyclically), about an axis through that point.
        "chain": tuple(
            ((k + 1) % 3, (k + 2) % 3, float(p[(k + 1) % 3]), float(p[(k + 2) % 3]))
            for k, p in zip((int(np.argmax(wi)) for wi in w), pts, strict=True)
        ),
        "home_p": tuple(map(float, model.home_pose[:3, 3])),
        "lower": model.lower.tolist(),
        "upper": model.upper.tolist(),
    }
    c["geometry"] = g
    return g


def _wrap(a: float) -> float:
    """Angle in (-pi, pi]."""
    a = math.fmod(a + math.pi, 2.0 * math.pi)
    if a <= 0.0:
        a += 2.0 * math.pi
    return a - math.pi


def _planar_two_link(dx: float, dz: float, g: dict) -> list[tuple[float, float]]:
    """Shoulder and elbow angles (both elbow branches) putting the wrist centre at (dx, dz) from the shoulder.

    Rotations about +y turn the (x, z) plane by ``-angle``: ``Ry(q) (x, z) = (x cos q + z sin q,
    -x sin q + z cos q)``. The wrist centre is ``S + Ry(q1) (u + Ry(q2) t)``.
    """
    d2 = dx * dx + dz * dz
    cosarg = (d2 - g["l1"] ** 2 - g["l2"] ** 2) / (2.0 * g["k"])
    if cosarg > 1.0 + 1e-9 or cosarg < -1.0 - 1e-9:
        return []
    cosarg = min(1.0, max(-1.0, cosarg))
    spread = math.acos(cosarg)
    out = []
    for q2 in {g["psi"] + spread, g["psi"] - spread}:
        c, s = math.cos(q2), math.sin(q2)
        t = g["t"]
        vx = g["u"][0] + t[0] * c + t[1] * s
        vz = g["u"][1] - t[0] * s + t[1] * c
        q1 = math.atan2(vz, vx) - math.atan2(dz, dx)
        out.append((_wrap(q1), _wrap(q2)))
    return out


_NEAR_SINGULAR = 0.01
"""|sin(wrist angle)| below which the seed-keeping wrist candidates are tried: farther out they
cannot pass the IK tolerances (their error grows with the wrist angle)."""


def _xyx_solutions(rw: list[list[float]], seed_a: float, seed_c: float) -> list[tuple[float, float, float, bool]]:
    """(a, b, c, exact) with ``Rx(a) Ry(b) Rx(c) = rw``: both wrist branches (exact), plus the two
    solutions that keep one roll joint at its seed (exact only if the pose allows it)."""
    out = []
    sb = math.hypot(rw[0][1], rw[0][2])
    if sb > 1e-9:
        b = math.atan2(sb, rw[0][0])
        out.append((math.atan2(rw[1][0], -rw[2][0]), b, math.atan2(rw[0][1], rw[0][2]), True))
        out.append((math.atan2(-rw[1][0], rw[2][0]), -b, math.atan2(-rw[0][1], -rw[0][2]), True))
    if sb > _NEAR_SINGULAR:
        return out
    # keep a = seed_a: Rx(a)^T rw = Ry(b) Rx(c)
    ca, sa = math.cos(seed_a), math.sin(seed_a)
    m11 = ca * rw[1][1] + sa * rw[2][1]
    m12 = ca * rw[1][2] + sa * rw[2][2]
    m20 = -sa * rw[1][0] + ca * rw[2][0]
    out.append((_wrap(seed_a), math.atan2(-m20, rw[0][0]), math.atan2(-m12, m11), False))
    # keep c = seed_c: rw Rx(c)^T = Rx(a) Ry(b)
    cc, sc = math.cos(seed_c), math.sin(seed_c)
    n11 = rw[1][1] * cc - rw[1][2] * sc
    n21 = rw[2][1] * cc - rw[2][2] * sc
    n02 = rw[0][1] * sc + rw[0][2] * cc
    out.append((math.atan2(n21, n11), math.atan2(n02, rw[0][0]), _wrap(seed_c), False))
    return out


def _best_roll(a: list[list[float]], beta: float) -> float:
    """gamma with ``Ry(beta) Rx(gamma)`` nearest ``a`` for a fixed beta (exact: a rotation about x)."""
    cb, sb = math.cos(beta), math.sin(beta)
    # Ry(beta)^T a ~ Rx(gamma)
    return math.atan2(sb * a[0][1] + cb * a[2][1] - a[1][2], a[1][1] + sb * a[0][2] + cb * a[2][2])


def _nearest_pitch_roll(a: list[list[float]]) -> tuple[float, float]:
    """(beta, gamma) with ``Ry(beta) Rx(gamma)`` near ``a`` (wx250's reachable orientations in the waist frame).

    Starts from the target's approach axis projected into the arm's plane, then alternates the
    exact best rotation about x given beta and about y given gamma; exact when ``a`` is
    reachable, a close (locally optimal) fit otherwise. ``ik`` reports the residual.
    """
    beta = math.atan2(-a[2][0], a[0][0])
    gamma = 0.0
    for _ in range(3):
        gamma = _best_roll(a, beta)
        cg, sg = math.cos(gamma), math.sin(gamma)
        # a Rx(gamma)^T ~ Ry(beta)
        beta = math.atan2(a[0][1] * sg + a[0][2] * cg - a[2][0], a[0][0] + a[2][1] * sg + a[2][2] * cg)
    return beta, gamma
