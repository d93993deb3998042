"""WidowX kinematics (wx250s, wx250): product-of-exponentials FK and IK seeded from the joints.

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
        seeded from ``seed`` (the current joints), with fallback seeds; respects limits minus
        ``margin`` and, when given, |joints - seed| <= max_joint_step (joint velocity limit
        times the step's duration). Never raises for an unreachable pose: success=False.
    model.within_limits(joints, margin=0.0) -> bool

Why our own IK: Interbotix's (modern_robotics ``IKinSpace`` seeded at zero and +-120 deg waist)
fails beyond about 5 cm from its seed and ignores joint limits while iterating (DESIGN.md
section 6). Here the solver is a damped least-squares (Levenberg-Marquardt) iteration on the
geometric Jacobian, projected onto the feasible joint box (limits minus margin, intersected
with the per-step velocity box) after every step, so any solution it returns is feasible by
construction. It is seeded from the current joints; fallback seeds (waist pointed at the
target, a gripper-down posture, home, sleep) are pulled into the same box, so they never make
the arm jump further than the velocity limit allows. FK and the Jacobian are computed in closed
form (Rodrigues) from the screw axes; modern_robotics' ``FKinSpace`` / ``JacobianSpace`` are the
reference the tests check against (they are ~10x slower per call).

wx250 (5 joints): a full 6-D pose is generally out of reach. Every joint after the waist moves
the end-effector point within the vertical plane through the waist axis, so the waist angle is
fixed by the target position, and of the orientation only pitch (shoulder + elbow + wrist
angle) and roll about the gripper axis (wrist rotate) remain free. ``ik`` therefore solves the
position as the primary task and, in the null space of the position Jacobian, the closest
reachable orientation as the secondary task (task-priority least squares). ``rotation_error``
reports the residual. By default (``WidowXModel.rotation_tolerance`` is ``inf`` for wx250) the
residual is reported, not judged, so the safety filter decides whether it is acceptable; pass
``rotation_tolerance=`` to have ``ik`` fail beyond a bound.
"""

from __future__ import annotations

import math
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
    """Rotation vector (axis * angle, rad) of a 3x3 rotation matrix; exact near 0 and near pi."""
    cos = (rot[0, 0] + rot[1, 1] + rot[2, 2] - 1.0) * 0.5
    cos = min(1.0, max(-1.0, cos))
    angle = math.acos(cos)
    vee = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if angle < 1e-7:
        return 0.5 * vee
    if angle < math.pi - 1e-4:
        return vee * (angle / (2.0 * math.sin(angle)))
    # Near pi the skew part vanishes: take the axis from the symmetric part.
    sym = (rot + rot.T) * 0.5 - np.eye(3) * cos
    k = int(np.argmax(np.diag(sym)))
    axis = sym[:, k] / math.sqrt(max(sym[k, k], 1e-300))
    if axis @ vee < 0.0:
        axis = -axis
    return axis / np.linalg.norm(axis) * angle


def rotation_angle(rot: np.ndarray) -> float:
    """Angle (rad) of a 3x3 rotation matrix."""
    cos = (rot[0, 0] + rot[1, 1] + rot[2, 2] - 1.0) * 0.5
    return math.acos(min(1.0, max(-1.0, cos)))


