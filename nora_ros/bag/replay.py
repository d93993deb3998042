"""Replay a recorded run through a policy, and compare with what was recorded.

For each trial of the bag (:meth:`~nora_ros.bag.run.RecordedRun.trials`), in recorded time order:

1. the policy is reset with the trial's instruction and fed the frames it was fed when
   recording: each recorded ``action_chunk`` names its frame by stamp, so a stateful policy
   (the scripted expert) sees the same sequence; without recorded chunks, every frame;
2. each replayed chunk is compared with the recorded one (per dimension, the largest
   difference over the actions both hold);
3. the replayed chunks enter the real :class:`~nora_ros.control.scheduler.ActionScheduler` when the
   recorded ones arrived, and the command due at each recorded ``cmd`` tick is compared with
   the recorded command ``[vx, vy, vz, wx, wy, wz, gripper]``;
4. those commands go through a :class:`~nora_ros.safety.SafetyFilter` fed with the recorded
   arm states (``joint_states``), as the safety node in dry run does under ``replay.launch.py``;
   what it did is compared with ``cmd_safe`` and the limits it reports with ``safety/status``.

A deterministic policy on a bag it recorded reproduces the chunks and commands exactly (error
0). What the filter sends agrees to float precision where no limit scales it, and to a few
um/s where one does: a bag holds joints, so the end-effector pose here is forward kinematics,
as the safety node's topic arm computes it, while the simulated runner measures MuJoCo's site.
Where a part is missing (no chunks, no joint states) that step is skipped and said so in
:attr:`ReplayResult.problems`.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nora_ros.actions import ACTION_DIM, ActionChunk, EndEffectorCommand
from nora_ros.bag.run import RecordedRun, Stamped, Trial
from nora_ros.errors import BagError, NoraError
from nora_ros.policy.base import Policy

DIMS = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
CMD_DIMS = ("vx", "vy", "vz", "wx", "wy", "wz", "gripper")


@dataclass(frozen=True)
class ReplayOptions:
    """``execute_steps``: actions of each chunk executed per observation (``None``: as the
    recorded commands show); ``max_chunk_age``: the scheduler's; ``safety``: overrides of
    :class:`~nora_ros.safety.SafetyConfig` (the tick period is the recording's)."""

    execute_steps: int | None = None
    max_chunk_age: float = 1.0
    safety: dict = field(default_factory=dict)
    instruction: str = ""


@dataclass
class ReplayResult:
    """Series and figures of one replay (times are bag seconds)."""

    bag: str
    policy: str
    trials: int = 0
    frames: int = 0
    frames_fed: int = 0
    chunks_recorded: int = 0
    chunk_t: list[float] = field(default_factory=list)
    recorded_actions: list[np.ndarray] = field(default_factory=list)
    replayed_actions: list[np.ndarray] = field(default_factory=list)
    action_error: list[np.ndarray] = field(default_factory=list)
    tick_t: list[float] = field(default_factory=list)
    recorded_cmd: list[np.ndarray] = field(default_factory=list)
    replayed_cmd: list[np.ndarray] = field(default_factory=list)
    safe_error: list[np.ndarray] = field(default_factory=list)
    safety_replayed: list[tuple[float, str]] = field(default_factory=list)
    safety_recorded: list[tuple[float, str]] = field(default_factory=list)
    trial_bounds: list[tuple[float, float, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def cmd_error(self) -> np.ndarray:
        if not self.tick_t:
            return np.zeros((0, ACTION_DIM))
        return np.abs(np.array(self.replayed_cmd) - np.array(self.recorded_cmd))

    def summary(self) -> dict:
        """The figures as plain values (``--json``)."""

        def per_dim(errors, names) -> dict:
            if len(errors) == 0:
                return {"max": None, "mean": None}
            a = np.asarray(errors)
            return {"max": dict(zip(names, a.max(axis=0).tolist(), strict=True)),
                    "mean": dict(zip(names, a.mean(axis=0).tolist(), strict=True))}

        replayed = collections.Counter(lim for _, lim in self.safety_replayed)
        recorded = collections.Counter(lim for _, lim in self.safety_recorded)
        return {
            "bag": self.bag, "policy": self.policy, "trials": self.trials,
            "frames": self.frames, "frames_fed": self.frames_fed,
            "chunks_recorded": self.chunks_recorded, "chunks_compared": len(self.chunk_t),
            "policy_failures": len(self.failures),
            "action_error": per_dim(self.action_error, DIMS),
            "ticks_compared": len(self.tick_t), "cmd_error": per_dim(self.cmd_error, CMD_DIMS),
            "cmd_safe_error": per_dim(self.safe_error, CMD_DIMS),
            "safety_events": {"replayed": dict(sorted(replayed.items())), "recorded": dict(sorted(recorded.items()))},
            "problems": list(self.problems), "wall_s": self.wall_s,
        }


def command_vector(cmd: EndEffectorCommand) -> np.ndarray:
    return np.concatenate([cmd.linear, cmd.angular, [cmd.gripper]])


def replay(run: RecordedRun, policy_for: Callable[[Trial], Policy], options: ReplayOptions | None = None,
           policy_name: str = "") -> ReplayResult:
    """Replay ``run`` (see the module docstring); ``policy_for(trial)`` gives the policy of a
    trial (the same object for every trial, or one per trial for recorded actions)."""
    from nora_ros.safety import SafetyConfig, SafetyFilter

    options = options or ReplayOptions()
    t0 = time.perf_counter()
    result = ReplayResult(bag=str(run.contents.path), policy=policy_name, frames=len(run.frame_messages),
                          chunks_recorded=len(run.chunks), problems=list(run.problems))
    trials = run.trials(options.instruction)
    result.trials = len(trials)
    period = run.tick_period
    safety = None
    if run.joint_states and np.isfinite(period):
        safety = SafetyFilter(SafetyConfig.from_mapping({**options.safety, "tick_period": period}), run.model)
    elif run.commands:
        result.problems.append("no arm states (joint_states) or control ticks: the safety filter is not replayed")
    frames = run.frames_by_stamp()
    execute_steps = options.execute_steps or max((s.value.index for s in run.commands), default=0) + 1
    for trial in trials:
        policy = policy_for(trial)
        policy.reset(trial.instruction)
        result.trial_bounds.append((trial.start, trial.end, trial.trial_id))
        arrivals = _feed(run, trial, policy, frames, result)
        _commands(run, trial, arrivals, execute_steps, options.max_chunk_age, safety, result)
    result.wall_s = time.perf_counter() - t0
    return result


def _feed(run: RecordedRun, trial: Trial, policy: Policy, frames: dict, result: ReplayResult) -> list[Stamped]:
    """Steps 1 and 2: the replayed chunks with the recorded arrival times, in order."""
    recorded = run.within(run.chunks, trial)
    if recorded:
        inputs = [(s.t, frames.get(round(s.value[0].stamp * 1e9)), s.value[0]) for s in recorded]
    else:
        result.problems.append(f"trial {trial.trial_id}: no recorded action chunks; every frame is fed and nothing "
                               "is compared")
        inputs = [(m.t, m, None) for m in run.frame_messages if trial.contains(m)]
    arrivals = []
    for t, message, rec in inputs:
        if message is None:
            result.failures.append(f"t={t:.3f} s: the frame of chunk {rec.chunk_id} (stamp {rec.stamp:.6f}) is not "
                                   "in the bag")
            continue
        try:
            frame = run.frame(message)
            chunk = policy.act(frame, trial.instruction)
        except NoraError as exc:  # the robot would hold here; the replay goes on
            result.failures.append(f"t={t:.3f} s: {exc}")
            continue
        result.frames_fed += 1
        if rec is not None:
            n = min(rec.horizon, chunk.horizon)
            result.chunk_t.append(t)
            result.recorded_actions.append(rec.actions[0])
            result.replayed_actions.append(chunk.actions[0])
            result.action_error.append(np.abs(chunk.actions[:n] - rec.actions[:n]).max(axis=0))
            chunk = dataclasses.replace(chunk, chunk_id=rec.chunk_id)
        arrivals.append(Stamped(t, chunk))
    return arrivals


def _commands(run: RecordedRun, trial: Trial, arrivals: list[Stamped], execute_steps: int, max_chunk_age: float,
              safety, result: ReplayResult) -> None:
    """Steps 3 and 4: commands at the recorded ticks, then the safety filter on them."""
    from nora_ros.control.scheduler import ActionScheduler, SchedulerConfig

    ticks = run.within(run.commands, trial)
    if not ticks:
        result.problems.append(f"trial {trial.trial_id}: no recorded commands (cmd): commands are not compared")
        return
    safe = {round(s.t * 1e9): s.value for s in run.within(run.safe_commands, trial)}
    limits = {round(s.t * 1e9): s.value for s in run.within(run.safety, trial)}
    scheduler = ActionScheduler(SchedulerConfig(execute_steps, max_chunk_age))
    gripper, i, anchored = 1.0, 0, False
    for tick in ticks:
        now = tick.t
        while i < len(arrivals) and arrivals[i].t <= now + 1e-9:
            scheduler.offer(arrivals[i].value)
            i += 1
        cmd = scheduler.command_at(now).command
        if cmd is None:
            cmd = EndEffectorCommand.hold(now, gripper)
        gripper = cmd.gripper
        result.tick_t.append(now)
        result.recorded_cmd.append(command_vector(tick.value))
        result.replayed_cmd.append(command_vector(cmd))
        key = round(now * 1e9)
        result.safety_recorded.extend((now, lim) for lim in limits.get(key, ()))
        state = run.arm_state_at(now)
        if safety is None or state is None:
            continue
        try:
            if not anchored:
                safety.reanchor(state)
                anchored = True
            out = safety.step(cmd, state, now)
        except NoraError as exc:
            result.problems.append(f"t={now:.3f} s: the safety filter could not run: {exc}")
            continue
        result.safety_replayed.extend((now, lim.value) for lim in out.status.limits)
        if key in safe:
            result.safe_error.append(np.abs(command_vector(out.executed) - command_vector(safe[key])))


# --------------------------------------------------------------------------- policies


def recorded_actions_policy(run: RecordedRun, trial: Trial):
    """``--policy replay``: the trial's recorded actions as a
    :class:`~nora_ros.policy.replay.ReplayPolicy` (each chunk's first action, in order, in
    chunks of the recorded horizon)."""
    from nora_ros.policy.replay import ReplayPolicy

    chunks: list[ActionChunk] = [s.value[0] for s in run.within(run.chunks, trial)]
    if not chunks:
        raise BagError(f"trial {trial.trial_id} has no recorded action chunks to replay")
    return ReplayPolicy(np.array([c.actions[0] for c in chunks]), horizon=chunks[0].horizon,
                        step_period=chunks[0].step_period, model_id=f"replay:{run.contents.path.name}",
                        source=str(run.contents.path))
