"""Policy inference off the control loop's thread.

The control loop never waits for the model (DESIGN.md section 4): it submits the latest frame
when the worker is idle and polls for the outcome at each tick. Two workers share one API:

- :class:`ThreadedInference` runs ``policy.act`` in one background thread (the robot, the ROS
  policy node, real-time simulation);
- :class:`VirtualInference` runs it at once but releases the result only when the loop's
  (simulated) clock has passed ``submit time + latency``, so simulated runs keep the same
  timing semantics while running faster than real time, deterministically.

A request may carry a :class:`~nora_ros.policy.base.ChunkGuide` (real-time chunking): the worker
then calls ``policy.act_guided`` instead of ``policy.act``; a policy that cannot be guided
answers with a reported error like any other.

Every outcome carries either a chunk (stamped with its frame's time and a sequential id) or the
error that explains why there is none; an exception from a crashed policy is caught and
reported, never raised into the control loop.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from nora_ros.actions import ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.errors import NoraError
from nora_ros.policy.base import ChunkGuide, Policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceOutcome:
    """The result of one ``policy.act`` (or ``policy.act_guided``) call.

    ``chunk`` is set on success; otherwise ``error`` says why, and ``crashed`` tells an
    unexpected exception (a bug, an out-of-memory) from a reported policy error (NoraError).
    ``latency`` is wall seconds spent in ``act``; ``frame_stamp`` is the observation's time.
    """

    chunk: ActionChunk | None
    error: str
    crashed: bool
    latency: float
    frame_stamp: float
    request_id: int


def _run_policy(policy: Policy, frame: Frame, instruction: str, request_id: int,
                guide: ChunkGuide | None = None) -> InferenceOutcome:
    t0 = time.perf_counter()
    try:
        chunk = policy.act(frame, instruction) if guide is None else policy.act_guided(frame, instruction, guide)
        if not isinstance(chunk, ActionChunk):
            raise TypeError(f"policy returned {type(chunk).__name__}, not an ActionChunk")
        chunk = dataclasses.replace(chunk, stamp=frame.stamp, chunk_id=request_id)
        return InferenceOutcome(chunk, "", False, time.perf_counter() - t0, frame.stamp, request_id)
    except NoraError as exc:
        log.warning("policy failed on frame %.3f: %s", frame.stamp, exc)
        return InferenceOutcome(None, str(exc), False, time.perf_counter() - t0, frame.stamp, request_id)
    except Exception as exc:  # noqa: BLE001 - a crashed policy must not take the control loop down
        log.exception("policy crashed on frame %.3f", frame.stamp)
        return InferenceOutcome(None, f"policy crashed: {type(exc).__name__}: {exc}", True,
                                time.perf_counter() - t0, frame.stamp, request_id)


class ThreadedInference:
    """One background thread that runs ``policy.act``; :meth:`poll` never blocks."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._request: tuple[Frame, str, int, ChunkGuide | None] | None = None
        self._outcome: InferenceOutcome | None = None
        self._busy = False
        self._closed = False
        self._next_id = 1
        self._thread = threading.Thread(target=self._loop, name="nora-inference", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._busy

    def submit(self, frame: Frame, instruction: str, now: float | None = None,
               guide: ChunkGuide | None = None) -> bool:
        """Start inference on ``frame`` (guided by ``guide`` when given); ``False`` if one is
        already running (nothing queued)."""
        with self._lock:
            if self._busy or self._closed:
                return False
            self._busy = True
            self._request = (frame, instruction, self._next_id, guide)
            self._next_id += 1
            self._wake.notify()
            return True

    def poll(self, now: float | None = None) -> InferenceOutcome | None:
        """The finished outcome, once; ``None`` while running or idle."""
        with self._lock:
            out, self._outcome = self._outcome, None
            return out

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (an inference in flight finishes first, up to ``timeout``)."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._request is None and not self._closed:
                    # Blocks only this worker thread, never the control loop.
                    self._wake.wait()
                if self._closed:
                    return
                frame, instruction, rid, guide = self._request  # type: ignore[misc]
                self._request = None
            outcome = _run_policy(self.policy, frame, instruction, rid, guide)
            with self._lock:
                self._outcome = outcome
                self._busy = False


class VirtualInference:
    """Runs ``policy.act`` synchronously; the result appears ``latency`` later on the loop's clock.

    ``latency`` is a fixed number of seconds, or ``None`` to charge the measured wall time of
    each call (so a slow model on this CPU shows its real effect on the closed loop).
    """

    def __init__(self, policy: Policy, latency: float | None = 0.0):
        self.policy = policy
        self.latency = latency
        self._ready_at = 0.0
        self._outcome: InferenceOutcome | None = None
        self._next_id = 1

    @property
    def busy(self) -> bool:
        return self._outcome is not None

    def submit(self, frame: Frame, instruction: str, now: float | None = None,
               guide: ChunkGuide | None = None) -> bool:
        """Run inference on ``frame`` (guided by ``guide`` when given) now; its outcome shows
        after the latency. ``False`` while an outcome is still pending."""
        if self._outcome is not None:
            return False
        outcome = _run_policy(self.policy, frame, instruction, self._next_id, guide)
        self._next_id += 1
        delay = outcome.latency if self.latency is None else self.latency
        self._ready_at = (frame.stamp if now is None else now) + delay
        self._outcome = outcome
        return True

    def poll(self, now: float | None = None) -> InferenceOutcome | None:
        if self._outcome is None or (now is not None and now < self._ready_at):
            return None
        out, self._outcome = self._outcome, None
        return out

    def close(self, timeout: float = 0.0) -> None:
        self._outcome = None


InferenceWorker = ThreadedInference | VirtualInference
WorkerFactory = Callable[[Policy], InferenceWorker]
