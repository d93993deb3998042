"""SafetyFilter behaviour, one rule at a time, with real kinematics and real numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from safety_helpers import MODEL, TrackingArm, command, joints_at

from nora_ros.errors import InvalidInputError
from nora_ros.safety import Limit, SafetyConfig, SafetyFilter
from nora_ros.safety.geometry import rotation_angle

DT = 0.2


def fresh(config: SafetyConfig | None = None, state=None):
    arm = TrackingArm(joints_at() if state is None else joints_at(state))
    return SafetyFilter(config, MODEL), arm


def pos(res):
    return res.target_pose[:3, 3]


def test_normal_command_moves_the_target_exactly_and_reports_nothing():
    f, arm = fresh()
    p0 = arm.state(0.0).ee_pose[:3, 3]
    res = arm.tick(f, command((0.1, 0.0, -0.05), t=0.0), 0.0)
    assert res.status.limits == ()
    np.testing.assert_allclose(pos(res) - p0, [0.02, 0.0, -0.01], atol=1e-12)
    np.testing.assert_allclose(MODEL.fk(res.target_joints), res.target_pose, atol=1e-9)
    np.testing.assert_allclose(res.executed.linear, [0.1, 0.0, -0.05], atol=1e-12)


def test_rotation_is_about_the_measured_ee_point_and_reported_executed_twist_reproduces_it():
    from nora_ros.actions import integrate_twist

    f, arm = fresh()
    st = arm.state(0.0)
    res = f.step(command((0.0, 0.05, 0.0), (0.0, 0.0, 1.0), t=0.0), st, 0.0)
    expect = integrate_twist(st.ee_pose, st.ee_pose[:3, 3], [0.0, 0.05, 0.0], [0.0, 0.0, 1.0], DT)
    np.testing.assert_allclose(res.target_pose, expect, atol=1e-12)
    again = integrate_twist(st.ee_pose, st.ee_pose[:3, 3], res.executed.linear, res.executed.angular, DT)
    np.testing.assert_allclose(again, res.target_pose, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "limit", "words"),
    [
        ({"v": (math.nan, 0, 0)}, Limit.NON_FINITE, "linear velocity"),
        ({"w": (0, math.inf, 0)}, Limit.NON_FINITE, "angular velocity"),
        ({"g": math.nan}, Limit.NON_FINITE, "gripper is nan"),
        ({"g": 1.5}, Limit.INVALID_COMMAND, "outside [0, 1]"),
        ({"t": 10.0 - 0.6}, Limit.STALE_COMMAND, "0.600 s old"),
        ({"t": 10.0 + 0.6}, Limit.STALE_COMMAND, "in the future"),
        ({"t": 10.0, "obs": 10.1}, Limit.OUT_OF_ORDER, "after the command stamp"),
    ],
)
def test_bad_commands_are_rejected_and_the_arm_holds(kwargs, limit, words):
    f, arm = fresh()
    arm.tick(f, None, 9.8)
    before = f.target_pose
    kwargs = {"v": (0.1, 0, 0), "t": 10.0, **kwargs}
    res = arm.tick(f, command(**kwargs), 10.0)
    assert res.status.limits == (limit,)
    assert words in res.status.detail(limit)
    assert res.target_joints is None and res.status.holding and res.gripper is None
    np.testing.assert_array_equal(res.target_pose, before)
    assert res.executed.is_zero()
    assert res.status.counts[limit.value] == 1 and res.status.held_ticks == 1
    # a good command afterwards moves again
    ok = arm.tick(f, command((0.1, 0, 0), t=10.2), 10.2)
    assert ok.status.limits == () and ok.target_joints is not None


def test_out_of_order_command_and_observation_stamps():
    f, arm = fresh()
    assert arm.tick(f, command((0.05, 0, 0), t=1.0, obs=0.9), 1.0).status.limits == ()
    res = arm.tick(f, command((0.05, 0, 0), t=0.95, obs=0.9), 1.2)
    assert res.status.limits == (Limit.OUT_OF_ORDER,) and "older than the last accepted" in res.status.message
    res = arm.tick(f, command((0.05, 0, 0), t=1.4, obs=0.5), 1.4)
    assert res.status.limits == (Limit.OUT_OF_ORDER,) and "observation stamp 0.500000 s is older" in res.status.message
    res = f.step(None, arm.state(1.3), 1.3)
    assert res.status.limits == (Limit.OUT_OF_ORDER,) and "before the previous tick" in res.status.message


def test_zero_twist_hold_needs_no_fresh_observation():
    # The policy side sends zero-velocity holds stamped with observation 0 when no action is
    # due; they move nothing, so they are not out of order, and they do not reset the budget.
    f, arm = fresh()
    assert arm.tick(f, command((0.05, 0, 0), t=1.0, obs=0.9), 1.0).status.limits == ()
    hold = arm.tick(f, command((0.0, 0, 0), t=1.2, obs=0.0), 1.2)
    assert hold.status.limits == () and not hold.status.acted(Limit.OUT_OF_ORDER)
    np.testing.assert_allclose(hold.executed.linear, 0.0)
    moving_old = arm.tick(f, command((0.05, 0, 0), t=1.4, obs=0.0), 1.4)
    assert moving_old.status.limits == (Limit.OUT_OF_ORDER,)


def test_none_holds_at_once_and_a_repeated_command_times_out():
    f, arm = fresh(SafetyConfig(command_timeout_ticks=2, max_command_age=1.0))
    c = command((0.1, 0, 0), t=0.0)
    moved = [arm.tick(f, c, t).target_joints is not None for t in (0.0, 0.2, 0.4)]
    assert moved == [True, True, True]  # the command plus two repeats
    res = arm.tick(f, c, 0.6)
    assert res.status.limits == (Limit.COMMAND_TIMEOUT,) and "no fresh command for 3 ticks" in res.status.message
    res = arm.tick(f, None, 0.8)
    assert res.status.limits == () and res.status.holding  # nothing due: a quiet hold


def test_stale_or_bad_arm_state_holds():
    f, arm = fresh()
    st = arm.state(0.0)
    res = f.step(command((0.1, 0, 0), t=1.0), st, 1.0)
    assert res.status.limits == (Limit.STALE_STATE,) and "1.000 s old" in res.status.message
    bad = type(st)(st.joints * np.nan, st.ee_pose, 1.0, 1.2)
    assert f.step(command((0.1, 0, 0), t=1.2), bad, 1.2).status.limits == (Limit.NON_FINITE,)
    with pytest.raises(InvalidInputError, match="non-finite"):
        f.reanchor(bad)


def test_speed_limits_scale_and_say_what_was_asked():
    f, arm = fresh(SafetyConfig(max_linear_accel=100.0, max_angular_accel=100.0))
    p0 = arm.state(0.0).ee_pose.copy()
    res = arm.tick(f, command((0.0, 0.0, 1.0), (0.0, 0.0, 5.0), t=0.0), 0.0)
    assert set(res.status.limits) == {Limit.LINEAR_SPEED, Limit.ANGULAR_SPEED}
    assert "requested 1 m/s" in res.status.detail(Limit.LINEAR_SPEED)
    assert "requested 5 rad/s" in res.status.detail(Limit.ANGULAR_SPEED)
    assert np.linalg.norm(pos(res) - p0[:3, 3]) == pytest.approx(0.05, abs=1e-12)
    assert rotation_angle(res.target_pose[:3, :3] @ p0[:3, :3].T) == pytest.approx(0.25, abs=1e-9)


def test_acceleration_limits_speeding_up_and_turning_but_not_braking():
    f, arm = fresh()  # 1.0 m/s^2 -> 0.2 m/s per 0.2 s tick
    res = arm.tick(f, command((0.25, 0, 0), t=0.0), 0.0)
    assert res.status.limits == (Limit.LINEAR_ACCEL,)
    np.testing.assert_allclose(res.executed.linear, [0.2, 0, 0], atol=1e-12)
    res = arm.tick(f, command((0.25, 0, 0), t=0.2), 0.2)
    assert res.status.limits == ()
    res = arm.tick(f, command((0.05, 0, 0), t=0.4), 0.4)  # braking: free
    assert res.status.limits == ()
    np.testing.assert_allclose(res.executed.linear, [0.05, 0, 0], atol=1e-12)
    res = arm.tick(f, command((-0.25, 0, 0), t=0.6), 0.6)  # reversal: brake to 0, then 0.2 the other way
    assert res.status.limits == (Limit.LINEAR_ACCEL,)
    np.testing.assert_allclose(res.executed.linear, [-0.2, 0, 0], atol=1e-12)


def test_open_loop_budget_bounds_motion_on_one_observation_and_restarts_on_a_new_one():
    f, arm = fresh(SafetyConfig(open_loop_translation=0.06, max_linear_accel=10.0))
    moved = []
    for k in range(4):
        res = arm.tick(f, command((0.0, 0.0, -0.2), t=0.2 * k, obs=0.0), 0.2 * k)
        moved.append(res.executed.linear[2] * DT)
    np.testing.assert_allclose(moved, [-0.04, -0.02, 0.0, 0.0], atol=1e-12)
    assert res.status.limits == (Limit.OPEN_LOOP_BUDGET,)
    assert "waiting for a newer camera observation" in res.status.message
    assert res.status.open_loop_translation == pytest.approx(0.06)
    res = arm.tick(f, command((0.0, 0.0, -0.2), t=0.8, obs=0.8), 0.8)
    assert res.status.limits == () and res.executed.linear[2] == pytest.approx(-0.2)


def test_workspace_box_clips_and_floor_names_itself():
    f, arm = fresh(state=(0.44, 0.0, 0.15, 0, 0, 0))
    res = arm.tick(f, command((0.1, 0, 0), t=0.0), 0.0)
    assert res.status.limits == (Limit.WORKSPACE,) and "above the workspace bound 0.4500" in res.status.message
    assert pos(res)[0] == pytest.approx(0.45)
    f, arm = fresh(state=(0.3, 0.0, 0.03, 0, 0, 0))
    res = arm.tick(f, command((0.0, 0.0, -0.2), t=0.0), 0.0)
    assert res.status.limits == (Limit.FLOOR,) and "below the floor 0.0200" in res.status.message
    assert pos(res)[2] == pytest.approx(0.02)


def test_orientation_bounds_stop_the_rotation_at_the_bound():
    f, arm = fresh(SafetyConfig(orientation_upper=(0.1, 1.2, 2.6), max_angular_accel=100.0), state=(0.3, 0, 0.15, 0.05, 0, 0))
    res = arm.tick(f, command(w=(1.0, 0, 0), t=0.0), 0.0)
    assert res.status.limits == (Limit.ORIENTATION,)
    from nora_ros.actions import pose_to_bridge_state

    roll = pose_to_bridge_state(res.target_pose)[3]
    assert 0.099 < roll <= 0.1 + 1e-9


def test_a_joint_at_its_limit_holds_and_names_the_joint_limit():
    """Pitching further down needs the wrist angle past its limit minus the margin: both the
    joint limit and the IK failure are reported, with the joint, and the target stays."""
    q = np.array([0.0, 0.3, 0.3, 0.0, MODEL.upper[4] - 0.06, 0.0])
    f, arm = SafetyFilter(None, MODEL), TrackingArm(q)
    res = arm.tick(f, command(w=(0.0, 0.3, 0.0), t=0.0), 0.0)
    assert res.status.limits == (Limit.JOINT_LIMIT, Limit.IK_FAILURE) and res.target_joints is None
    assert "wrist_angle needs" in res.status.detail(Limit.JOINT_LIMIT)
    np.testing.assert_allclose(res.target_pose, MODEL.fk(q), atol=1e-12)
    back = arm.tick(f, command(w=(0.0, -0.3, 0.0), t=0.2), 0.2)  # away from the limit: moves
    assert back.status.limits == () and back.target_joints[4] < q[4]


def test_unreachable_target_is_not_advanced():
    f, arm = fresh(SafetyConfig(workspace_upper=(0.9, 0.25, 0.3)), state=(0.44, 0.0, 0.15, 0, 0, 0))
    held = None
    for k in range(12):
        res = arm.tick(f, command((0.25, 0, 0), t=0.2 * k, obs=0.2 * k), 0.2 * k)
        if res.status.acted(Limit.IK_FAILURE):
            held = res
            break
    assert held is not None, "the arm should run out of reach"
    assert held.target_joints is None
    np.testing.assert_allclose(held.target_pose, MODEL.fk(arm.joints), atol=1e-9)  # target stayed where the arm is
    assert "out of reach" in held.status.detail(Limit.IK_FAILURE)


def test_estop_latches_until_reset_and_reset_reanchors_needing_a_new_observation():
    f, arm = fresh()
    arm.tick(f, command((0.1, 0, 0), t=0.0, obs=0.0), 0.0)
    f.estop("operator pressed the button")
    for k in range(1, 4):
        res = arm.tick(f, command((0.1, 0, 0), t=0.2 * k, obs=0.2 * k), 0.2 * k)
        assert res.target_joints is None and res.status.estopped
        assert res.status.limits == (Limit.ESTOP,) and "operator pressed the button" in res.status.message
    q_stop = arm.joints.copy()
    arm.move_to(arm.joints + 0.01)  # someone moved the arm while stopped
    f.reset_estop()
    res = arm.tick(f, command((0.1, 0, 0), t=0.8, obs=0.0), 0.8)  # same observation as before: budget exhausted
    assert res.status.limits == (Limit.OPEN_LOOP_BUDGET,) and res.target_joints is None
    np.testing.assert_allclose(res.target_pose, MODEL.fk(q_stop + 0.01), atol=1e-12)  # re-anchored at the measured pose
    res = arm.tick(f, command((0.1, 0, 0), t=1.0, obs=1.0), 1.0)
    assert res.status.limits == () and res.target_joints is not None


def test_disabled_is_a_dry_run():
    f, arm = fresh()
    f.set_enabled(False)
    q0 = arm.joints.copy()
    for k in range(3):
        res = arm.tick(f, command((0.1, 0, 0), t=0.2 * k, g=0.0), 0.2 * k)
        assert res.target_joints is None and res.gripper is None
        assert res.status.limits == (Limit.DISABLED,) and not res.status.enabled
    assert pos(res)[0] == pytest.approx(MODEL.fk(q0)[0, 3] + 0.06)  # computed as if it moved
    np.testing.assert_array_equal(arm.joints, q0)  # nothing moved
    f.set_enabled(True)
    res = arm.tick(f, command((0.1, 0, 0), t=0.8, obs=0.8), 0.8)
    assert res.target_joints is not None
    assert pos(res)[0] == pytest.approx(MODEL.fk(q0)[0, 3] + 0.02)  # re-anchored where the arm really is


def test_gripper_hysteresis_and_dwell():
    f, arm = fresh()
    out = []
    for k, g in enumerate([1.0, 0.55, 0.45, 0.3, 0.9, 0.9, 0.2, 0.2]):
        res = arm.tick(f, command(t=0.2 * k, g=g), 0.2 * k)
        out.append((res.gripper, res.status.acted(Limit.GRIPPER_DWELL)))
    assert out == [
        (None, False),  # already open
        (None, False),  # 0.55: inside the hysteresis band
        (None, False),  # 0.45: inside the band
        (0.0, False),  # 0.3: close
        (None, True),  # 0.9 only 0.2 s later: dwell keeps it closed
        (1.0, False),  # 0.4 s after the change: open
        (None, True),  # close 0.2 s later: kept open
        (0.0, False),  # 0.4 s later: closes
    ]


def test_wx250_reports_the_orientation_it_cannot_reach_and_keeps_rotation_limits():
    from nora_ros.actions import bridge_state_to_pose
    from nora_ros.robot.kinematics import WidowXModel

    wx250 = WidowXModel.from_name("wx250")
    q = wx250.ik(bridge_state_to_pose(np.array([0.3, 0.05, 0.15, 0.0, 0.0, 0.0])), wx250.sleep_joints).joints
    f = SafetyFilter(SafetyConfig(), wx250)
    from nora_ros.robot.arm import ArmState

    prev = wx250.fk(q)
    for k in range(4):
        st = ArmState(q, wx250.fk(q), 1.0, 0.2 * k)
        res = f.step(command((0.0, 0.05, 0.0), (0.8, 0.0, 0.0), t=0.2 * k), st, 0.2 * k)  # roll: out of a 5-DOF arm's reach
        assert res.status.acted(Limit.ORIENTATION) and "cannot reach the commanded orientation" in res.status.message
        assert res.target_joints is not None
        q = res.target_joints
        np.testing.assert_allclose(wx250.fk(q), res.target_pose, atol=1e-6)
        assert np.linalg.norm(res.target_pose[:3, 3] - prev[:3, 3]) <= 0.05 + 1e-9
        assert rotation_angle(res.target_pose[:3, :3] @ prev[:3, :3].T) <= 0.25 + 1e-9
        prev = res.target_pose
