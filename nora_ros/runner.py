"""The closed loop without ROS: camera -> policy -> scheduler -> safety -> arm -> supervisor.

Same timing semantics as the nodes (DESIGN.md section 4): frames arrive at the camera rate,
inference runs in a worker (:mod:`nora_ros.policy.worker`) that the control tick polls, the tick
runs at ``control_rate_hz`` and never waits for inference, and when no valid action is due the
arm is sent a hold, never a stale action. Every command passes the safety filter
(:class:`~nora_ros.safety.SafeArm`) on its way to the arm.

:class:`ControlLoop` is one tick of that pipeline and is reused by the benchmarks; the
functions below run whole trials in the simulator under the :class:`TrialSupervisor`.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from nora_ros.actions import EndEffectorCommand
from nora_ros.camera.frame import Frame
from nora_ros.control.policy_loop import RUNNING, LoopConfig, PolicyLoop, PolicyTick
from nora_ros.policy.worker import ThreadedInference, VirtualInference
from nora_ros.robot.arm import ArmState
from nora_ros.safety import SafeArm, SafetyResult

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    """Where frames come from (the simulator's camera, a video, a device)."""

    def capture(self, now: float) -> Frame:
        """A frame taken at ``now``."""


@dataclass(frozen=True)
class TickRecord:
    """What happened on one control tick, for plots, logs and recordings: the measured state,
    the policy side's output (command or hold with its reason, a chunk that arrived), what the
    safety filter decided, and the frame taken on this tick (if any)."""

    now: float
    state: ArmState
    policy: PolicyTick
    result: SafetyResult
    frame: Frame | None

    @property
    def commanded(self) -> EndEffectorCommand | None:
        """The policy's command; ``None`` when it held (no valid action due, or no trial)."""
        cmd = self.policy.command
        return None if cmd is None or self.policy.hold_reason else cmd

    @property
    def hold_reason(self) -> str:
        return self.policy.hold_reason

    @property
    def new_step(self) -> bool:
        return self.policy.new_step


class ControlLoop:
    """One control tick of the whole pipeline: the camera feeds the policy side
    (:class:`~nora_ros.control.policy_loop.PolicyLoop`, exactly what the ROS policy node runs) and its
    command goes through :class:`~nora_ros.safety.SafeArm` to the arm.

    Not thread-safe: the caller's loop calls :meth:`tick` at a fixed rate with the current time
    on the arm's clock.
    """

    def __init__(self, camera: FrameSource, worker: ThreadedInference | VirtualInference, safe_arm: SafeArm,
                 config: LoopConfig | None = None):
        self.config = config or LoopConfig()
        self.camera = camera
        self.safe_arm = safe_arm
        self.policy = PolicyLoop(worker, self.config)
        self._trial = 0
        self._next_frame = -math.inf

    @property
    def worker(self) -> ThreadedInference | VirtualInference:
        return self.policy.worker

    @worker.setter
    def worker(self, worker: ThreadedInference | VirtualInference) -> None:
        self.policy.worker = worker

    def begin(self, instruction: str, now: float = 0.0) -> None:
        """Start a trial: the policy forgets the last one, the target is where the arm is."""
        self._trial += 1
        self.policy.on_trial(self._trial, RUNNING, instruction, now)
        self.safe_arm.reanchor()

    def end(self, now: float = 0.0) -> None:
        """The trial is over: chunks are dropped and the next tick holds."""
        self.policy.on_trial(self._trial, "DONE", self.policy.instruction, now)

    def tick(self, now: float, policy_enabled: bool) -> TickRecord:
        """Run one control tick at ``now``."""
        frame = None
        period = 1.0 / self.config.camera_rate_hz
        if now >= self._next_frame - 1e-9:  # tick times are float sums: within a nanosecond is on time
            frame = self.camera.capture(now)
            self.policy.on_frame(frame)
            # frames stay on their grid (a 5 Hz camera under a 10 Hz loop: every other tick), and
            # restart from now after a gap (the first frame, a pause between trials)
            behind = now - self._next_frame > period
            self._next_frame = now + period if behind else self._next_frame + period
        if not policy_enabled and self.policy.running:
            self.end(now)
        out = self.policy.tick(now)
        state = self.safe_arm.arm.state()
        result = self.safe_arm.tick(out.command, now)
        return TickRecord(now, state, out, result, frame)

    @property
    def policy_failed(self) -> bool:
        """Too many consecutive failed inferences: the trial should end as a fault."""
        return self.policy.failures >= self.config.max_policy_failures

    @property
    def failures(self) -> int:
        return self.policy.failures

    @property
    def last_error(self) -> str:
        return self.policy.last_error


# --------------------------------------------------------------------------- simulated trials


class SimCamera:
    """The simulator's camera as a :class:`FrameSource` (``render=False``: ground truth only)."""

    def __init__(self, world, render: bool = True):
        self.world = world
        self.render = render

    def capture(self, now: float) -> Frame:
        return self.world.observation(render=self.render)


@dataclass
class TrialLog:
    """Per-trial record kept by :func:`run_sim_trials` (ticks for plots, frames for a video)."""

    trial_id: int
    instruction: str
    ticks: list[TickRecord] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    outcome: str = ""
    limits: collections.Counter = field(default_factory=collections.Counter)
    wall_s: float = 0.0

    @property
    def sim_s(self) -> float:
        """Sim seconds from the first to the last tick."""
        return self.ticks[-1].now - self.ticks[0].now if self.ticks else 0.0


Pacer = Callable[[float], None]
"""Called with the sim time after each tick; real-time runs sleep until that time has passed."""


def run_sim_trial(world, arm, loop: ControlLoop, supervisor, instruction: str, seed: int,
                  pacer: Pacer | None = None, keep_frames: bool = False,
                  on_tick: Callable[[TickRecord], None] | None = None) -> TrialLog:
    """Run one trial in the simulator under ``supervisor`` and score it with the sim check.

    The trial ends early when the task succeeds, at the supervisor's step or time limit, when
    the policy fails repeatedly (a fault), or on an e-stop.
    """
    import time

    from nora_ros.trials.state import TrialState

    t_wall = time.perf_counter()
    world.reset(seed=seed)
    now = world.time
    supervisor.submit_instruction(instruction, now)
    log_ = TrialLog(trial_id=supervisor.trial_id, instruction=instruction)
    # The sim reset put the arm at the start pose with the gripper open: report it.
    supervisor.arm_at_start(now)
    loop.begin(instruction, now)
    dt = loop.config.tick_period
    success = None
    while supervisor.state is TrialState.RUNNING:
        now = world.time
        rec = loop.tick(now, supervisor.policy_enabled)
        log_.ticks.append(rec)
        if keep_frames and rec.frame is not None and rec.frame.image.shape[0] > 1:
            log_.frames.append(rec.frame)
        for lim in rec.result.status.limits:
            log_.limits[lim.value] += 1
        if on_tick is not None:
            on_tick(rec)
        if rec.new_step:
            supervisor.step(now)
        if loop.policy_failed:
            supervisor.fault(f"policy failed {loop.failures} times in a row: {loop.last_error}", now)
            break
        if rec.result.status.estopped:
            supervisor.estop(now, rec.result.status.estop_reason or "e-stop")
            break
        world.step(dt)
        if pacer is not None:
            pacer(world.time)
        outcome = world.success()
        if outcome.success:
            success = outcome
            supervisor.stop(world.time, f"task success: {outcome.reason}")
            break
        supervisor.tick(world.time)
    loop.end(world.time)
    arm.hold()
    now = world.time
    for name, count in sorted(log_.limits.items()):
        supervisor.safety_event(f"{name} acted on {count} ticks", now)
    if supervisor.state is TrialState.AWAITING_SCORE:
        from nora_ros.trials.score import Score

        outcome = success or world.success()
        supervisor.score(Score.from_success_check(outcome.success, note=f"sim check: {outcome.reason}"), now)
        log_.outcome = f"{'success' if outcome.success else 'failure'}: {outcome.reason}"
    else:
        log_.outcome = f"{supervisor.state.value}"
    log_.wall_s = time.perf_counter() - t_wall
    return log_


def realtime_pacer(start_sim: float = 0.0) -> Pacer:
    """A pacer that keeps sim time in step with the wall clock (sleeps when ahead)."""
    from nora_ros.clock import MonotonicClock

    clock = MonotonicClock()
    origin: list[float] = []

    def pace(sim_time: float) -> None:
        if not origin:
            origin.append(clock.now() - (sim_time - start_sim))
        clock.sleep_until(origin[0] + (sim_time - start_sim))

    return pace


def executed_path(ticks: list[TickRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(times, policy commands integrated, safety-filter targets, measured EE positions), the
    series for a commanded-vs-executed plot. The integration of the policy's commands starts
    at the first measured position and ignores the filter, to show what it changed."""
    if not ticks:
        empty = np.zeros((0, 3))
        return np.zeros(0), empty, empty, empty
    t = np.array([r.now for r in ticks])
    measured = np.array([r.state.ee_pose[:3, 3] for r in ticks])
    target = np.array([r.result.target_pose[:3, 3] for r in ticks])
    commanded = np.empty_like(measured)
    pos = measured[0].copy()
    for i, r in enumerate(ticks):
        if r.commanded is not None and i > 0:
            pos = pos + r.commanded.linear * (r.now - ticks[i - 1].now)
        commanded[i] = pos
    return t, commanded, target, measured


# --------------------------------------------------------------------------- assembly


@dataclass
class SimStack:
    """Every component of a simulated closed loop, wired; see :func:`build_sim_stack`."""

    world: object
    arm: object
    safe_arm: SafeArm
    loop: ControlLoop
    supervisor: object
    policy: object
    recorder: object | None = None
    """A rosbag2 recorder (:mod:`nora_ros.bag.record`) or ``None``; its ``on_tick`` takes the ticks."""

    def close(self) -> None:
        self.loop.worker.close()
        self.policy.close()
        self.world.close()
        if self.recorder is not None:
            self.recorder.close()


def build_sim_stack(policy_factory, *, task: str = "carrot_in_pot", seed: int = 0,
                    loop_config: LoopConfig | None = None, safety_overrides: dict | None = None,
                    results_path=None, model_id: str = "", checkpoint: str = "",
                    max_steps: int = 60, realtime: bool = False, latency: float | None = 0.0,
                    render: bool = True, recorder=None, arm_config=None) -> SimStack:
    """Wire world, MuJoCo arm, safety filter, policy worker, control loop and supervisor.

    ``policy_factory(world)`` makes the policy (the scripted expert needs the world's ground
    truth; NORA ignores it). ``realtime`` runs inference in a thread against the wall clock;
    otherwise :class:`VirtualInference` charges ``latency`` seconds (``None``: measured) of
    sim time per inference. The safety filter's tick matches the control rate. ``recorder``
    (:class:`nora_ros.bag.record.TrialBags` or ``SessionBag``) becomes the supervisor's recorder
    and status listener; pass its ``on_tick`` to :func:`run_sim_trial`. ``arm_config``: the
    simulated arm's :class:`~nora_ros.sim.arm.MujocoArmConfig` (e.g. ``streaming`` for 25-50 Hz).
    """
    from nora_ros.safety import SafetyConfig, SafetyFilter
    from nora_ros.sim.arm import MujocoArm
    from nora_ros.sim.world import SimWorld
    from nora_ros.trials.results_store import ResultsStore, config_digest
    from nora_ros.trials.state import RunInfo, SupervisorConfig
    from nora_ros.trials.supervisor import TrialSupervisor

    loop_config = loop_config or LoopConfig()
    world = SimWorld(task=task, seed=seed)
    arm = MujocoArm(world, arm_config)
    safety_config = SafetyConfig.from_mapping({**(safety_overrides or {}), "tick_period": loop_config.tick_period})
    safe_arm = SafeArm(SafetyFilter(safety_config, world.kinematics), arm)
    policy = policy_factory(world)
    worker = ThreadedInference(policy) if realtime else VirtualInference(policy, latency)
    loop = ControlLoop(SimCamera(world, render=render), worker, safe_arm, loop_config)
    digest = config_digest({"loop": loop_config.__dict__, "safety": safety_config.to_mapping(), "task": task})
    run_info = RunInfo(model_id=model_id or policy.model_id, checkpoint=checkpoint, config_digest=digest)
    store = ResultsStore(results_path) if results_path is not None else None
    # Time limit: the step budget at 5 Hz plus room for inference and holds.
    supervisor = TrialSupervisor(
        SupervisorConfig(max_steps=max_steps, time_limit_s=max_steps * 0.2 * 3 + 10.0),
        run_info=run_info, store=store, recorder=recorder)
    if recorder is not None:
        supervisor.add_listener(recorder.on_status)
    return SimStack(world, arm, safe_arm, loop, supervisor, policy, recorder)
