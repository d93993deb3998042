"""Replaying recorded actions through the scheduler, the safety filter and a simulated arm.

What ``nora-ros safety-replay`` runs: an episode's actions are grouped into chunks as a
chunking policy would produce them, offered to the real
:class:`~nora_ros.control.scheduler.ActionScheduler` in an execution ``mode`` (``hold``,
``interpolate``, ``ensemble``, ``blend``), and its per-tick commands pass through the
:class:`SafetyFilter` and :func:`apply` to a :class:`~nora_ros.robot.sim_arm.SimArm` at the control
rate (5 Hz: one tick per 0.2 s model step; 10, 25, 50 Hz: several), on the arm's own clock
(no sleeping). ``use_filter=False`` replays the same without the filter, as widowx_envs would
(target advanced even when IK fails, no limits), to show what the filter prevents.

Chunks: observation ``k`` is taken at the tick that starts its model step ``s`` and the chunk
computed from it is ready at once (stamp = that tick): actions ``s .. s + chunk_size - 1`` of the
episode, shorter at the end (as :class:`~nora_ros.policy.replay.ReplayPolicy`: a repeated last
action would be motion the recording never made). ``hold`` and ``interpolate`` observe every
``execute_steps`` steps; ``ensemble`` and ``blend`` every step (their chunks overlap). ``rtc``
is refused: it guides the sampling of a policy's next chunk, and recorded actions cannot be
guided.

Malformed steps (:func:`malformed_steps`): a recorded action that is non-finite (NaN, +-Inf) or
has its gripper outside ``[0, 1]`` is one a policy could not hand over: :class:`ActionChunk`
refuses it, so on the robot the inference fails, the policy loop keeps executing what it
already has and holds when nothing is due (it ends the trial after ``max_policy_failures``
refusals in a row). The replay does the same: every chunk that contains such a step is refused
(never offered), the step itself never executes, and the report counts them. Finite but absurd
values (25 times a Bridge step, 1e3, sign flips every step) are valid chunks and meet the
filter's limits like any command. Only a structurally wrong file (no ``action``, not ``(N, 7)``)
is refused as a whole.

After the episode an e-stop is latched and the episode's first commands are sent again for
``estop_ticks`` model steps: the arm must not move (``estop_motion``). Without the filter there
is no e-stop, so the same ticks show the motion that would have happened.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from nora_ros.actions import (
    ACTION_DIM,
    BRIDGE_STEP_PERIOD,
    GRIPPER_DIM,
    ActionChunk,
    EndEffectorCommand,
    bridge_state_to_pose,
    integrate_twist,
)
from nora_ros.control.scheduler import ActionScheduler, SchedulerConfig
from nora_ros.errors import ConfigurationError, InvalidInputError, KinematicsError
from nora_ros.robot.kinematics import WidowXModel, pose_error
from nora_ros.robot.sim_arm import SimArm, SimArmConfig
from nora_ros.safety.actuation import SafeArm
from nora_ros.safety.config import SafetyConfig
from nora_ros.safety.filter import SafetyFilter

DEFAULT_START_STATE = (0.3, 0.0, 0.15, 0.0, 0.0, 0.0)
"""Bridge state (x, y, z, roll, pitch, yaw) used when an episode has no ``state``: gripper
pointing down in the middle of the Bridge workspace, 15 cm above the table."""

REPLAY_MODES = ("hold", "interpolate", "ensemble", "blend")
"""Execution modes a replay of recorded actions can run (``rtc`` needs guided sampling)."""

OVERLAPPING = ("ensemble", "blend")
"""Modes that take an observation every model step, their chunks overlapping."""

WINDOW = BRIDGE_STEP_PERIOD
"""Seconds: ``max_window_translation`` is the largest end-effector move within any window this
long (one Bridge step), whatever the control rate."""

_ARM_SAMPLE_RATE = 100.0
"""Hz: joint-state rate of the simulated arm (the xs driver's)."""

NON_FINITE = "non-finite"
GRIPPER_RANGE = "gripper outside [0, 1]"


@dataclass(frozen=True)
class ReplayReport:
    """What a replay measured on the simulated arm (metres, radians).

    ``mode``, ``control_rate`` (Hz), ``ticks``: how the chunks were executed.
    ``workspace_violations``: ticks where the measured end effector was outside the workspace
    box with the floor (``floor_z``) as its bottom; ``below_table_ticks``: ticks below
    ``table_z``; ``joint_limit_violations``: ticks with a joint outside its limits minus the
    margin; ``max_step_translation``: largest end-effector move in one tick;
    ``max_window_translation``: largest end-effector move between two ticks at most
    :data:`WINDOW` (0.2 s) apart, so one bound holds at any rate;
    ``max_open_loop_translation``: largest end-effector path on one camera observation;
    ``limits_fired``: how often each filter limit acted (ticks); ``tracking_error_*``: per tick,
    the distance between where the arm got and where that tick's command asked it to go from
    where it was (median, max); ``drift_*``: the largest distance from the pose all the commands
    integrated from the start ask for (lost motion accumulates here);
    ``rejected_steps``: recorded steps a policy could not have handed over
    (:func:`malformed_steps`), by reason in ``rejected_reasons``; none of them executed.
    ``rejected_chunks``: observations whose chunk was refused because it holds such a step;
    ``longest_rejected_run``: the most refused in a row (the policy node ends a trial after
    ``max_policy_failures``, 3 by default); ``rejection``: the first refusal, as the policy
    loop would log it; ``held_ticks``: ticks with no action due (the arm held);
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
    mode: str = "hold"
    control_rate: float = 1.0 / BRIDGE_STEP_PERIOD
    ticks: int = 0
    max_window_translation: float = 0.0
    rejected_steps: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    rejected_chunks: int = 0
    longest_rejected_run: int = 0
    rejection: str = ""
    held_ticks: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def load_episode(path) -> tuple[np.ndarray, np.ndarray | None]:
    """``action`` (N, 7) and optional ``state`` (N, 7) from an episode ``.npz``
    (:func:`nora_ros.episode.load_episode`: a bad file is an :class:`InvalidInputError`).

    Non-finite or out-of-range values are kept: :func:`replay` meets them step by step, as the
    robot would. A file whose ``action`` is not ``(N, 7)`` with ``N >= 1`` is refused here."""
    from nora_ros.episode import load_episode as load

    episode = load(path)
    _check_shape(episode.action, f"{episode.path}: 'action'")
    return episode.action, episode.state


def malformed_steps(actions: np.ndarray) -> dict[int, str]:
    """Steps of ``actions`` (N, 7) that :class:`ActionChunk` refuses, with the reason:
    :data:`NON_FINITE` (a NaN or +-Inf anywhere) or :data:`GRIPPER_RANGE`."""
    a = np.asarray(actions, dtype=np.float64)
    out: dict[int, str] = {}
    for i in np.flatnonzero(~np.all(np.isfinite(a), axis=1)):
        out[int(i)] = NON_FINITE
    g = a[:, GRIPPER_DIM]
    with np.errstate(invalid="ignore"):
        for i in np.flatnonzero((g < 0.0) | (g > 1.0)):
            out.setdefault(int(i), GRIPPER_RANGE)
    return dict(sorted(out.items()))


def ticks_per_step(control_rate: float) -> int:
    """Control ticks per 0.2 s model step at ``control_rate`` Hz; a rate that does not divide the
    step into whole ticks is a :class:`ConfigurationError` (observations lie on the tick grid)."""
    if not (isinstance(control_rate, (int, float)) and math.isfinite(control_rate) and control_rate > 0):
        raise ConfigurationError(f"control rate must be a positive number of Hz, got {control_rate!r}")
    n = round(control_rate * BRIDGE_STEP_PERIOD)
    if n < 1 or abs(n - control_rate * BRIDGE_STEP_PERIOD) > 1e-9:
        raise ConfigurationError(f"control rate {control_rate:g} Hz does not divide the {BRIDGE_STEP_PERIOD} s model "
                                 "step into whole ticks; use a multiple of 5 Hz (5, 10, 25, 50)")
    return n


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
    mode: str = "hold",
    control_rate: float = 1.0 / BRIDGE_STEP_PERIOD,
    ensemble_decay: float = 0.01,
    blend_aggregate: str = "weighted_average",
) -> ReplayReport:
    """Replay ``actions`` (N, 7 Bridge deltas) from ``start_state`` (Bridge state; default
    :data:`DEFAULT_START_STATE`) in execution ``mode`` at ``control_rate`` Hz and measure what
    the arm did; ``estop_ticks`` is in model steps (0.2 s each)."""
    actions = _check_shape(actions, "actions")
    if mode == "rtc":
        raise ConfigurationError("mode rtc (real-time chunking) guides the sampling of the policy's next chunk; the "
                                 "chunks of a recording are fixed and cannot be guided. Replay with hold, "
                                 "interpolate, ensemble or blend")
    if mode not in REPLAY_MODES:
        raise ConfigurationError(f"mode must be one of {', '.join(REPLAY_MODES)}, got {mode!r}")
    if not 1 <= execute_steps <= chunk_size:
        raise ConfigurationError(f"execute_steps must lie in 1..chunk_size ({chunk_size}), got {execute_steps}")
    n = ticks_per_step(control_rate)
    period = BRIDGE_STEP_PERIOD
    tick = period / n
    config = (config or SafetyConfig()).replace(tick_period=tick)
    model = WidowXModel.from_name(robot_model)
    start = np.asarray(DEFAULT_START_STATE if start_state is None else start_state, dtype=np.float64).reshape(-1)
    if start.shape not in ((6,), (7,)) or not np.all(np.isfinite(start)):
        raise InvalidInputError(f"the start state must be 6 or 7 finite numbers (x, y, z, roll, pitch, yaw[, "
                                f"gripper]), got {start.tolist()}")
    start_pose = bridge_state_to_pose(start[:6])
    gripper = float(start[6]) if start.shape[0] > 6 else 1.0
    ik = model.ik(start_pose, model.sleep_joints, margin=config.joint_margin)
    if not ik.success:
        raise KinematicsError(f"the start state {start[:6].round(4).tolist()} is not reachable by {robot_model}: {ik.reason}")
    # The arm samples its joints at 100 Hz (the driver's rate), raised to a multiple of the control
    # rate so that every tick's measurement is taken at the tick's end, not up to a sample earlier
    # (at 30 Hz a 100 Hz sample would span parts of two ticks and read as a too-large step).
    sample_rate = control_rate * math.ceil(_ARM_SAMPLE_RATE / control_rate - 1e-9)
    arm = SimArm(model, joints=ik.joints, gripper=min(1.0, max(0.0, gripper)),
                 config=SimArmConfig(rate_hz=sample_rate))
    safe = SafeArm(SafetyFilter(config, model), arm)
    scheduler = ActionScheduler(SchedulerConfig(
        mode=mode, execute_steps=execute_steps, max_chunk_age=10.0 * period, tick_period=tick,
        ensemble_decay=ensemble_decay, blend_aggregate=blend_aggregate))
    observe_every = 1 if mode in OVERLAPPING else execute_steps
    bad = malformed_steps(actions)

    t0 = arm.time
    meter = _Meter(model, config, arm.state())
    unfiltered_target = np.array(arm.state().ee_pose)
    ik_failures = 0
    rejected = Counter(bad.values())
    refused_chunks = run = longest = held = 0
    rejection = ""

    def unfiltered_step(cmd: EndEffectorCommand | None, state) -> None:
        nonlocal unfiltered_target, ik_failures
        if cmd is None:
            arm.hold()
            return
        unfiltered_target = integrate_twist(unfiltered_target, state.ee_pose[:3, 3], cmd.linear, cmd.angular, tick)
        sol = model.ik(unfiltered_target, np.asarray(state.joints))
        if sol.success:
            arm.command_joints(sol.joints, tick)
        else:
            ik_failures += 1  # widowx_envs: the target runs on, the arm stays
            arm.hold()
        arm.command_gripper(cmd.gripper)

    commands: list[EndEffectorCommand | None] = []
    steps = len(actions)
    for i in range(steps * n):
        now = t0 + i * tick
        step, phase = divmod(i, n)
        if phase == 0 and step % observe_every == 0:
            try:
                chunk = ActionChunk(actions[step:step + chunk_size], step_period=period, stamp=now,
                                    chunk_id=step // observe_every + 1)
            except InvalidInputError as exc:  # the policy could not hand this chunk over: nothing offered
                refused_chunks += 1
                run += 1
                longest = max(longest, run)
                rejection = rejection or f"observation at step {step}: {exc}"
            else:
                run = 0
                scheduler.offer(chunk)
        cmd = scheduler.command_at(now).command
        held += cmd is None
        commands.append(cmd)
        state = arm.state()
        if use_filter:
            safe.tick(cmd, now)
        else:
            unfiltered_step(cmd, state)
        meter.tick(cmd, state, arm.advance(tick), tick)
    fired = {k: v for k, v in safe.filter.counts.items() if v} if use_filter else {}

    # e-stop, then keep sending the episode's first commands: nothing may move
    if use_filter:
        safe.estop("safety-replay: e-stop check after the episode")
    stopped = arm.state().ee_pose[:3, 3].copy()
    estop_motion = 0.0
    for j in range(estop_ticks * n):
        now = t0 + (steps * n + j) * tick
        src = commands[j % len(commands)]
        cmd = None if src is None else EndEffectorCommand(src.linear, src.angular, src.gripper, now, src.chunk_id,
                                                          src.index, now)
        if use_filter:
            safe.tick(cmd, now)
        else:
            unfiltered_step(cmd, arm.state())
        after = arm.advance(tick)
        estop_motion = max(estop_motion, float(np.linalg.norm(after.ee_pose[:3, 3] - stopped)))

    m = meter
    return ReplayReport(
        episode=episode,
        robot_model=robot_model,
        filter=use_filter,
        chunk_size=chunk_size,
        execute_steps=execute_steps,
        steps=steps,
        table_z=config.table_z,
        floor_z=config.floor_z,
        min_ee_z=m.z_min,
        workspace_violations=m.counts["workspace"],
        below_table_ticks=m.counts["table"],
        joint_limit_violations=m.counts["joints"],
        max_step_translation=m.max_step,
        max_open_loop_translation=m.max_open_loop,
        limits_fired=fired,
        tracking_error_mm=_summary(m.err_mm),
        tracking_error_rad=_summary(m.err_rad),
        estop_motion=estop_motion,
        ik_failures=ik_failures,
        drift_mm=m.drift[0] * 1000.0,
        drift_rad=m.drift[1],
        mode=mode,
        control_rate=float(control_rate),
        ticks=steps * n,
        max_window_translation=m.max_window(n),
        rejected_steps=len(bad),
        rejected_reasons=dict(rejected),
        rejected_chunks=refused_chunks,
        longest_rejected_run=longest,
        rejection=rejection,
        held_ticks=held,
    )


class _Meter:
    """What the arm did, tick by tick: workspace, table, joints, steps, open-loop paths,
    tracking error and drift from the commands."""

    def __init__(self, model: WidowXModel, config: SafetyConfig, first) -> None:
        self.model, self.config = model, config
        self.lo = np.array([config.workspace_lower[0], config.workspace_lower[1], config.floor_z])
        self.hi = np.array(config.workspace_upper)
        self.ideal = np.array(first.ee_pose)
        self.z_min = float(first.ee_pose[2, 3])
        self.positions = [np.array(first.ee_pose[:3, 3])]
        self.counts = {"workspace": 0, "table": 0, "joints": 0}
        self.max_step = 0.0
        self.open_loop = self.max_open_loop = 0.0
        self.last_obs: float | None = None
        self.err_mm: list[float] = []
        self.err_rad: list[float] = []
        self.drift = [0.0, 0.0]

    def tick(self, cmd: EndEffectorCommand | None, before, after, dt: float) -> None:
        p, q = after.ee_pose[:3, 3], before.ee_pose[:3, 3]
        self.positions.append(np.array(p))
        self.z_min = min(self.z_min, float(p[2]))
        self.counts["workspace"] += int(np.any(p < self.lo - 1e-6) or np.any(p > self.hi + 1e-6))
        self.counts["table"] += int(p[2] < self.config.table_z)
        self.counts["joints"] += int(not self.model.within_limits(after.joints, self.config.joint_margin - 1e-9))
        moved = float(np.linalg.norm(p - q))
        self.max_step = max(self.max_step, moved)
        obs = None if cmd is None else cmd.observation_stamp
        if obs != self.last_obs:
            self.open_loop, self.last_obs = 0.0, obs
        self.open_loop += moved
        self.max_open_loop = max(self.max_open_loop, self.open_loop)
        if cmd is not None:
            self.ideal = integrate_twist(self.ideal, q, cmd.linear, cmd.angular, dt)
            wanted = integrate_twist(before.ee_pose, q, cmd.linear, cmd.angular, dt)
            perr, rerr = pose_error(after.ee_pose, wanted)
            self.err_mm.append(perr * 1000.0)
            self.err_rad.append(rerr)
        perr, rerr = pose_error(after.ee_pose, self.ideal)
        self.drift[0] = max(self.drift[0], perr)
        self.drift[1] = max(self.drift[1], rerr)

    def max_window(self, ticks: int) -> float:
        """Largest distance between two measured positions at most ``ticks`` ticks apart."""
        p = np.array(self.positions)
        best = 0.0
        for lag in range(1, min(ticks, len(p) - 1) + 1):
            best = max(best, float(np.max(np.linalg.norm(p[lag:] - p[:-lag], axis=1))))
        return best


def _check_shape(actions, what: str) -> np.ndarray:
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} is not numeric: {exc}") from exc
    if a.ndim != 2 or a.shape[1] != ACTION_DIM or len(a) == 0:
        raise InvalidInputError(f"{what} must be (N, {ACTION_DIM}) with N >= 1, got shape {a.shape}")
    return a


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": math.nan, "max": math.nan}
    return {"median": float(np.median(values)), "max": float(np.max(values))}
