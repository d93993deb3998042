"""One policy, one inference thread, several robots: observations that are ready together run as
one batch (issue 16, "several arms, one GPU").

Each robot keeps its own :class:`~nora_ros.control.policy_loop.PolicyLoop` (its scheduler, trial
state, chunks, failure count) and its own safety node; only the model is shared. A loop takes
:meth:`BatchingInference.worker` for its robot as its worker: the same ``submit`` / ``poll`` /
``busy`` API as :class:`~nora_ros.policy.worker.ThreadedInference`, one inference in flight per
robot, and ``worker.policy`` a per-robot view of the shared policy.

The thread waits for a first request, then collects more for up to ``window`` seconds or until
every robot has submitted, and runs them with one
:meth:`~nora_ros.policy.base.Policy.act_batch` (NORA: one forward pass). Each robot's outcome
goes back to its own worker; a row that failed is that robot's error only. A trial reset
(``worker.policy.reset``) is queued and applied by the thread before that robot's next row, so
reset and inference never overlap and the control tick never waits for the thread.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from nora_ros.actions import ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.errors import ConfigurationError, NoraError
from nora_ros.policy.base import ChunkGuide, Policy
from nora_ros.policy.worker import InferenceOutcome

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 0.01
"""Seconds the thread waits for more robots after the first request (the node's robots submit in
the same control tick, microseconds apart, so a short window is enough)."""


@dataclass(frozen=True)
class _Request:
    frame: Frame
    instruction: str
    request_id: int
    guide: ChunkGuide | None


class RobotPolicy(Policy):
    """The shared policy as one robot sees it: ``reset`` restarts only this robot's state (queued
    to the inference thread); ``act`` runs a batch of one (for direct use; loops go through the
    worker). ``model_id``, ``horizon``, ``step_period`` and the capabilities are the shared one's."""

    def __init__(self, owner: BatchingInference, robot: str):
        self._owner = owner
        self.robot = robot
        shared = owner.policy
        self.model_id = shared.model_id
        self.horizon = shared.horizon
        self.step_period = shared.step_period
        self.needs_ground_truth = shared.needs_ground_truth
        self.supports_guide = shared.supports_guide

    @property
    def shared(self) -> Policy:
        return self._owner.policy

    def reset(self, instruction: str) -> None:
        self._owner._queue_reset(self.robot, instruction)

    def act(self, frame: Frame, instruction: str) -> ActionChunk:
        return self._one(frame, instruction, None)

    def act_guided(self, frame: Frame, instruction: str, guide: ChunkGuide) -> ActionChunk:
        return self._one(frame, instruction, guide)

    def _one(self, frame: Frame, instruction: str, guide: ChunkGuide | None) -> ActionChunk:
        (out,) = self.shared.act_batch([frame], [instruction], [self.robot], None if guide is None else [guide])
        if isinstance(out, Exception):
            raise out
        return out


class RobotWorker:
    """One robot's side of :class:`BatchingInference` (the API of ThreadedInference)."""

    def __init__(self, owner: BatchingInference, robot: str):
        self._owner = owner
        self.robot = robot
        self.policy = RobotPolicy(owner, robot)

    @property
    def busy(self) -> bool:
        return self._owner._busy(self.robot)

    def submit(self, frame: Frame, instruction: str, now: float | None = None,
               guide: ChunkGuide | None = None) -> bool:
        """Queue ``frame`` for the next batch; ``False`` while this robot's last one is in flight."""
        return self._owner._submit(self.robot, frame, instruction, guide)

    def poll(self, now: float | None = None) -> InferenceOutcome | None:
        """This robot's finished outcome, once; ``None`` while running or idle."""
        return self._owner._poll(self.robot)

    def close(self, timeout: float = 5.0) -> None:
        """Nothing: the shared thread belongs to :class:`BatchingInference` (close that)."""


