"""Inverse kinematics of the WidowX, closed form: the joints nearest the current ones that reach a pose.

:meth:`WidowXModel.ik <nora_ros.robot.kinematics.WidowXModel.ik>` calls :func:`solve_ik`.

Why closed form: Interbotix's IK (modern_robotics ``IKinSpace`` seeded at zero and +-120 deg
waist) fails beyond about 5 cm from its seed and ignores joint limits while iterating (DESIGN.md
section 6), and the safety filter solves IK every control tick (up to 30 Hz, with a 200 us
budget for the whole tick). The WidowX has a spherical wrist (forearm roll, wrist angle and
wrist rotate meet in one point) and planar shoulder/elbow, so every solution can be written
down: waist from the wrist centre's azimuth (front or back), shoulder and elbow from a planar
two-link triangle (elbow up or down), the wrist from x-y-x Euler angles (two flips). All
branches are enumerated, branches leaving the feasible box (limits minus margin, intersected
with the per-step box around the seed) are dropped, and the survivor nearest the seed wins
after an FK check. This plays the role of "seeded from the current joints, with fallback
seeds": the seed picks the branch, and no branch is ever missed. At the wrist singularity (wrist
angle 0: forearm roll and wrist rotate share an axis, only their sum is fixed) two extra
candidates keep one roll joint at its seed value. The geometry is taken from the screw axes
and checked (ConfigurationError if a model does not have this structure). modern_robotics'
``FKinSpace`` / ``JacobianSpace`` are the references the tests check FK and the Jacobian against.

wx250 (5 joints): a full 6-D pose is generally out of reach. Every joint after the waist moves
the end-effector point within the vertical plane through the waist axis, so the waist angle is
fixed by the target position, and of the orientation only pitch (shoulder + elbow + wrist
angle) and roll about the gripper axis (wrist rotate) remain: reachable orientations are
``Rz(waist) Ry(pitch) Rx(roll)``. ``ik`` reaches the position exactly and the reachable
orientation nearest the target (pitch from the target's gripper axis projected into the arm's
plane, then alternating exact best roll and pitch); when that orientation cannot be held at the
position (wrist centre out of reach, or a joint outside the bounds) the pitch is tilted to the
nearest one that can (a search then bisection, on that failure path only: ~1-4 ms).
``rotation_error`` reports the residual. By default
(``WidowXModel.rotation_tolerance`` is ``inf`` for wx250) the residual is reported, not judged,
so the safety filter decides whether it is acceptable; pass ``rotation_tolerance=`` to have
``ik`` fail beyond a bound.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from nora_ros.errors import InvalidInputError
from nora_ros.robot.ik_branches import ArmChain, branches, ik_geometry

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class IKResult:
    """Outcome of :meth:`WidowXModel.ik`.

    ``joints`` is a feasible solution when ``success`` (None otherwise: nothing to move to).
    ``reason`` says why it failed ("ok" on success). ``position_error`` (m) and
    ``rotation_error`` (rad) are those of the returned joints, or of the closest candidate on a
    failure, so a caller can log how close it came. ``branches`` counts the candidate solutions
    considered (those inside the feasible box; on failure, all of them).
    """

    success: bool
    joints: np.ndarray | None
    reason: str
    position_error: float
    rotation_error: float
    branches: int = 0



def solve_ik(
    model: ArmChain,
    pose: np.ndarray,
    seed: np.ndarray,
    *,
    max_joint_step: float | None = None,
    margin: float = 0.0,
    rotation_tolerance: float | None = None,
) -> IKResult:
    """Joints that reach ``pose``, nearest to ``seed`` (the current joints), or a failure with its reason.

    ``max_joint_step`` (rad): when given, every joint stays within that distance of
    ``seed`` (the velocity limit times the step's duration: see :meth:`max_joint_step`).
    ``margin`` (rad): the solution stays ``margin`` inside every joint limit.
    ``rotation_tolerance`` (rad): overrides the model's (``inf`` for wx250: the residual is
    reported, not judged). Never raises for an unreachable or non-finite pose.
    """
    target = np.asarray(pose, dtype=np.float64)
    q0 = np.asarray(seed, dtype=np.float64)
    if target.shape != (4, 4):
        raise InvalidInputError(f"IK target must be a 4x4 pose, got shape {target.shape}")
    if q0.shape != (model.n_joints,):
        raise InvalidInputError(f"IK seed for {model.name} must have {model.n_joints} joints, got shape {q0.shape}")
    rot_tol = model.rotation_tolerance if rotation_tolerance is None else float(rotation_tolerance)
    inf = math.inf
    # Nested float lists from here on: this runs every control tick, and on 3x3 work a numpy
    # call costs as much as twenty float operations.
    t = target.tolist()
    seed_l = q0.tolist()
    # NaN and inf survive a sum; a non-finite sum of finite values (an overflow) is looked at closer.
    if not math.isfinite(sum(t[0]) + sum(t[1]) + sum(t[2]) + sum(t[3])) and not np.isfinite(target).all():
        return IKResult(False, None, "target pose has non-finite values", inf, inf)
    if not all(map(math.isfinite, seed_l)):
        return IKResult(False, None, "seed joints have non-finite values", inf, inf)
    if not (margin >= 0.0 and math.isfinite(margin)):
        return IKResult(False, None, f"margin must be a finite value >= 0 rad, got {margin}", inf, inf)
    lo_l, hi_l = model.limits_box(margin)
    if max_joint_step is not None:
        if not (max_joint_step >= 0.0):
            return IKResult(False, None, f"max_joint_step must be >= 0 rad, got {max_joint_step}", inf, inf)
        lo_l = [s - max_joint_step if s - max_joint_step > x else x for x, s in zip(lo_l, seed_l, strict=True)]
        hi_l = [s + max_joint_step if s + max_joint_step < x else x for x, s in zip(hi_l, seed_l, strict=True)]
    if not all(map(operator.le, lo_l, hi_l)):
        bad = [name for name, x, y in zip(model.joint_names, lo_l, hi_l, strict=True) if x > y]
        step = "" if max_joint_step is None else f" in one step of at most {max_joint_step:.3f} rad from the seed"
        return IKResult(False, None, f"no feasible joints: {bad} cannot get within the limits minus margin "
                        f"{margin} rad{step}", inf, inf)
    cands, why_none = branches(model, t, seed_l, lo_l, hi_l)
    if not cands and not model.full_pose:
        cands = _pitch_search(model, t, seed_l, lo_l, hi_l)
    if cands:
        # Nearest the seed first; the seed-keeping approximations pass the FK check only near
        # the wrist singularity. Each candidate is checked by FK before it is returned (the
        # scalar FK of fk_error: ~10 us, a fraction of numpy's fk on one pose).
        # An approximation must be clearly nearer the seed (0.1 rad) to beat an exact branch.
        if len(cands) > 1:
            cands.sort(key=lambda c: _dist2(c[0], seed_l) + (0.0 if c[1] else 0.01))
        for joints, _exact in cands:
            perr, rerr = fk_error(model, joints, t)
            if perr <= model.position_tolerance and rerr <= rot_tol:
                q = np.array(joints)
                q.setflags(write=False)
                return IKResult(True, q, "ok", perr, rerr, len(cands))
    lo = np.array(lo_l)
    hi = np.array(hi_l)
    # Failure: explain it with every branch, bounds ignored (only on this slow path).
    all_cands, why = branches(model, t, seed_l, None, None)
    if not all_cands:
        return IKResult(False, None, why or why_none, inf, inf, 0)
    qs = np.array([c[0] for c in all_cands])
    perr, rerr = _errors(model, qs, target)
    accurate = (perr <= model.position_tolerance) & (rerr <= rot_tol)
    if not np.any(accurate):
        k = int(np.argmin(perr + 0.1 * (rerr if math.isfinite(rot_tol) else 0.0)))
        reason = (
            f"no accurate solution: best has position error {perr[k] * 1000:.3f} mm "
            f"(tolerance {model.position_tolerance * 1000:.3f} mm) and rotation error {rerr[k]:.4f} rad "
            f"(tolerance {rot_tol:.4f} rad)"
        )
    else:
        acc = np.flatnonzero(accurate)
        k = int(acc[np.argmin(np.sum((qs[acc] - q0) ** 2, axis=1))])
        parts = []
        for i, name in enumerate(model.joint_names):
            qi = qs[k, i]
            if qi < model.lower[i] + margin or qi > model.upper[i] - margin:
                parts.append(f"{name} needs {qi:+.3f} rad, outside the limits minus margin "
                             f"[{model.lower[i] + margin:+.3f}, {model.upper[i] - margin:+.3f}]")
            elif qi < lo[i] or qi > hi[i]:
                parts.append(f"{name} must move {qi - q0[i]:+.3f} rad, more than the step bound {max_joint_step:.3f} rad")
        reason = f"reachable, but all {acc.size} solutions break a bound; the nearest: " + "; ".join(parts)
    return IKResult(False, None, reason, float(perr[k]), float(rerr[k]), len(all_cands))

def _pitch_search(model: ArmChain, t: list[list[float]], seed: list[float], lo: list[float], hi: list[float]
                  ) -> list[tuple[list[float], bool]]:
    """wx250: the position comes first. When the nearest reachable orientation cannot be held
    there (out of reach, or outside the bounds), tilt the pitch away from it in steps of
    ``_PITCH_STEP`` until a solution fits, then bisect to the boundary: the feasible pitch
    nearest the target's. Empty when none within +-180 degrees fits (only on this path)."""
    for k in range(1, int(math.pi / _PITCH_STEP) + 1):
        found = []
        for sign in (1.0, -1.0):
            cands, _ = branches(model, t, seed, lo, hi, pitch_offset=sign * k * _PITCH_STEP)
            if not cands:
                continue
            inner, outer = (k - 1) * _PITCH_STEP, k * _PITCH_STEP
            for _ in range(16):  # to ~0.003 deg
                mid = 0.5 * (inner + outer)
                c, _ = branches(model, t, seed, lo, hi, pitch_offset=sign * mid)
                if c:
                    outer, cands = mid, c
                else:
                    inner = mid
            found.extend(cands)
        if found:
            return found
    return []

