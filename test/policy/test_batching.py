"""Several robots, one policy, one inference thread: ready observations run as one batch, each
robot gets its own outcome, resets and errors stay per robot."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from nora_ros.actions import ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.control.policy_loop import LoopConfig, PolicyLoop
from nora_ros.errors import ConfigurationError, InvalidInstructionError, PolicyError
from nora_ros.policy.base import Policy
from nora_ros.policy.batching import BatchingInference

ROBOTS = ("left", "right", "third", "fourth")


class BatchPolicy(Policy):
    """Moves +x by 0.01 times the number in its instruction ("go 3"); records every batch and reset."""

    model_id = "batch-test"

    def __init__(self, delay=0.0):
        self.delay = delay
        self.batches: list[list[str]] = []
        self.resets: list[tuple[str, str]] = []
        self.fail_robot = ""
        self.crash = False
        self.lock = threading.Lock()

    def reset_robot(self, robot, instruction):
        if instruction == "bad":
            raise InvalidInstructionError("instruction 'bad' refused (test)")
        with self.lock:
            self.resets.append((robot, instruction))

    def act(self, frame, instruction):
        a = np.zeros((1, 7))
        a[0, 0], a[0, 6] = 0.01 * float(instruction.split()[-1]), 1.0
        return ActionChunk(a, model_id=self.model_id)

    def act_batch(self, frames, instructions, robots=None, guides=None):
        time.sleep(self.delay)
        if self.crash:
            raise RuntimeError("CUDA out of memory")
        with self.lock:
            self.batches.append(list(robots))
        return [PolicyError("malformed chunk (test)") if r == self.fail_robot else self.act(f, i)
                for f, i, r in zip(frames, instructions, robots, strict=True)]


def frame(stamp):
    return Frame(np.zeros((4, 4, 3), np.uint8), stamp=stamp)


def wait_outcome(worker, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = worker.poll()
        if out is not None:
            return out
        time.sleep(0.002)
    raise AssertionError("no outcome")


def test_requests_of_all_robots_run_as_one_batch_and_each_gets_its_own():
    policy = BatchPolicy()
    batching = BatchingInference(policy, ROBOTS, window=1.0)  # long window: only "all submitted" ends it
    try:
        workers = [batching.worker(r) for r in ROBOTS]
        t0 = time.perf_counter()
        for i, w in enumerate(workers):
            assert w.submit(frame(10.0 + i), f"go {i + 1}")
            assert not w.submit(frame(20.0), "go 9")  # one in flight per robot
        outs = [wait_outcome(w) for w in workers]
        assert time.perf_counter() - t0 < 0.9, "the batch must start once every robot has submitted"
        assert policy.batches == [list(ROBOTS)]
        for i, out in enumerate(outs):
            assert out.chunk is not None and out.chunk.stamp == 10.0 + i and out.chunk.chunk_id == 1
            assert out.chunk.actions[0, 0] == pytest.approx(0.01 * (i + 1))
        assert all(not w.busy for w in workers) and batching.batch_sizes == {4: 1}
        assert workers[0].submit(frame(11.0), "go 1")
        assert wait_outcome(workers[0]).chunk.chunk_id == 2  # ids count per robot
    finally:
        batching.close()


def test_a_lone_robot_runs_after_the_window():
    policy = BatchPolicy()
    batching = BatchingInference(policy, ROBOTS[:2], window=0.05)
    try:
        t0 = time.perf_counter()
        assert batching.worker("right").submit(frame(1.0), "go 2")
        out = wait_outcome(batching.worker("right"))
        assert out.chunk is not None and time.perf_counter() - t0 >= 0.05
        assert policy.batches == [["right"]] and batching.worker("left").poll() is None
    finally:
        batching.close()


def test_an_error_stays_with_its_robot_and_a_crash_is_reported_to_each():
    policy = BatchPolicy()
    policy.fail_robot = "right"
    batching = BatchingInference(policy, ROBOTS[:2], window=1.0)
    try:
        left, right = batching.worker("left"), batching.worker("right")
        left.submit(frame(1.0), "go 1")
        right.submit(frame(1.0), "go 1")
        a, b = wait_outcome(left), wait_outcome(right)
        assert a.chunk is not None and b.chunk is None and "malformed" in b.error and not b.crashed
        policy.crash = True
        left.submit(frame(2.0), "go 1")
        right.submit(frame(2.0), "go 1")
        for out in (wait_outcome(left), wait_outcome(right)):
            assert out.chunk is None and out.crashed and "out of memory" in out.error
    finally:
        batching.close()


def test_a_reset_is_applied_by_the_thread_before_that_robots_next_row():
    policy = BatchPolicy()
    batching = BatchingInference(policy, ROBOTS[:2], window=0.0)
    try:
        left, right = batching.worker("left"), batching.worker("right")
        left.policy.reset("go 1")
        assert policy.resets == []  # queued: the control tick never waits for the thread
        right.policy.reset("bad")
        left.submit(frame(1.0), "go 1")
        right.submit(frame(1.0), "go 1")
        assert wait_outcome(left).chunk is not None
        bad = wait_outcome(right)
        assert bad.chunk is None and "refused" in bad.error
        assert policy.resets == [("left", "go 1")]
    finally:
        batching.close()


def test_robot_names_are_checked():
    with pytest.raises(ConfigurationError, match="different"):
        BatchingInference(BatchPolicy(), ["a", "a"])
    with pytest.raises(ConfigurationError, match="non-empty"):
        BatchingInference(BatchPolicy(), [])
    b = BatchingInference(BatchPolicy(), ["a"])
    try:
        with pytest.raises(ConfigurationError, match="not one of"):
            b.worker("b")
    finally:
        b.close()


def test_two_policy_loops_share_one_batching_worker_and_keep_their_own_trials():
    policy = BatchPolicy(delay=0.01)
    batching = BatchingInference(policy, ("left", "right"), window=0.02)
    config = LoopConfig(control_rate_hz=50.0, max_image_age=10.0, max_chunk_age=10.0)
    loops = {r: PolicyLoop(batching.worker(r), config) for r in ("left", "right")}
    try:
        t0 = time.monotonic()
        loops["left"].on_trial(1, "RUNNING", "go 1", 0.0)
        loops["right"].on_trial(7, "RUNNING", "go 3", 0.0)
        moved = {"left": [], "right": []}
        deadline = t0 + 5.0
        while time.monotonic() < deadline and not all(len(v) >= 3 for v in moved.values()):
            now = time.monotonic() - t0
            for robot, loop in loops.items():
                loop.on_frame(frame(now))
                out = loop.tick(now)
                if out.command is not None and out.hold_reason == "":
                    moved[robot].append(out.command)
            time.sleep(0.02)
        assert all(len(v) >= 3 for v in moved.values()), moved
        # Each arm moves as its own instruction says (velocity = delta / step_period).
        assert moved["left"][-1].linear[0] == pytest.approx(0.01 / 0.2)
        assert moved["right"][-1].linear[0] == pytest.approx(0.03 / 0.2)
        assert sorted(policy.resets) == [("left", "go 1"), ("right", "go 3")]
        assert loops["left"].trial_id == 1 and loops["right"].trial_id == 7
        assert max(batching.batch_sizes) == 2, batching.batch_sizes  # the two loops were batched together
    finally:
        batching.close()
