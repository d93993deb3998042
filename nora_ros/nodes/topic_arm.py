"""TopicArm: an :class:`~nora_ros.robot.arm.Arm` behind standard ROS topics (the sim node, a replay).

Joint targets go out as ``trajectory_msgs/JointTrajectory`` (one point, reached
``time_from_start`` after the stamp), the gripper as ``std_msgs/Float64`` (1 open, 0 closed);
the arm's ``sensor_msgs/JointState`` comes in (joints by name, fingers as ``left_finger`` in
metres, as the xs driver publishes them). ``read_only`` arms only observe: every command is
dropped, so a dry run or a bag replay can never move anything.

Like :class:`~nora_ros.robot.interbotix.InterbotixArm` it lives on a node it is given and starts no thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from nora_ros.errors import ArmError, NoraError
from nora_ros.interface.convert import joint_positions, joint_trajectory_msg, stamp_to_seconds
from nora_ros.robot.arm import Arm, ArmState, check_gripper, check_joint_target
from nora_ros.robot.kinematics import WidowXModel, finger_to_gripper


class TopicArm(Arm):
    """The arm at the other end of three topics. ``clock()`` is the node's time in seconds."""

    def __init__(self, node: Any, model: WidowXModel, *, joint_states_topic: str = "joint_states",
                 joint_command_topic: str = "sim/joint_command", gripper_command_topic: str = "sim/gripper_command",
                 clock: Callable[[], float], read_only: bool = False, arrival_tolerance: float = 0.02,
                 qos: Any = 10):
        self.kinematics = model
        self.read_only = read_only
        self.arrival_tolerance = arrival_tolerance
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: tuple[np.ndarray, float, float] | None = None
        self._goal: np.ndarray | None = None
        self._move_end = float("-inf")
        self.rejected_states = 0
        self.last_rejection = ""
        self._sub = node.create_subscription(JointState, joint_states_topic, self._on_joint_states, qos)
        self._joint_pub = None if read_only else node.create_publisher(JointTrajectory,
                                                                        joint_command_topic, qos)
        self._gripper_pub = None if read_only else node.create_publisher(Float64, gripper_command_topic, qos)
        self.joint_states_topic = joint_states_topic

    def _on_joint_states(self, msg: Any) -> None:
        try:
            q = joint_positions(msg, self.kinematics.joint_names)
            finger = float(joint_positions(msg, ["left_finger"])[0])
        except NoraError as exc:
            self.rejected_states += 1
            self.last_rejection = str(exc)
            return
        stamp = stamp_to_seconds(msg.header.stamp) or self._clock()
        q.setflags(write=False)
        with self._lock:
            self._latest = (q, finger, stamp)

    def state(self) -> ArmState:
        with self._lock:
            latest = self._latest
        if latest is None:
            raise ArmError(f"no joint states received on {self.joint_states_topic} yet"
                           + (f" ({self.rejected_states} rejected: {self.last_rejection})" if self.rejected_states else ""))
        q, finger, stamp = latest
        moving = self._clock() < self._move_end or (
            self._goal is not None and float(np.max(np.abs(q - self._goal))) > self.arrival_tolerance)
        pose = self.kinematics.fk(q)
        pose.setflags(write=False)
        return ArmState(joints=q, ee_pose=pose, gripper=min(1.0, max(0.0, finger_to_gripper(finger))), stamp=stamp,
                        moving=moving)

    def command_joints(self, joints: np.ndarray, duration: float) -> None:
        q = check_joint_target(self.kinematics, joints, duration)
        if self.read_only:
            return

        now = self._clock()
        self._joint_pub.publish(joint_trajectory_msg(JointTrajectory, JointTrajectoryPoint,
                                                     Duration, self.kinematics.joint_names, q, duration,
                                                     max(now, 0.0)))
        self._goal = q
        self._move_end = now + float(duration)

    def command_gripper(self, value: float) -> None:
        v = check_gripper(value)
        if not self.read_only:
            self._gripper_pub.publish(Float64(data=v))

    def hold(self) -> None:
        """Command the measured joints at once: the arm stops where it is."""
        if self.read_only or self._latest is None:
            return
        q = self.state().joints
        self.command_joints(q, 0.05)
        self._move_end = self._clock()

    def home(self, timeout: float = 5.0) -> None:
        self.command_joints(self.kinematics.home_joints, max(1.0, timeout / 2))

    def sleep(self, timeout: float = 5.0) -> None:
        self.command_joints(self.kinematics.sleep_joints, max(1.0, timeout / 2))
