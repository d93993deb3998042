"""The console's port over ROS topics and services, without ROS: the console node's callbacks
store what they receive here (as plain values) and the node supplies the actions that publish
or call services. The server reads this port exactly as it reads the in-process one.

Only the operator's interface is used (DESIGN.md section 5, and the services a console needs an
answer from): ``trial/start`` and ``trial/stop`` (the supervisor answers with a reason),
``trial/score`` to publish, ``policy/select_model`` for a plan with several models,
``safety/estop``, ``safety/reset``, ``safety/enable`` to call, ``trial/status``,
``safety/status``, ``action_chunk`` and the camera image to watch. So the safety node stays
the only way to the motors: the console's e-stop is the same service call as an operator's.

An evaluation plan (:mod:`nora_ros.trials.plan`) on the robot: Start takes the plan's next trial
from the results file, asks the policy node to serve its model (answered once loaded: minutes
for a 3B model the first time), then starts the trial with its task and model and the model id
the policy reported, which the supervisor checks every chunk against. The page says what is
under way meanwhile; a second Start is refused until the first is answered.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nora_ros.console.port import ConsoleStatus, PlanView, SafetyView
from nora_ros.console.views import encode_jpeg, results_view
from nora_ros.errors import ConfigurationError, InvalidInputError
from nora_ros.trials.plan import EvalPlan, PlanModel, PlannedTrial, progress
from nora_ros.trials.results_store import load_results
from nora_ros.trials.score import parse_score
from nora_ros.trials.state import ACTIVE_STATES, TrialBusyError

Answer = Callable[[bool, str, Any], None]
"""``answer(success, message, value)``: a service's reply (value: the trial id, the served model id)."""

ACTIVE = tuple(s.value for s in ACTIVE_STATES)
"""Trial states (as trial/status names them) in which a trial is under way."""


def policy_model(model: PlanModel) -> str:
    """What the policy node's select_model takes for a plan's model (its ``model`` parameter)."""
    if model.policy == "scripted":
        return "scripted"
    if model.policy == "nora" and model.checkpoint:
        return model.checkpoint
    raise ConfigurationError(f"plan model {model.id!r}: on the robot give policy nora with a checkpoint (folder or "
                             f"hub ID) or policy scripted (sim.launch.py); got policy {model.policy!r}, "
                             f"checkpoint {model.checkpoint!r}")


