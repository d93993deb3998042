"""Arm implementations: SimArm (kinematic simulation) and InterbotixArm (xs driver, through a fake
node: the driver cannot exist here), plus the contract both keep for the safety filter."""

from __future__ import annotations

import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pytest
from ros_msg_standins import all_specs, build_classes, parse_msg

from nora_ros.errors import ArmError, ConfigurationError, InvalidInputError, KinematicsError
from nora_ros.robot.arm import Arm
from nora_ros.robot.interbotix import InterbotixArm, InterbotixArmConfig, interbotix_messages
from nora_ros.robot.kinematics import FINGER_LOWER, FINGER_UPPER, WidowXModel
from nora_ros.robot.sim_arm import SimArm, SimArmConfig

WX250S = WidowXModel.from_name("wx250s")
TARGET = np.array([0.2, -0.3, 0.4, 0.1, 1.2, -0.2])


# --------------------------------------------------------------------------- SimArm


def test_simarm_starts_at_rest_in_the_sleep_pose_with_the_gripper_open():
    arm = SimArm()
    s = arm.state()
    assert np.allclose(s.joints, WX250S.sleep_joints) and s.gripper == pytest.approx(1.0)
    assert np.allclose(s.ee_pose, WX250S.fk(s.joints)) and s.stamp == 0.0 and not s.moving


def test_simarm_arrives_after_the_duration_moving_in_a_straight_line():
    arm = SimArm(joints=WX250S.home_joints)
    goal = np.array([0.1, 0.1, -0.1, 0.05, 0.2, 0.0])  # max travel 0.2 rad: 0.064 s at the limit
    arm.command_joints(goal, 0.2)
    half = arm.advance(0.1)
    assert half.moving and np.allclose(half.joints, 0.5 * goal)
    assert np.allclose(arm.advance(0.1).joints, goal)
    assert not arm.state().moving


def test_simarm_never_exceeds_the_joint_velocity_limit():
    arm = SimArm(joints=WX250S.sleep_joints)
    arm.command_joints(WX250S.home_joints, 0.1)  # 1.8 rad in 0.1 s would be 18 rad/s
    previous = arm.state()
    speeds = []
    while True:
        s = arm.advance(0.01)
        speeds.append(np.max(np.abs(s.joints - previous.joints)) / (s.stamp - previous.stamp))
        previous = s
        if not s.moving:
            break
    assert max(speeds) == pytest.approx(math.pi, rel=1e-6)
    assert previous.stamp == pytest.approx(1.8 / math.pi, abs=0.011)
    assert np.allclose(previous.joints, WX250S.home_joints)


def test_simarm_samples_joint_states_at_100hz():
    arm = SimArm(joints=WX250S.home_joints)
    arm.command_joints(TARGET, 1.0)
    s = arm.advance(0.015)
    assert s.stamp == pytest.approx(0.01)
    assert np.allclose(s.joints, 0.01 * TARGET)  # the sample's joints, not the continuous ones
    assert arm.advance(0.005).stamp == pytest.approx(0.02)
    assert SimArm(config=SimArmConfig(rate_hz=30.0)).advance(0.05).stamp == pytest.approx(1 / 30)


def test_simarm_rejects_bad_targets_and_keeps_its_previous_target():
    arm = SimArm(joints=WX250S.home_joints)
    arm.command_joints(TARGET, 0.5)
    bad = TARGET.copy()
    bad[1] = math.radians(120)  # shoulder limit is 114 deg
    with pytest.raises(ArmError, match="shoulder"):
        arm.command_joints(bad, 0.5)
    with pytest.raises(ArmError, match="non-finite"):
        arm.command_joints(np.full(6, np.nan), 0.5)
    with pytest.raises(ArmError, match="duration"):
        arm.command_joints(TARGET, 0.0)
    with pytest.raises(InvalidInputError, match="6 joint targets"):
        arm.command_joints(TARGET[:5], 0.5)
    assert np.allclose(arm.advance(1.0).joints, TARGET)


