"""Inference workers: the control loop never waits, crashes become reported outcomes."""

import time

import numpy as np
import pytest

from nora_ros.actions import ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.errors import PolicyError
from nora_ros.policy.base import ChunkGuide, Policy
from nora_ros.policy.worker import ThreadedInference, VirtualInference


class SlowPolicy(Policy):
    """Takes ``delay`` seconds, then moves +x; fails on request."""

    model_id = "slow"

    def __init__(self, delay=0.0, fail=None):
        self.delay = delay
        self.fail = fail

    def act(self, frame, instruction):
        time.sleep(self.delay)
        if self.fail == "policy":
            raise PolicyError("FAST decode failed: length")
        if self.fail == "crash":
            raise RuntimeError("CUDA out of memory")
        a = np.zeros((1, 7))
        a[0, 0], a[0, 6] = 0.01, 1.0
        return ActionChunk(a, model_id=self.model_id)


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


def test_threaded_submit_returns_at_once_and_stamps_chunk():
    w = ThreadedInference(SlowPolicy(delay=0.2))
    try:
        t0 = time.perf_counter()
        assert w.submit(frame(3.5), "go")
        assert time.perf_counter() - t0 < 0.05
        assert w.busy
        assert not w.submit(frame(3.6), "go")  # busy: nothing queued
        assert w.poll() is None
        out = wait_outcome(w)
        assert out.chunk is not None and out.chunk.stamp == 3.5 and out.chunk.chunk_id == 1
        assert out.latency >= 0.2
        assert not w.busy
        assert w.submit(frame(4.0), "go")
        assert wait_outcome(w).chunk.chunk_id == 2
    finally:
        w.close()


@pytest.mark.parametrize("fail, crashed", [("policy", False), ("crash", True)])
def test_failures_are_outcomes_not_exceptions(fail, crashed):
    w = ThreadedInference(SlowPolicy(fail=fail))
    try:
        w.submit(frame(1.0), "go")
        out = wait_outcome(w)
        assert out.chunk is None
        assert out.crashed is crashed
        assert ("length" in out.error) if fail == "policy" else ("CUDA out of memory" in out.error)
        assert w.submit(frame(2.0), "go")  # the worker survives a crash
        assert wait_outcome(w).chunk is None
    finally:
        w.close()


def test_virtual_latency_releases_result_on_the_loop_clock():
    w = VirtualInference(SlowPolicy(), latency=0.15)
    assert w.submit(frame(10.0), "go", now=10.0)
    assert w.busy
    assert w.poll(10.1) is None
    out = w.poll(10.15)
    assert out.chunk.stamp == 10.0
    assert w.poll(10.2) is None and not w.busy


def test_virtual_measured_latency_charges_wall_time():
    w = VirtualInference(SlowPolicy(delay=0.05), latency=None)
    w.submit(frame(0.0), "go", now=0.0)
    assert w.poll(0.01) is None
    assert w.poll(0.2).chunk is not None


class GuidablePolicy(Policy):
    """Records which entry point ran and with what guide; its chunk's first action is the guide's."""

    model_id = "guidable"
    supports_guide = True

    def __init__(self):
        self.calls = []

    def act(self, frame, instruction):
        self.calls.append(("act", None))
        return ActionChunk(np.zeros((1, 7)), model_id=self.model_id)

    def act_guided(self, frame, instruction, guide):
        self.calls.append(("act_guided", guide))
        return ActionChunk(guide.actions[:1].copy(), model_id=self.model_id)


GUIDE = ChunkGuide(np.full((2, 7), 0.5), frozen_steps=1, execution_horizon=1, guidance_weight=3.0)


@pytest.mark.parametrize("kind", ["threaded", "virtual"])
def test_a_guide_goes_to_act_guided_and_none_to_act(kind):
    policy = GuidablePolicy()
    w = ThreadedInference(policy) if kind == "threaded" else VirtualInference(policy, latency=0.0)
    try:
        assert w.submit(frame(1.0), "go", now=1.0, guide=GUIDE)
        out = wait_outcome(w)
        assert out.error == "" and out.chunk.stamp == 1.0 and out.chunk.chunk_id == 1
        np.testing.assert_array_equal(out.chunk.actions, np.full((1, 7), 0.5))
        assert w.submit(frame(2.0), "go", now=2.0)
        assert wait_outcome(w).chunk.chunk_id == 2
    finally:
        w.close()
    assert policy.calls == [("act_guided", GUIDE), ("act", None)]


@pytest.mark.parametrize("kind", ["threaded", "virtual"])
def test_a_policy_that_cannot_be_guided_is_a_reported_error(kind):
    w = ThreadedInference(SlowPolicy()) if kind == "threaded" else VirtualInference(SlowPolicy(), latency=0.0)
    try:
        assert w.submit(frame(1.0), "go", now=1.0, guide=GUIDE)
        out = wait_outcome(w)
        assert out.chunk is None and not out.crashed
        assert "needs NORA-1.5's flow head" in out.error and "'slow'" in out.error
    finally:
        w.close()
