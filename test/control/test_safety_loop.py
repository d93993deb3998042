"""The safety node's loop without ROS (nora_ros.control.safety_loop), on the real SafetyFilter, our
kinematics and the kinematic SimArm stepped in its own time: start-pose moves, commands passed
through the filter, dry run, e-stop, faults and live limit changes."""

from __future__ import annotations

import numpy as np
import pytest

from nora_ros.actions import EndEffectorCommand, pose_to_bridge_state
from nora_ros.control.safety_loop import Phase, SafetyLoop
from nora_ros.errors import ConfigurationError
from nora_ros.robot.kinematics import WidowXModel
from nora_ros.robot.sim_arm import SimArm
from nora_ros.safety import SafeArm, SafetyConfig, SafetyFilter

START = (0.25, 0.0, 0.15, 0.0, 0.0, 0.0)
TICK = 0.1


@pytest.fixture
def rig():
    model = WidowXModel.from_name("wx250s")
    arm = SimArm(model)
    safety = SafetyFilter(SafetyConfig(tick_period=TICK), model)
    return arm, SafetyLoop(SafeArm(safety, arm), start_duration=1.0)


def _step(arm, loop, n, cmd_fn=None):
    out = []
    for _ in range(n):
        arm.advance(TICK)
        if cmd_fn is not None:
            loop.on_command(cmd_fn(arm.time))
        out.append(loop.tick(arm.time))
    return out


def _go_to_start(arm, loop, trial_id=1):
    loop.on_trial(trial_id, "RESETTING", START, arm.time)
    for tick in _step(arm, loop, 80):
        if tick.at_start:
            return tick
    raise AssertionError(f"never reached the start pose (phase {loop.phase})")


def _down(speed):
    return lambda t: EndEffectorCommand(np.array([0.0, 0.0, -speed]), np.zeros(3), 1.0, stamp=t, observation_stamp=t)


def test_resetting_moves_the_arm_to_the_start_pose_and_reports_it(rig):
    arm, loop = rig
    sleep = arm.state().joints.copy()
    assert loop.tick(arm.time).at_start is False
    tick = _go_to_start(arm, loop, trial_id=7)
    assert tick.start_trial_id == 7 and loop.phase is Phase.AT_START
    state = pose_to_bridge_state(arm.state().ee_pose)
    np.testing.assert_allclose(state[:3], START[:3], atol=2e-3)
    np.testing.assert_allclose(state[3:6], START[3:6], atol=2e-2)
    assert not np.allclose(arm.state().joints, sleep) and arm.state().gripper > 0.5


def test_running_passes_commands_through_the_filter_to_the_arm(rig):
    arm, loop = rig
    _go_to_start(arm, loop)
    loop.on_trial(1, "RUNNING", START, arm.time)
    z0 = arm.state().ee_pose[2, 3]
    ticks = _step(arm, loop, 10, _down(0.05))
    assert all(t.result is not None and not t.holding for t in ticks[1:])
    arm.advance(0.5)
    # 10 ticks at 5 cm/s: 5 cm down, less what the acceleration limit takes at the start.
    assert 0.03 < z0 - arm.state().ee_pose[2, 3] < 0.051
    executed = ticks[-1].result.executed
    assert executed.linear[2] == pytest.approx(-0.05)


def test_the_filter_limits_what_reaches_the_arm(rig):
    arm, loop = rig
    _go_to_start(arm, loop)
    loop.on_trial(1, "RUNNING", START, arm.time)
    ticks = _step(arm, loop, 30, _down(2.0))  # 40x the speed limit, towards the table
    limits = {lim.value for t in ticks for lim in t.result.status.limits}
    assert "linear_speed" in limits
    arm.advance(1.0)
    floor = loop.filter.config.floor_z
    assert arm.state().ee_pose[2, 3] >= floor - 2e-3


def test_dry_run_reports_but_never_moves(rig):
    arm, _ = rig
    model = arm.kinematics
    loop = SafetyLoop(SafeArm(SafetyFilter(SafetyConfig(tick_period=TICK), model), arm), dry_run=True)
    before = arm.state().joints.copy()
    loop.on_trial(1, "RESETTING", START, arm.time)
    tick = loop.tick(arm.time)
    assert tick.at_start and tick.start_trial_id == 1  # nothing to wait for: nothing moves
    loop.on_trial(1, "RUNNING", START, arm.time)
    ticks = _step(arm, loop, 5, _down(0.05))
    assert all(t.holding and "disabled" in {lim.value for lim in t.result.status.limits} for t in ticks)
    np.testing.assert_array_equal(arm.state().joints, before)
    with pytest.raises(ConfigurationError, match="dry_run"):
        loop.set_enabled(True)