def test_simarm_gripper_travel_takes_time():
    arm = SimArm(config=SimArmConfig(gripper_travel_time=0.4))
    arm.command_gripper(0.2)  # below the threshold: close
    assert arm.advance(0.2).gripper == pytest.approx(0.5)
    assert arm.advance(0.2).gripper == pytest.approx(0.0)
    arm.command_gripper(0.9)
    assert arm.advance(0.1).gripper == pytest.approx(0.25)
    arm.command_gripper(0.1)  # reverses from where the fingers are
    assert arm.advance(0.1).gripper == pytest.approx(0.0)
    with pytest.raises(ArmError, match=r"\[0, 1\]"):
        arm.command_gripper(1.5)
    with pytest.raises(ArmError):
        arm.command_gripper(float("nan"))


def test_simarm_hold_stops_mid_move_and_a_new_target_starts_where_the_arm_is():
    arm = SimArm(joints=WX250S.home_joints)
    arm.command_joints(TARGET, 1.0)
    arm.advance(0.3)
    arm.hold()
    held = arm.advance(0.5)
    assert np.allclose(held.joints, 0.3 * TARGET) and not held.moving
    arm.command_joints(TARGET, 1.0)
    assert np.allclose(arm.advance(0.5).joints, 0.3 * TARGET + 0.5 * 0.7 * TARGET)  # no jump


def test_simarm_home_and_sleep_block_in_simulated_time():
    arm = SimArm()
    arm.home()
    s = arm.state()
    assert np.allclose(s.joints, WX250S.home_joints) and not s.moving
    assert 1.0 <= s.stamp <= 1.8 / (0.5 * math.pi) + 0.02
    arm.sleep()
    assert np.allclose(arm.state().joints, WX250S.sleep_joints)
    with pytest.raises(ArmError, match="timeout"):
        SimArm().home(timeout=0.3)


def test_simarm_follows_an_injected_clock():
    class Clock:
        def __init__(self):
            self.t = 100.0

        def now(self):
            return self.t

        def sleep_until(self, t):
            self.t = max(self.t, t)

    clock = Clock()
    arm = SimArm(joints=WX250S.home_joints, clock=clock)
    arm.command_joints(TARGET, 1.0)
    clock.t += 0.5
    s = arm.state()
    assert s.stamp == pytest.approx(100.5) and np.allclose(s.joints, 0.5 * TARGET)
    with pytest.raises(ArmError, match="clock"):
        arm.advance(0.1)
    arm.sleep()
    assert np.allclose(arm.state().joints, WX250S.sleep_joints) and clock.t > 101.0
    clock.sleep_until = lambda t: None  # a clock that cannot wait: say so, do not pretend to arrive
    with pytest.raises(ArmError, match="cannot wait"):
        arm.home()


def test_simarm_realtime_background_thread_hands_out_samples():
    arm = SimArm.realtime(joints=WX250S.home_joints)
    with pytest.raises(ArmError, match="clock"):
        SimArm().start_background()
    states = []
    goal = 0.2 * TARGET  # 0.24 rad at most: within the velocity limit in 0.1 s
    arm.command_joints(goal, 0.1)
    arm.start_background(states.append)
    try:
        import time

        time.sleep(0.15)
    finally:
        arm.close()
    assert len(states) >= 5
    stamps = [s.stamp for s in states]
    assert all(b >= a for a, b in zip(stamps, stamps[1:], strict=False))
    assert np.allclose(arm.state().joints, goal)


def test_simarm_is_deterministic():
    def run() -> list[np.ndarray]:
        arm = SimArm()
        out = []
        for k in range(20):
            arm.command_joints(WX250S.sleep_joints + np.array([1, 1, -1, 1, 1, 1]) * 0.02 * k, 0.2)
            arm.command_gripper(k % 2)
            s = arm.advance(0.07)
            out.append(np.concatenate([s.joints, [s.gripper, s.stamp]]))
        return out

    assert all(np.array_equal(a, b) for a, b in zip(run(), run(), strict=True))


def test_simarm_five_joint_model():
    arm = SimArm("wx250")
    assert arm.state().joints.shape == (5,)
    arm.command_joints(np.zeros(5), 0.2)
    assert np.allclose(arm.advance(2.0).ee_pose[:3, 3], [0.458325, 0.0, 0.36065])


