"""WidowX kinematics (wx250s, wx250): product-of-exponentials FK and IK nearest the current joints.

API (other modules depend on these signatures)::

    model = WidowXModel.from_name("wx250s")       # or "wx250"
    model.name, model.n_joints, model.joint_names
    model.lower, model.upper                       # (n,) joint limits, rad
    model.max_joint_velocity                       # rad/s (pi)
    model.home_joints, model.sleep_joints          # (n,)
    model.fk(joints) -> 4x4 pose                   # also (..., n) -> (..., 4, 4), vectorized
    model.ik(pose, seed, *, max_joint_step=None, margin=0.0) -> IKResult
        IKResult(success: bool, joints: np.ndarray | None, reason: str,
                 position_error: float, rotation_error: float)
        the solution nearest ``seed`` (the current joints); respects limits minus ``margin``
        and, when given, |joints - seed| <= max_joint_step (joint velocity limit times the
        step's duration). Never raises for an unreachable pose: success=False and why.
    model.within_limits(joints, margin=0.0) -> bool

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
from dataclasses import dataclass, field

import numpy as np

from nora_ros.errors import ConfigurationError, InvalidInputError

# --------------------------------------------------------------------------- model data

_HOME_M = np.array(
    [
        [1.0, 0.0, 0.0, 0.458325],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.36065],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
"""End-effector (ee_gripper_link) pose at zero joints, both models (Interbotix mr_descriptions)."""

# name: (omega, v, lower, upper) in the space frame; limits in rad.
_JOINTS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float, float]] = {
    "waist": ((0, 0, 1), (0, 0, 0), -(math.pi - 1e-5), math.pi - 1e-5),
    "shoulder": ((0, 1, 0), (-0.11065, 0, 0), math.radians(-108), math.radians(114)),
    "elbow": ((0, 1, 0), (-0.36065, 0, 0.04975), math.radians(-123), math.radians(92)),
    "forearm_roll": ((1, 0, 0), (0, 0.36065, 0), -(math.pi - 1e-5), math.pi - 1e-5),
    "wrist_angle": ((0, 1, 0), (-0.36065, 0, 0.29975), math.radians(-100), math.radians(123)),
    "wrist_rotate": ((1, 0, 0), (0, 0.36065, 0), -(math.pi - 1e-5), math.pi - 1e-5),
}

_MODELS: dict[str, dict] = {
    "wx250s": {
        "joints": ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"),
        "sleep": (0.0, -1.80, 1.55, 0.0, 0.8, 0.0),
        "rotation_tolerance": 1e-3,
    },
    "wx250": {
        "joints": ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate"),
        "sleep": (0.0, -1.80, 1.55, 0.8, 0.0),
        "rotation_tolerance": math.inf,
    },
}

ROBOT_MODELS = tuple(_MODELS)
"""Robot models with kinematics here."""

FINGER_LOWER = 0.015
"""Finger position (m) when the gripper is closed."""
FINGER_UPPER = 0.037
"""Finger position (m) when the gripper is open."""

MAX_JOINT_VELOCITY = math.pi
"""Joint velocity limit, rad/s (Interbotix wx250s/wx250 motor config)."""


def gripper_to_finger(value: float) -> float:
    """Gripper opening in [0, 1] (1 = open) to the finger position in metres."""
    return FINGER_LOWER + float(value) * (FINGER_UPPER - FINGER_LOWER)


def finger_to_gripper(position: float) -> float:
    """Finger position in metres to the gripper opening in [0, 1] (not clipped: a reading may overshoot)."""
    return (float(position) - FINGER_LOWER) / (FINGER_UPPER - FINGER_LOWER)


# --------------------------------------------------------------------------- small helpers


def _skew(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def rotation_log(rot: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, rad) of a 3x3 rotation matrix; accurate near 0 and near pi."""
    cos = (rot[0, 0] + rot[1, 1] + rot[2, 2] - 1.0) * 0.5
    vee = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    sin = 0.5 * math.sqrt(vee[0] * vee[0] + vee[1] * vee[1] + vee[2] * vee[2])
    angle = math.atan2(sin, cos)  # atan2, not acos: acos loses half the digits near 0 and pi
    if angle < 1e-7:
        return 0.5 * vee
    if angle < math.pi - 1e-4:
        return vee * (angle / (2.0 * sin))
    # Near pi the skew part vanishes: take the axis from the symmetric part.
    sym = (rot + rot.T) * 0.5 - np.eye(3) * cos
    k = int(np.argmax(np.diag(sym)))
    axis = sym[:, k] / math.sqrt(max(sym[k, k], 1e-300))
    if axis @ vee < 0.0:
        axis = -axis
    return axis / np.linalg.norm(axis) * angle


