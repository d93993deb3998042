"""Actions in Bridge semantics: chunks, end-effector commands, normalization, pose deltas.

These are the messages between components (DESIGN.md sections 4 and 6):

- a policy returns an :class:`ActionChunk`: ``T x 7`` actions ``[dx, dy, dz, droll, dpitch,
  dyaw, gripper]``, each meant to take one model step (``step_period``, 0.2 s for Bridge);
- the control loop turns the action due now into an :class:`EndEffectorCommand`, a twist in
  the base frame (rotation about the end-effector point) plus an absolute gripper value;
- the safety filter integrates commands into end-effector targets with
  :func:`apply_bridge_delta`'s semantics.

Poses are 4x4 homogeneous matrices (numpy float64) in the arm's base frame, metres and radians.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from nora_ros.errors import ConfigurationError, InvalidInputError

ACTION_DIM = 7
"""``[dx, dy, dz, droll, dpitch, dyaw, gripper]``."""

BRIDGE_STEP_PERIOD = 0.2
"""Seconds per action in BridgeData V2 (5 Hz); NORA was trained at this rate."""

GRIPPER_DIM = 6

DOWN = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
"""Rotation of "gripper pointing straight down": Bridge state Euler angles are those of
``R_ee @ DOWN.T`` (DESIGN.md section 4)."""


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class ActionChunk:
    """What a policy returns for one observation.

    ``actions`` is ``(T, 7)`` float64, unnormalized Bridge deltas with the gripper absolute in
    ``[0, 1]`` (1 = open). ``timings`` holds seconds per stage on a monotonic clock
    (``preprocess``, ``prefill``, ``decode``, ``fast_decode``, ``unnormalize``, ``total``...).
    ``token_ids`` are the raw generated ids, kept for logs and replay. ``stamp`` is the time
    of the observation the chunk was computed from, so consumers can judge its age.
    ``metadata`` reports what the policy did to the raw output (e.g. values clipped to the
    training range), so nothing is changed without a trace.
    """

    actions: np.ndarray
    step_period: float = BRIDGE_STEP_PERIOD
    model_id: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)
    token_ids: tuple[int, ...] = ()
    stamp: float = 0.0
    chunk_id: int = 0
    metadata: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        a = np.asarray(self.actions, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != ACTION_DIM or a.shape[0] < 1:
            raise InvalidInputError(f"action chunk must be (T, {ACTION_DIM}) with T >= 1, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a))[0]
            raise InvalidInputError(f"action chunk has a non-finite value at step {bad[0]}, dim {bad[1]}")
        g = a[:, GRIPPER_DIM]
        if np.any(g < 0.0) or np.any(g > 1.0):
            raise InvalidInputError(f"gripper values must lie in [0, 1], got {g.tolist()}")
        if not (self.step_period > 0.0 and math.isfinite(self.step_period)):
            raise InvalidInputError(f"step_period must be a positive number of seconds, got {self.step_period}")
        object.__setattr__(self, "actions", _readonly(a))
        object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))
        object.__setattr__(self, "timings", dict(self.timings))
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def horizon(self) -> int:
        """Number of actions T in the chunk."""
        return int(self.actions.shape[0])


@dataclass(frozen=True)
class EndEffectorCommand:
    """A velocity command for the end effector, as the policy sends it to the safety filter.

    ``linear`` (m/s) is the velocity of the end-effector point in the base frame; ``angular``
    (rad/s) is an angular velocity about base-frame axes applied about the end-effector point,
    so integrating it over one step reproduces the Bridge rotation delta exactly (see
    :func:`action_to_command`). ``gripper`` is absolute in ``[0, 1]`` (1 = open).
    ``stamp`` is when the command was issued (seconds); ``observation_stamp`` is the time of the
    camera frame the chunk was computed from. Values are *not* validated here: a NaN must reach
    the safety filter and be rejected there with a reason, so the filter is the one place that
    decides.
    """

    linear: np.ndarray
    angular: np.ndarray
    gripper: float
    stamp: float
    chunk_id: int = 0
    index: int = 0
    observation_stamp: float = 0.0

    def __post_init__(self) -> None:
        lin = np.asarray(self.linear, dtype=np.float64).reshape(-1)
        ang = np.asarray(self.angular, dtype=np.float64).reshape(-1)
        if lin.shape != (3,) or ang.shape != (3,):
            raise InvalidInputError(f"twist must be 3 + 3 values, got {lin.shape} and {ang.shape}")
        object.__setattr__(self, "linear", _readonly(lin))
        object.__setattr__(self, "angular", _readonly(ang))

    @classmethod
    def hold(cls, stamp: float, gripper: float) -> EndEffectorCommand:
        """A zero-velocity command that keeps the gripper where it is."""
        return cls(np.zeros(3), np.zeros(3), gripper, stamp)

    def is_zero(self) -> bool:
        return not (np.any(self.linear) or np.any(self.angular))


# --------------------------------------------------------------------------- rotations


def euler_to_matrix(rpy: np.ndarray) -> np.ndarray:
    """R(roll, pitch, yaw) = Rz(yaw) @ Ry(pitch) @ Rx(roll), the Bridge / widowx_envs convention."""
    return Rotation.from_euler("xyz", np.asarray(rpy, dtype=np.float64)).as_matrix()


def matrix_to_euler(rot: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix` (roll, pitch, yaw)."""
    return Rotation.from_matrix(np.asarray(rot, dtype=np.float64)).as_euler("xyz")


