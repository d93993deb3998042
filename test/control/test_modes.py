"""Execution modes: each mode's arithmetic on chunks of known waypoints, checked by hand.

Ticks are driven through the real ActionScheduler (motion clock, hand-off, counters); numbers
in the assertions are worked out in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nora_ros.actions import ActionChunk
from nora_ros.control.scheduler import ActionScheduler, SchedulerConfig
from nora_ros.errors import ConfigurationError


def chunk(values, stamp=0.0, chunk_id=1, gripper=1.0):
    """A chunk whose action k moves dx = values[k] in 0.2 s."""
    actions = np.zeros((len(values), 7))
    actions[:, 0] = values
    actions[:, 6] = gripper
    return ActionChunk(actions, step_period=0.2, stamp=stamp, chunk_id=chunk_id)


def run(s: ActionScheduler, t0: float, n: int, dt: float, arrivals=()):
    """Tick ``n`` times from ``t0``; ``arrivals`` is [(time, chunk)] offered before that tick."""
    out = []
    pending = sorted(arrivals, key=lambda a: a[0])
    for k in range(n):
        t = round(t0 + k * dt, 9)
        while pending and pending[0][0] <= t + 1e-9:
            s.offer(pending.pop(0)[1])
        out.append(s.command_at(t))
    return out


def vx(outs):
    return [None if o.command is None else round(float(o.command.linear[0]), 9) for o in outs]


# --------------------------------------------------------------------------- hand-off


def test_a_late_chunk_starts_at_the_action_due_and_counts_the_skipped():
    """hold, 10 Hz, execute_steps 5: A (frame 0.0) runs 0.0-1.0. B's frame is taken at 0.4, two
    steps into A, and B is ready at 0.7; it starts when A is used up at 1.0, when the arm has moved
    0.6 s since B's frame: B's actions 0-2 are past (skipped: 3), actions 3 and 4 run."""
    s = ActionScheduler(SchedulerConfig(execute_steps=5, tick_period=0.1))
    a = chunk([0.01] * 5, stamp=0.0, chunk_id=1)
    b = chunk([0.02, 0.03, 0.04, 0.05, 0.06], stamp=0.4, chunk_id=2)
    outs = run(s, 0.0, 16, 0.1, [(0.0, a), (0.7, b)])
    assert [o.command.chunk_id for o in outs[:10]] == [1] * 10
    assert [(o.command.chunk_id, o.command.index) for o in outs[10:14]] == [(2, 3), (2, 3), (2, 4), (2, 4)]
    assert vx(outs[10:14]) == [0.25, 0.25, 0.3, 0.3]
    assert outs[14].command is None and s.skipped == 3 and s.dropped == 0


def test_a_chunk_whose_actions_all_passed_is_dropped_not_replayed():
    """hold, execute_steps 1: B's frame at 0.0 while A runs; A's one action takes the arm to
    0.2; B (one action, ready at 0.2) has nothing left: dropped, its action counted skipped."""
    s = ActionScheduler(SchedulerConfig(execute_steps=1, tick_period=0.1))
    outs = run(s, 0.0, 4, 0.1, [(0.0, chunk([0.01], 0.0, 1)), (0.1, chunk([0.05], 0.0, 2))])
    assert vx(outs) == [0.05, 0.05, None, None]
    assert s.dropped == 1 and s.skipped == 1 and "past all 1" in outs[2].reason


def test_after_a_hold_the_chunk_starts_at_its_first_action():
    """The arm held from 0.0 to 0.4 waiting (a 400 ms synchronous inference): nothing moved since
    the frame, so action 0 is due; skipping by wall time would have dropped two actions."""
    s = ActionScheduler(SchedulerConfig(execute_steps=5, tick_period=0.1))
    outs = run(s, 0.0, 6, 0.1, [(0.4, chunk([0.01, 0.02, 0.03], stamp=0.0))])
    assert vx(outs) == [None] * 4 + [0.05, 0.05]
    assert outs[4].command.index == 0 and s.skipped == 0


def test_rtc_switches_at_once_to_the_due_action():
    """rtc: B (frame 0.2, one step into A) is ready at 0.5: it takes over at once, at its action
    1 (0.3 s of motion since its frame = 1.5 steps), skipping one."""
    s = ActionScheduler(SchedulerConfig(mode="rtc", execute_steps=2, tick_period=0.1))
    a = chunk([0.01] * 5, stamp=0.0, chunk_id=1)
    b = chunk([0.02, 0.03, 0.04, 0.05, 0.06], stamp=0.2, chunk_id=2)
    outs = run(s, 0.0, 8, 0.1, [(0.0, a), (0.5, b)])
    assert [(o.command.chunk_id, o.command.index) for o in outs] == [
        (1, 0), (1, 0), (1, 1), (1, 1), (1, 2), (2, 1), (2, 2), (2, 2)]
    assert s.skipped == 1


# --------------------------------------------------------------------------- when to observe


def test_hold_pipelines_only_when_the_next_chunk_would_still_have_actions():
    s = ActionScheduler(SchedulerConfig(execute_steps=5, tick_period=0.1))
    run(s, 0.0, 5, 0.1, [(0.0, chunk([0.01] * 5))])
    # 5 steps = 1.0 s window; the ticks 0.0-0.4 moved: at 0.5, 0.5 s is left
    assert not s.wants_observation(0.5, expected_latency=0.3)
    run(s, 0.5, 2, 0.1)
    assert s.wants_observation(0.7, expected_latency=0.3)  # 0.3 s left
    one = ActionScheduler(SchedulerConfig(execute_steps=1, tick_period=0.1))
    run(one, 0.0, 1, 0.1, [(0.0, chunk([0.01]))])
    # a one-step window shorter than the latency: overlapping would skip the whole next chunk
    assert not one.wants_observation(0.1, expected_latency=0.3)
    run(one, 0.1, 1, 0.1)
    assert one.wants_observation(0.2, expected_latency=0.3)  # the action is done: observe now


def test_ensemble_observes_every_model_step():
    s = ActionScheduler(SchedulerConfig(mode="ensemble", tick_period=0.1))
    s.submitted(0.0)
    run(s, 0.0, 1, 0.1, [(0.0, chunk([0.01] * 5))])
    assert not s.wants_observation(0.1, 0.05)
    run(s, 0.1, 1, 0.1)
    assert s.wants_observation(0.2, 0.05)  # one step (0.2 s) of motion since the frame


# --------------------------------------------------------------------------- interpolate


def test_interpolate_cubic_by_hand():
    """Two actions dx 0.01 and 0.03 from rest at 10 Hz. Knot velocities: 0 (start), (0.05 +
    0.15)/2 = 0.1 (between), 0.15 (end of chunk). Hermite at u = 0.5 on segment 0 (h = 0.2):
    0.5*0 + 0.125*0.2*0 + 0.5*0.01 - 0.125*0.2*0.1 = 0.0025 -> tick 1: 0.025 m/s, tick 2:
    (0.01 - 0.0025)/0.1 = 0.075 m/s. Segment 1, u = 0.5: 0.5*0.01 + 0.125*0.2*0.1 + 0.5*0.04 -
    0.125*0.2*0.15 = 0.02375 -> 0.1375 and (0.04 - 0.02375)/0.1 = 0.1625 m/s."""
    s = ActionScheduler(SchedulerConfig(mode="interpolate", execute_steps=2, tick_period=0.1))
    outs = run(s, 0.0, 5, 0.1, [(0.0, chunk([0.01, 0.03]))])
    np.testing.assert_allclose(vx(outs[:4]), [0.025, 0.075, 0.1375, 0.1625], atol=1e-12)
    assert outs[4].command is None
    assert [o.command.index for o in outs[:4]] == [0, 0, 1, 1]


@pytest.mark.parametrize("rate", [10.0, 25.0, 50.0, 30.0])
def test_interpolate_reaches_every_waypoint_with_continuous_velocity(rate):
    """Summed over the ticks of each step, the displacement is exactly the action's (the waypoints
    of hold); the largest change of velocity between ticks is well below hold's jumps."""
    dt = 1.0 / rate
    values = [0.01, 0.03, -0.02, 0.04, 0.0]
    steps = round(0.2 / dt)
    hold = run(ActionScheduler(SchedulerConfig(execute_steps=5, tick_period=dt)), 0.0, 5 * steps, dt,
               [(0.0, chunk(values))])
    s = ActionScheduler(SchedulerConfig(mode="interpolate", execute_steps=5, tick_period=dt))
    smooth = run(s, 0.0, 5 * steps, dt, [(0.0, chunk(values))])
    v = np.array(vx(smooth))
    per_step = v.reshape(5, steps).sum(axis=1) * dt
    np.testing.assert_allclose(per_step, values, atol=1e-9)
    jumps_smooth = np.abs(np.diff(v)).max()
    jumps_hold = np.abs(np.diff(np.array(vx(hold)))).max()
    assert jumps_hold == pytest.approx(0.3)  # 0.03 -> -0.02 over 0.2 s
    # hold's jump lands on one tick at any rate; the path's shrinks with the tick
    assert jumps_smooth < (0.5 if rate >= 25 else 1.0) * jumps_hold


