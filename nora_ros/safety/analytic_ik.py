"""Closed-form IK for the wx250s: the safety filter's fast path.

The filter must decide a tick in well under 200 us on a loaded 2-core machine, and an
iterative solver (:meth:`nora_ros.kinematics.WidowXModel.ik`, which stays the fallback and the
reference) costs several times that. The wx250s has a spherical wrist: the forearm-roll,
wrist-angle and wrist-rotate axes meet in one point, the wrist centre. So:

1. wrist centre = end-effector point - d6 * (gripper axis);
2. waist = its azimuth; shoulder and elbow = a planar two-link problem (two elbow branches);
3. forearm roll, wrist angle, wrist rotate = x-y-x Euler angles of the remaining rotation
   (two wrist branches).

Every candidate is checked against the joint limits minus the margin and the per-tick joint
step from the seed (the measured joints); the one closest to the seed wins. Geometry comes
from the model's screw axes and home pose, and the structure is checked when the solver is
built, so a model it does not fit (wx250: 5 joints) gets no fast path (``for_model`` returns
None) and the filter uses the iterative solver. Plain ``math`` on floats: on this hardware a
numpy call on a 3-vector costs as much as twenty float operations.
"""

from __future__ import annotations

import math

import numpy as np

from nora_ros.kinematics import WidowXModel

_WRIST_SINGULAR = 1e-6
"""rad: below this wrist angle, forearm roll and wrist rotate are the same axis."""


