"""Moving the arm to a trial's start pose (what the safety node does while a trial RESETS).

The start pose is a Bridge state ``[x, y, z, roll, pitch, yaw]`` (the supervisor's
``start_pose``; empty: the arm's home joints). The move is planned here, without ROS: joints by
our IK seeded from the measured joints, checked against the joint limits (minus the safety
margin) and, for a pose, against the safety filter's workspace box and floor, and timed so no
joint exceeds half its velocity limit (moves near people are made slowly). A start pose the
filter itself would refuse is refused here too, with the reason; nothing moves then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nora_ros.actions import bridge_state_to_pose
from nora_ros.errors import ConfigurationError, KinematicsError
from nora_ros.robot.arm import HOME_SPEED, ArmState
from nora_ros.robot.kinematics import WidowXModel
from nora_ros.safety.config import SafetyConfig


@dataclass(frozen=True)
class StartMove:
    """Joint target of the start pose and the duration (s) of the move there."""

    joints: np.ndarray
    duration: float


def plan_start_move(model: WidowXModel, safety: SafetyConfig, state: ArmState, start_pose: Sequence[float],
                    min_duration: float) -> StartMove:
    """The move from ``state`` to ``start_pose``; raises with the reason when there is none."""
    pose = tuple(float(v) for v in start_pose)
    if not pose:
        joints = np.asarray(model.home_joints, dtype=np.float64)
    else:
        if len(pose) != 6 or not all(np.isfinite(pose)):
            raise ConfigurationError(f"start_pose must be 6 finite numbers [x, y, z, roll, pitch, yaw], got {list(pose)}")
        xyz = np.array(pose[:3])
        lo, hi = np.array(safety.workspace_lower), np.array(safety.workspace_upper)
        if np.any(xyz < lo) or np.any(xyz > hi) or xyz[2] < safety.floor_z:
            raise ConfigurationError(
                f"start_pose position {xyz.tolist()} lies outside the safety workspace {lo.tolist()}..{hi.tolist()} "
                f"(floor z {safety.floor_z:.3f} m); choose a start pose the filter allows"
            )
        result = model.ik(bridge_state_to_pose(np.array(pose)), np.asarray(state.joints, dtype=np.float64),
                          margin=safety.joint_margin)
        if not result.success:
            raise KinematicsError(f"start_pose {list(pose)} is not reachable: {result.reason}")
        joints = np.asarray(result.joints, dtype=np.float64)
    if not model.within_limits(joints, margin=safety.joint_margin):
        raise KinematicsError("start joints lie within the joint-limit margin: " +
                              "; ".join(model.limit_violations(joints, margin=safety.joint_margin)))
    travel = float(np.max(np.abs(joints - np.asarray(state.joints, dtype=np.float64))))
    duration = max(float(min_duration), travel / (HOME_SPEED * model.max_joint_velocity))
    return StartMove(joints, duration)


def reached(state: ArmState, move: StartMove, tolerance: float) -> bool:
    """The arm stands at the move's joints (every joint within ``tolerance`` rad, not moving)
    with the gripper open."""
    error = float(np.max(np.abs(np.asarray(state.joints) - move.joints)))
    return error <= tolerance and not state.moving and state.gripper > 0.5