def test_interpolate_starts_the_next_chunk_at_the_velocity_it_left_with():
    s = ActionScheduler(SchedulerConfig(mode="interpolate", execute_steps=1, tick_period=0.04))
    a, b = chunk([0.02, 0.02], 0.0, 1), chunk([0.02, 0.02], 0.2, 2)
    outs = run(s, 0.0, 10, 0.04, [(0.0, a), (0.2, b)])
    v = vx(outs)
    # from rest, ending at a's mean knot velocity 0.1 m/s; b leaves at the same 0.1 m/s
    assert v[0] < 0.1 and abs(v[5] - v[4]) < 0.02 and abs(v[9] - 0.1) < 0.01
    assert [o.command.chunk_id for o in outs] == [1] * 5 + [2] * 5


# --------------------------------------------------------------------------- ensemble / blend


def test_ensemble_weights_by_hand():
    """Three chunks from frames at 0.0, 0.2, 0.4 (one step apart, 10 Hz), each predicting dx for
    the step 0.4-0.6: 0.01 (oldest, its action 2), 0.02, 0.03 (newest, its action 0). With
    k = 0.5: weights 1, e^-0.5, e^-1 -> (0.01 + 0.02 e^-0.5 + 0.03 e^-1) / (1 + e^-0.5 + e^-1)."""
    s = ActionScheduler(SchedulerConfig(mode="ensemble", ensemble_decay=0.5, tick_period=0.1))
    c1 = chunk([0.0, 0.0, 0.01, 0.0, 0.0], 0.0, 1)
    c2 = chunk([0.0, 0.02, 0.0, 0.0, 0.0], 0.2, 2)
    c3 = chunk([0.03, 0.0, 0.0, 0.0, 0.0], 0.4, 3)
    outs = run(s, 0.0, 6, 0.1, [(0.0, c1), (0.2, c2), (0.4, c3)])
    w = np.exp(-0.5 * np.arange(3))
    expected = (w @ [0.01, 0.02, 0.03]) / w.sum() / 0.2
    assert outs[4].command.linear[0] == pytest.approx(expected, abs=1e-12)
    assert outs[4].command.chunk_id == 3 and outs[4].command.observation_stamp == 0.4
    # step 0.2-0.4: c1's action 1 (0) and c2's action 0 (0): weights 1, e^-0.5 -> 0
    assert outs[2].command.linear[0] == 0.0
    # new model steps are counted on the motion clock: 0, 2, 4 start steps
    keys = [o.step_key for o in outs]
    assert [keys[i] != keys[i - 1] for i in range(1, 6)] == [False, True, False, True, False]


