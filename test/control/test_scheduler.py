"""ActionScheduler: chunk timing, execute_steps, pending chunks, stale drops, holds."""

import numpy as np
import pytest

from nora_ros.actions import ActionChunk
from nora_ros.control.scheduler import ActionScheduler, SchedulerConfig
from nora_ros.errors import ConfigurationError


def chunk(values, stamp=0.0, chunk_id=1, step_period=0.2):
    """A chunk whose action k moves dx = values[k] (gripper open)."""
    actions = np.zeros((len(values), 7))
    actions[:, 0] = values
    actions[:, 6] = 1.0
    return ActionChunk(actions, step_period=step_period, stamp=stamp, chunk_id=chunk_id)


def test_holds_with_reason_before_any_chunk():
    s = ActionScheduler()
    out = s.command_at(0.0)
    assert out.command is None
    assert "waiting for the policy" in out.reason


def test_action_spans_its_step_at_delta_over_period_then_holds():
    s = ActionScheduler(SchedulerConfig(execute_steps=1))
    s.offer(chunk([0.01, 0.02, 0.03, 0.04, 0.05], stamp=1.0))
    ticks = [1.0 + 0.04 * k for k in range(5)]  # 25 Hz over one 0.2 s step
    cmds = [s.command_at(t).command for t in ticks]
    assert all(c is not None for c in cmds)
    np.testing.assert_allclose([c.linear[0] for c in cmds], 0.01 / 0.2)
    assert {c.index for c in cmds} == {0}
    assert all(c.observation_stamp == 1.0 for c in cmds)
    # Only action 0 executes with execute_steps=1: the next tick holds.
    assert s.command_at(1.2).command is None


def test_execute_steps_runs_that_many_actions_in_order():
    s = ActionScheduler(SchedulerConfig(execute_steps=3))
    s.offer(chunk([0.01, 0.02, 0.03, 0.04, 0.05], stamp=0.0))
    got = [s.command_at(t).command for t in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)]
    assert [c.index for c in got] == [0, 0, 1, 1, 2, 2]
    np.testing.assert_allclose([c.linear[0] * 0.2 for c in got], [0.01, 0.01, 0.02, 0.02, 0.03, 0.03])
    assert s.command_at(0.6).command is None


def test_pending_chunk_starts_when_current_is_used_up():
    s = ActionScheduler()
    s.offer(chunk([0.01], stamp=0.0, chunk_id=1))
    assert s.command_at(0.0).command.chunk_id == 1
    s.offer(chunk([0.02], stamp=0.1, chunk_id=2))
    assert s.command_at(0.15).command.chunk_id == 1  # current step not over yet
    nxt = s.command_at(0.2).command
    assert nxt.chunk_id == 2 and nxt.linear[0] == pytest.approx(0.1)


def test_stale_chunk_is_dropped_not_executed():
    s = ActionScheduler(SchedulerConfig(max_chunk_age=0.5))
    s.offer(chunk([0.01], stamp=0.0))
    out = s.command_at(0.6)
    assert out.command is None
    assert "0.600 s old" in out.reason
    assert s.dropped == 1


def test_newer_pending_supersedes_older():
    s = ActionScheduler()
    s.offer(chunk([0.01], stamp=0.0, chunk_id=1))
    s.offer(chunk([0.02], stamp=0.05, chunk_id=2))
    assert s.command_at(0.1).command.chunk_id == 2
    assert s.dropped == 1


def test_wants_observation_early_enough_for_latency():
    s = ActionScheduler()
    assert s.wants_observation(0.0, expected_latency=0.15)
    s.offer(chunk([0.01] * 5, stamp=0.0))
    s.command_at(0.0)
    assert not s.wants_observation(0.0, expected_latency=0.15)  # 0.2 s left > 0.15
    assert s.wants_observation(0.06, expected_latency=0.15)    # 0.14 s left
    s.offer(chunk([0.01] * 5, stamp=0.06, chunk_id=2))
    assert not s.wants_observation(0.1, expected_latency=0.15)  # one is pending
    # a one-action chunk ready 0.15 s into its 0.2 s would run 0.05 s: observe when it ends
    one = ActionScheduler()
    one.offer(chunk([0.01], stamp=0.0))
    one.command_at(0.0)
    assert not one.wants_observation(0.06, expected_latency=0.15)


def test_clear_forgets_everything():
    s = ActionScheduler()
    s.offer(chunk([0.01]))
    s.command_at(0.0)
    s.offer(chunk([0.01], chunk_id=2))
    s.clear()
    assert not s.active
    assert s.command_at(0.05).command is None


@pytest.mark.parametrize("kwargs", [{"execute_steps": 0}, {"max_chunk_age": 0.0}, {"max_chunk_age": float("nan")}])
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ConfigurationError):
        SchedulerConfig(**kwargs)


@pytest.mark.parametrize("seed", range(5))
def test_timer_jitter_neither_stretches_nor_cuts_an_action(seed):
    """A 10 Hz timer with +-5 ms jitter: every 0.2 s action runs exactly two ticks when the
    scheduler knows the tick period. Without it (exact-time mode) a tick that comes 50 us early
    at a step's end repeats the action for a third tick: 1.5 times its motion (seen on ROS 2)."""
    rng = np.random.default_rng(seed)
    s = ActionScheduler(SchedulerConfig(execute_steps=5, tick_period=0.1))
    s.offer(chunk([0.01, 0.02, 0.03, 0.04, 0.05], stamp=5.0))
    t0 = 5.0
    ticks = [t0] + [t0 + 0.1 * k + rng.uniform(-0.005, 0.005) for k in range(1, 12)]
    indices = [getattr(s.command_at(t).command, "index", None) for t in ticks]
    assert indices == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, None, None]
    exact = ActionScheduler(SchedulerConfig(execute_steps=5))
    exact.offer(chunk([0.01, 0.02, 0.03, 0.04, 0.05], stamp=5.0))
    assert [exact.command_at(t).command.index for t in (5.0, 5.1, 5.19995)] == [0, 0, 0]
    with pytest.raises(ConfigurationError, match="tick_period"):
        SchedulerConfig(tick_period=-0.1)