def test_command_pose_uses_our_ik_and_refuses_unreachable_poses():
    arm = SimArm(joints=TARGET)
    pose = arm.state().ee_pose.copy()
    pose[2, 3] -= 0.03
    result = arm.command_pose(pose, 0.2, margin=0.05)
    assert result.success
    assert np.allclose(arm.advance(0.2).ee_pose, pose, atol=1e-9)
    far = pose.copy()
    far[0, 3] = 1.0
    with pytest.raises(KinematicsError, match="out of reach"):
        arm.command_pose(far, 0.2)
    assert not arm.advance(0.1).moving


def test_simarm_config_says_how_to_fix_bad_values():
    with pytest.raises(ConfigurationError, match="rate_hz"):
        SimArmConfig(rate_hz=0)
    with pytest.raises(ConfigurationError, match="gripper_travel_time"):
        SimArmConfig(gripper_travel_time=-1)


# --------------------------------------------------------------------------- InterbotixArm through a fake node

INTERBOTIX = {
    "interbotix_xs_msgs/JointGroupCommand": "string name\nfloat32[] cmd",
    "interbotix_xs_msgs/JointSingleCommand": "string name\nfloat32 cmd",
    "interbotix_xs_msgs/OperatingModesRequest": ("string cmd_type\nstring name\nstring mode\nstring profile_type\n"
                                                 "int32 profile_velocity\nint32 profile_acceleration"),
    "interbotix_xs_msgs/RegisterValuesRequest": "string cmd_type\nstring name\nstring reg\nint32 value",
}
_CLASSES = build_classes({**all_specs(), **{k: parse_msg(v, k) for k, v in INTERBOTIX.items()}})
MESSAGES = SimpleNamespace(
    JointGroupCommand=_CLASSES["interbotix_xs_msgs/JointGroupCommand"],
    JointSingleCommand=_CLASSES["interbotix_xs_msgs/JointSingleCommand"],
    JointState=_CLASSES["sensor_msgs/JointState"],
    OperatingModes=SimpleNamespace(Request=_CLASSES["interbotix_xs_msgs/OperatingModesRequest"]),
    RegisterValues=SimpleNamespace(Request=_CLASSES["interbotix_xs_msgs/RegisterValuesRequest"]),
)
ALL_JOINTS = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper",
              "left_finger", "right_finger"]


class FakePublisher:
    def __init__(self, msg_type, topic):
        self.msg_type, self.topic, self.messages = msg_type, topic, []

    def publish(self, msg):
        assert isinstance(msg, self.msg_type)
        self.messages.append(msg)


class FakeClient:
    def __init__(self, srv_type, name, available):
        self.srv_type, self.name, self.available, self.requests = srv_type, name, available, []

    def wait_for_service(self, timeout_sec):
        return self.available

    def call_async(self, request):
        assert isinstance(request, self.srv_type.Request)
        self.requests.append(request)
        return SimpleNamespace(done=lambda: True)


class FakeNode:
    """The rclpy.Node surface InterbotixArm uses; records what it is given."""

    def __init__(self, services_available=True):
        self.publishers, self.subscriptions, self.clients, self.destroyed = {}, {}, {}, []
        self.available = services_available

    def create_publisher(self, msg_type, topic, qos):
        self.publishers[topic] = FakePublisher(msg_type, topic)
        return self.publishers[topic]

    def create_subscription(self, msg_type, topic, callback, qos):
        self.subscriptions[topic] = (msg_type, callback)
        return topic

    def create_client(self, srv_type, name):
        self.clients[name] = FakeClient(srv_type, name, self.available)
        return self.clients[name]

    def destroy_publisher(self, handle):
        self.destroyed.append(handle)

    def destroy_subscription(self, handle):
        self.destroyed.append(handle)

    def destroy_client(self, handle):
        self.destroyed.append(handle)


