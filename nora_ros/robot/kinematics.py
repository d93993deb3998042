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

The IK itself (closed form, every branch, why) is :mod:`nora_ros.robot.ik`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np

from nora_ros.errors import ConfigurationError, InvalidInputError
from nora_ros.robot.ik import IKResult, solve_ik

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
        lo, hi = self.limits_box(margin)
        ql = q.tolist()  # floats: the safety filter checks every IK answer, and numpy costs ~10x here
        return all(map(operator.le, lo, ql)) and all(map(operator.le, ql, hi))

    def limits_box(self, margin: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
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
        """Joints that reach ``pose``, nearest to ``seed`` (the current joints), or a failure with its
        reason: :func:`nora_ros.robot.ik.solve_ik`. Never raises for an unreachable pose."""
        return solve_ik(self, pose, seed, max_joint_step=max_joint_step, margin=margin,
                        rotation_tolerance=rotation_tolerance)
