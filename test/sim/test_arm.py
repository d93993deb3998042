"""MujocoArm behaves like the robot's Arm: limits raise, moves follow the time-based profile
at most at the joint velocity limit, the gripper opens and closes, hold/home/sleep work."""

from __future__ import annotations

import math
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("mujoco", reason="the simulator needs the 'sim' extra (pip install -e '.[sim]')")

from nora_ros.errors import ConfigurationError, InvalidInputError  # noqa: E402
from nora_ros.robot.arm import Arm  # noqa: E402
from nora_ros.sim.arm import MujocoArm, MujocoArmConfig  # noqa: E402
from nora_ros.sim.world import SimWorld  # noqa: E402


@pytest.fixture
def sim():
    world = SimWorld(seed=2)
    arm = MujocoArm(world)
    yield world, arm
    world.close()


def test_is_an_arm_and_state_reports_fk_gripper_and_sim_stamp(sim):
    world, arm = sim
    assert isinstance(arm, Arm)
    world.step(0.1)
    s = arm.state()
    np.testing.assert_allclose(s.joints, world.start_joints, atol=2e-3)
    fk = world.kinematics.fk(s.joints)
    assert np.linalg.norm(s.ee_pose[:3, 3] - fk[:3, 3]) < 1e-3
    np.testing.assert_allclose(s.ee_pose[:3, :3], fk[:3, :3], atol=1e-6)
    assert s.gripper == pytest.approx(1.0, abs=0.02)
    assert s.stamp == world.time
    assert not s.moving


@pytest.mark.parametrize(
    ("joints", "words"),
    [
        ([0.0, 2.2, 0.0, 0.0, 0.0, 0.0], "shoulder"),  # 126 deg > 114 deg
        ([0.0, 0.0, -2.3, 0.0, 0.0, 0.0], "elbow"),  # -132 deg < -123 deg
        ([0.0, 0.0, 0.0, 0.0, 0.0, 3.2], "wrist_rotate"),
        ([0.0, 0.0, math.nan, 0.0, 0.0, 0.0], "finite"),
        ([0.0, 0.0, 0.0], "6 joint"),
    ],
)
def test_targets_outside_limits_raise_and_nothing_moves(sim, joints, words):
    world, arm = sim
    before = world.arm_joints()
    with pytest.raises(InvalidInputError, match=words):
        arm.command_joints(np.array(joints), 0.5)
    world.step(0.3)
    np.testing.assert_allclose(world.arm_joints(), before, atol=2e-3)


def test_bad_duration_and_gripper_values_raise(sim):
    _, arm = sim
    with pytest.raises(InvalidInputError, match="duration"):
        arm.command_joints(np.zeros(6), -1.0)
    with pytest.raises(InvalidInputError, match="duration"):
        arm.command_joints(np.zeros(6), math.inf)
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(InvalidInputError, match="gripper"):
            arm.command_gripper(bad)


def test_move_follows_the_time_based_profile_and_arrives(sim):
    world, arm = sim
    start = world.arm_joints()
    goal = start + np.array([0.3, 0.15, -0.2, 0.1, 0.2, -0.3])
    arm.command_joints(goal, 1.0)
    world.step(0.5)
    # trapezoid symmetric in time: halfway in time is halfway in space
    np.testing.assert_allclose(arm.setpoint()[0], (start + goal) / 2, atol=1e-9)
    np.testing.assert_allclose(world.arm_joints(), (start + goal) / 2, atol=0.01)
    assert arm.state().moving
    world.step(0.6)
    s = arm.state()
    assert not s.moving
    np.testing.assert_allclose(s.joints, goal, atol=5e-3)
    target_pos = world.kinematics.fk(goal)[:3, 3]
    assert np.linalg.norm(s.ee_pose[:3, 3] - target_pos) < 2e-3


