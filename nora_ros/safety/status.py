"""What the safety filter reports each tick: which limits acted, and what it decided.

The limit names are the ``LIMIT_*`` constants of ``msg/SafetyStatus.msg``, so the ROS node
copies them across unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from nora_ros.actions import EndEffectorCommand


class Limit(str, enum.Enum):
    """A limit or check of the safety filter that acted on a tick."""

    LINEAR_SPEED = "linear_speed"
    ANGULAR_SPEED = "angular_speed"
    LINEAR_ACCEL = "linear_accel"
    ANGULAR_ACCEL = "angular_accel"
    WORKSPACE = "workspace"
    FLOOR = "floor"
    ORIENTATION = "orientation"
    JOINT_LIMIT = "joint_limit"
    IK_FAILURE = "ik_failure"
    OPEN_LOOP_BUDGET = "open_loop_budget"
    COMMAND_TIMEOUT = "command_timeout"
    STALE_COMMAND = "stale_command"
    OUT_OF_ORDER = "out_of_order"
    NON_FINITE = "non_finite"
    INVALID_COMMAND = "invalid_command"
    """A finite but malformed command (gripper outside [0, 1]); not in the .msg constants yet."""
    STALE_STATE = "stale_state"
    """The arm measurement is too old or malformed; not in the .msg constants yet."""
    GRIPPER_DWELL = "gripper_dwell"
    ESTOP = "estop"
    DISABLED = "disabled"

    def __str__(self) -> str:
        return self.value


HARD_LIMITS = frozenset({Limit.WORKSPACE, Limit.FLOOR, Limit.ORIENTATION})
"""Limits that may cut motion abruptly, ignoring the acceleration limits: meeting the table
or leaving the workspace is worse than a jerk."""


@dataclass(frozen=True)
class SafetyStatus:
    """Every limit that acted on one tick, with a human-readable detail for each.

    ``limits`` and ``details`` have the same length and order. ``holding``: no motion was sent
    this tick (the arm holds still). ``counts``: how often each limit has acted since the
    filter was created; ``ticks``/``held_ticks``: ticks so far and those that held because
    a limit acted. ``open_loop_translation``/``open_loop_rotation``: motion executed since the
    last fresh camera observation (m, rad).
    """

    limits: tuple[Limit, ...] = ()
    details: tuple[str, ...] = ()
    holding: bool = False
    estopped: bool = False
    estop_reason: str = ""
    enabled: bool = True
    tick: int = 0
    held_ticks: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    open_loop_translation: float = 0.0
    open_loop_rotation: float = 0.0

    def acted(self, limit: Limit | str) -> bool:
        """Whether ``limit`` acted on this tick."""
        return Limit(limit) in self.limits

    def detail(self, limit: Limit | str) -> str:
        """The detail for ``limit`` ("" when it did not act)."""
        lim = Limit(limit)
        return next((d for lim2, d in zip(self.limits, self.details, strict=True) if lim2 is lim), "")

    @property
    def message(self) -> str:
        """One line for logs: ``"floor: target z 0.012 m below floor 0.020 m; ..."``."""
        return "; ".join(f"{lim.value}: {d}" for lim, d in zip(self.limits, self.details, strict=True)) or "ok"


@dataclass(frozen=True)
class SafetyResult:
    """The filter's decision for one tick.

    ``target_pose``: the end-effector target after this tick (4x4, base frame; unchanged when
    holding). ``target_joints``: joints to command, or ``None`` = hold still (rejected input,
    e-stop, IK failure, dry run, nothing to do). ``gripper``: 1.0 (open) or 0.0 (closed) to
    command, or ``None`` = leave it. ``executed``: the twist actually executed after limits, in
    the same semantics as the input (integrating it about the measured end-effector point over
    one tick gives ``target_pose``); zero when holding.
    """

    target_pose: np.ndarray
    target_joints: np.ndarray | None
    gripper: float | None
    executed: EndEffectorCommand
    status: SafetyStatus

    @property
    def holding(self) -> bool:
        return self.target_joints is None
