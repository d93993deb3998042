"""Shared pieces of the safety tests: a start pose, commands, and an arm that tracks perfectly.

``TrackingArm`` is the measurement an ideal arm would report (joints = the last commanded
target, pose = forward kinematics of them); the filter under test is the real one.
"""

from __future__ import annotations

import numpy as np

from nora_ros.actions import EndEffectorCommand, bridge_state_to_pose
from nora_ros.robot.arm import ArmState
from nora_ros.robot.kinematics import WidowXModel
from nora_ros.safety import SafetyFilter, SafetyResult

MODEL = WidowXModel.from_name("wx250s")
START_STATE = (0.3, 0.0, 0.15, 0.0, 0.0, 0.0)
"""Bridge state (x, y, z, roll, pitch, yaw): gripper down, mid-workspace, 15 cm above the table."""


def joints_at(state=START_STATE) -> np.ndarray:
    res = MODEL.ik(bridge_state_to_pose(np.asarray(state, dtype=float)), MODEL.sleep_joints)
    assert res.success, res.reason
    return res.joints


def command(v=(0.0, 0.0, 0.0), w=(0.0, 0.0, 0.0), *, t: float, obs: float | None = None, g: float = 1.0,
            chunk: int = 0, index: int = 0) -> EndEffectorCommand:
    return EndEffectorCommand(np.asarray(v, float), np.asarray(w, float), g, t, chunk, index, t if obs is None else obs)


class TrackingArm:
    """Joints reach each commanded target within the tick; a hold leaves them where they are."""

    def __init__(self, joints: np.ndarray, gripper: float = 1.0):
        self.gripper = gripper
        self.move_to(joints)

    def move_to(self, joints: np.ndarray) -> None:
        self.joints = np.array(joints, dtype=float)
        self.pose = MODEL.fk(self.joints)

    def state(self, now: float) -> ArmState:
        return ArmState(self.joints.copy(), self.pose.copy(), self.gripper, now)

    def tick(self, f: SafetyFilter, cmd: EndEffectorCommand | None, now: float) -> SafetyResult:
        res = f.step(cmd, self.state(now), now)
        if res.target_joints is not None:
            self.move_to(res.target_joints)
        if res.gripper is not None:
            self.gripper = res.gripper
        return res