@pytest.mark.parametrize("aggregate, expected", [
    ("weighted_average", 0.3 * (0.3 * 0.01 + 0.7 * 0.02) + 0.7 * 0.04),
    ("latest_only", 0.04), ("average", 0.5 * (0.5 * 0.01 + 0.5 * 0.02) + 0.5 * 0.04),
    ("conservative", 0.7 * (0.7 * 0.01 + 0.3 * 0.02) + 0.3 * 0.04)])
def test_blend_folds_chunks_in_arrival_order(aggregate, expected):
    """Three chunks all holding an action for the step 0.4-0.6, arriving in order: the queue's
    value is aggregate(aggregate(0.01, 0.02), 0.04), as LeRobot updates its queue."""
    s = ActionScheduler(SchedulerConfig(mode="blend", blend_aggregate=aggregate, tick_period=0.1))
    c1 = chunk([0.0, 0.0, 0.01, 0.0, 0.0], 0.0, 1)
    c2 = chunk([0.0, 0.02, 0.0, 0.0, 0.0], 0.2, 2)
    c3 = chunk([0.04, 0.0, 0.0, 0.0, 0.0], 0.4, 3)
    outs = run(s, 0.0, 6, 0.1, [(0.0, c1), (0.2, c2), (0.4, c3)])
    assert outs[4].command.linear[0] == pytest.approx(expected / 0.2, abs=1e-12)


