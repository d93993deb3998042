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
    execution_mode, execute_steps, max_chunk_age, ensemble_decay, blend_aggregate,
        blend_threshold, rtc_guidance_weight, rtc_mask_horizon: chunk execution, see
        :class:`SchedulerConfig` (``execution_mode`` is its ``mode``).
    max_policy_failures: consecutive failed inferences (decode errors, crashes) after which
        the trial is ended as a fault instead of holding forever.
    """

    control_rate_hz: float = 10.0
    camera_rate_hz: float = 5.0
    max_image_age: float = 0.5
    execute_steps: int = 1
    max_chunk_age: float = 1.0
    max_policy_failures: int = 3
    execution_mode: str = "hold"
    ensemble_decay: float = 0.01
    blend_aggregate: str = "weighted_average"
    blend_threshold: float = 0.5
    rtc_guidance_weight: float = 5.0
    rtc_mask_horizon: int = 0

    def __post_init__(self) -> None:
        for name in ("control_rate_hz", "camera_rate_hz", "max_image_age"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigurationError(f"{name} must be a positive number, got {v!r}")
        if self.max_policy_failures < 1:
            raise ConfigurationError(f"max_policy_failures must be >= 1, got {self.max_policy_failures}")
        _ = self.scheduler  # validates the execution parameters

    @property
    def tick_period(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def scheduler(self) -> SchedulerConfig:
        return SchedulerConfig(
            execute_steps=self.execute_steps, max_chunk_age=self.max_chunk_age, tick_period=self.tick_period,
            mode=self.execution_mode, ensemble_decay=self.ensemble_decay, blend_aggregate=self.blend_aggregate,
            blend_threshold=self.blend_threshold, rtc_guidance_weight=self.rtc_guidance_weight,
            rtc_mask_horizon=self.rtc_mask_horizon)


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
        check_mode(self.config, worker.policy)
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
        self._last_action: tuple | None = None
        self._gripper = 1.0
        self._fault_reported = False
        self._expected_latency = 0.0
        self._submitted_at = -math.inf
        self._reset_pending: str | None = None

    def reconfigure(self, config: LoopConfig) -> None:
        """New loop parameters (a ROS parameter change). A change of chunk execution applies from
        the next chunk: the current ones are dropped and the arm holds until it arrives."""
        check_mode(config, self.worker.policy)
        old, self.config = self.config, config
        if old.scheduler != config.scheduler:
            self.scheduler = ActionScheduler(config.scheduler)

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
        new_step = scheduled.step_key != self._last_action
        self._last_action = scheduled.step_key
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
        if self.scheduler.wants_observation(now, self._expected_latency, frame.stamp):
            guide = self.scheduler.guide(frame.stamp, self._expected_latency)
            if self.worker.submit(frame, self.instruction, now, guide=guide):
                # One inference is in flight at a time, so the next outcome is this one.
                self._inflight_trial = self.trial_id
                self._last_submitted = frame.stamp
                self._submitted_at = now
                self.scheduler.submitted(frame.stamp)

    def _poll(self, now: float) -> tuple[ActionChunk | None, float]:
        outcome = self.worker.poll(now)
        return (None, 0.0) if outcome is None else self._take(outcome, now)

    def _take(self, outcome: InferenceOutcome, now: float) -> tuple[ActionChunk | None, float]:
        self.latency.add(outcome.latency)
        # The latency that matters for scheduling is the loop's: from the tick that submitted the
        # frame to the tick that took the chunk (a threaded worker's result waits for a tick; a
        # simulated one arrives when its virtual latency has passed).
        waited = max(0.0, now - self._submitted_at) if math.isfinite(self._submitted_at) else outcome.latency
        self._expected_latency = waited if self._expected_latency == 0 else (
            0.8 * self._expected_latency + 0.2 * waited)
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


def check_mode(config: LoopConfig, policy: object) -> None:
    """Refuse an execution mode the policy cannot run (rtc needs a guidable flow head), with the reason."""
    if config.execution_mode == "rtc" and not getattr(policy, "supports_guide", False):
        raise ConfigurationError(
            "execution_mode rtc (real-time chunking) needs a policy that samples with guidance: NORA-1.5's flow "
            f"head (action_head: flow); {getattr(policy, 'model_id', policy)!r} cannot. Use hold, interpolate, "
            "ensemble or blend")
