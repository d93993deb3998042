"""The console's port over ROS topics and services, without ROS: the console node's callbacks
store what they receive here (as plain values) and the node supplies the actions that publish
or call services. The server reads this port exactly as it reads the in-process one.

Only the interface of DESIGN.md section 5 is used: ``instruction`` and ``trial/score`` to
publish, ``safety/estop``, ``safety/reset``, ``safety/enable`` to call, ``trial/status``,
``safety/status``, ``action_chunk`` and the camera image to watch. So the safety node stays
the only way to the motors: the console's e-stop is the same service call as an operator's.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nora_ros.console.port import ConsoleStatus, SafetyView
from nora_ros.console.views import encode_jpeg, results_view
from nora_ros.errors import InvalidInputError
from nora_ros.trials.score import parse_score
from nora_ros.trials.state import TrialBusyError


class Actions(Protocol):
    """What the node does for the port (each returns at once; a service call is asynchronous)."""

    def publish_instruction(self, text: str) -> None: ...

    def publish_score(self, text: str) -> None: ...

    def call_estop(self) -> None: ...

    def call_reset(self) -> None: ...

    def call_enable(self, enabled: bool) -> None: ...


@dataclass(frozen=True)
class TrialSnapshot:
    """The last ``trial/status`` as plain values."""

    trial_id: int = 0
    instruction: str = ""
    state: str = "IDLE"
    reason: str = ""
    steps: int = 0
    stamp: float = 0.0


class TopicConsolePort:
    """:class:`~nora_ros.console.port.ConsolePort` fed by the console node's subscriptions.

    Thread-safe: callbacks run on the node's executor, reads and commands on the server's.
    ``model_id``: the model shown (the policy node's; empty hides it). ``results_file``: the
    supervisor's results file, read for the table (same machine).
    """

    def __init__(self, actions: Actions, results_file: str = "", model_id: str = "",
                 presets: tuple[str, ...] = ()):
        self.actions = actions
        self.results_file = results_file or None
        self.model_id = model_id
        self.presets = presets
        self._lock = threading.Lock()
        self._trial = TrialSnapshot()
        self._running_since: float | None = None
        self._safety = SafetyView()
        self._limits: collections.deque[tuple[float, str]] = collections.deque(maxlen=200)
        self._chunks: collections.deque[float] = collections.deque(maxlen=50)
        self._latency: float | None = None
        self._image: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes] | None = None

    # ----------------------------------------------------------------- from the node's callbacks

    def on_trial_status(self, snap: TrialSnapshot) -> None:
        with self._lock:
            if snap.trial_id != self._trial.trial_id or snap.state not in ("RUNNING", "AWAITING_SCORE"):
                self._running_since = None
            if snap.state == "RUNNING" and self._running_since is None:
                self._running_since = time.monotonic()
            self._trial = snap

    def on_safety_status(self, *, enabled: bool, estopped: bool, estop_reason: str, limits: tuple[str, ...],
                         holding: bool) -> None:
        now = time.monotonic()
        with self._lock:
            for name in limits:
                self._limits.append((now, name))
            recent = tuple(sorted({n for t, n in self._limits if now - t <= 3.0}))
            self._safety = SafetyView(enabled, estopped, estop_reason, recent, holding)

    def on_chunk(self, latency: float) -> None:
        with self._lock:
            self._chunks.append(time.monotonic())
            self._latency = float(latency)

    def on_image(self, image: np.ndarray) -> None:
        with self._lock:
            self._image = image
            self._seq += 1

    # ----------------------------------------------------------------- port

    def status(self) -> ConsoleStatus:
        now = time.monotonic()
        with self._lock:
            tr = self._trial
            chunks = [t for t in self._chunks if now - t <= 5.0]
            rate = (len(chunks) - 1) / (chunks[-1] - chunks[0]) if len(chunks) > 1 and chunks[-1] > chunks[0] else None
            elapsed = now - self._running_since if self._running_since is not None else 0.0
            return ConsoleStatus(state=tr.state, trial_id=tr.trial_id, instruction=tr.instruction, model=self.model_id,
                                 elapsed_s=round(elapsed, 2), steps=tr.steps, reason=tr.reason, latency_s=self._latency,
                                 rate_hz=rate, safety=self._safety, presets=self.presets, frame_seq=self._seq)

    def camera_jpeg(self) -> tuple[int, bytes] | None:
        with self._lock:
            seq, image, cached = self._seq, self._image, self._jpeg
        if image is None:
            return None
        if cached is None or cached[0] != seq:
            cached = (seq, encode_jpeg(image))
            self._jpeg = cached
        return cached

    def model_input_jpeg(self) -> bytes | None:
        from nora_ros.camera.preprocess import PreprocessConfig, to_model_image

        image = self._image
        return None if image is None else encode_jpeg(to_model_image(image, config=PreprocessConfig(aspect="crop")))

    def start(self, instruction: str = "", task: str = "") -> None:
        if self._safety.estopped:
            raise TrialBusyError("e-stop is latched: press Reset after checking the arm")
        if not instruction.strip():
            raise InvalidInputError("type an instruction (or pick a preset) first")
        self.actions.publish_instruction(instruction.strip())

    def stop(self) -> None:
        # The supervisor stops a running trial on a score; an explicit stop is a failure-free
        # "stop for scoring": the operator then scores it.
        raise InvalidInputError("on the robot, score the trial to stop it (Success, Failure, Partial or Abort)")

    def score(self, text: str) -> None:
        parse_score(text)  # refuse a typo here, with the reason, before it goes out
        self.actions.publish_score(text)

    def estop(self, reason: str = "console e-stop") -> None:
        self.actions.call_estop()

    def reset(self) -> None:
        self.actions.call_reset()

    def set_enabled(self, enabled: bool) -> None:
        self.actions.call_enable(bool(enabled))

    def results(self) -> dict[str, Any]:
        return results_view(self.results_file)
