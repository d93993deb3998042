"""The Arm interface: what the safety filter commands, on the robot and in simulation.

Implementations: :class:`~nora_ros.robot.sim_arm.SimArm` (kinematic simulation),
:class:`~nora_ros.robot.interbotix.InterbotixArm` (the xs driver, robot only), the MuJoCo arm in
:mod:`nora_ros.sim` and the topic arm of the nodes. Only the safety layer calls the commanding
methods, so no path to the motors bypasses the checks. The checks every implementation applies
to a command are here too, so they cannot differ between simulation and robot.
"""

from __future__ import annotations

import abc
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nora_ros.errors import ArmError, InvalidInputError, KinematicsError
from nora_ros.robot.kinematics import (
    IKResult,
    WidowXModel,
)

_log = logging.getLogger(__name__)

GRIPPER_THRESHOLD = 0.5
"""Gripper commands above this open, others close (widowx_envs' rule). The real gripper runs in
PWM effort mode: it cannot hold a half-open position, so every arm here treats it as binary."""

HOME_SPEED = 0.5
"""Fraction of the joint velocity limit for :meth:`Arm.home` / :meth:`Arm.sleep` moves (at
least 1 s): big moves near people are made slowly."""


@dataclass(frozen=True)
class ArmState:
    """A measurement of the arm.

    ``joints``: arm joint positions (rad; 6 for wx250s, 5 for wx250), ``ee_pose``: 4x4 pose of
    the end effector in the base frame from forward kinematics of ``joints``, ``gripper``:
    opening in [0, 1] (1 = open), ``stamp``: seconds when measured, ``moving``: whether the
    arm is still travelling to its last target.
    """

    joints: np.ndarray
    ee_pose: np.ndarray
    gripper: float
    stamp: float
    moving: bool = False


class Arm(abc.ABC):
    """A WidowX arm that moves to joint targets.

    Contract:
    - :meth:`state` never blocks for long (it returns the latest measurement).
    - :meth:`command_joints` sends a joint target to be reached over ``duration`` seconds and
      returns at once; targets outside the joint limits raise, they are never clipped here.
    - :meth:`command_gripper` sets the gripper, absolute: 1 = open, 0 = closed.
    - :meth:`hold` stops where the arm is now.
    - :meth:`home` and :meth:`sleep` move to the named poses (blocking up to ``timeout`` s).
    """

    @abc.abstractmethod
    def state(self) -> ArmState:
        """The latest measurement."""

    @abc.abstractmethod
    def command_joints(self, joints: np.ndarray, duration: float) -> None:
        """Move to ``joints`` over ``duration`` seconds."""

    @abc.abstractmethod
    def command_gripper(self, value: float) -> None:
        """Open (1) or close (0) the gripper."""

    @abc.abstractmethod
    def hold(self) -> None:
        """Stop at the current position."""

    @abc.abstractmethod
    def home(self, timeout: float = 5.0) -> None:
        """Move to the home pose."""

    @abc.abstractmethod
    def sleep(self, timeout: float = 5.0) -> None:
        """Move to the sleep pose."""

    def close(self) -> None:  # noqa: B027 - optional hook, most arms hold nothing
        """Release the connection; the arm holds."""

    kinematics: WidowXModel | None = None
    """The arm's kinematic model (implementations set it)."""

    def command_pose(self, pose: np.ndarray, duration: float, *, margin: float = 0.0) -> IKResult:
        """Move the end effector to ``pose`` over ``duration`` s, IK seeded from the measured joints.

        Every joint step is bounded by the velocity limit over ``duration``. Raises
        :class:`KinematicsError` with the IK's reason when there is no such solution; then
        nothing moves. (The safety filter runs its own IK and calls :meth:`command_joints`;
        this is for scripts and tools.)
        """
        if self.kinematics is None:
            raise ArmError(f"{type(self).__name__} has no kinematic model: set its `kinematics`")
        seed = self.state().joints
        result = self.kinematics.ik(pose, seed, max_joint_step=self.kinematics.max_joint_step(duration), margin=margin)
        if not result.success:
            raise KinematicsError(f"no joint target for the requested pose: {result.reason}")
        self.command_joints(result.joints, duration)
        return result


# --------------------------------------------------------------------------- shared checks


def check_joint_target(model: WidowXModel, joints: Any, duration: float) -> np.ndarray:
    """The joint target as floats, or an error naming what is wrong with it (never clipped)."""
    q = np.asarray(joints, dtype=np.float64).reshape(-1)
    if q.shape != (model.n_joints,):
        raise InvalidInputError(f"{model.name} takes {model.n_joints} joint targets {model.joint_names}, got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ArmError(f"joint target has non-finite values {q.tolist()}; the arm keeps its previous target")
    violations = model.limit_violations(q)
    if violations:
        raise ArmError(
            "joint target outside the joint limits (not clipped; the arm keeps its previous target): " + "; ".join(violations)
        )
    if not (math.isfinite(duration) and duration > 0.0):
        raise ArmError(f"move duration must be a finite number of seconds > 0, got {duration}")
    q.setflags(write=False)
    return q


def check_gripper(value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ArmError(f"gripper command must lie in [0, 1] (1 = open, 0 = closed), got {value}")
    return v


def resolve_model(robot_model: WidowXModel | str) -> WidowXModel:
    return robot_model if isinstance(robot_model, WidowXModel) else WidowXModel.from_name(robot_model)


def home_duration(model: WidowXModel, start: np.ndarray, goal: np.ndarray) -> float:
    travel = float(np.max(np.abs(np.asarray(goal) - np.asarray(start))))
    return max(1.0, travel / (HOME_SPEED * model.max_joint_velocity))