def test_velocity_limit_stretches_a_fast_move(sim):
    world, arm = sim
    start = world.arm_joints()
    goal = start + np.array([1.5, 0.0, 0.0, 0.0, 0.0, 0.0])
    arm.command_joints(goal, 0.1)  # 15 rad/s asked; pi rad/s allowed: takes >= 1.5 / pi = 0.48 s
    peak = 0.0
    for _ in range(20):
        world.step(0.02)
        peak = max(peak, float(np.max(np.abs(world.arm_velocities()))))
    assert arm.state().moving  # 0.4 s in: not there yet
    assert abs(world.arm_joints()[0] - goal[0]) > 0.05
    world.step(0.3)
    assert not arm.state().moving
    assert peak <= math.pi * 1.05


def test_new_command_continues_from_the_current_setpoint(sim):
    world, arm = sim
    start = world.arm_joints()
    arm.command_joints(start + np.array([0.4, 0, 0, 0, 0, 0]), 0.4)
    world.step(0.2)
    mid = arm.setpoint()[0]
    arm.command_joints(start, 0.4)
    np.testing.assert_allclose(arm.setpoint()[0], mid, atol=1e-12)  # no jump in the servo target


def test_hold_stops_where_the_arm_is(sim):
    world, arm = sim
    start = world.arm_joints()
    arm.command_joints(start + np.array([0.6, 0, 0, 0, 0, 0]), 1.0)
    world.step(0.3)
    arm.hold()
    held = world.arm_joints()
    world.step(0.5)
    np.testing.assert_allclose(world.arm_joints(), held, atol=0.02)
    assert world.arm_joints()[0] < start[0] + 0.4


def test_gripper_closes_and_opens_with_the_bridge_threshold(sim):
    world, arm = sim
    arm.command_gripper(0.0)
    world.step(0.5)
    assert arm.state().gripper < 0.05
    arm.command_gripper(0.7)  # above 0.5 opens fully, as widowx_envs
    world.step(0.5)
    assert arm.state().gripper > 0.95
    arm.command_gripper(0.3)
    world.step(0.5)
    assert arm.state().gripper < 0.05


def test_home_and_sleep_reach_their_poses(sim):
    world, arm = sim
    arm.home()
    np.testing.assert_allclose(arm.state().joints, world.kinematics.home_joints, atol=0.01)
    arm.sleep()
    np.testing.assert_allclose(arm.state().joints, world.kinematics.sleep_joints, atol=0.01)


def test_reset_drops_the_old_target(sim):
    world, arm = sim
    arm.command_joints(world.arm_joints() + np.array([0.5, 0, 0, 0, 0, 0]), 2.0)
    world.step(0.2)
    world.reset(9)
    world.step(0.5)
    np.testing.assert_allclose(world.arm_joints(), world.start_joints, atol=3e-3)


def test_bad_profile_config_is_rejected():
    with pytest.raises(ConfigurationError, match="accel_time"):
        MujocoArmConfig(accel_time=-0.1)
    with pytest.raises(ConfigurationError, match="gripper_threshold"):
        MujocoArmConfig(gripper_threshold=1.0)


def test_real_bridge_motion_is_tracked_within_a_millimetre(bridge_episodes):
    """Replaying the 25 real BridgeData V2 episodes' actions (Bridge semantics, IK seeded at the
    measured joints), the arm is within 1 mm and 0.005 rad of each step's target when the
    0.2 s step ends, and IK never refuses a step."""
    from nora_ros.policy import ReplayPolicy
    from nora_ros.robot.kinematics import pose_error
    from nora_ros.sim.rollout import rollout

    world = SimWorld(seed=0)
    arm = MujocoArm(world)
    worst = np.zeros(2)
    for path in bridge_episodes:
        policy = ReplayPolicy.from_npz(path)
        result = rollout(world, arm, policy, seed=0, max_steps=policy.actions.shape[0])
        assert result.steps == policy.actions.shape[0] and result.holds == 0, path.name
        for rec in result.records:
            worst = np.maximum(worst, pose_error(rec.target_pose, rec.measured_pose))
    assert worst[0] < 1e-3 and worst[1] < 0.005, worst