def test_estop_stops_the_arm_and_blocks_the_next_trial_until_reset(rig):
    arm, loop = rig
    _go_to_start(arm, loop)
    loop.on_trial(1, "RUNNING", START, arm.time)
    _step(arm, loop, 3, _down(0.05))
    loop.estop("operator pressed e-stop")
    arm.advance(0.5)
    held = arm.state().joints.copy()
    ticks = _step(arm, loop, 5, _down(0.05))
    assert all(t.holding and t.result.status.estopped for t in ticks)
    np.testing.assert_allclose(arm.state().joints, held, atol=1e-9)
    loop.on_trial(1, "ABORTED", START, arm.time)
    loop.on_trial(2, "RESETTING", START, arm.time)
    fault = loop.tick(arm.time).fault
    assert "e-stop is latched" in fault and "operator pressed e-stop" in fault
    loop.reset_estop()
    loop.on_trial(3, "RESETTING", START, arm.time)
    assert loop.phase is Phase.STARTING


def test_unreachable_start_pose_is_a_fault_and_nothing_moves(rig):
    arm, loop = rig
    before = arm.state().joints.copy()
    loop.on_trial(1, "RESETTING", (0.25, 0.0, -0.05, 0.0, 0.0, 0.0), arm.time)
    fault = loop.tick(arm.time).fault
    assert "start pose of trial 1" in fault and "outside the safety workspace" in fault
    assert loop.phase is Phase.IDLE
    arm.advance(1.0)
    np.testing.assert_array_equal(arm.state().joints, before)
    assert loop.tick(arm.time).fault == ""  # reported once


def test_limits_may_only_tighten_while_a_trial_runs(rig):
    arm, loop = rig
    loop.update_limits({"max_linear_speed": 0.5})  # idle: anything valid
    _go_to_start(arm, loop)
    loop.on_trial(1, "RUNNING", START, arm.time)
    with pytest.raises(ConfigurationError, match="max_linear_speed"):
        loop.update_limits({"max_linear_speed": 0.6})
    assert loop.update_limits({"max_linear_speed": 0.1}).max_linear_speed == 0.1
    assert loop.filter.config.max_linear_speed == 0.1
    with pytest.raises(ConfigurationError, match="tick_period"):
        loop.update_limits({"tick_period": 0.2})


def test_end_of_trial_holds_and_stops_commanding(rig):
    arm, loop = rig
    _go_to_start(arm, loop)
    loop.on_trial(1, "RUNNING", START, arm.time)
    _step(arm, loop, 5, _down(0.05))
    loop.on_trial(1, "AWAITING_SCORE", START, arm.time)
    arm.advance(0.3)
    held = arm.state().joints.copy()
    ticks = _step(arm, loop, 5, _down(0.05))
    assert all(t.result is None and t.holding for t in ticks)
    np.testing.assert_allclose(arm.state().joints, held, atol=1e-9)


class NoStateYet(SimArm):
    """A SimArm whose driver has not published a measurement while ``silent``."""

    silent = True

    def state(self):
        if self.silent:
            from nora_ros.errors import ArmError

            raise ArmError("no joint states received on joint_states yet")
        return super().state()


def test_resetting_before_the_first_arm_measurement_waits_for_it():
    model = WidowXModel.from_name("wx250s")
    arm = NoStateYet(model)
    loop = SafetyLoop(SafeArm(SafetyFilter(SafetyConfig(tick_period=TICK), model), arm), start_duration=1.0)
    loop.on_trial(1, "RESETTING", START, arm.time)
    assert loop.phase is Phase.WAITING_FOR_ARM and "no joint states" in loop.waiting_reason
    for _ in range(3):
        tick = loop.tick(arm.time)
        assert tick.fault == "" and not tick.at_start and loop.phase is Phase.WAITING_FOR_ARM
    arm.silent = False  # the first joint states arrive
    ticks = _step(arm, loop, 80)
    assert all(t.fault == "" for t in ticks)
    assert any(t.at_start for t in ticks) and loop.phase is Phase.AT_START


def test_running_before_a_fresh_measurement_waits_briefly_then_faults():
    model = WidowXModel.from_name("wx250s")
    arm = NoStateYet(model)
    loop = SafetyLoop(SafeArm(SafetyFilter(SafetyConfig(tick_period=TICK), model), arm), dry_run=True)
    loop.on_trial(1, "RUNNING", START, 10.0)
    assert loop.phase is Phase.WAITING_TO_RUN
    assert loop.tick(10.5).fault == "" and loop.phase is Phase.WAITING_TO_RUN
    arm.silent = False  # a joint state arrives in time: the trial runs
    loop.tick(10.6)
    assert loop.phase is Phase.RUNNING
    arm.silent = True
    loop.on_trial(2, "RUNNING", START, 20.0)
    loop.tick(20.5)
    tick = loop.tick(21.2)  # still nothing after ARM_WAIT: the trial ends as a fault
    assert "cannot start trial 2" in tick.fault and loop.phase is Phase.IDLE
