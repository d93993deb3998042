"""The policy side of the control loop, as the ROS policy node runs it (no ROS here).

The node's callbacks hand over the latest camera frame (:meth:`PolicyLoop.on_frame`) and the
latest trial status (:meth:`PolicyLoop.on_trial`); its control timer calls
:meth:`PolicyLoop.tick` at ``control_rate_hz`` and publishes what comes back. The timing
semantics are the in-process runner's (:class:`nora_ros.runner.ControlLoop`, DESIGN.md
section 4): inference runs in a worker that the tick polls, a fresh frame is submitted when
the scheduler wants the next observation, the tick never waits, and when no valid action is
due the command is zero velocity with the reason, never a stale action. The policy acts only
while the trial is RUNNING; outcomes of inferences started before the current trial began are
discarded, so nothing computed for one trial moves the arm in the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nora_ros.actions import ActionChunk, EndEffectorCommand
from nora_ros.camera.frame import Frame
from nora_ros.control.scheduler import ActionScheduler, SchedulerConfig
from nora_ros.diagnostics import LatencyMeter
from nora_ros.errors import ConfigurationError
from nora_ros.policy.worker import InferenceOutcome, ThreadedInference, VirtualInference

RUNNING = "RUNNING"


@dataclass(frozen=True)
class LoopConfig:
    """Timing of the closed loop (the policy node reads the same names from its parameters).

    control_rate_hz: control ticks per second (commands to the safety filter and the arm).
    camera_rate_hz: frames per second taken from the camera.
    max_image_age: seconds; a frame older than this is not given to the policy (stale camera).
    execute_steps / max_chunk_age: chunk execution, see :class:`SchedulerConfig`.
    max_policy_failures: consecutive failed inferences (decode errors, crashes) after which
        the trial is ended as a fault instead of holding forever.
    """

    control_rate_hz: float = 10.0
    camera_rate_hz: float = 5.0
    max_image_age: float = 0.5
    execute_steps: int = 1
    max_chunk_age: float = 1.0
    max_policy_failures: int = 3

    def __post_init__(self) -> None:
        for name in ("control_rate_hz", "camera_rate_hz", "max_image_age"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigurationError(f"{name} must be a positive number, got {v!r}")
        if self.max_policy_failures < 1:
            raise ConfigurationError(f"max_policy_failures must be >= 1, got {self.max_policy_failures}")
        SchedulerConfig(self.execute_steps, self.max_chunk_age)  # validates those two

    @property
    def tick_period(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def scheduler(self) -> SchedulerConfig:
        return SchedulerConfig(self.execute_steps, self.max_chunk_age, self.tick_period)


@dataclass(frozen=True)
class PolicyTick:
    """What the control timer publishes for one tick.

    ``command``: the command for ``cmd`` while a trial runs (zero velocity when nothing is due,
    ``hold_reason`` says why), ``None`` when no trial runs (nothing is published). ``chunk``: a
    chunk that arrived this tick, for ``action_chunk``. ``new_step``: the command starts a new
    action (the supervisor counts steps). ``fault``: set when the policy failed
    ``max_policy_failures`` times in a row, the text to end the trial with (reported once).
    """

    command: EndEffectorCommand | None
    hold_reason: str = ""
    chunk: ActionChunk | None = None
    latency: float = 0.0
    new_step: bool = False
    fault: str = ""


class PolicyLoop:
    """Frame + trial status in, one command per control tick out. Not thread-safe: the node
    calls every method from its executor thread (the worker has its own)."""

    def __init__(self, worker: ThreadedInference | VirtualInference, config: LoopConfig | None = None):
        self.config = config or LoopConfig()
        self.worker = worker
        self.scheduler = ActionScheduler(self.config.scheduler)
        self.latency = LatencyMeter()
        self.trial_id = 0
        self.instruction = ""
        self.running = False
        self.failures = 0
        self.last_error = ""
        self.chunks = 0
        self._frame: Frame | None = None
        self._inflight_trial: int | None = None
        self._last_submitted = -math.inf
        self._last_action: tuple[int, int] | None = None
        self._gripper = 1.0
        self._fault_reported = False
        self._expected_latency = 0.0
        self._reset_pending: str | None = None

    # ------------------------------------------------------------------ inputs (callbacks)
    def on_frame(self, frame: Frame) -> None:
        """The latest camera frame (older frames are simply replaced)."""
        if self._frame is None or frame.stamp >= self._frame.stamp:
            self._frame = frame

    def on_trial(self, trial_id: int, state: str, instruction: str, now: float) -> None:
        """The supervisor's latest status: the policy starts on a new RUNNING trial, stops otherwise."""
        running = state == RUNNING
        if running and (not self.running or trial_id != self.trial_id):
            self.trial_id, self.instruction = trial_id, instruction
            # policy.reset runs once the worker is idle (the first tick, unless an inference of
            # the last trial is still running): reset and act must never overlap.
            self._reset_pending = instruction
            self.scheduler.clear()
            self.failures = 0
            self.last_error = ""
            self._last_action = None
            self._gripper = 1.0  # trials start at the start pose with the gripper open
            self._fault_reported = False
        elif not running and self.running:
            self.scheduler.clear()
        self.running = running

    # ------------------------------------------------------------------ the control tick
    def tick(self, now: float) -> PolicyTick:
        if self.running and self._reset_pending is not None and not self.worker.busy:
            self.worker.policy.reset(self._reset_pending)
            self._reset_pending = None
        # Poll before submitting: a threaded worker is idle as soon as its outcome is stored, and a
        # submission ahead of the poll took that outcome's place as "in flight", so the next chunk
        # was dropped as another trial's (seen on ROS 2: 263 inferences, 200 chunks). Poll again
        # after submitting, for an outcome that is ready at once (a simulated zero latency).
        chunk, latency = self._poll(now)
        if self.running and self._reset_pending is None:
            self._maybe_submit(now)
        if chunk is None:
            chunk, latency = self._poll(now)
        if not self.running:
            return PolicyTick(None, "no trial running", chunk, latency)
        fault = ""
        if self.failures >= self.config.max_policy_failures and not self._fault_reported:
            self._fault_reported = True
            fault = f"policy failed {self.failures} times in a row: {self.last_error}"
        scheduled = self.scheduler.command_at(now)
        cmd = scheduled.command
        if cmd is None:
            return PolicyTick(EndEffectorCommand.hold(now, self._gripper), scheduled.reason, chunk, latency,
                              False, fault)
        self._gripper = cmd.gripper
        key = (cmd.chunk_id, cmd.index)
        new_step = key != self._last_action
        self._last_action = key
        return PolicyTick(cmd, "", chunk, latency, new_step, fault)

    # ------------------------------------------------------------------ internals
    def _maybe_submit(self, now: float) -> None:
        frame = self._frame
        if frame is None:
            self.last_error = "no camera frame yet"
            return
        if self.worker.busy or frame.stamp <= self._last_submitted:
            return
        age = now - frame.stamp
        if age > self.config.max_image_age:
            self.last_error = f"camera frame is {age:.3f} s old (max_image_age {self.config.max_image_age} s)"
            return
        if self.scheduler.wants_observation(now, self._expected_latency + self.config.tick_period):
            if self.worker.submit(frame, self.instruction, now):
                # One inference is in flight at a time, so the next outcome is this one.
                self._inflight_trial = self.trial_id
                self._last_submitted = frame.stamp

    def _poll(self, now: float) -> tuple[ActionChunk | None, float]:
        outcome = self.worker.poll(now)
        return (None, 0.0) if outcome is None else self._take(outcome)

    def _take(self, outcome: InferenceOutcome) -> tuple[ActionChunk | None, float]:
        self.latency.add(outcome.latency)
        self._expected_latency = outcome.latency if self._expected_latency == 0 else (
            0.8 * self._expected_latency + 0.2 * outcome.latency)
        trial, self._inflight_trial = self._inflight_trial, None
        if not self.running or trial != self.trial_id:
            return None, outcome.latency  # computed for an earlier trial (or none runs now): never executed
        if outcome.chunk is None:
            self.failures += 1
            self.last_error = outcome.error
            return None, outcome.latency
        self.failures = 0
        self.chunks += 1
        self.scheduler.offer(outcome.chunk)
        return outcome.chunk, outcome.latency