def pose_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(position error in m, rotation error in rad) between two 4x4 poses."""
    return float(np.linalg.norm(a[:3, 3] - b[:3, 3])), rotation_angle(a[:3, :3] @ b[:3, :3].T)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class IKResult:
    """Outcome of :meth:`WidowXModel.ik`.

    ``joints`` is a feasible solution when ``success`` (None otherwise: nothing to move to).
    ``reason`` says why it failed ("ok" on success). ``position_error`` (m) and
    ``rotation_error`` (rad) are those of the best attempt, so a caller can log how close it
    came. ``iterations`` counts solver iterations over all seeds, ``seeds_tried`` the seeds.
    """

    success: bool
    joints: np.ndarray | None
    reason: str
    position_error: float
    rotation_error: float
    iterations: int = 0
    seeds_tried: int = 0


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class WidowXModel:
    """Kinematic model of one WidowX arm: screw axes in the space (base) frame, home pose, limits.

    Build it with :meth:`from_name`. ``position_tolerance`` (m) and ``rotation_tolerance``
    (rad) are what :meth:`ik` calls success; the solver iterates well below them (quadratic
    convergence near the answer), so they bound the error, they are not the typical error.
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
    max_iterations: int = 40
    """Solver iterations per seed."""
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
        return bool(np.all(q >= self.lower + margin) and np.all(q <= self.upper - margin))

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
        rot, trans = self._exps(q)
        r = rot[..., 0, :, :]
        p = trans[..., 0, :]
        for i in range(1, self.n_joints):
            p = p + np.einsum("...ij,...j->...i", r, trans[..., i, :])
            r = r @ rot[..., i, :, :]
        m = self.home_pose
        out = np.zeros(q.shape[:-1] + (4, 4))
        out[..., :3, :3] = r @ m[:3, :3]
        out[..., :3, 3] = p + np.einsum("...ij,j->...i", r, m[:3, 3])
        out[..., 3, 3] = 1.0
        return out

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
        """Joints that reach ``pose``, near ``seed`` (the current joints), or a failure with its reason.

        ``max_joint_step`` (rad): when given, every joint stays within that distance of
        ``seed`` (the velocity limit times the step's duration: see :meth:`max_joint_step`).
        ``margin`` (rad): the solution stays ``margin`` inside every joint limit.
        ``rotation_tolerance`` (rad): overrides the model's (``inf`` for wx250: residual
        reported, not judged). Never raises for an unreachable or non-finite pose.
        """
        target = np.asarray(pose, dtype=np.float64)
        q0 = np.asarray(seed, dtype=np.float64)
        if target.shape != (4, 4):
            raise InvalidInputError(f"IK target must be a 4x4 pose, got shape {target.shape}")
        if q0.shape != (self.n_joints,):
            raise InvalidInputError(f"IK seed for {self.name} must have {self.n_joints} joints, got shape {q0.shape}")
        rot_tol = self.rotation_tolerance if rotation_tolerance is None else float(rotation_tolerance)
        if not np.all(np.isfinite(target)):
            return IKResult(False, None, "target pose has non-finite values", math.inf, math.inf)
        if not np.all(np.isfinite(q0)):
            return IKResult(False, None, "seed joints have non-finite values", math.inf, math.inf)
        if not (margin >= 0.0 and math.isfinite(margin)):
            return IKResult(False, None, f"margin must be a finite value >= 0, got {margin}", math.inf, math.inf)
        lo = self.lower + margin
        hi = self.upper - margin
        if max_joint_step is not None:
            if not (max_joint_step >= 0.0):
                return IKResult(False, None, f"max_joint_step must be >= 0, got {max_joint_step}", math.inf, math.inf)
            lo = np.maximum(lo, q0 - max_joint_step)
            hi = np.minimum(hi, q0 + max_joint_step)
        if np.any(lo > hi):
            bad = [self.joint_names[i] for i in np.flatnonzero(lo > hi)]
            return IKResult(
                False, None,
                f"no feasible joints: {bad} cannot get within limits minus margin {margin} rad "
                f"in one step of {max_joint_step} rad from the seed",
                math.inf, math.inf,
            )
        best: tuple[float, float, float, np.ndarray] | None = None  # (score, perr, rerr, q)
        iterations = 0
        seeds = self._seeds(q0, target, lo, hi)
        for k, s in enumerate(seeds):
            q, perr, rerr, its = self._solve(target, s, lo, hi)
            iterations += its
            if perr <= self.position_tolerance and rerr <= rot_tol:
                return IKResult(True, q, "ok", perr, rerr, iterations, k + 1)
            score = perr + 0.1 * (rerr if math.isfinite(rot_tol) else 0.0)
            if best is None or score < best[0]:
                best = (score, perr, rerr, q)
        assert best is not None
        _, perr, rerr, q = best
        why = []
        if perr > self.position_tolerance:
            why.append(f"position error {perr * 1000:.2f} mm > {self.position_tolerance * 1000:.2f} mm")
        if rerr > rot_tol:
            why.append(f"rotation error {rerr:.4f} rad > {rot_tol:.4f} rad")
        at_box = [self.joint_names[i] for i in range(self.n_joints) if q[i] <= lo[i] + 1e-9 or q[i] >= hi[i] - 1e-9]
        limit = f"; joints at their limit or step bound: {at_box}" if at_box else ""
        return IKResult(
            False, None,
            f"unreachable from the seed ({', '.join(why)}; {len(seeds)} seeds){limit}",
            perr, rerr, iterations, len(seeds),
        )

    def _seeds(self, q0: np.ndarray, target: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
        """The seed first, then fallbacks pulled into the feasible box (so none can jump)."""
        waist = math.atan2(target[1, 3], target[0, 3])
        down = np.zeros(self.n_joints)
        down[0] = waist
        down[self.joint_names.index("wrist_angle")] = math.pi / 2
        aimed = q0.copy()
        aimed[0] = waist
        candidates = [q0, aimed, down, self.sleep_joints, self.home_joints, 0.5 * (lo + hi)]
        seeds: list[np.ndarray] = []
        for cand in candidates:
            s = np.clip(cand, lo, hi)
            if all(np.max(np.abs(s - other)) > 1e-3 for other in seeds):
                seeds.append(s)
        return seeds

    def _solve(self, target: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float, float, int]:
        """Projected damped least squares from one seed: (joints, position err, rotation err, iterations)."""
        q = q.copy()
        p_t = target[:3, 3]
        r_t = target[:3, :3]
        n = self.n_joints
        full = self.full_pose
        length = 0.2  # m per rad: weighs rotation against translation in the 6-D error
        eye = np.eye(n)
        last_rot = math.inf
        perr = rerr = math.inf
        for it in range(1, self.max_iterations + 1):
            pose, jac = self.fk_jacobian(q)
            e_p = p_t - pose[:3, 3]
            e_r = rotation_log(r_t @ pose[:3, :3].T)
            perr = float(np.linalg.norm(e_p))
            rerr = float(np.linalg.norm(e_r))
            if full:
                if perr < 0.05 * self.position_tolerance and rerr < 0.05 * min(self.rotation_tolerance, 1e-3):
                    return q, perr, rerr, it
                e = np.concatenate([length * e_r, e_p])
                jw = np.vstack([length * jac[:3], jac[3:]])
                lam = float(e @ e) + 1e-9
                dq = np.linalg.solve(jw.T @ jw + lam * eye, jw.T @ e)
            else:
                # Position first; orientation in the null space of the position Jacobian.
                jp, jr = jac[3:], jac[:3]
                lam = float(e_p @ e_p) + 1e-9
                jp_pinv = jp.T @ np.linalg.inv(jp @ jp.T + lam * np.eye(3))
                dq1 = jp_pinv @ e_p
                null = eye - jp_pinv @ jp
                jrn = jr @ null
                res = e_r - jr @ dq1
                dq2 = jrn.T @ np.linalg.solve(jrn @ jrn.T + 1e-6 * np.eye(3), res)
                dq = dq1 + null @ dq2
                if perr < 0.05 * self.position_tolerance and (abs(last_rot - rerr) < 1e-7 or rerr < 1e-5):
                    return q, perr, rerr, it
                last_rot = rerr
            big = float(np.max(np.abs(dq)))
            if big > 0.5:
                dq *= 0.5 / big
            q_new = np.clip(q + dq, lo, hi)
            if float(np.max(np.abs(q_new - q))) < 1e-12:
                return q, perr, rerr, it  # stuck (at the box boundary)
            q = q_new
        pose = self.fk(q)
        perr, rerr = pose_error(target, pose)
        if not full:
            rerr = rotation_angle(r_t @ pose[:3, :3].T)
        return q, perr, rerr, self.max_iterations