def _errors(model: ArmChain, qs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position (m) and rotation (rad) errors of each row of ``qs`` against ``target``, one batched FK."""
    poses = model.fk(qs)
    perr = np.linalg.norm(poses[:, :3, 3] - target[:3, 3], axis=1)
    rel = np.einsum("kji,jl->kil", poses[:, :3, :3], target[:3, :3])  # R_k^T R_t
    rerr = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1.0) * 0.5, -1.0, 1.0))
    return perr, rerr

def fk_error(model: ArmChain, joints: list[float], t: list[list[float]]) -> tuple[float, float]:
    """(position error in m, rotation error in rad) of ``joints`` against the target rows ``t``.

    The IK's FK check, on floats: the product of exponentials, each joint a rotation about a
    coordinate axis through a point (the structure :func:`ik_geometry` checks), kept as the
    columns of the running rotation and the running translation. Independent of the
    closed-form derivation (only the screw axes and M go in); the tests hold it to :meth:`WidowXModel.fk`.
    """
    g = ik_geometry(model)
    col = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]  # columns of the rotation so far
    px = py = pz = 0.0
    cos, sin = math.cos, math.sin
    for q, (a, b, ca, cb) in zip(joints, g["chain"]):  # noqa: B905 (lengths checked by ik)
        c, s = cos(q), sin(q)
        # exp([S] q) = [R, (I - R) p] with R turning e_a towards e_b: its translation has only
        # the a and b components; then rotate the a and b columns.
        ta = ca * (1.0 - c) + s * cb
        tb = cb * (1.0 - c) - s * ca
        u0, u1, u2 = col[a]
        v0, v1, v2 = col[b]
        px += u0 * ta + v0 * tb
        py += u1 * ta + v1 * tb
        pz += u2 * ta + v2 * tb
        col[a] = (c * u0 + s * v0, c * u1 + s * v1, c * u2 + s * v2)
        col[b] = (c * v0 - s * u0, c * v1 - s * u1, c * v2 - s * u2)
    (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = col
    mx, my, mz = g["home_p"]  # M: pure translation (checked in _geometry)
    px += x0 * mx + y0 * my + z0 * mz
    py += x1 * mx + y1 * my + z1 * mz
    pz += x2 * mx + y2 * my + z2 * mz
    (t00, t01, t02, t03), (t10, t11, t12, t13), (t20, t21, t22, t23) = t[0], t[1], t[2]
    perr = math.sqrt((px - t03) ** 2 + (py - t13) ** 2 + (pz - t23) ** 2)
    # rel = R^T R_target, rel[i][j] = (column i) . (target column j): its trace and skew part
    cos_angle = (x0 * t00 + x1 * t10 + x2 * t20 + y0 * t01 + y1 * t11 + y2 * t21
                 + z0 * t02 + z1 * t12 + z2 * t22 - 1.0) * 0.5
    d21_12 = (z0 * t01 + z1 * t11 + z2 * t21) - (y0 * t02 + y1 * t12 + y2 * t22)
    d02_20 = (x0 * t02 + x1 * t12 + x2 * t22) - (z0 * t00 + z1 * t10 + z2 * t20)
    d10_01 = (y0 * t00 + y1 * t10 + y2 * t20) - (x0 * t01 + x1 * t11 + x2 * t21)
    sin_angle = 0.5 * math.sqrt(d21_12 * d21_12 + d02_20 * d02_20 + d10_01 * d10_01)
    return perr, math.atan2(sin_angle, cos_angle)


def _dist2(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


_PITCH_STEP = math.radians(3.0)
"""wx250 pitch search step (rad); the boundary is then found by bisection."""