class SphericalWristIK:
    """Closed-form inverse kinematics of a 6-joint WidowX with a spherical wrist."""

    def __init__(self, model: WidowXModel, shoulder: tuple[float, float], elbow: tuple[float, float],
                 wrist: tuple[float, float], d6: float):
        self.model = model
        self._lower = [float(v) for v in model.lower]
        self._upper = [float(v) for v in model.upper]
        sx, sz = shoulder
        ex, ez = elbow
        wx, wz = wrist
        self._sx, self._sz = sx, sz
        self._u = (ex - sx, ez - sz)  # upper arm at zero joints, (r, z)
        self._f = (wx - ex, wz - ez)  # forearm at zero joints
        self._l1 = math.hypot(*self._u)
        self._l2 = math.hypot(*self._f)
        self._d6 = d6
        self._wz = wz

    @classmethod
    def for_model(cls, model: WidowXModel) -> SphericalWristIK | None:
        """The solver for ``model``, or None when its structure is not waist + 2 pitch + spherical wrist."""
        if model.joint_names != ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"):
            return None
        s = np.asarray(model.screw_axes)
        m = np.asarray(model.home_pose)
        ez, ey, ex = np.array([0, 0, 1.0]), np.array([0, 1.0, 0]), np.array([1.0, 0, 0])
        axes_ok = (np.allclose(s[0, :3], ez) and np.allclose(s[0, 3:], 0) and all(np.allclose(s[i, :3], ey) for i in (1, 2, 4))
                   and all(np.allclose(s[i, :3], ex) for i in (3, 5)) and np.allclose(m[:3, :3], np.eye(3)))
        if not axes_ok:
            return None
        # revolute about y through (cx, *, cz): v = -w x c = (-cz, 0, cx)
        points = [(float(s[i, 5]), float(-s[i, 3])) for i in (1, 2, 4)]
        wrist = points[2]
        # both x axes must pass through y = 0, z = wrist z: v = -w x c = (0, cz, -cy)
        for i in (3, 5):
            if not (abs(s[i, 5]) < 1e-12 and abs(s[i, 4] - wrist[1]) < 1e-9 and abs(s[i, 3]) < 1e-12):
                return None
        if not (abs(m[1, 3]) < 1e-12 and abs(m[2, 3] - wrist[1]) < 1e-9):
            return None
        return cls(model, points[0], points[1], wrist, float(m[0, 3] - wrist[0]))

    def solve(self, pose: np.ndarray, seed: np.ndarray, max_step: float, margin: float) -> tuple[np.ndarray | None, str]:
        """Joints reaching ``pose`` within limits minus ``margin`` and ``max_step`` of ``seed``, closest to it.

        Returns ``(joints, "ok")`` or ``(None, reason)``. Away from the wrist singularity the
        candidates are *all* the solutions, so None means there is none; at the singularity
        (wrist angle ~ 0, never in the gripper-down workspace) the reason starts with
        "singular" and the caller should ask the iterative solver.
        """
        r = pose.tolist()
        r00, r01, r02, px = r[0]
        r10, r11, r12, py = r[1]
        r20, r21, r22, pz = r[2]
        q0 = [float(v) for v in seed]
        d6 = self._d6
        xw, yw, zw = px - d6 * r00, py - d6 * r10, pz - d6 * r20
        rho = math.hypot(xw, yw)
        tz = zw - self._sz
        lo = [a + margin for a in self._lower]
        hi = [b - margin for b in self._upper]
        best: list[float] | None = None
        best_cost = math.inf
        reached = limited = stepped = singular = False
        worst = ""
        l1, l2 = self._l1, self._l2
        ux, uz = self._u
        fx, fz = self._f
        # rot(theta) about +y in the (r, z) plane: (r, z) -> (r c + z s, -r s + z c)
        # u . rot(q3) f = l1 l2 cos(q3 + phi), with phi from the zero-joint geometry
        phi = math.atan2(ux * fz - uz * fx, ux * fx + uz * fz)  # angle from u to f, standard orientation
        for flip in (False, True):
            q1 = math.atan2(yw, xw) if rho > 1e-9 else q0[0]
            tr = rho
            if flip:
                q1 = q1 + math.pi if q1 <= 0.0 else q1 - math.pi
                tr = -rho
            c = (tr * tr + tz * tz - l1 * l1 - l2 * l2) / (2.0 * l1 * l2)
            if c > 1.0 or c < -1.0:
                continue
            reached = True
            # prune early: most branches already fail on the waist, shoulder or elbow
            q1 = q0[0] + math.remainder(q1 - q0[0], 2.0 * math.pi)
            if q1 < lo[0] or q1 > hi[0]:
                limited = True
                worst = worst or f"waist {q1:.3f} rad"
                continue
            if abs(q1 - q0[0]) > max_step:
                stepped = True
                continue
            a = math.acos(c)
            # angle between u and rot(q3) f (standard orientation) is phi - q3 (rot is clockwise)
            for q3 in (phi - a, phi + a):
                c3, s3 = math.cos(q3), math.sin(q3)
                vr = ux + fx * c3 + fz * s3
                vz = uz - fx * s3 + fz * c3
                q2 = math.atan2(vz, vr) - math.atan2(tz, tr)
                q2 = math.atan2(math.sin(q2), math.cos(q2))
                q3 = math.atan2(math.sin(q3), math.cos(q3))
                if not (lo[1] <= q2 <= hi[1] and lo[2] <= q3 <= hi[2]):
                    limited = True
                    worst = worst or f"shoulder {q2:.3f} / elbow {q3:.3f} rad"
                    continue
                if abs(q2 - q0[1]) > max_step or abs(q3 - q0[2]) > max_step:
                    stepped = True
                    continue
                q23 = q2 + q3
                # R_wrist = Ry(-q23) Rz(-q1) R_e
                c1, s1 = math.cos(q1), math.sin(q1)
                # A = Rz(-q1) R_e
                a00 = c1 * r00 + s1 * r10
                a01 = c1 * r01 + s1 * r11
                a02 = c1 * r02 + s1 * r12
                a10 = -s1 * r00 + c1 * r10
                a11 = -s1 * r01 + c1 * r11
                a12 = -s1 * r02 + c1 * r12
                c23, s23 = math.cos(q23), math.sin(q23)
                # Ry(-q) = [[c, 0, -s], [0, 1, 0], [s, 0, c]]
                m00 = c23 * a00 - s23 * r20
                m01 = c23 * a01 - s23 * r21
                m02 = c23 * a02 - s23 * r22
                m10, m11, m12 = a10, a11, a12
                m20 = s23 * a00 + c23 * r20
                # Rx(a) Ry(b) Rx(c): m00 = cb, m10 = sa sb, m20 = -ca sb, m01 = sb sc, m02 = sb cc
                sb = math.hypot(m10, m20)
                for sign in (1.0, -1.0):
                    q5 = math.atan2(sign * sb, m00)
                    if sb > _WRIST_SINGULAR:
                        q4 = math.atan2(sign * m10, -sign * m20)
                        q6 = math.atan2(sign * m01, sign * m02)
                    else:
                        singular = True
                        # gimbal: only q4 + q6 (or q4 - q6) is defined; keep forearm roll at the seed
                        q4 = q0[3]
                        total = math.atan2(-m12, m11)  # Rx(q4 +- q6) block
                        q6 = total - q4 if m00 > 0 else q4 + total
                    q = [q1, q2, q3, q4, q5, q6]
                    cost = 0.0
                    ok = True
                    for i in (3, 4, 5):
                        v = q[i]
                        if i != 4:  # continuous joints: the representation nearest the seed
                            v = q0[i] + math.remainder(v - q0[i], 2.0 * math.pi)
                            q[i] = v
                        dv = abs(v - q0[i])
                        if v < lo[i] or v > hi[i]:
                            limited = True
                            worst = worst or f"{self.model.joint_names[i]} {v:.3f} rad"
                            ok = False
                            break
                        if dv > max_step:
                            stepped = True
                            ok = False
                            break
                        cost = max(cost, dv)
                    if ok:
                        cost = max(cost, abs(q1 - q0[0]), abs(q2 - q0[1]), abs(q3 - q0[2]))
                    if ok and cost < best_cost:
                        best, best_cost = q, cost
        if best is not None:
            return np.array(best), "ok"
        if not reached:
            return None, (f"out of reach: wrist centre {math.hypot(rho, tz):.3f} m from the shoulder, the arm "
                          f"spans {abs(l1 - l2):.3f}..{l1 + l2:.3f} m")
        why = []
        if limited:
            why.append(f"solutions leave the joint limits minus {margin} rad (e.g. {worst})")
        if stepped:
            why.append(f"the others need a joint step over {max_step:.3f} rad from the measured joints")
        return None, ("singular wrist; " if singular else "") + " and ".join(why)
