"""The policy node's loop without ROS (nora_ros.control.policy_loop), driven by a real ReplayPolicy on a
real Bridge episode and the real VirtualInference worker: commands per tick, holds with
reasons, stale frames, policy faults, and trial boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from nora_ros.actions import action_to_command
from nora_ros.camera.frame import Frame
from nora_ros.control.policy_loop import LoopConfig, PolicyLoop
from nora_ros.policy import ReplayPolicy
from nora_ros.policy.worker import VirtualInference

DT = 0.1  # 10 Hz control


def _frame(t: float) -> Frame:
    return Frame(image=np.zeros((4, 4, 3), np.uint8), stamp=t)


@pytest.fixture
def episode(bridge_episodes):
    return bridge_episodes[0]


def _loop(episode, latency=0.0, **config):
    policy = ReplayPolicy.from_npz(episode)
    return PolicyLoop(VirtualInference(policy, latency), LoopConfig(control_rate_hz=1 / DT, **config)), policy


def _run(loop, t0, n, frames=True):
    out = []
    for i in range(n):
        t = round(t0 + i * DT, 9)
        if frames:
            loop.on_frame(_frame(t))
        out.append(loop.tick(t))
    return out


def test_nothing_is_published_while_no_trial_runs(episode):
    loop, _ = _loop(episode)
    ticks = _run(loop, 0.0, 3)
    assert all(t.command is None and t.chunk is None for t in ticks)
    assert not loop.worker.busy


def test_running_trial_executes_the_episode_actions_one_per_step(episode):
    actions = np.load(episode)["action"]
    loop, _ = _loop(episode)
    loop.on_trial(1, "RUNNING", "put the carrot in the pot", now=10.0)
    ticks = _run(loop, 10.0, 8)
    # Each action takes one 0.2 s step = two 10 Hz ticks; a new chunk every step.
    for i, tick in enumerate(ticks):
        step = i // 2
        expected = action_to_command(actions[step], 0.2, stamp=0.0)
        np.testing.assert_allclose(tick.command.linear, expected.linear, atol=1e-12)
        np.testing.assert_allclose(tick.command.angular, expected.angular, atol=1e-12)
        assert tick.command.gripper == pytest.approx(actions[step][6])
        assert tick.new_step == (i % 2 == 0)
    # A one-action chunk computed a tick before its predecessor ends would start half a step
    # late (the arm moved meanwhile), so at this latency the loop observes at each step boundary.
    assert sum(t.chunk is not None for t in ticks) == 4
    assert loop.chunks == 4 and loop.failures == 0 and loop.scheduler.skipped == 0


def test_stale_camera_holds_with_the_reason(episode):
    loop, _ = _loop(episode, max_image_age=0.3)
    loop.on_frame(_frame(0.0))
    loop.on_trial(1, "RUNNING", "x", now=1.0)
    tick = loop.tick(1.0)
    assert tick.command.is_zero() and "waiting for the policy" in tick.hold_reason
    assert "camera frame is 1.000 s old" in loop.last_error
    assert not loop.worker.busy


def test_hold_keeps_the_last_gripper_value(bridge_episodes):
    # An episode that closes the gripper: hold there must not open it again.
    episode = next(p for p in bridge_episodes if np.load(p)["action"][:, 6].min() < 0.5)
    closes_at = int(np.argmax(np.load(episode)["action"][:, 6] < 0.5))
    loop, _ = _loop(episode)
    loop.on_trial(1, "RUNNING", "x", now=0.0)
    t = 0.0
    for _ in range(2 * closes_at + 1):  # frames until the closing action is executing
        loop.on_frame(_frame(t))
        tick = loop.tick(t)
        t = round(t + DT, 9)
    assert tick.command.gripper < 0.5
    for _ in range(4):  # the camera stops: the chunks run out, then the arm holds
        tick = loop.tick(t)
        t = round(t + DT, 9)
    assert tick.command.is_zero() and tick.command.gripper == pytest.approx(np.load(episode)["action"][closes_at, 6])


def test_exhausted_policy_faults_the_trial_once(episode):
    loop, policy = _loop(episode, max_policy_failures=3)
    n = len(np.load(episode)["action"])
    loop.on_trial(1, "RUNNING", "x", now=0.0)
    ticks = _run(loop, 0.0, 2 * n + 12)
    faults = [t.fault for t in ticks if t.fault]
    assert len(faults) == 1 and "policy failed 3 times in a row" in faults[0] and "exhausted" in faults[0]
    assert ticks[-1].command.is_zero()


def test_an_inference_from_the_previous_trial_never_moves_the_arm(episode):
    loop, _ = _loop(episode, latency=0.5)
    loop.on_trial(1, "RUNNING", "first", now=0.0)
    loop.on_frame(_frame(0.0))
    assert loop.tick(0.0).command.is_zero() and loop.worker.busy  # submitted, ready at 0.5
    loop.on_trial(1, "AWAITING_SCORE", "first", now=0.2)
    assert loop.tick(0.2).command is None
    loop.on_trial(2, "RUNNING", "second", now=0.3)
    tick = loop.tick(0.5)  # trial 1's chunk arrives now
    assert tick.chunk is None and tick.command.is_zero()
    assert not loop.scheduler.active
    loop.on_frame(_frame(0.6))
    loop.tick(0.6)  # submits for trial 2
    tick = loop.tick(1.1)
    assert tick.chunk is not None and not tick.command.is_zero()
    assert loop.instruction == "second"


def test_leaving_running_clears_chunks(episode):
    loop, _ = _loop(episode)
    loop.on_trial(1, "RUNNING", "x", now=0.0)
    _run(loop, 0.0, 3)
    assert loop.scheduler.active
    loop.on_trial(1, "ABORTED", "x", now=0.3)
    assert not loop.scheduler.active and loop.tick(0.3).command is None



class GatedPolicy(ReplayPolicy):
    """The episode's actions, but ``act`` waits for the test to let it finish, and every call is
    logged (the model boundary: a slow inference)."""

    def __init__(self, path):
        data = np.load(path)
        super().__init__(data["action"], model_id="gated")
        import threading

        self.gate = threading.Event()
        self.log: list[str] = []

    def act(self, frame, instruction):
        self.log.append("act start")
        self.gate.wait(5.0)
        self.log.append("act end")
        return super().act(frame, instruction)

    def reset(self, instruction):
        self.log.append(f"reset {instruction}")
        super().reset(instruction)


def test_reset_for_a_new_trial_waits_for_the_running_inference(episode):
    import time

    from nora_ros.policy.worker import ThreadedInference

    policy = GatedPolicy(episode)
    worker = ThreadedInference(policy)
    loop = PolicyLoop(worker, LoopConfig(control_rate_hz=10.0))
    try:
        loop.on_trial(1, "RUNNING", "first", now=0.0)
        loop.on_frame(_frame(0.0))
        loop.tick(0.0)  # reset for trial 1, then submit: act blocks in the worker
        deadline = time.monotonic() + 5
        while "act start" not in policy.log and time.monotonic() < deadline:
            time.sleep(0.001)
        loop.on_trial(1, "DONE", "first", now=0.1)
        loop.on_trial(2, "RUNNING", "second", now=0.2)
        assert loop.tick(0.2).command.is_zero()
        assert policy.log == ["reset first", "act start"]  # no reset while act runs
        policy.gate.set()
        while worker.busy and time.monotonic() < deadline:
            time.sleep(0.001)
        tick = loop.tick(0.3)  # trial 1's chunk arrives: discarded; now the reset runs
        assert tick.chunk is None and policy.log == ["reset first", "act start", "act end", "reset second"]
    finally:
        policy.gate.set()
        worker.close()


def test_a_threaded_workers_every_chunk_is_handed_out(episode):
    """The policy node's worker thread stores its outcome and is idle before the next tick polls
    it; the tick must take that outcome before submitting the next frame, or the next chunk is
    dropped as another trial's (seen on ROS 2: 263 inferences for 200 published chunks)."""
    import time

    from nora_ros.policy.worker import ThreadedInference

    policy = ReplayPolicy.from_npz(episode)
    calls = []
    act = policy.act
    policy.act = lambda frame, instruction: calls.append(frame.stamp) or act(frame, instruction)
    worker = ThreadedInference(policy)
    loop = PolicyLoop(worker, LoopConfig(control_rate_hz=10.0))
    try:
        loop.on_trial(1, "RUNNING", "x", now=0.0)
        chunks = 0
        for k in range(16):
            t = round(0.1 * k, 9)
            loop.on_frame(_frame(t))
            chunks += loop.tick(t).chunk is not None
            deadline = time.monotonic() + 5
            while worker.busy and time.monotonic() < deadline:  # the inference ends between ticks
                time.sleep(0.001)
        assert len(calls) >= 7 and chunks >= len(calls) - 1  # at most the last is still unpolled
        assert loop.chunks == chunks and loop.failures == 0
    finally:
        worker.close()