class BatchingInference:
    """One background thread running ``policy.act_batch`` for several robots (module docstring)."""

    def __init__(self, policy: Policy, robots: Sequence[str], window: float = DEFAULT_WINDOW):
        robots = tuple(robots)
        if not robots or any(not isinstance(r, str) or not r for r in robots):
            raise ConfigurationError(f"robots must be one or more non-empty names, got {list(robots)}")
        if len(set(robots)) != len(robots):
            raise ConfigurationError(f"robots must be different names, got {list(robots)}")
        if not 0.0 <= window <= 1.0:
            raise ConfigurationError(f"the batching window must be 0..1 s, got {window}")
        self.policy = policy
        self.robots = robots
        self.window = float(window)
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        """How many batches of each size ran (for diagnostics and the bench)."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._requests: dict[str, _Request] = {}
        self._inflight: set[str] = set()
        self._outcomes: dict[str, InferenceOutcome] = {}
        self._resets: dict[str, str] = {}
        self._next_id = dict.fromkeys(robots, 1)
        self._first_at = 0.0
        self._closed = False
        self._workers = {r: RobotWorker(self, r) for r in robots}
        self._thread = threading.Thread(target=self._loop, name="nora-batch-inference", daemon=True)
        self._thread.start()

    def worker(self, robot: str) -> RobotWorker:
        """The worker for ``robot``'s PolicyLoop."""
        try:
            return self._workers[robot]
        except KeyError:
            raise ConfigurationError(f"robot {robot!r} is not one of {list(self.robots)}") from None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (a batch in flight finishes first, up to ``timeout``)."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the robots' side
    def _busy(self, robot: str) -> bool:
        with self._lock:
            return robot in self._requests or robot in self._inflight

    def _submit(self, robot: str, frame: Frame, instruction: str, guide: ChunkGuide | None) -> bool:
        with self._lock:
            if self._closed or robot in self._requests or robot in self._inflight:
                return False
            if not self._requests:
                self._first_at = time.monotonic()
            self._requests[robot] = _Request(frame, instruction, self._next_id[robot], guide)
            self._next_id[robot] += 1
            self._wake.notify()
            return True

    def _poll(self, robot: str) -> InferenceOutcome | None:
        with self._lock:
            return self._outcomes.pop(robot, None)

    def _queue_reset(self, robot: str, instruction: str) -> None:
        with self._lock:
            self._resets[robot] = instruction

    # ------------------------------------------------------------------ the thread
    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._requests and not self._closed:
                    self._wake.wait()  # blocks only this thread, never a control loop
                while not self._closed and len(self._requests) < len(self.robots):
                    left = self._first_at + self.window - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
                if self._closed:
                    return
                batch, self._requests = self._requests, {}
                self._inflight = set(batch)
                resets = {r: self._resets.pop(r) for r in list(self._resets)}
            outcomes = self._run(batch, resets)
            with self._lock:
                self._outcomes.update(outcomes)
                self._inflight = set()
                self.batch_sizes[len(batch)] += 1

    def _run(self, batch: dict[str, _Request], resets: dict[str, str]) -> dict[str, InferenceOutcome]:
        outcomes: dict[str, InferenceOutcome] = {}
        for robot, instruction in resets.items():
            try:
                self.policy.reset_robot(robot, instruction)
            except NoraError as exc:
                if robot in batch:
                    req = batch.pop(robot)
                    outcomes[robot] = InferenceOutcome(None, str(exc), False, 0.0, req.frame.stamp, req.request_id)
        if not batch:
            return outcomes
        robots = list(batch)
        reqs = [batch[r] for r in robots]
        guides = [q.guide for q in reqs]
        t0 = time.perf_counter()
        try:
            results: list = list(self.policy.act_batch([q.frame for q in reqs], [q.instruction for q in reqs], robots,
                                                       guides if any(g is not None for g in guides) else None))
            if len(results) != len(reqs):
                raise TypeError(f"act_batch returned {len(results)} results for {len(reqs)} observations")
            crashed = ""
        except NoraError as exc:
            log.warning("batch of %d failed: %s", len(reqs), exc)
            results, crashed = [exc] * len(reqs), ""
        except Exception as exc:  # noqa: BLE001 - a crashed policy must not take the control loops down
            log.exception("batch of %d crashed", len(reqs))
            crashed = f"policy crashed: {type(exc).__name__}: {exc}"
            results = [None] * len(reqs)
        latency = time.perf_counter() - t0
        for robot, req, result in zip(robots, reqs, results, strict=True):
            stamp, rid = req.frame.stamp, req.request_id
            if crashed:
                outcomes[robot] = InferenceOutcome(None, crashed, True, latency, stamp, rid)
            elif isinstance(result, NoraError):
                outcomes[robot] = InferenceOutcome(None, str(result), False, latency, stamp, rid)
            elif isinstance(result, ActionChunk):
                chunk = dataclasses.replace(result, stamp=stamp, chunk_id=rid)
                outcomes[robot] = InferenceOutcome(chunk, "", False, latency, stamp, rid)
            else:
                outcomes[robot] = InferenceOutcome(
                    None, f"policy crashed: act_batch returned {type(result).__name__}, not an ActionChunk", True,
                    latency, stamp, rid)
        return outcomes