def joint_state(joints, finger=FINGER_UPPER, stamp=12.5, order=None):
    values = dict(zip(ALL_JOINTS[:6], (float(x) for x in joints), strict=True))
    values.update(gripper=0.0, left_finger=float(finger), right_finger=-float(finger))
    names = order or ALL_JOINTS
    msg = MESSAGES.JointState(name=list(names), position=[values[n] for n in names])
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = int(round((stamp % 1) * 1e9))
    return msg


class FakeDriver:
    """Time and joint states for an InterbotixArm: each joint command arrives after its duration."""

    def __init__(self, node, joints=WX250S.sleep_joints):
        self.node, self.t, self.joints = node, 0.0, np.array(joints, dtype=float)
        self.respond = True

    def clock(self):
        return self.t

    def sleep(self, dt):
        self.t += dt
        self.publish_state()

    def publish_state(self):
        group = self.node.publishers["/wx250s/commands/joint_group"].messages
        if self.respond and group:
            self.joints = np.array(group[-1].cmd, dtype=float)
        _, callback = self.node.subscriptions["/wx250s/joint_states"]
        callback(joint_state(self.joints, stamp=self.t + 1.0))


def make_interbotix(**config):
    node = FakeNode()
    driver = FakeDriver(node)
    arm = InterbotixArm(node, InterbotixArmConfig(**config), messages=MESSAGES, clock=driver.clock, sleep=driver.sleep)
    return arm, node, driver


def test_interbotix_arm_uses_the_driver_topics_and_services_on_our_node():
    arm, node, _ = make_interbotix()
    assert set(node.publishers) == {"/wx250s/commands/joint_group", "/wx250s/commands/joint_single"}
    assert set(node.subscriptions) == {"/wx250s/joint_states"}
    assert set(node.clients) == {"/wx250s/set_operating_modes", "/wx250s/set_motor_registers"}
    other = InterbotixArm(FakeNode(), InterbotixArmConfig(robot_model="wx250", robot_name="arm1"), messages=MESSAGES)
    assert other.kinematics.n_joints == 5 and "/arm1/joint_states" in other._node.subscriptions


def test_interbotix_state_maps_joints_by_name():
    arm, node, _ = make_interbotix()
    with pytest.raises(ArmError, match="no joint states"):
        arm.state()
    _, callback = node.subscriptions["/wx250s/joint_states"]
    shuffled = ["left_finger", "wrist_rotate", "gripper", "waist", "elbow", "right_finger", "shoulder",
                "wrist_angle", "forearm_roll"]
    callback(joint_state(TARGET, finger=0.026, stamp=3.25, order=shuffled))
    s = arm.state()
    assert np.allclose(s.joints, TARGET) and s.stamp == pytest.approx(3.25)
    assert s.gripper == pytest.approx(0.5) and np.allclose(s.ee_pose, WX250S.fk(TARGET))


def test_interbotix_rejects_joint_states_without_our_joints():
    arm, node, _ = make_interbotix()
    _, callback = node.subscriptions["/wx250s/joint_states"]
    callback(MESSAGES.JointState(name=["waist", "shoulder"], position=[0.0, 0.1]))
    assert arm.rejected_states == 1
    with pytest.raises(ArmError, match="rejected.*robot_model"):
        arm.state()


def test_interbotix_configure_sets_time_based_profile_and_pwm_gripper():
    arm, node, _ = make_interbotix()
    with pytest.raises(ArmError, match="configure"):
        arm.command_joints(TARGET, 0.2)
    arm.configure(duration=0.2)
    group, gripper = node.clients["/wx250s/set_operating_modes"].requests
    assert (group.cmd_type, group.name, group.mode, group.profile_type) == ("group", "arm", "position", "time")
    assert (group.profile_velocity, group.profile_acceleration) == (200, 40)
    assert (gripper.cmd_type, gripper.name, gripper.mode) == ("single", "gripper", "pwm")
    missing = InterbotixArm(FakeNode(services_available=False), messages=MESSAGES)
    with pytest.raises(ArmError, match="set_operating_modes.*xsarm_control"):
        missing.configure(timeout=0.01)


