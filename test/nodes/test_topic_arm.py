"""TopicArm (the safety node's arm for the sim node's standard topics) without ROS: a recording
stand-in for the node (the ROS graph cannot exist here) and the message stand-ins built from the
real definitions (installed with test/fake_rclpy.py); the kinematics are the real WidowX model."""

from __future__ import annotations

import types

import fake_rclpy
import numpy as np
import pytest
from ros_msg_standins import MSG

from nora_ros.errors import ArmError
from nora_ros.interface import convert as rc
from nora_ros.robot.kinematics import FINGER_LOWER, FINGER_UPPER, WidowXModel


class RecordingNode:
    """Records what the arm publishes and hands its subscription callbacks to the test."""

    def __init__(self):
        self.published: dict[str, list] = {}
        self.callbacks: dict[str, object] = {}

    def create_publisher(self, msg_type, topic, qos):
        self.published[topic] = []
        return types.SimpleNamespace(publish=self.published[topic].append)

    def create_subscription(self, msg_type, topic, callback, qos):
        self.callbacks[topic] = callback
        return object()


@pytest.fixture
def model(monkeypatch):
    fake_rclpy.install(monkeypatch)  # the message classes TopicArm imports are ros_msg_standins' MSG
    return WidowXModel.from_name("wx250s")


def _joint_state(model, q, finger, stamp):
    names = ["right_finger", *reversed(model.joint_names), "left_finger"]
    values = {**dict(zip(model.joint_names, q, strict=True)), "left_finger": finger, "right_finger": -finger}
    return rc.joint_state_msg(MSG["sensor_msgs/JointState"], names, [values[n] for n in names], stamp)


def _arm(model, clock_value=10.0, **kw):
    node = RecordingNode()
    clock = types.SimpleNamespace(t=clock_value)
    from nora_ros.nodes.topic_arm import TopicArm

    arm = TopicArm(node, model, clock=lambda: clock.t, **kw)
    return node, arm, clock


def test_state_comes_from_joint_states_by_name_with_fk(model):
    node, arm, _ = _arm(model)
    with pytest.raises(ArmError, match="no joint states received on joint_states"):
        arm.state()
    q = np.array([0.1, -0.3, 0.4, 0.05, 0.6, -0.2])
    node.callbacks["joint_states"](_joint_state(model, q, FINGER_UPPER, 9.95))
    state = arm.state()
    np.testing.assert_allclose(state.joints, q)
    np.testing.assert_allclose(state.ee_pose, model.fk(q))
    assert state.gripper == pytest.approx(1.0) and state.stamp == pytest.approx(9.95)
    node.callbacks["joint_states"](_joint_state(model, q, FINGER_LOWER, 9.96))
    assert arm.state().gripper == pytest.approx(0.0)


def test_a_joint_state_missing_a_joint_is_rejected_and_counted(model):
    node, arm, _ = _arm(model)
    msg = rc.joint_state_msg(MSG["sensor_msgs/JointState"], ["waist", "shoulder"], [0.0, 0.0], 1.0)
    node.callbacks["joint_states"](msg)
    with pytest.raises(ArmError, match="1 rejected: joint state lacks"):
        arm.state()


def test_commands_go_out_as_a_one_point_trajectory_and_a_gripper_value(model):
    node, arm, clock = _arm(model)
    q = np.array([0.0, -0.2, 0.3, 0.0, 0.5, 0.0])
    node.callbacks["joint_states"](_joint_state(model, np.zeros(6), FINGER_UPPER, 10.0))
    arm.command_joints(q, 0.1)
    (traj,) = node.published["sim/joint_command"]
    names, target, duration = rc.trajectory_target(traj)
    assert names == list(model.joint_names) and duration == pytest.approx(0.1)
    np.testing.assert_allclose(target, q)
    assert rc.stamp_to_seconds(traj.header.stamp) == pytest.approx(10.0)
    assert arm.state().moving  # the move's time is not up and the arm is not there yet
    arm.command_gripper(0.0)
    assert node.published["sim/gripper_command"][0].data == 0.0


def test_out_of_limit_targets_raise_and_publish_nothing(model):
    node, arm, _ = _arm(model)
    bad = np.array([0.0, 3.0, 0.0, 0.0, 0.0, 0.0])  # shoulder beyond 114 deg
    with pytest.raises(ArmError, match="outside the joint limits"):
        arm.command_joints(bad, 0.1)
    with pytest.raises(ArmError, match=r"\[0, 1\]"):
        arm.command_gripper(1.5)
    assert node.published["sim/joint_command"] == [] and node.published["sim/gripper_command"] == []


def test_hold_commands_the_measured_joints(model):
    node, arm, _ = _arm(model)
    q = np.array([0.2, -0.1, 0.2, 0.0, 0.3, 0.1])
    node.callbacks["joint_states"](_joint_state(model, q, FINGER_UPPER, 10.0))
    arm.hold()
    _, target, _ = rc.trajectory_target(node.published["sim/joint_command"][-1])
    np.testing.assert_allclose(target, q)


def test_read_only_arm_never_publishes(model):
    node, arm, _ = _arm(model, read_only=True)
    assert "sim/joint_command" not in node.published
    node.callbacks["joint_states"](_joint_state(model, np.zeros(6), FINGER_UPPER, 10.0))
    arm.command_joints(np.zeros(6), 0.1)
    arm.command_gripper(1.0)
    arm.hold()
    assert node.published == {}
    np.testing.assert_allclose(arm.state().joints, np.zeros(6))