class Actions(Protocol):
    """What the node does for the port (each returns at once; a service call is asynchronous and
    its answer comes back through ``answer``, from the node's executor thread)."""

    def start_trial(self, instruction: str, task: str, model_id: str, checkpoint: str, served_model_id: str,
                    answer: Answer) -> None: ...

    def select_model(self, model_id: str, model: str, answer: Answer) -> None: ...

    def stop_trial(self, answer: Answer) -> None: ...

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
    supervisor's results file, read for the table and the plan's progress (same machine).
    ``plan``: an evaluation plan to walk through (its models' checkpoints checked at once).
    ``pending_timeout``: seconds a Start may wait for a model load and the supervisor's answer.
    """

    def __init__(self, actions: Actions, results_file: str = "", model_id: str = "",
                 presets: tuple[str, ...] = (), plan: EvalPlan | None = None, pending_timeout: float = 900.0):
        self.actions = actions
        self.results_file = results_file or None
        self.model_id = model_id
        self.plan = plan
        if plan is not None:
            for m in plan.models:
                policy_model(m)
            if not self.results_file:
                raise ConfigurationError("an evaluation plan needs the supervisor's results_file to resume from")
        self.presets = tuple(t.instruction for t in plan.tasks) if plan is not None else presets
        self._lock = threading.Lock()
        self._pending = ""  # what a Start waits for (a model load, the supervisor's answer)
        self._pending_since = 0.0
        self._attempt = 0  # which Start an answer belongs to: one that timed out is not acted on
        self.pending_timeout = pending_timeout
        self._note = ""  # the last refusal or failure of a Start or Stop, shown until the next
        self._trial_models: dict[int, PlannedTrial] = {}
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
        plan_view = self._plan_view()  # reads the results file: not under the lock the callbacks take
        with self._lock:
            tr = self._trial
            chunks = [t for t in self._chunks if now - t <= 5.0]
            rate = (len(chunks) - 1) / (chunks[-1] - chunks[0]) if len(chunks) > 1 and chunks[-1] > chunks[0] else None
            elapsed = now - self._running_since if self._running_since is not None else 0.0
            planned = self._trial_models.get(tr.trial_id)
            model, task = self.model_id, ""
            if self.plan is not None:
                # Blind: no model on the page until the whole plan is scored (one trial's model at a
                # time would let the operator tally the models as the series goes).
                hidden = self.plan.blind and (tr.state in ACTIVE or plan_view.next_task != "")
                model = "" if hidden or planned is None else planned.model.id
                task = planned.task.name if planned is not None and tr.state in ACTIVE else ""
            if self._pending and now - self._pending_since > self.pending_timeout:
                self._pending, self._note = "", f"no answer after {self.pending_timeout:g} s ({self._pending}): check " \
                                                 "the policy and supervisor nodes"
            reason = self._pending or self._note or tr.reason
            return ConsoleStatus(state=tr.state, trial_id=tr.trial_id, instruction=tr.instruction, task=task,
                                 model=model, elapsed_s=round(elapsed, 2), steps=tr.steps, reason=reason,
                                 latency_s=self._latency, rate_hz=rate, safety=self._safety, plan=plan_view,
                                 presets=self.presets, frame_seq=self._seq)

    def _results(self):
        import pathlib

        path = self.results_file
        return load_results(path).results if path and pathlib.Path(path).exists() else ()

    def _plan_view(self) -> PlanView | None:
        return None if self.plan is None else PlanView.of(self.plan, progress(self.plan, self._results()))

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
        with self._lock:
            if self._safety.estopped:
                raise TrialBusyError("e-stop is latched: press Reset after checking the arm")
            if self._pending:
                raise TrialBusyError(f"busy: {self._pending}")
            if self._trial.state in ACTIVE:
                raise TrialBusyError(f"trial {self._trial.trial_id} is {self._trial.state}: stop or score it first")
            planned = None
            if self.plan is not None:
                planned = progress(self.plan, self._results()).next
                if planned is None:
                    raise TrialBusyError("the evaluation plan is complete")
            elif not instruction.strip():
                raise InvalidInputError("type an instruction (or pick a preset) first")
            self._note = ""
            self._attempt += 1
            attempt = self._attempt
            self._pending_since = time.monotonic()
            if planned is None:
                self._pending = "starting the trial (waiting for the supervisor)"
            else:
                self._pending = "loading the next model" if self.plan.blind else f"loading model {planned.model.id}"
        if planned is None:
            self.actions.start_trial(instruction.strip(), task.strip(), "", "", "", self._started(None))
        else:
            self.actions.select_model(planned.model.id, policy_model(planned.model), self._selected(planned, attempt))

    def _selected(self, planned: PlannedTrial, attempt: int) -> Answer:
        def answer(ok: bool, message: str, served: Any) -> None:
            with self._lock:
                if attempt != self._attempt or not self._pending:
                    return  # this Start was given up (timed out): never start a trial late
            if not ok:
                self._fail(f"the policy node did not switch model: {message}")
                return
            with self._lock:
                self._pending = "starting the trial (waiting for the supervisor)"
            m = planned.model
            self.actions.start_trial(planned.task.instruction, planned.task.name, m.id, m.checkpoint or m.policy,
                                     str(served or ""), self._started(planned))
        return answer

    def _started(self, planned: PlannedTrial | None) -> Answer:
        def answer(ok: bool, message: str, trial_id: Any) -> None:
            if not ok:
                self._fail(f"trial not started: {message}")
                return
            with self._lock:
                self._pending = ""
                if planned is not None:
                    self._trial_models[int(trial_id)] = planned
        return answer

    def _fail(self, note: str) -> None:
        with self._lock:
            self._pending, self._note = "", note

    def stop(self) -> None:
        with self._lock:
            if self._trial.state not in ("RESETTING", "RUNNING"):
                raise TrialBusyError(f"no trial is running (trial {self._trial.trial_id} is {self._trial.state})")
        self.actions.stop_trial(lambda ok, message, _=None: None if ok else self._fail(f"stop refused: {message}"))

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
        with self._lock:
            tr = self._trial
        blind = self.plan is not None and self.plan.blind
        hide = tr.trial_id if blind and tr.state in ACTIVE else 0
        pool = blind and progress(self.plan, self._results()).next is not None
        return results_view(self.results_file, hide_model_of=hide, pool_models=pool)
