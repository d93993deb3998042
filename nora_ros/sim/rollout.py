"""Step-by-step rollouts in the simulator: one observation, one action, one 0.2 s step.

This is the simple synchronous loop for tests, scripted-expert checks and data generation;
the real-time closed loop with a worker thread and a control tick is ``nora_ros.runner``.
Each step: observe -> ``policy.act`` -> execute ``actions[0]`` -> step the world by the
chunk's ``step_period`` -> score with the task's success check.

Execution goes through :class:`nora_ros.safety.SafetyFilter` when one is given (one filter tick
per step, as at 5 Hz on the robot). Without a filter the action is executed with plain Bridge
semantics (``target = apply_bridge_delta(target, measured, action)``, IK seeded at the
measured joints within one step of the velocity limit); if IK fails the target does not
advance and the arm holds, and the step records why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nora_ros.actions import action_to_command, apply_bridge_delta
from nora_ros.errors import ConfigurationError, NoraError
from nora_ros.policy.base import Policy
from nora_ros.sim.arm import MujocoArm
from nora_ros.sim.world import SimWorld


@dataclass(frozen=True)
class StepRecord:
    """What happened on one step: the action, the target, where the arm got to, and any hold."""

    index: int
    sim_time: float
    action: np.ndarray
    target_pose: np.ndarray
    measured_pose: np.ndarray
    held: str = ""
    """Why the arm held on this step (IK failure, a safety limit, a policy error); empty if it moved."""
    limited: str = ""
    """The safety limits that acted on this step and how (the filter's message); empty if none."""


@dataclass(frozen=True)
class RolloutResult:
    """The outcome of one trial: the sim verdict, and every step's record."""

    success: bool
    reason: str
    steps: int
    sim_time: float
    wall_time: float
    records: tuple[StepRecord, ...] = ()
    frames: tuple[np.ndarray, ...] = field(default=(), repr=False)

    @property
    def holds(self) -> int:
        return sum(1 for r in self.records if r.held)


def rollout(
    world: SimWorld,
    arm: MujocoArm,
    policy: Policy,
    *,
    seed: int | None = None,
    max_steps: int = 80,
    render: bool = False,
    keep_frames: bool = False,
    safety: object | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> RolloutResult:
    """Run one trial of ``world.task`` with ``policy`` from a reset with ``seed``.

    ``render``: give the policy rendered camera images (a camera policy needs them; the
    scripted expert does not). ``keep_frames``: keep every rendered image in the result.
    ``safety``: a :class:`nora_ros.safety.SafetyFilter` to execute actions through. Stops at
    the first step after which the task's success check passes, or after ``max_steps``.
    """
    if max_steps < 1:
        raise ConfigurationError(f"max_steps must be at least 1, got {max_steps}")
    if keep_frames and not render:
        raise ConfigurationError("keep_frames needs render=True")
    t_wall = time.perf_counter()
    world.reset(seed)
    instruction = world.task.instruction
    policy.reset(instruction)
    if safety is not None:
        safety.reanchor(arm.state())  # type: ignore[attr-defined]
    target = arm.state().ee_pose
    records: list[StepRecord] = []
    frames: list[np.ndarray] = []
    outcome = world.success()
    for i in range(max_steps):
        frame = world.observation(render=render)
        if keep_frames:
            frames.append(frame.image)
        held = limited = ""
        try:
            chunk = policy.act(frame, instruction)
            action = np.array(chunk.actions[0])
            period = chunk.step_period
        except NoraError as exc:  # the arm holds and the trial goes on, as on the robot
            action, period, held = np.zeros(7), policy.step_period, f"policy: {exc}"
            arm.hold()
        if not held:
            state = arm.state()
            if safety is not None:
                target, held, limited = _through_filter(safety, arm, action, period, frame.stamp, state)
            else:
                target, held = execute_bridge_action(world, arm, target, action, period, state)
        world.step(period)
        record = StepRecord(i, world.time, action, np.array(target), arm.state().ee_pose, held, limited)
        records.append(record)
        if on_step is not None:
            on_step(record)
        outcome = world.success()
        if outcome.success:
            break
    return RolloutResult(
        success=outcome.success,
        reason=outcome.reason,
        steps=len(records),
        sim_time=world.time,
        wall_time=time.perf_counter() - t_wall,
        records=tuple(records),
        frames=tuple(frames),
    )


def execute_bridge_action(
    world: SimWorld, arm: MujocoArm, target: np.ndarray, action: np.ndarray, period: float, state
) -> tuple[np.ndarray, str]:
    """Start one Bridge action without a safety filter; returns (new target, why it held or "").

    ``target = apply_bridge_delta(target, measured position, action)``, IK seeded at the
    measured joints within one ``period`` of the joint velocity limit, ``command_joints`` over
    ``period``; the gripper is set either way. If IK fails the target does not advance and the
    arm holds (widowx_envs advances it anyway and accumulates error: DESIGN.md 4).
    """
    k = world.kinematics
    proposed = apply_bridge_delta(target, state.ee_pose[:3, 3], action)
    ik = k.ik(proposed, state.joints, max_joint_step=k.max_joint_step(period))
    arm.command_gripper(float(action[6]))
    if not ik.success:
        arm.hold()
        return target, f"IK: {ik.reason}"
    arm.command_joints(ik.joints, period)
    return proposed, ""


def _through_filter(
    safety, arm: MujocoArm, action: np.ndarray, period: float, obs_stamp: float, state
) -> tuple[np.ndarray, str, str]:
    """One safety-filter tick with the action as a twist over ``period``; the filter's result is applied.

    Returns (target pose, why it held or "", which limits acted or "").
    """
    from nora_ros.safety import apply  # the safety layer is optional for this module's other uses

    now = state.stamp
    cmd = action_to_command(action, period, stamp=now, observation_stamp=obs_stamp)
    result = safety.step(cmd, state, now)
    apply(result, arm, period)
    status = result.status
    limited = status.message if status.limits else ""
    held = f"safety: {limited or 'nothing to do'}" if result.holding else ""
    return result.target_pose, held, limited
