"""Replaying recorded actions through the safety filter and a simulated arm.

What ``nora-ros safety-replay`` runs: an episode's actions are grouped into chunks as
NORA-Long would produce them (``chunk_size`` actions per observation, ``execute_steps`` of
them executed before the next observation), turned into per-tick commands by the real
:class:`~nora_ros.control.scheduler.ActionScheduler`, passed through the :class:`SafetyFilter` and
:func:`apply` to a :class:`~nora_ros.robot.sim_arm.SimArm` stepped at 5 Hz on its own clock (no sleeping).
``use_filter=False`` replays the same without the filter, as widowx_envs would (target
advanced even when IK fails, no limits), to show what the filter prevents.

After the episode an e-stop is latched and the episode's first commands are sent again for
``estop_ticks`` ticks: the arm must not move (``estop_motion``). Without the filter there is
no e-stop, so the same ticks show the motion that would have happened.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from nora_ros.actions import (
    BRIDGE_STEP_PERIOD,
    ActionChunk,
    EndEffectorCommand,
    bridge_state_to_pose,
    integrate_twist,
)
from nora_ros.control.scheduler import ActionScheduler, SchedulerConfig
from nora_ros.errors import ConfigurationError, InvalidInputError, KinematicsError
from nora_ros.robot.kinematics import WidowXModel, pose_error
from nora_ros.robot.sim_arm import SimArm
from nora_ros.safety.actuation import SafeArm
from nora_ros.safety.config import SafetyConfig
from nora_ros.safety.filter import SafetyFilter

DEFAULT_START_STATE = (0.3, 0.0, 0.15, 0.0, 0.0, 0.0)
"""Bridge state (x, y, z, roll, pitch, yaw) used when an episode has no ``state``: gripper
pointing down in the middle of the Bridge workspace, 15 cm above the table."""


@dataclass(frozen=True)
class ReplayReport:
    """What a replay measured on the simulated arm (metres, radians).

    ``workspace_violations``: ticks where the measured end effector was outside the workspace
    box with the floor (``floor_z``) as its bottom; ``below_table_ticks``: ticks below
    ``table_z``; ``joint_limit_violations``: ticks with a joint outside its limits minus the
    margin; ``max_step_translation``: largest end-effector move in one tick;
    ``max_open_loop_translation``: largest end-effector path on one camera observation;
    ``limits_fired``: how often each filter limit acted; ``tracking_error_*``: per step, the
    distance between where the arm got and where that step's action asked it to go from where
    it was (median, max); ``drift_*``: the largest distance from the pose all the actions
    integrated from the start ask for (lost motion accumulates here);
    ``estop_motion``: end-effector motion after the e-stop (m); ``ik_failures``: unfiltered
    ticks whose target had no IK solution (the arm stayed, the target ran on).
    """

    episode: str
    robot_model: str
    filter: bool
    chunk_size: int
    execute_steps: int
    steps: int
    table_z: float
    floor_z: float
    min_ee_z: float
    workspace_violations: int
    below_table_ticks: int
    joint_limit_violations: int
    max_step_translation: float
    max_open_loop_translation: float
    limits_fired: dict[str, int] = field(default_factory=dict)
    tracking_error_mm: dict[str, float] = field(default_factory=dict)
    tracking_error_rad: dict[str, float] = field(default_factory=dict)
    estop_motion: float = 0.0
    ik_failures: int = 0
    drift_mm: float = 0.0
    drift_rad: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def load_episode(path) -> tuple[np.ndarray, np.ndarray | None]:
    """``action`` (N, 7) and optional ``state`` (N, 7) from an episode ``.npz``
    (:func:`nora_ros.episode.load_episode`: a bad file is an :class:`InvalidInputError`)."""
    from nora_ros.episode import load_episode as load

    episode = load(path)
    return episode.action, episode.state


def replay(
    actions: np.ndarray,
    start_state: np.ndarray | None = None,
    *,
    chunk_size: int = 1,
    execute_steps: int = 1,
    use_filter: bool = True,
    robot_model: str = "wx250s",
    config: SafetyConfig | None = None,
    estop_ticks: int = 5,
    episode: str = "",
) -> ReplayReport:
    """Replay ``actions`` (N, 7 Bridge deltas) from ``start_state`` (Bridge state; default
    :data:`DEFAULT_START_STATE`) and measure what the arm did."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] != 7 or len(actions) == 0:
        raise InvalidInputError(f"actions must be (N, 7) with N >= 1, got {actions.shape}")
    if not 1 <= execute_steps <= chunk_size:
        raise ConfigurationError(f"execute_steps must lie in 1..chunk_size ({chunk_size}), got {execute_steps}")
    period = BRIDGE_STEP_PERIOD
    config = (config or SafetyConfig()).replace(tick_period=period)
    model = WidowXModel.from_name(robot_model)
    start = np.asarray(DEFAULT_START_STATE if start_state is None else start_state, dtype=np.float64)
    start_pose = bridge_state_to_pose(start[:6])
    gripper = float(start[6]) if start.shape[0] > 6 else 1.0
    ik = model.ik(start_pose, model.sleep_joints, margin=config.joint_margin)
    if not ik.success:
        raise KinematicsError(f"the start state {start[:6].round(4).tolist()} is not reachable by {robot_model}: {ik.reason}")
    arm = SimArm(model, joints=ik.joints, gripper=min(1.0, max(0.0, gripper)))
    safe = SafeArm(SafetyFilter(config, model), arm)
    scheduler = ActionScheduler(SchedulerConfig(execute_steps=execute_steps, max_chunk_age=10.0 * period))

    t0 = arm.time
    before = arm.state()
    ideal = np.array(before.ee_pose)
    unfiltered_target = np.array(before.ee_pose)
    z_min = float(before.ee_pose[2, 3])
    lo = np.array([config.workspace_lower[0], config.workspace_lower[1], config.floor_z])
    hi = np.array(config.workspace_upper)
    counts = {"workspace": 0, "table": 0, "joints": 0, "ik": 0}
    max_step = 0.0
    open_loop = max_open_loop = 0.0
    last_obs: float | None = None
    err_mm: list[float] = []
    err_rad: list[float] = []
    drift = [0.0, 0.0]

    def measure(state_before, state_after) -> None:
        nonlocal z_min, max_step
        p = state_after.ee_pose[:3, 3]
        z_min = min(z_min, float(p[2]))
        counts["workspace"] += int(np.any(p < lo - 1e-6) or np.any(p > hi + 1e-6))
        counts["table"] += int(p[2] < config.table_z)
        counts["joints"] += int(not model.within_limits(state_after.joints, config.joint_margin - 1e-9))
        max_step = max(max_step, float(np.linalg.norm(p - state_before.ee_pose[:3, 3])))

    def unfiltered_step(cmd: EndEffectorCommand | None, state) -> None:
        nonlocal unfiltered_target
        if cmd is None:
            arm.hold()
            return
        unfiltered_target = integrate_twist(unfiltered_target, state.ee_pose[:3, 3], cmd.linear, cmd.angular, period)
        sol = model.ik(unfiltered_target, np.asarray(state.joints))
        if sol.success:
            arm.command_joints(sol.joints, period)
        else:
            counts["ik"] += 1  # widowx_envs: the target runs on, the arm stays
            arm.hold()
        arm.command_gripper(cmd.gripper)

    commands: list[EndEffectorCommand | None] = []
    for k in range(len(actions)):
        now = t0 + k * period
        if k % execute_steps == 0:
            chunk = actions[k:k + chunk_size]
            scheduler.offer(ActionChunk(chunk, step_period=period, stamp=now, chunk_id=k // execute_steps + 1))
        cmd = scheduler.command_at(now).command
        commands.append(cmd)
        state = arm.state()
        if cmd is not None:
            ideal = integrate_twist(ideal, state.ee_pose[:3, 3], cmd.linear, cmd.angular, period)
        if use_filter:
            safe.tick(cmd, now)
        else:
            unfiltered_step(cmd, state)
        after = arm.advance(period)
        measure(state, after)
        obs = None if cmd is None else cmd.observation_stamp
        if obs != last_obs:
            open_loop = 0.0
            last_obs = obs
        open_loop += float(np.linalg.norm(after.ee_pose[:3, 3] - state.ee_pose[:3, 3]))
        max_open_loop = max(max_open_loop, open_loop)
        if cmd is not None:
            wanted = integrate_twist(state.ee_pose, state.ee_pose[:3, 3], cmd.linear, cmd.angular, period)
            perr, rerr = pose_error(after.ee_pose, wanted)
            err_mm.append(perr * 1000.0)
            err_rad.append(rerr)
        perr, rerr = pose_error(after.ee_pose, ideal)
        drift[0] = max(drift[0], perr)
        drift[1] = max(drift[1], rerr)
    steps = len(actions)
    fired = {k: v for k, v in safe.filter.counts.items() if v} if use_filter else {}

    # e-stop, then keep sending the episode's first commands: nothing may move
    if use_filter:
        safe.estop("safety-replay: e-stop check after the episode")
    stopped = arm.state().ee_pose[:3, 3].copy()
    estop_motion = 0.0
    for j in range(estop_ticks):
        now = t0 + (steps + j) * period
        src = commands[j % len(commands)]
        cmd = None if src is None else EndEffectorCommand(src.linear, src.angular, src.gripper, now, src.chunk_id,
                                                          src.index, now)
        if use_filter:
            safe.tick(cmd, now)
        else:
            unfiltered_step(cmd, arm.state())
        after = arm.advance(period)
        estop_motion = max(estop_motion, float(np.linalg.norm(after.ee_pose[:3, 3] - stopped)))

    return ReplayReport(
        episode=episode,
        robot_model=robot_model,
        filter=use_filter,
        chunk_size=chunk_size,
        execute_steps=execute_steps,
        steps=steps,
        table_z=config.table_z,
        floor_z=config.floor_z,
        min_ee_z=z_min,
        workspace_violations=counts["workspace"],
        below_table_ticks=counts["table"],
        joint_limit_violations=counts["joints"],
        max_step_translation=max_step,
        max_open_loop_translation=max_open_loop,
        limits_fired=fired,
        tracking_error_mm=_summary(err_mm),
        tracking_error_rad=_summary(err_rad),
        estop_motion=estop_motion,
        ik_failures=counts["ik"],
        drift_mm=drift[0] * 1000.0,
        drift_rad=drift[1],
    )


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": math.nan, "max": math.nan}
    return {"median": float(np.median(values)), "max": float(np.max(values))}
