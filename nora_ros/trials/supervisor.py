"""The trial supervisor: instructions in, a trial state machine, scores, durable results out.

Event-driven and ROS-free: no threads, sleeps or clock of its own. Its driver (the ROS node, the
in-process runner, a test) calls an input with ``now`` (seconds, on one clock that does not run
backwards: ROS time in the node, wall or monotonic time in the runner). Every input returns the status events it caused, in order, and
passes each to the listeners added with :meth:`TrialSupervisor.add_listener`, so the node can
publish them on ``trial/status`` and the runner can print them. It is not thread-safe: call it
from one thread (the node's executor, the runner's loop).

States of a trial (DESIGN.md section 5, issue 4)::

    IDLE --instruction--> RESETTING --arm_at_start--> RUNNING --step/time limit, stop--> AWAITING_SCORE
                                                                                              |
                                                                                 score -> DONE
    any state with a trial --e-stop, fault, abort, reset timeout--> ABORTED

- RESETTING is the request to the arm side: "go to the start pose and open the gripper, then
  call :meth:`~TrialSupervisor.arm_at_start`". If that does not come within
  ``reset_timeout_s`` (checked by :meth:`~TrialSupervisor.tick`), the trial aborts.
- The policy may act only while :attr:`~TrialSupervisor.policy_enabled` (state RUNNING, no
  e-stop). Steps reported outside RUNNING are not counted.
- DONE and ABORTED end a trial; a new instruction then starts the next one. A trial that ends
  is written to the results store (if any) before its DONE/ABORTED event is emitted, so a
  reported result is on disk. Aborted trials are stored too, with score ``abort``.
- While a trial is active, a new instruction is rejected (``on_busy="reject"``) or queued
  (``on_busy="queue"``); a queued instruction starts when the trial before it is DONE. Any
  abort clears the queue: after an e-stop or fault, nothing starts moving on its own.
- The e-stop is latched here too: after :meth:`~TrialSupervisor.estop`, instructions are
  rejected until :meth:`~TrialSupervisor.release_estop` (the node calls these from the safety
  node's status).

The trial's types (states, status events, config, errors) are in :mod:`nora_ros.trials.state`,
the record of the trial under way in :mod:`nora_ros.trials.record`.

Rejected inputs raise: :class:`~nora_ros.errors.InvalidInstructionError` (bad text),
:class:`TrialBusyError` (busy, queue off or full, or e-stop latched),
:class:`TrialStateError` (an input that makes no sense now, e.g. a score with no trial waiting
for one). Nothing moves on a rejected input.
"""

from __future__ import annotations

import collections
import math

from nora_ros.errors import InvalidInputError
from nora_ros.trials.instruction import validate_instruction
from nora_ros.trials.record import ActiveTrial, QueuedInstruction, clean_label, fraction_text
from nora_ros.trials.results_store import ResultsStore
from nora_ros.trials.score import Score, ScoreKind, parse_score
from nora_ros.trials.state import (
    ACTIVE_STATES,
    Listener,
    Recorder,
    ResultWriteError,
    RunInfo,
    SupervisorConfig,
    TrialBusyError,
    TrialState,
    TrialStateError,
    TrialStatus,
)