def make_pose(rot: np.ndarray, pos: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = rot
    t[:3, 3] = pos
    return t


def bridge_state_to_pose(state: np.ndarray) -> np.ndarray:
    """A Bridge state ``[x, y, z, roll, pitch, yaw, (gripper)]`` to the 4x4 end-effector pose.

    Bridge Euler angles describe ``R_ee @ DOWN.T``, so ``R_ee = R(rpy) @ DOWN``.
    """
    s = np.asarray(state, dtype=np.float64)
    return make_pose(euler_to_matrix(s[3:6]) @ DOWN, s[:3])


def pose_to_bridge_state(pose: np.ndarray, gripper: float = 1.0) -> np.ndarray:
    """The 4x4 end-effector pose to a Bridge state ``[x, y, z, roll, pitch, yaw, gripper]``."""
    p = np.asarray(pose, dtype=np.float64)
    rpy = matrix_to_euler(p[:3, :3] @ DOWN.T)
    return np.concatenate([p[:3, 3], rpy, [gripper]])


def apply_bridge_delta(target: np.ndarray, measured_position: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Next end-effector target after one Bridge action (DESIGN.md section 4).

    ``T_delta = T_p @ [R(droll, dpitch, dyaw), (dx, dy, dz)] @ T_p^-1`` with ``T_p`` the pure
    translation to the *measured* end-effector position, then ``next = T_delta @ target``:
    translation in the base frame, rotation about the end-effector point with base-frame axes,
    applied to the previous *target*.
    """
    d = np.asarray(delta, dtype=np.float64).reshape(-1)[:6]
    tp = make_pose(np.eye(3), measured_position)
    step = make_pose(euler_to_matrix(d[3:6]), d[:3])
    return tp @ step @ np.linalg.inv(tp) @ np.asarray(target, dtype=np.float64)


def action_to_command(
    action: np.ndarray,
    step_period: float,
    stamp: float,
    chunk_id: int = 0,
    index: int = 0,
    observation_stamp: float = 0.0,
) -> EndEffectorCommand:
    """The velocity command that executes one Bridge action over ``step_period`` seconds.

    The Euler rotation delta becomes its rotation vector divided by the period, so integrating
    the constant angular velocity for one period reproduces ``R(droll, dpitch, dyaw)`` exactly,
    however many control ticks the step spans.
    """
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (ACTION_DIM,):
        raise InvalidInputError(f"an action has {ACTION_DIM} values, got {a.shape}")
    rotvec = Rotation.from_euler("xyz", a[3:6]).as_rotvec() if np.all(np.isfinite(a[3:6])) else a[3:6]
    return EndEffectorCommand(
        linear=a[:3] / step_period,
        angular=rotvec / step_period,
        gripper=float(a[GRIPPER_DIM]),
        stamp=stamp,
        chunk_id=chunk_id,
        index=index,
        observation_stamp=observation_stamp,
    )


def integrate_twist(target: np.ndarray, ee_point: np.ndarray, linear: np.ndarray, angular: np.ndarray, dt: float) -> np.ndarray:
    """Advance ``target`` by a constant twist for ``dt`` seconds (Bridge semantics, about ``ee_point``).

    Split over several ticks, this reproduces :func:`apply_bridge_delta` exactly only when
    ``ee_point`` moves with the commanded translation from tick to tick (``measured + linear *
    elapsed``); a centre held fixed rotates the earlier ticks' translation too.
    """
    tp = make_pose(np.eye(3), ee_point)
    rot = Rotation.from_rotvec(np.asarray(angular, dtype=np.float64) * dt).as_matrix()
    step = make_pose(rot, np.asarray(linear, dtype=np.float64) * dt)
    return tp @ step @ np.linalg.inv(tp) @ np.asarray(target, dtype=np.float64)


# --------------------------------------------------------------------------- normalization


@dataclass(frozen=True)
class NormStats:
    """Per-dimension action statistics: NORA outputs lie in [-1, 1] and map to [q01, q99].

    Only dimensions where ``mask`` is true are (un)normalized; the gripper is not (its mask is
    false in bridge_orig) and stays as the model produced it.

    ``binarize_gripper``: NORA's LIBERO path (declare-lab/nora ``experiments/libero``)
    unnormalizes all seven dimensions with its per-suite low/high bounds and then keeps only the
    sign of ``2 g - 1`` as the gripper command; stats read from that layout set it, and
    :meth:`finish_gripper` does the same in this package's convention (1 open, 0 closed).
    """

    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray
    key: str = ""
    binarize_gripper: bool = False

    def __post_init__(self) -> None:
        q01 = np.asarray(self.q01, dtype=np.float64).reshape(-1)
        q99 = np.asarray(self.q99, dtype=np.float64).reshape(-1)
        mask = np.asarray(self.mask, dtype=bool).reshape(-1)
        if not (q01.shape == q99.shape == mask.shape == (ACTION_DIM,)):
            raise InvalidInputError(
                f"norm stats '{self.key}' must have {ACTION_DIM} values each, got q01 {q01.shape}, "
                f"q99 {q99.shape}, mask {mask.shape}"
            )
        for name, arr in (("q01", q01), ("q99", q99)):
            if not np.all(np.isfinite(arr)):
                raise InvalidInputError(f"norm stats '{self.key}': {name} has non-finite values {arr.tolist()}")
        if np.any(q99[mask] < q01[mask]):
            raise InvalidInputError(f"norm stats '{self.key}': q99 below q01 in a normalized dimension")
        object.__setattr__(self, "q01", _readonly(q01))
        object.__setattr__(self, "q99", _readonly(q99))
        mask.setflags(write=False)
        object.__setattr__(self, "mask", mask)

    def unnormalize(self, x: np.ndarray) -> np.ndarray:
        """``a = 0.5 (x + 1)(q99 - q01) + q01`` where the mask is true; other dims unchanged."""
        x = np.asarray(x, dtype=np.float64)
        out = x.copy()
        full = 0.5 * (x + 1.0) * (self.q99 - self.q01) + self.q01
        out[..., self.mask] = full[..., self.mask]
        return out

    def finish_gripper(self, actions: np.ndarray) -> np.ndarray:
        """The gripper column after unnormalizing: unchanged, or (``binarize_gripper``) 1.0 where
        ``2 g - 1 > 0`` and 0.0 elsewhere, as the LIBERO reference's sign, invert and ``>= 0``
        steps decide open and closed."""
        if not self.binarize_gripper:
            return actions
        out = np.array(actions, dtype=np.float64, copy=True)
        out[..., -1] = np.where(2.0 * out[..., -1] - 1.0 > 0.0, 1.0, 0.0)
        return out

    def normalize(self, a: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`unnormalize` (dims with zero range map to 0)."""
        a = np.asarray(a, dtype=np.float64)
        out = a.copy()
        span = np.where(self.q99 - self.q01 > 0, self.q99 - self.q01, 1.0)
        full = np.where(self.q99 - self.q01 > 0, 2.0 * (a - self.q01) / span - 1.0, 0.0)
        out[..., self.mask] = full[..., self.mask]
        return out

    @classmethod
    def from_mapping(cls, data: Mapping, key: str) -> NormStats:
        """Read ``key`` from a norm_stats.json-style mapping.

        Accepts the OpenVLA/NORA layout ``{key: {"action": {"q01", "q99", "mask"}}}`` and NORA's
        LIBERO bounds ``{"keys": {key: {"low", "high"}}}`` (low/high act as q01/q99 on all seven
        dimensions and the gripper is binarized, as NORA's LIBERO evaluation does).
        """
        table = data.get("keys", data) if isinstance(data, Mapping) else {}
        if key not in table:
            raise ConfigurationError(
                f"no normalization statistics for unnorm_key '{key}'; available: {sorted(table)}"
            )
        entry = table[key]
        stats = entry.get("action", entry)
        try:
            if "q01" in stats:
                q01, q99 = stats["q01"], stats["q99"]
                mask = stats.get("mask", [True] * (ACTION_DIM - 1) + [False])
                return cls(q01=q01, q99=q99, mask=mask, key=key)
            q01, q99 = stats["low"], stats["high"]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"norm stats entry '{key}' lacks q01/q99 (or low/high): {exc}") from exc
        return cls(q01=q01, q99=q99, mask=[True] * ACTION_DIM, key=key, binarize_gripper=True)

    @classmethod
    def from_json(cls, path: str | pathlib.Path, key: str) -> NormStats:
        path = pathlib.Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigurationError(f"norm stats file {path} does not exist") from exc
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"norm stats file {path} is not valid JSON: {exc}") from exc
        return cls.from_mapping(data, key)
