"""Property tests: whatever chunks a policy sends, in every execution mode, the safety filter's
guarantees hold on the commands the scheduler makes of them.

Chunk streams mix Bridge-sized actions with ones 25 times too large, sign flips between
chunks, a policy stuck on one huge action, and arrivals late by up to 0.5 s; they are run at
10, 25 and 50 Hz through the real ActionScheduler and SafetyFilter on an arm that tracks
perfectly. Checked every tick: the target stays in the workspace box above the floor, moves at
most the speed limit per tick, keeps the joints within limits minus the margin, and the motion
on one camera observation stays within the open-loop budget.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from safety_helpers import MODEL, TrackingArm, joints_at

from nora_ros.actions import ActionChunk
from nora_ros.control.scheduler import ActionScheduler, SchedulerConfig
from nora_ros.safety import SafetyConfig, SafetyFilter

MODES = ["hold", "interpolate", "ensemble", "blend"]
RATES = [10.0, 25.0, 50.0]
STARTS = [(0.30, 0.00, 0.15, 0.0, 0.0, 0.0), (0.30, 0.00, 0.05, 0.0, 0.0, 0.0), (0.40, -0.18, 0.10, 0.0, 0.0, -0.5)]
START_JOINTS = [joints_at(s) for s in STARTS]
TOL = 1e-7

chunk_events = st.lists(
    st.tuples(
        st.sampled_from(["bridge", "x25", "flip", "stuck_huge", "down"]),
        st.integers(0, 2**31 - 1),  # rng seed of the chunk's actions
        st.sampled_from([0.0, 0.05, 0.15, 0.4, 0.5]),  # inference latency (s)
        st.integers(1, 5),  # execute_steps (the first event's is the run's)
    ),
    min_size=4, max_size=12)


def _actions(kind: str, seed: int, previous: np.ndarray | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.zeros((5, 7))
    a[:, :3] = rng.uniform(-0.03, 0.03, (5, 3))
    a[:, 3:6] = rng.uniform(-0.15, 0.15, (5, 3))
    a[:, 6] = rng.integers(0, 2, 5)
    if kind == "x25":
        a[:, :6] *= 25.0
    elif kind == "flip" and previous is not None:
        a[:, :6] = -previous[:, :6] * 3.0
    elif kind == "stuck_huge":
        a[:, :6] = np.array([0.8, -0.8, -1.2, 2.0, -2.0, 3.0])
    elif kind == "down":
        a[:, :3] = [0.0, 0.0, -0.05]
        a[:, 3:6] = 0.0
    return a


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rate", RATES)
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, len(STARTS) - 1), events=chunk_events)
def test_filter_guarantees_hold_in_every_mode(mode, rate, start, events):
    dt = 1.0 / rate
    cfg = SafetyConfig().replace(tick_period=dt)
    f = SafetyFilter(cfg, MODEL)
    arm = TrackingArm(START_JOINTS[start])
    lo = np.array([cfg.workspace_lower[0], cfg.workspace_lower[1], cfg.floor_z])
    hi = np.array(cfg.workspace_upper)
    max_step = cfg.max_linear_speed * dt
    budget: dict[float, float] = {}
    prev = arm.pose[:3, 3].copy()
    previous = None
    t = 0.0
    scheduler = ActionScheduler(SchedulerConfig(mode=mode, execute_steps=events[0][3], tick_period=dt,
                                                max_chunk_age=2.0))
    for n, (kind, seed, latency, _) in enumerate(events):
        actions = _actions(kind, seed, previous)
        previous = actions
        stamp = t
        ready = t + latency
        chunk = ActionChunk(actions, stamp=stamp, chunk_id=n + 1)
        offered = False
        steps = round(0.4 / dt)  # the next chunk's frame is taken 0.4 s later
        for _ in range(steps):
            if not offered and t >= ready - 1e-9:
                scheduler.offer(chunk)
                offered = True
            cmd = scheduler.command_at(t).command
            res = arm.tick(f, cmd, t)
            pose = res.target_pose
            p = pose[:3, 3]
            assert np.all(p >= lo - TOL) and np.all(p <= hi + TOL), (mode, rate, p)
            moved = float(np.linalg.norm(p - prev))
            assert moved <= max_step + TOL, (mode, rate, moved, max_step)
            if res.target_joints is not None:
                assert MODEL.within_limits(res.target_joints, cfg.joint_margin - 1e-9)
                obs = float(res.executed.observation_stamp)
                budget[obs] = budget.get(obs, 0.0) + moved
                assert budget[obs] <= cfg.open_loop_translation + TOL, (mode, rate, budget[obs])
            prev = p.copy()
            t = round(t + dt, 9)
