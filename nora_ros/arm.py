"""The Arm interface: what the safety filter commands, on the robot and in simulation.

Implementations: ``SimArm`` (kinematic simulation, here), ``InterbotixArm`` (the xs driver,
robot only, lazy ROS imports, here) and the MuJoCo arm in :mod:`nora_ros.sim`. Only the safety
layer calls the commanding methods, so no path to the motors bypasses the checks.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


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
