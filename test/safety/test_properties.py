"""Property tests: for ANY command sequence the filter's guarantees hold.

Sequences mix plausible commands (fast, slow, beyond the limits) with NaN, huge,
sign-flipping, stale, future, out-of-order and repeated ones, gaps, e-stops and resets, dry
runs, from six start poses (one 5 cm above the table, others near the box's corners). The arm tracks perfectly
(:class:`TrackingArm`), so what is checked is the filter itself. Over the run at least
100,000 ticks are generated (``test_enough_ticks_were_checked`` asserts it).

Guarantees, every tick:
- the target stays in the workspace box above the floor, and inside the orientation bounds;
- the target moves at most max speed x tick in translation and in rotation;
- its velocity changes within the acceleration limits, except where a hard limit (workspace,
  floor, orientation) cut the motion; braking is free;
- commanded joints are within the limits minus the margin and reach the target (exactly; within
  the IK's tolerance of 0.1 mm / 1 mrad at the wrist singularity, where a roll joint keeps its seed);
- the motion on one camera observation stays within the open-loop budget;
- after an e-stop nothing moves until reset.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from safety_helpers import MODEL, TrackingArm, command, joints_at

from nora_ros.actions import EndEffectorCommand
from nora_ros.robot.kinematics import pose_error, rotation_log
from nora_ros.safety import HARD_LIMITS, SafetyConfig, SafetyFilter
from nora_ros.safety.geometry import bridge_euler

CFG = SafetyConfig()
DT = CFG.tick_period
TOL = 1e-9
TICKS = {"n": 0}
LO = (CFG.workspace_lower[0], CFG.workspace_lower[1], CFG.floor_z)
HI = CFG.workspace_upper
OLO, OHI = CFG.orientation_lower, CFG.orientation_upper
ZERO = np.zeros(3)
EXAMPLES = 520
MIN_EVENTS, MAX_EVENTS = 180, 260

START_STATES = [
    (0.30, 0.00, 0.15, 0.0, 0.0, 0.0),
    (0.30, 0.00, 0.05, 0.0, 0.0, 0.0),  # 5 cm above the table
    (0.25, 0.10, 0.03, 0.2, -0.2, 0.5),
    (0.40, -0.18, 0.10, 0.0, 0.0, -0.5),
    (0.15, 0.20, 0.25, -0.3, 0.0, 1.0),
    (0.35, -0.05, 0.25, 0.5, -0.2, 0.0),
]
START_JOINTS = [joints_at(s) for s in START_STATES]

# One 16-bit integer per tick, all drawn as one byte string, keeps generation cheap (a
# hypothesis draw per value would cost more than the filter):
# the low 5 bits pick the kind of event, the rest its parameters; small values shrink to
# plain commands.
_rng = np.random.default_rng(12345)
PALETTE = [
    (tuple(_rng.uniform(-0.6, 0.6, 3) * _rng.choice([0.05, 0.3, 1.0])), tuple(_rng.uniform(-3.0, 3.0, 3) * _rng.choice([0.05, 0.3, 1.0])),
     float(_rng.choice([0.0, 0.3, 0.45, 0.55, 0.7, 1.0])), bool(_rng.random() < 0.3))
    for _ in range(2048)
]
PALETTE[0] = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 1.0, False)
HUGE = (1e3, -1e6, 1e300, -1e308)
events = st.binary(min_size=2 * MIN_EVENTS, max_size=2 * MAX_EVENTS).map(
    lambda b: np.frombuffer(b[: len(b) // 2 * 2], dtype="<u2").tolist()
)


def _dist_to_segment(v: np.ndarray, end: np.ndarray) -> float:
    pp = float(end @ end)
    s = 0.0 if pp == 0.0 else min(1.0, max(0.0, float(v @ end) / pp))
    return float(np.linalg.norm(v - s * end))


# No shrinking: 200-tick sequences shrink for minutes; a failure prints its sequence and seed.
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(start=st.integers(0, len(START_STATES) - 1), seq=events)
def test_guarantees_hold_for_any_command_sequence(start, seq):
    f = SafetyFilter(CFG, MODEL)
    arm = TrackingArm(START_JOINTS[start])
    prev_pose = MODEL.fk(arm.joints)
    v_prev = w_prev = ZERO
    budget: dict[float, list[float]] = {}
    last: EndEffectorCommand | None = None
    obs = 0.0
    estopped = False
    for k, ev in enumerate(seq):
        now = 0.2 * k
        code, arg = ev & 31, ev >> 5
        cmd = None
        if code <= 21:
            v, w, g, new_obs = PALETTE[arg]
            obs = now if new_obs else obs
            cmd = command(v, w, t=now, obs=obs, g=g)
        elif code == 22:  # NaN in any field
            vals = [0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, now]
            vals[arg % 8] = math.nan
            cmd = command(vals[:3], vals[3:6], t=vals[7], obs=min(obs, now), g=vals[6])
        elif code == 23:  # huge
            vals = [0.0] * 6
            vals[(arg >> 2) % 6] = HUGE[arg % 4]
            cmd = command(vals[:3], vals[3:], t=now, obs=obs)
        elif code == 24 and last is not None:  # sign flip
            cmd = command(-last.linear, -last.angular, t=now, obs=obs, g=last.gripper)
        elif code == 25 and last is not None:  # the same command again
            cmd = last
        elif code == 27:  # stale or from the future
            age = 0.51 + (arg >> 1) / 20.0
            t = now - age if arg % 2 else now + age
            cmd = command((0.0, 0.0, -0.3), t=t, obs=min(obs, t))
        elif code == 28 and last is not None:  # out of order: command or observation stamp
            if arg % 2:
                cmd = command((0.0, 0.0, -0.3), t=last.stamp - 0.05, obs=min(obs, last.stamp - 0.05))
            else:
                cmd = command((0.0, 0.0, -0.3), t=now, obs=obs - 0.3)
        elif code == 29:
            if arg % 4 == 0:  # e-stops rarer than resets: most of the run is live
                f.estop("property test")
                estopped = True
            else:
                f.reset_estop()
                estopped = False
                prev_pose = arm.pose  # the filter re-anchors at the measured pose
                v_prev = w_prev = ZERO
        elif code == 30:
            if arg % 4 == 0:
                f.set_enabled(False)
            else:
                if not f.enabled:
                    prev_pose = arm.pose  # re-anchors at the measured pose
                    v_prev = w_prev = ZERO
                f.set_enabled(True)
        elif code == 31:
            cmd = command((0.1, 0.0, 0.0), t=now, obs=obs, g=(-0.1, 1.5, 7.0)[arg % 3])
        # code 26 (and flips/repeats with nothing before): no command this tick
        if cmd is not None:
            last = cmd
        joints_before = arm.joints.copy()
        res = arm.tick(f, cmd, now)
        TICKS["n"] += 1
        pose = res.target_pose
        status = res.status

        if estopped:
            assert res.target_joints is None and res.gripper is None, "motion sent after an e-stop"
            assert (arm.joints == joints_before).all() and (pose == prev_pose).all(), "moved after an e-stop"
            v_prev = w_prev = ZERO
            continue
        if res.target_joints is not None:
            assert MODEL.within_limits(res.target_joints, CFG.joint_margin - TOL)
            if abs(res.target_joints[4]) > 0.05:
                assert float(np.max(np.abs(arm.pose - pose))) < 1e-7, "commanded joints do not reach the target"
            else:  # wrist singularity: a roll joint kept at its seed, the pose within the IK's tolerance
                perr, rerr = pose_error(arm.pose, pose)
                assert perr <= MODEL.position_tolerance and rerr <= MODEL.rotation_tolerance, (perr, rerr)
            step = float(np.max(np.abs(res.target_joints - joints_before)))
            assert step <= MODEL.max_joint_step(DT) + TOL, f"joint step {step}"
        if (pose == prev_pose).all():
            v_prev = w_prev = ZERO  # held: nothing moved, every bound still holds
            continue
        t = pose.tolist()
        p = (t[0][3], t[1][3], t[2][3])
        for i in range(3):
            assert LO[i] - TOL <= p[i] <= HI[i] + TOL, f"target {p} left the workspace: {status.message}"
        rpy = bridge_euler(t)  # == pose_to_bridge_state (test_safety_geometry)
        for i in range(3):
            assert OLO[i] - TOL <= rpy[i] <= OHI[i] + TOL, f"orientation {rpy} out of bounds: {status.message}"
        d = pose[:3, 3] - prev_pose[:3, 3]
        rot = rotation_log(pose[:3, :3] @ prev_pose[:3, :3].T)
        dn, rn = math.hypot(*d), math.hypot(*rot)
        assert dn <= CFG.max_step_translation + TOL, f"step {dn}: {status.message}"
        assert rn <= CFG.max_step_rotation + TOL, f"rotation {rn}: {status.message}"
        v, w = d / DT, rot / DT
        if not HARD_LIMITS.intersection(status.limits):
            assert _dist_to_segment(v, v_prev) <= CFG.max_linear_accel * DT + 1e-7, status.message
            assert _dist_to_segment(w, w_prev) <= CFG.max_angular_accel * DT + 1e-7, status.message
        used = budget.setdefault(float(res.executed.observation_stamp), [0.0, 0.0])
        used[0] += dn
        used[1] += rn
        assert used[0] <= CFG.open_loop_translation + 1e-7, f"open-loop translation {used[0]}"
        assert used[1] <= CFG.open_loop_rotation + 1e-7, f"open-loop rotation {used[1]}"
        prev_pose = pose
        v_prev, w_prev = v, w


def test_enough_ticks_were_checked():
    """The property run above generated the >= 100,000 ticks the issue asks for."""
    if TICKS["n"] == 0:
        import pytest

        pytest.skip("the property test did not run in this session (deselected)")
    assert TICKS["n"] >= 100_000, TICKS["n"]