class TrialSupervisor:
    """The trial state machine (see the module docstring for states and contract)."""

    def __init__(
        self,
        config: SupervisorConfig | None = None,
        run_info: RunInfo | None = None,
        store: ResultsStore | None = None,
        recorder: Recorder | None = None,
    ):
        self.config = config if config is not None else SupervisorConfig()
        self.run_info = run_info if run_info is not None else RunInfo()
        self.store = store
        self.recorder = recorder
        self._listeners: list[Listener] = []
        self._state = TrialState.IDLE
        self._trial: ActiveTrial | None = None
        self._last_trial_id = 0
        self._last_instruction = ""
        self._last_task = ""
        self._queue: collections.deque[QueuedInstruction] = collections.deque()
        self._estopped = False
        self._now: float | None = None
        self._next_local_id = 1
        self._pending_error: ResultWriteError | None = None

    # ----------------------------------------------------------------- read-only views

    @property
    def state(self) -> TrialState:
        return self._state

    @property
    def policy_enabled(self) -> bool:
        """True only while a trial is RUNNING and no e-stop is latched: the policy may act."""
        return self._state is TrialState.RUNNING and not self._estopped

    @property
    def instruction(self) -> str:
        """The instruction of the current (or last) trial, ``""`` before the first."""
        return self._trial.instruction if self._trial else self._last_instruction

    @property
    def trial_id(self) -> int:
        """Id of the current (or last) trial, 0 before the first."""
        return self._trial.trial_id if self._trial else self._last_trial_id

    @property
    def steps(self) -> int:
        return self._trial.steps if self._trial else 0

    @property
    def trial_created(self) -> float | None:
        """When the current trial was created (its RESETTING began); ``None`` without one."""
        return self._trial.created if self._trial else None

    @property
    def estopped(self) -> bool:
        return self._estopped

    @property
    def queued(self) -> tuple[str, ...]:
        """Instructions waiting for the active trial to finish, oldest first."""
        return tuple(q.instruction for q in self._queue)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every status event, after the transition is complete."""
        self._listeners.append(listener)

    # ----------------------------------------------------------------- inputs

    def submit_instruction(
        self, text: str | bytes, now: float, *, task: str | None = None, category: str = "",
        run_info: RunInfo | None = None,
    ) -> list[TrialStatus]:
        """A new operator instruction: starts a trial when none is active.

        ``task`` names the table row (default: the instruction itself); ``category`` groups
        rows; ``run_info``: what this trial evaluates (a plan's model; default the supervisor's). Raises :class:`~nora_ros.errors.InvalidInstructionError` for bad text and
        :class:`TrialBusyError` when it cannot start or queue; nothing moves then.
        """
        self._clock(now)
        instruction = validate_instruction(text, self.config.max_instruction_chars)
        task_name = instruction if task is None else clean_label(task, "task")
        category = clean_label(category, "category", allow_empty=True)
        if self._estopped:
            raise TrialBusyError("e-stop is latched: release it before starting a trial")
        queued = QueuedInstruction(instruction, task_name, category, run_info)
        if self._state in ACTIVE_STATES:
            if self.config.on_busy == "reject":
                raise TrialBusyError(
                    f"trial {self.trial_id} is {self._state.value}: stop or score it first (or set on_busy='queue')"
                )
            if len(self._queue) >= self.config.max_queue:
                raise TrialBusyError(f"instruction queue is full ({self.config.max_queue} waiting)")
            self._queue.append(queued)
            return self._emit([self._status(f"queued {instruction!r} ({len(self._queue)} waiting)", now)])
        return self._emit(self._start_trial(queued, now))

    def arm_at_start(self, now: float) -> list[TrialStatus]:
        """The arm side reports the start pose reached with the gripper open: the policy runs.

        Idempotent: reports outside RESETTING are ignored (returns no events).
        """
        self._clock(now)
        if self._state is not TrialState.RESETTING:
            return []
        events = self._check_reset_timeout(now)
        if events:
            return self._emit(events)
        trial = self._trial
        assert trial is not None
        if self.recorder is not None:
            try:
                trial.recording = self.recorder.start(trial.trial_id, trial.instruction)
                trial.recording_active = True
            except Exception as exc:  # a recorder is a plug-in: any failure aborts, the arm holds
                return self._emit(self._abort(f"recorder failed to start: {exc}", now))
        trial.running_since = now
        self._state = TrialState.RUNNING
        return self._emit([self._status("arm at start pose; policy enabled", now)])

    def step(self, now: float, steps: int = 1) -> list[TrialStatus]:
        """The policy executed ``steps`` more actions; stops for scoring at the step/time limit."""
        self._clock(now)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise InvalidInputError(f"steps must be a non-negative integer, got {steps!r}")
        if self._state is not TrialState.RUNNING:
            return []
        assert self._trial is not None
        self._trial.steps += steps
        return self._emit(self._check_limits(now))

    def tick(self, now: float) -> list[TrialStatus]:
        """Time passes: checks the reset timeout and the RUNNING time limit."""
        self._clock(now)
        if self._state is TrialState.RESETTING:
            return self._emit(self._check_reset_timeout(now))
        if self._state is TrialState.RUNNING:
            return self._emit(self._check_limits(now))
        return []

    def stop(self, now: float, reason: str = "operator stop") -> list[TrialStatus]:
        """The operator ends the rollout early: RUNNING -> AWAITING_SCORE.

        During RESETTING the trial never ran, so it aborts. Elsewhere this does nothing.
        """
        self._clock(now)
        if self._state is TrialState.RUNNING:
            assert self._trial is not None
            self._trial.interventions.append(f"{reason} at step {self._trial.steps}")
            return self._emit(self._to_awaiting(reason, now))
        if self._state is TrialState.RESETTING:
            return self._emit(self._abort(f"{reason} during reset", now))
        return []

    def score(self, score: Score | str, now: float) -> list[TrialStatus]:
        """Judge the trial: AWAITING_SCORE -> DONE (or ABORTED for an ``abort`` score).

        Operator text is parsed with :func:`nora_ros.trials.score.parse_score`. A score while RUNNING
        first stops the rollout (the operator saw the outcome). An ``abort`` score aborts an
        active trial in any state. Raises :class:`TrialStateError` when no trial is active.
        """
        self._clock(now)
        if not isinstance(score, Score):
            score = parse_score(score)
        if self._state not in ACTIVE_STATES:
            raise TrialStateError(f"no trial is waiting for a score (state {self._state.value})")
        if score.kind is ScoreKind.ABORT:
            reason = f"aborted by {score.source}" + (f": {score.note}" if score.note else "")
            return self._emit(self._abort(reason, now, score=score))
        if self._state is TrialState.RESETTING:
            raise TrialStateError(f"trial {self.trial_id} has not run yet (RESETTING); only 'abort' applies")
        events: list[TrialStatus] = []
        if self._state is TrialState.RUNNING:
            events += self._to_awaiting(f"scored {score.kind.value} while running", now)
        events += self._finish(score, now)
        return self._emit(events)

    def abort(self, reason: str, now: float) -> list[TrialStatus]:
        """The operator aborts the active trial (no-op when none is active)."""
        self._clock(now)
        if self._state not in ACTIVE_STATES:
            return []
        return self._emit(self._abort(f"operator abort: {reason}", now))

    def fault(self, reason: str, now: float) -> list[TrialStatus]:
        """A component failed (arm driver, camera, policy): the active trial aborts.

        With no active trial the fault is reported as an event in the current state.
        """
        self._clock(now)
        if self._state not in ACTIVE_STATES:
            return self._emit([self._status(f"fault (no active trial): {reason}", now)])
        return self._emit(self._abort(f"fault: {reason}", now))

    def estop(self, now: float, reason: str = "e-stop") -> list[TrialStatus]:
        """Emergency stop: latches, and aborts the active trial. Repeated calls are no-ops."""
        self._clock(now)
        if self._estopped:
            return []
        self._estopped = True
        if self._state in ACTIVE_STATES:
            return self._emit(self._abort(reason, now))
        dropped = self._clear_queue()
        return self._emit([self._status(f"{reason} latched{dropped}", now)])

    def release_estop(self, now: float) -> list[TrialStatus]:
        """The e-stop was reset (by the operator, at the safety node): instructions are accepted again."""
        self._clock(now)
        if not self._estopped:
            return []
        self._estopped = False
        return self._emit([self._status("e-stop released", now)])

    def safety_event(self, text: str, now: float) -> list[TrialStatus]:
        """Record a safety event (a limit acted, a command was held) in the active trial's result."""
        self._clock(now)
        if self._trial is not None and self._state in ACTIVE_STATES:
            self._trial.safety_events.append(f"{self._trial.elapsed(now)} {text}")
        return []

    def intervention(self, text: str, now: float) -> list[TrialStatus]:
        """Record an operator intervention (object nudged, arm guided) in the active trial's result."""
        self._clock(now)
        if self._trial is not None and self._state in ACTIVE_STATES:
            self._trial.interventions.append(f"{self._trial.elapsed(now)} {text}")
        return []

    # ----------------------------------------------------------------- transitions

    def _start_trial(self, q: QueuedInstruction, now: float) -> list[TrialStatus]:
        if self.store is not None:
            tid = self.store.allocate_trial_id()
        else:
            tid = max(self._next_local_id, self._last_trial_id + 1)
            self._next_local_id = tid + 1
        self._trial = ActiveTrial(tid, q.instruction, q.task, q.category, created=now, run_info=q.run_info)
        self._state = TrialState.RESETTING
        return [self._status("new trial: move to the start pose, open the gripper", now)]

    def _to_awaiting(self, reason: str, now: float) -> list[TrialStatus]:
        trial = self._trial
        assert trial is not None
        trial.ended_running = now
        trial.stop_recording(self.recorder)
        self._state = TrialState.AWAITING_SCORE
        return [self._status(reason, now)]

    def _check_limits(self, now: float) -> list[TrialStatus]:
        trial = self._trial
        assert trial is not None and trial.running_since is not None
        if trial.steps >= self.config.max_steps:
            return self._to_awaiting(f"step limit {self.config.max_steps} reached", now)
        if now - trial.running_since >= self.config.time_limit_s:
            return self._to_awaiting(f"time limit {self.config.time_limit_s:g} s reached", now)
        return []

    def _check_reset_timeout(self, now: float) -> list[TrialStatus]:
        trial = self._trial
        assert trial is not None
        if now - trial.created > self.config.reset_timeout_s:
            return self._abort(f"fault: arm did not reach the start pose within {self.config.reset_timeout_s:g} s", now)
        return []

    def _abort(self, reason: str, now: float, score: Score | None = None) -> list[TrialStatus]:
        trial = self._trial
        assert trial is not None
        if trial.running_since is not None and trial.ended_running is None:
            trial.ended_running = now
        trial.stop_recording(self.recorder)
        if score is None:
            score = Score(ScoreKind.ABORT, note=reason, source="supervisor")
        dropped = self._clear_queue()
        return self._end(TrialState.ABORTED, score, reason + dropped, now)

    def _finish(self, score: Score, now: float) -> list[TrialStatus]:
        events = self._end(TrialState.DONE, score, f"scored {score.kind.value}" + fraction_text(score), now)
        if self._queue and not self._estopped:
            events += self._start_trial(self._queue.popleft(), now)
        return events

    def _end(self, state: TrialState, score: Score, reason: str, now: float) -> list[TrialStatus]:
        trial = self._trial
        assert trial is not None
        result = trial.result(state, score, reason, now, self.run_info)
        self._state = state
        self._trial = None
        self._last_trial_id = trial.trial_id
        self._last_instruction = trial.instruction
        self._last_task = trial.task
        write_error = None
        if self.store is not None:
            try:
                result = self.store.append(result)
            except OSError as exc:
                write_error = exc
                reason = f"{reason}; RESULT NOT SAVED: {exc}"
        status = TrialStatus(
            trial.trial_id,
            trial.instruction,
            state,
            reason,
            now,
            trial.task,
            trial.steps,
            len(self._queue),
            self.config.start_pose,
            result,
        )
        if write_error is not None:
            # Raised by _emit once every event of this input went out: the trial did end.
            self._pending_error = ResultWriteError(
                f"trial {trial.trial_id} could not be written to {self.store.path}: {write_error}"
            )
            self._pending_error.__cause__ = write_error
        return [status]

    def _clear_queue(self) -> str:
        n = len(self._queue)
        self._queue.clear()
        return f"; {n} queued instruction(s) dropped" if n else ""

    # ----------------------------------------------------------------- helpers

    def _status(self, reason: str, now: float) -> TrialStatus:
        t = self._trial
        return TrialStatus(
            t.trial_id if t else self._last_trial_id,
            t.instruction if t else self._last_instruction,
            self._state,
            reason,
            now,
            t.task if t else self._last_task,
            t.steps if t else 0,
            len(self._queue),
            self.config.start_pose,
        )

    def _emit(self, events: list[TrialStatus]) -> list[TrialStatus]:
        for event in events:
            for listener in self._listeners:
                listener(event)
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            raise error
        return events

    def _clock(self, now: float) -> None:
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise InvalidInputError(f"now must be a finite number of seconds, got {now!r}")
        if self._now is not None and now < self._now:
            raise InvalidInputError(
                f"clock went backwards from {self._now} to {now}: drive the supervisor with one steady clock"
            )
        self._now = float(now)