def test_interbotix_command_joints_publishes_the_group_and_updates_the_profile_on_change():
    arm, node, driver = make_interbotix()
    arm.configure(duration=0.2)
    registers = node.clients["/wx250s/set_motor_registers"].requests
    arm.command_joints(TARGET, 0.2)
    (cmd,) = node.publishers["/wx250s/commands/joint_group"].messages
    assert cmd.name == "arm" and np.allclose(cmd.cmd, TARGET)
    assert registers == []  # same duration as configured
    arm.command_joints(TARGET, 0.5)
    assert [(r.reg, r.value, r.cmd_type, r.name) for r in registers] == [
        ("Profile_Velocity", 500, "group", "arm"), ("Profile_Acceleration", 40, "group", "arm")]
    arm.command_joints(TARGET, 0.05)
    assert [(r.reg, r.value) for r in registers[2:]] == [("Profile_Velocity", 50), ("Profile_Acceleration", 25)]
    bad = TARGET.copy()
    bad[4] = 2.5  # wrist_angle limit is 123 deg
    with pytest.raises(ArmError, match="wrist_angle"):
        arm.command_joints(bad, 0.2)
    assert len(node.publishers["/wx250s/commands/joint_group"].messages) == 3


def test_interbotix_moving_until_the_time_is_up_and_the_joints_arrive():
    arm, node, driver = make_interbotix()
    arm.configure()
    driver.respond = False
    driver.publish_state()
    arm.command_joints(TARGET, 0.2)
    assert arm.state().moving
    driver.t += 0.3
    assert arm.state().moving  # time is up, but the joints have not arrived
    driver.respond = True
    driver.publish_state()
    assert not arm.state().moving


def test_interbotix_gripper_pwm_effort_and_stop_at_the_travel_limit():
    arm, node, driver = make_interbotix(gripper_pressure=0.25)
    single = node.publishers["/wx250s/commands/joint_single"].messages
    _, callback = node.subscriptions["/wx250s/joint_states"]
    arm.command_gripper(0.0)
    arm.command_gripper(0.3)  # still closing: no repeat
    assert [(m.name, m.cmd) for m in single] == [("gripper", -200.0)]
    callback(joint_state(TARGET, finger=0.02))
    assert len(single) == 1  # still travelling
    callback(joint_state(TARGET, finger=FINGER_LOWER - 0.001))
    assert single[-1].cmd == 0.0 and len(single) == 2
    arm.command_gripper(1.0)
    assert single[-1].cmd == 200.0
    with pytest.raises(ArmError):
        arm.command_gripper(-0.1)


def test_interbotix_hold_commands_the_measured_joints():
    arm, node, driver = make_interbotix()
    arm.configure()
    driver.respond = False
    driver.publish_state()
    arm.command_joints(TARGET, 0.2)
    arm.hold()
    held = node.publishers["/wx250s/commands/joint_group"].messages[-1]
    assert np.allclose(held.cmd, WX250S.sleep_joints)


def test_interbotix_stale_joint_states_raise_and_hold_sends_nothing():
    arm, node, driver = make_interbotix(state_timeout=0.5)
    arm.configure()
    driver.publish_state()
    arm.command_joints(TARGET, 0.2)
    driver.t += 0.6  # the driver went silent
    with pytest.raises(ArmError, match="stale.*0.60 s"):
        arm.state()
    sent = len(node.publishers["/wx250s/commands/joint_group"].messages)
    arm.hold()  # never raises: the arm stops at its last target
    assert len(node.publishers["/wx250s/commands/joint_group"].messages) == sent
    driver.publish_state()
    assert np.allclose(arm.state().joints, TARGET)


def test_interbotix_home_waits_for_arrival_or_times_out():
    arm, node, driver = make_interbotix()
    arm.configure()
    driver.publish_state()
    arm.home(timeout=5.0)
    assert np.allclose(arm.state().joints, WX250S.home_joints)
    assert node.clients["/wx250s/set_motor_registers"].requests[0].value >= 1000  # slow move
    driver.respond = False
    with pytest.raises(ArmError, match="did not reach"):
        arm.sleep(timeout=2.0)


def test_interbotix_close_holds_and_releases_handles():
    arm, node, driver = make_interbotix()
    arm.configure()
    driver.publish_state()
    arm.close()
    assert len(node.destroyed) == 5
    assert np.allclose(node.publishers["/wx250s/commands/joint_group"].messages[-1].cmd, WX250S.sleep_joints)