def rotation_angle(rot: np.ndarray) -> float:
    """Angle (rad) of a 3x3 rotation matrix, in [0, pi]."""
    cos = (rot[0, 0] + rot[1, 1] + rot[2, 2] - 1.0) * 0.5
    s = 0.5 * math.sqrt((rot[2, 1] - rot[1, 2]) ** 2 + (rot[0, 2] - rot[2, 0]) ** 2 + (rot[1, 0] - rot[0, 1]) ** 2)
    return math.atan2(s, cos)


def pose_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(position error in m, rotation error in rad) between two 4x4 poses."""
    return float(np.linalg.norm(a[:3, 3] - b[:3, 3])), rotation_angle(a[:3, :3] @ b[:3, :3].T)


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


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class WidowXModel:
    """Kinematic model of one WidowX arm: screw axes in the space (base) frame, home pose, limits.

    Build it with :meth:`from_name`. ``position_tolerance`` (m) and ``rotation_tolerance``
    (rad) are what :meth:`ik` accepts; its closed-form solutions are exact to ~1e-15, so the
    tolerances matter only at the wrist singularity (see the module docstring) and for wx250's
    orientation residual (``rotation_tolerance`` inf: reported, not judged).
    """

    name: str
    joint_names: tuple[str, ...]
    screw_axes: np.ndarray  # (n, 6): (omega, v) per joint, space frame
    home_pose: np.ndarray  # 4x4, M
    lower: np.ndarray
    upper: np.ndarray
    sleep_joints: np.ndarray
    max_joint_velocity: float = MAX_JOINT_VELOCITY
    position_tolerance: float = 1e-4
    rotation_tolerance: float = 1e-3
    _consts: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        s = np.asarray(self.screw_axes, dtype=np.float64)
        if s.shape != (n, 6):
            raise ConfigurationError(f"screw_axes must be ({n}, 6) for joints {self.joint_names}, got {s.shape}")
        for attr in ("lower", "upper", "sleep_joints"):
            a = np.asarray(getattr(self, attr), dtype=np.float64).reshape(-1)
            if a.shape != (n,):
                raise ConfigurationError(f"{attr} must have {n} values, got {a.shape}")
            a.setflags(write=False)
            object.__setattr__(self, attr, a)
        if np.any(self.lower >= self.upper):
            raise ConfigurationError(f"joint limits of {self.name}: every lower limit must lie below its upper limit")
        if not (self.position_tolerance > 0 and self.rotation_tolerance > 0):
            raise ConfigurationError("IK tolerances must be positive (rotation_tolerance may be inf: not judged)")
        if not (self.max_joint_velocity > 0 and math.isfinite(self.max_joint_velocity)):
            raise ConfigurationError(f"max_joint_velocity must be a positive rad/s value, got {self.max_joint_velocity}")
        s.setflags(write=False)
        object.__setattr__(self, "screw_axes", s)
        m = np.array(self.home_pose, dtype=np.float64)
        m.setflags(write=False)
        object.__setattr__(self, "home_pose", m)
        w = s[:, :3]
        v = s[:, 3:]
        wx = np.stack([_skew(wi) for wi in w])
        self._consts.update(w=w, v=v, wx=wx, wx2=wx @ wx, wxv=np.einsum("nij,nj->ni", wx, v),
                            wx2v=np.einsum("nij,nj->ni", wx @ wx, v),
                            point=np.cross(w, v))  # a point on each axis at zero joints (v = -w x c)
        n = len(self.joint_names)
        # exp([S] q) = I + sin q [w]^ + (1 - cos q) [w]^2^ + q [v] + (q - sin q) [w]^2 v, grouped by
        # coefficient: A holds [w] and -[w]^2 v, B holds [w]^2 and [w] v, C holds v + [w]^2 v.
        e_a, e_b, e_c = (np.zeros((n, 4, 4)) for _ in range(3))
        e_a[:, :3, :3] = wx
        e_a[:, :3, 3] = -self._consts["wx2v"]
        e_b[:, :3, :3] = wx @ wx
        e_b[:, :3, 3] = self._consts["wxv"]
        e_c[:, :3, 3] = v + self._consts["wx2v"]
        # M, then identities up to a power of two, so the product tree halves evenly
        size = 1 << n.bit_length()  # smallest power of two > n
        tail = np.concatenate([self.home_pose[None], np.broadcast_to(np.eye(4), (size - n - 1, 4, 4))])
        self._consts.update(e_i=np.broadcast_to(np.eye(4), (n, 4, 4)).copy(), e_a=e_a, e_b=e_b, e_c=e_c, tail=tail)

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_name(cls, name: str) -> WidowXModel:
        """The model of ``name`` ("wx250s" or "wx250")."""
        if name not in _MODELS:
            raise ConfigurationError(f"unknown robot model '{name}'; choose one of {ROBOT_MODELS}")
        spec = _MODELS[name]
        joints = spec["joints"]
        return cls(
            name=name,
            joint_names=tuple(joints),
            screw_axes=np.array([_JOINTS[j][0] + _JOINTS[j][1] for j in joints], dtype=np.float64),
            home_pose=_HOME_M,
            lower=np.array([_JOINTS[j][2] for j in joints]),
            upper=np.array([_JOINTS[j][3] for j in joints]),
            sleep_joints=np.array(spec["sleep"]),
            rotation_tolerance=spec["rotation_tolerance"],
        )

    # ----------------------------------------------------------------- basics

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def home_joints(self) -> np.ndarray:
        """All zeros: the arm stretched forward, gripper level (pose M)."""
        return np.zeros(self.n_joints)

    @property
    def full_pose(self) -> bool:
        """Whether IK can reach any orientation (6 joints); wx250 reaches position + 2 rotations."""
        return self.n_joints >= 6

    def max_joint_step(self, duration: float) -> float:
        """The most a joint may move in ``duration`` seconds at the velocity limit (rad)."""
        return self.max_joint_velocity * float(duration)

    def within_limits(self, joints: np.ndarray, margin: float = 0.0) -> bool:
        """Whether every joint lies within ``[lower + margin, upper - margin]`` (NaN: False)."""
        q = np.asarray(joints, dtype=np.float64)
        if q.shape != (self.n_joints,):
            raise InvalidInputError(f"{self.name} has {self.n_joints} joints, got shape {q.shape}")
        lo, hi = self._limits_box(margin)
        ql = q.tolist()  # floats: the safety filter checks every IK answer, and numpy costs ~10x here
        return all(map(operator.le, lo, ql)) and all(map(operator.le, ql, hi))

    def _limits_box(self, margin: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(lower + margin, upper - margin)`` as float tuples, cached per margin (a control loop uses one)."""
        boxes = self._consts.setdefault("boxes", {})
        box = boxes.get(margin)
        if box is None:
            box = (tuple(x + margin for x in self.lower.tolist()), tuple(x - margin for x in self.upper.tolist()))
            if len(boxes) < 16 and margin == margin:  # NaN never hits the cache: do not store it
                boxes[margin] = box
        return box

    def limit_violations(self, joints: np.ndarray, margin: float = 0.0) -> list[str]:
        """Human-readable list of joints outside ``[lower + margin, upper - margin]``."""
        q = np.asarray(joints, dtype=np.float64).reshape(-1)
        out = []
        for name, qi, lo, hi in zip(self.joint_names, q, self.lower + margin, self.upper - margin, strict=True):
            if not (lo <= qi <= hi):
                out.append(f"{name}={qi:.4f} rad outside [{lo:.4f}, {hi:.4f}]")
        return out

    # ----------------------------------------------------------------- forward kinematics

    def _exps(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rotations (..., n, 3, 3) and translations (..., n, 3) of exp([S_i] q_i)."""
        c = self._consts
        s, co = np.sin(q), np.cos(q)
        a = (1.0 - co)[..., None, None]
        rot = np.eye(3) + s[..., None, None] * c["wx"] + a * c["wx2"]
        trans = q[..., None] * c["v"] + (1.0 - co)[..., None] * c["wxv"] + (q - s)[..., None] * c["wx2v"]
        return rot, trans

    def fk(self, joints: np.ndarray) -> np.ndarray:
        """End-effector pose (4x4, base frame) of ``joints``; ``(..., n)`` gives ``(..., 4, 4)``."""
        q = np.asarray(joints, dtype=np.float64)
        if q.shape[-1:] != (self.n_joints,):
            raise InvalidInputError(f"{self.name} has {self.n_joints} joints, got shape {q.shape}")
        c = self._consts
        s = np.sin(q)[..., None, None]
        v = 1.0 - np.cos(q)[..., None, None]
        # exp([S_i] q_i) for all joints at once: I + sin A + (1 - cos) B + q C (see __post_init__)
        mats = c["e_i"] + s * c["e_a"] + v * c["e_b"] + q[..., None, None] * c["e_c"]
        # product e_1 ... e_n M as a tree of batched matmuls (fewer numpy calls than a chain)
        tail = c["tail"] if q.ndim == 1 else np.broadcast_to(c["tail"], q.shape[:-1] + c["tail"].shape)
        mats = np.concatenate([mats, tail], axis=-3)
        while mats.shape[-3] > 1:
            mats = mats[..., 0::2, :, :] @ mats[..., 1::2, :, :]
        return mats[..., 0, :, :]

    def fk_jacobian(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pose (4x4) and geometric Jacobian (6 x n) of one joint vector.

        Jacobian rows: angular velocity (base frame), then linear velocity of the end-effector
        point (base frame), so ``[omega; p_dot] = J @ q_dot``. Column i is ``[a_i; a_i x (p -
        c_i)]`` with ``a_i`` the joint's current axis and ``c_i`` a point on it.
        """
        q = np.asarray(joints, dtype=np.float64)
        c = self._consts
        rot, trans = self._exps(q)
        n = self.n_joints
        rp = np.empty((n, 3, 3))  # rotation of the product of the exponentials before joint i
        pp = np.empty((n, 3))
        r = np.eye(3)
        p = np.zeros(3)
        for i in range(n):
            rp[i] = r
            pp[i] = p
            p = p + r @ trans[i]
            r = r @ rot[i]
        m = self.home_pose
        pose = np.eye(4)
        pose[:3, :3] = r @ m[:3, :3]
        pe = p + r @ m[:3, 3]
        pose[:3, 3] = pe
        axes = np.einsum("nij,nj->ni", rp, c["w"])
        d = pe - (np.einsum("nij,nj->ni", rp, c["point"]) + pp)
        jac = np.empty((6, n))
        jac[:3] = axes.T
        jac[3] = axes[:, 1] * d[:, 2] - axes[:, 2] * d[:, 1]
        jac[4] = axes[:, 2] * d[:, 0] - axes[:, 0] * d[:, 2]
        jac[5] = axes[:, 0] * d[:, 1] - axes[:, 1] * d[:, 0]
        return pose, jac

    # ----------------------------------------------------------------- inverse kinematics

    def ik(
        self,
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
        if q0.shape != (self.n_joints,):
            raise InvalidInputError(f"IK seed for {self.name} must have {self.n_joints} joints, got shape {q0.shape}")
        rot_tol = self.rotation_tolerance if rotation_tolerance is None else float(rotation_tolerance)
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
        lo_l, hi_l = self._limits_box(margin)
        if max_joint_step is not None:
            if not (max_joint_step >= 0.0):
                return IKResult(False, None, f"max_joint_step must be >= 0 rad, got {max_joint_step}", inf, inf)
            lo_l = [s - max_joint_step if s - max_joint_step > x else x for x, s in zip(lo_l, seed_l, strict=True)]
            hi_l = [s + max_joint_step if s + max_joint_step < x else x for x, s in zip(hi_l, seed_l, strict=True)]
        if not all(map(operator.le, lo_l, hi_l)):
            bad = [name for name, x, y in zip(self.joint_names, lo_l, hi_l, strict=True) if x > y]
            step = "" if max_joint_step is None else f" in one step of at most {max_joint_step:.3f} rad from the seed"
            return IKResult(False, None, f"no feasible joints: {bad} cannot get within the limits minus margin "
                            f"{margin} rad{step}", inf, inf)
        cands, why_none = self._branches(t, seed_l, lo_l, hi_l)
        if not cands and not self.full_pose:
            cands = self._pitch_search(t, seed_l, lo_l, hi_l)
        if cands:
            # Nearest the seed first; the seed-keeping approximations pass the FK check only near
            # the wrist singularity. Each candidate is checked by FK before it is returned (the
            # scalar FK of _fk_error: ~10 us, a fraction of numpy's fk on one pose).
            # An approximation must be clearly nearer the seed (0.1 rad) to beat an exact branch.
            if len(cands) > 1:
                cands.sort(key=lambda c: _dist2(c[0], seed_l) + (0.0 if c[1] else 0.01))
            for joints, _exact in cands:
                perr, rerr = self._fk_error(joints, t)
                if perr <= self.position_tolerance and rerr <= rot_tol:
                    q = np.array(joints)
                    q.setflags(write=False)
                    return IKResult(True, q, "ok", perr, rerr, len(cands))
        lo = np.array(lo_l)
        hi = np.array(hi_l)
        # Failure: explain it with every branch, bounds ignored (only on this slow path).
        all_cands, why = self._branches(t, seed_l, None, None)
        if not all_cands:
            return IKResult(False, None, why or why_none, inf, inf, 0)
        qs = np.array([c[0] for c in all_cands])
        perr, rerr = self._errors(qs, target)
        accurate = (perr <= self.position_tolerance) & (rerr <= rot_tol)
        if not np.any(accurate):
            k = int(np.argmin(perr + 0.1 * (rerr if math.isfinite(rot_tol) else 0.0)))
            reason = (
                f"no accurate solution: best has position error {perr[k] * 1000:.3f} mm "
                f"(tolerance {self.position_tolerance * 1000:.3f} mm) and rotation error {rerr[k]:.4f} rad "
                f"(tolerance {rot_tol:.4f} rad)"
            )
        else:
            acc = np.flatnonzero(accurate)
            k = int(acc[np.argmin(np.sum((qs[acc] - q0) ** 2, axis=1))])
            parts = []
            for i, name in enumerate(self.joint_names):
                qi = qs[k, i]
                if qi < self.lower[i] + margin or qi > self.upper[i] - margin:
                    parts.append(f"{name} needs {qi:+.3f} rad, outside the limits minus margin "
                                 f"[{self.lower[i] + margin:+.3f}, {self.upper[i] - margin:+.3f}]")
                elif qi < lo[i] or qi > hi[i]:
                    parts.append(f"{name} must move {qi - q0[i]:+.3f} rad, more than the step bound {max_joint_step:.3f} rad")
            reason = f"reachable, but all {acc.size} solutions break a bound; the nearest: " + "; ".join(parts)
        return IKResult(False, None, reason, float(perr[k]), float(rerr[k]), len(all_cands))

    def _pitch_search(self, t: list[list[float]], seed: list[float], lo: list[float], hi: list[float]
                      ) -> list[tuple[list[float], bool]]:
        """wx250: the position comes first. When the nearest reachable orientation cannot be held
        there (out of reach, or outside the bounds), tilt the pitch away from it in steps of
        ``_PITCH_STEP`` until a solution fits, then bisect to the boundary: the feasible pitch
        nearest the target's. Empty when none within +-180 degrees fits (only on this path)."""
        for k in range(1, int(math.pi / _PITCH_STEP) + 1):
            found = []
            for sign in (1.0, -1.0):
                cands, _ = self._branches(t, seed, lo, hi, pitch_offset=sign * k * _PITCH_STEP)
                if not cands:
                    continue
                inner, outer = (k - 1) * _PITCH_STEP, k * _PITCH_STEP
                for _ in range(16):  # to ~0.003 deg
                    mid = 0.5 * (inner + outer)
                    c, _ = self._branches(t, seed, lo, hi, pitch_offset=sign * mid)
                    if c:
                        outer, cands = mid, c
                    else:
                        inner = mid
                found.extend(cands)
            if found:
                return found
        return []

    def _errors(self, qs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position (m) and rotation (rad) errors of each row of ``qs`` against ``target``, one batched FK."""
        poses = self.fk(qs)
        perr = np.linalg.norm(poses[:, :3, 3] - target[:3, 3], axis=1)
        rel = np.einsum("kji,jl->kil", poses[:, :3, :3], target[:3, :3])  # R_k^T R_t
        rerr = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1.0) * 0.5, -1.0, 1.0))
        return perr, rerr

    def _fk_error(self, joints: list[float], t: list[list[float]]) -> tuple[float, float]:
        """(position error in m, rotation error in rad) of ``joints`` against the target rows ``t``.

        The IK's FK check, on floats: the product of exponentials, each joint a rotation about a
        coordinate axis through a point (the structure :meth:`_geometry` checks), kept as the
        columns of the running rotation and the running translation. Independent of the
        closed-form derivation (only the screw axes and M go in); the tests hold it to :meth:`fk`.
        """
        g = self._geometry()
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

    def _branches(
        self, t: list[list[float]], seed: list[float], lo: list[float] | None, hi: list[float] | None,
        pitch_offset: float = 0.0,
    ) -> tuple[list[tuple[list[float], bool]], str]:
        """Closed-form joint solutions of every branch: ``[(joints, exact), ...]`` and why there are none.

        ``t``: the target pose as nested float lists. Branches: waist front/back, elbow up/down,
        and for wx250s the wrist flip plus two solutions that keep one roll joint at its seed
        (``exact`` False: the only sensible ones at or near the wrist singularity, where forearm
        roll and wrist rotate share an axis). Valid for the geometry checked in
        :meth:`_geometry`: waist about z through the origin; shoulder, elbow and wrist angle
        about y in the plane y = 0; the roll joints about x through the wrist centre. With
        ``lo``/``hi``, a branch is dropped as soon as a joint leaves that box, before the wrist
        is solved (in a control loop the step bound leaves one branch of eight, and the waist or
        the arm prunes most of the rest). ``pitch_offset`` (wx250 only) tilts the gripper's pitch
        away from the nearest reachable orientation (see :meth:`_pitch_search`). Scalar math on
        purpose: numpy's per-call overhead dominates 3x3 work.
        """
        g = self._geometry()
        if lo is None or hi is None:
            lo = [-math.inf] * self.n_joints
            hi = [math.inf] * self.n_joints
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

    def _geometry(self) -> dict:
        """Link geometry for the closed-form IK, derived from the screw axes (cached)."""
        c = self._consts
        if "geometry" in c:
            return c["geometry"]
        idx = {n: i for i, n in enumerate(self.joint_names)}
        w, pts = c["w"], c["point"]
        ey, ex, ez = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
        expect = {"waist": ez, "shoulder": ey, "elbow": ey, "wrist_angle": ey, "wrist_rotate": ex, "forearm_roll": ex}
        for name, i in idx.items():
            if not np.allclose(w[i], expect[name]):
                raise ConfigurationError(f"{self.name}: closed-form IK expects {name} about {expect[name]}, got {w[i]}")
        s = pts[idx["shoulder"]][[0, 2]]
        e = pts[idx["elbow"]][[0, 2]]
        wr = pts[idx["wrist_angle"]][[0, 2]]
        u, t = e - s, wr - e
        l1, l2 = float(np.hypot(*u)), float(np.hypot(*t))
        a = float(u[0] * t[0] + u[1] * t[1])
        b = float(u[0] * t[1] - u[1] * t[0])
        wc = np.array([wr[0], 0.0, wr[1]])
        offset = self.home_pose[:3, 3] - wc  # wrist centre -> end effector at home
        if not (np.allclose(self.home_pose[:3, :3], np.eye(3)) and abs(offset[1]) < 1e-12 and abs(offset[2]) < 1e-12):
            raise ConfigurationError(f"{self.name}: closed-form IK expects the home pose M to be a pure x offset from the wrist centre")
        for name in ("forearm_roll", "wrist_rotate"):
            if name in idx and not (abs(pts[idx[name]][1]) < 1e-12 and abs(pts[idx[name]][2] - wr[1]) < 1e-12):
                raise ConfigurationError(f"{self.name}: closed-form IK expects {name}'s axis through the wrist centre")
        if not np.allclose(pts[idx["waist"]][:2], 0.0):
            raise ConfigurationError(f"{self.name}: closed-form IK expects the waist axis through the origin")
        # Python floats, not numpy scalars: the IK's scalar math is several times faster on them.
        g = {
            "s": tuple(map(float, s)), "u": tuple(map(float, u)), "t": tuple(map(float, t)),
            "l1": l1, "l2": l2, "k": math.hypot(a, b), "psi": math.atan2(b, a),
            "reach_min": abs(l1 - l2), "reach_max": l1 + l2,
            "offset": float(offset[0]),
            "full": self.full_pose,
            # _fk_error: per joint (a, b, point_a, point_b): its rotation turns e_a towards e_b
            # (a, b follow the axis cyclically), about an axis through that point.
            "chain": tuple(
                ((k + 1) % 3, (k + 2) % 3, float(p[(k + 1) % 3]), float(p[(k + 2) % 3]))
                for k, p in zip((int(np.argmax(wi)) for wi in w), pts, strict=True)
            ),
            "home_p": tuple(map(float, self.home_pose[:3, 3])),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
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


def _dist2(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


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


_PITCH_STEP = math.radians(3.0)
"""wx250 pitch search step (rad); the boundary is then found by bisection."""


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