def test_blend_asks_for_a_chunk_at_the_threshold():
    s = ActionScheduler(SchedulerConfig(mode="blend", blend_threshold=0.4, tick_period=0.1))
    run(s, 0.0, 6, 0.1, [(0.0, chunk([0.01] * 5))])
    # 0.6 s of motion done, 0.4 s left = 0.4 of a 1.0 s chunk
    assert s.wants_observation(0.6, 0.05)
    s2 = ActionScheduler(SchedulerConfig(mode="blend", blend_threshold=0.4, tick_period=0.1))
    run(s2, 0.0, 5, 0.1, [(0.0, chunk([0.01] * 5))])
    assert not s2.wants_observation(0.5, 0.05)


# --------------------------------------------------------------------------- rtc guide, config


def test_rtc_guide_is_the_executing_chunks_plan_from_the_frame_on():
    s = ActionScheduler(SchedulerConfig(mode="rtc", execute_steps=2, tick_period=0.1, rtc_guidance_weight=3.0))
    a = chunk([0.01, 0.02, 0.03, 0.04, 0.05], 0.0, 1)
    run(s, 0.0, 4, 0.1, [(0.0, a)])
    try:
        guide = s.guide(0.4, expected_latency=0.25)
    except ImportError:
        pytest.skip("ChunkGuide (the policy side of rtc) is not in this tree yet")
    # frame at 0.4 = two steps into a: a's actions 2, 3, 4 guide; 0.25 s = 2 steps frozen
    np.testing.assert_allclose(guide.actions[:, 0], [0.03, 0.04, 0.05])
    assert guide.frozen_steps == 2 and guide.execution_horizon == 2 and guide.guidance_weight == 3.0
    assert ActionScheduler(SchedulerConfig(tick_period=0.1)).guide(0.0, 0.1) is None  # hold: no guide


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "smooth"}, "execution mode"), ({"mode": "interpolate"}, "tick_period"),
    ({"mode": "blend", "tick_period": 0.1, "blend_aggregate": "median"}, "blend_aggregate"),
    ({"mode": "blend", "tick_period": 0.1, "blend_threshold": 1.5}, "blend_threshold"),
    ({"ensemble_decay": math.nan}, "ensemble_decay"), ({"rtc_guidance_weight": -1.0}, "rtc_guidance_weight"),
    ({"rtc_mask_horizon": -1}, "rtc_mask_horizon")])
def test_bad_mode_parameters_are_refused(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        SchedulerConfig(**kwargs)


def test_rtc_is_refused_for_a_policy_without_guided_sampling(bridge_episodes):
    from nora_ros.control.policy_loop import LoopConfig, PolicyLoop
    from nora_ros.policy import ReplayPolicy
    from nora_ros.policy.worker import VirtualInference

    policy = ReplayPolicy.from_npz(bridge_episodes[0])
    with pytest.raises(ConfigurationError, match="NORA-1.5's flow head"):
        PolicyLoop(VirtualInference(policy), LoopConfig(execution_mode="rtc"))
    loop = PolicyLoop(VirtualInference(policy), LoopConfig())
    with pytest.raises(ConfigurationError, match="rtc"):
        loop.reconfigure(LoopConfig(execution_mode="rtc"))
    loop.reconfigure(LoopConfig(execution_mode="ensemble"))
    assert loop.scheduler.config.mode == "ensemble"


def test_a_stopped_arm_waits_for_a_frame_taken_after_it_stopped():
    """A 5 Hz camera out of step with a 10 Hz timer: the one-action chunk ends at 0.2; the latest
    frame (0.12) saw the arm mid-motion (its second tick had just begun), so its chunk would
    start half way in. The scheduler waits for the next frame, which shows the arm stopped."""
    s = ActionScheduler(SchedulerConfig(tick_period=0.1))
    run(s, 0.0, 2, 0.1, [(0.0, chunk([0.01]))])
    run(s, 0.2, 1, 0.1)  # the action is done: this tick holds
    assert not s.wants_observation(0.3, 0.05, frame_stamp=0.12)
    assert s.wants_observation(0.3, 0.05, frame_stamp=0.25)
    assert s.wants_observation(0.3, 0.05)  # no frame given: the question is only "when"