@pytest.mark.skipif(importlib.util.find_spec("interbotix_xs_msgs") is not None, reason="Interbotix messages installed")
def test_interbotix_messages_say_what_is_missing_without_ros():
    with pytest.raises(ArmError, match="interbotix_xs_msgs"):
        interbotix_messages()


def test_interbotix_config_says_how_to_fix_bad_values():
    with pytest.raises(ConfigurationError, match="robot_model"):
        InterbotixArmConfig(robot_model="px100")
    with pytest.raises(ConfigurationError, match="150..350"):
        InterbotixArmConfig(gripper_pressure=2.0)


# --------------------------------------------------------------------------- the contract both keep


def sim_arm() -> tuple[Arm, callable]:
    arm = SimArm()
    return arm, lambda: arm.advance(1.0)


def interbotix_arm() -> tuple[Arm, callable]:
    arm, _, driver = make_interbotix()
    arm.configure()
    driver.publish_state()
    return arm, lambda: driver.sleep(1.0)


@pytest.mark.parametrize("make", [sim_arm, interbotix_arm], ids=["SimArm", "InterbotixArm"])
def test_every_arm_keeps_the_contract(make):
    arm, settle = make()
    start = arm.state()
    assert np.allclose(start.joints, WX250S.sleep_joints) and np.allclose(start.ee_pose, WX250S.fk(start.joints))
    arm.command_joints(TARGET, 0.2)
    settle()
    s = arm.state()
    assert np.allclose(s.joints, TARGET) and not s.moving
    outside = TARGET.copy()
    outside[2] = WX250S.upper[2] + 0.01
    with pytest.raises(ArmError, match="elbow"):
        arm.command_joints(outside, 0.2)
    settle()
    assert np.allclose(arm.state().joints, TARGET)  # not clipped, not moved
    pose = WX250S.fk(TARGET)
    pose[0, 3] += 0.02
    arm.command_pose(pose, 0.2)
    settle()
    assert np.allclose(arm.state().ee_pose, pose, atol=1e-6)


# --------------------------------------------------------------------------- Bridge steps through IK and SimArm


def test_real_bridge_episodes_execute_through_ik_and_simarm(bridge_episodes):
    """Each action: next target = Bridge delta applied to the previous target about the measured
    EE point; IK seeded from the previous target's joints within one step's velocity limit; the
    kinematic arm then reaches it in 0.2 s. When IK fails the target does not advance."""
    from nora_ros.actions import BRIDGE_STEP_PERIOD, apply_bridge_delta, bridge_state_to_pose

    bound = WX250S.max_joint_step(BRIDGE_STEP_PERIOD)
    for path in bridge_episodes:
        episode = np.load(path)
        target = bridge_state_to_pose(episode["state"][0])
        start = WX250S.ik(target, WX250S.sleep_joints, margin=0.05)
        assert start.success, start.reason
        arm = SimArm(joints=start.joints)
        joints = start.joints
        for action in episode["action"]:
            proposed = apply_bridge_delta(target, arm.state().ee_pose[:3, 3], action)
            result = WX250S.ik(proposed, joints, max_joint_step=bound, margin=0.05)
            assert result.success, (path.name, result.reason)
            target, joints = proposed, result.joints
            arm.command_joints(joints, BRIDGE_STEP_PERIOD)
            arm.command_gripper(float(action[6]))
            reached = arm.advance(BRIDGE_STEP_PERIOD)
            assert np.allclose(reached.ee_pose, target, atol=1e-9)
        crash = np.array([0.0, 0.0, -0.6, 0.0, 0.0, 0.0, 1.0])  # 60 cm down: beyond one step and the reach
        result = WX250S.ik(apply_bridge_delta(target, arm.state().ee_pose[:3, 3], crash), joints,
                           max_joint_step=bound, margin=0.05)
        assert not result.success and result.joints is None
        assert np.allclose(arm.advance(BRIDGE_STEP_PERIOD).ee_pose, target, atol=1e-9)  # nothing moved
