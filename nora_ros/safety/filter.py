"""The safety filter: the one place that decides what motion reaches the motors.

Pure: no I/O, no threads, no clock reads (``now`` is passed in), so the ROS safety node, the
in-process runner, the replay command and the property tests all run the same decisions.

Each tick (:meth:`SafetyFilter.step`):

1. reject what cannot be trusted, and hold: non-finite values, a malformed command, stamps that
   are stale, in the future or out of order, a stale or malformed arm measurement, a latched
   e-stop;
2. take the command's twist (a repeated command only for ``command_timeout_ticks`` ticks) and
   limit it (:mod:`nora_ros.safety.motion`): angular speed, angular acceleration, the open-loop rotation budget, orientation
   bounds; then the target's displacement: linear speed, acceleration, the open-loop
   translation budget, the workspace box and table floor;
3. integrate it into the end-effector *target* (Bridge semantics, as
   :func:`nora_ros.actions.integrate_twist`: translation in the base frame, rotation about the
   measured end-effector point) and solve IK seeded from the measured joints, within the joint
   limits minus a margin and the joint-velocity limit over one tick. If IK fails the target
   does not advance and the arm holds;
4. gripper: threshold with hysteresis and a minimum dwell between changes.

Every limit that acted is listed in the returned :class:`SafetyStatus`, with its detail: the
filter never clips or drops anything silently.

Acceleration limits bound speeding up, turning and reversing. Braking along the current
direction is never limited, and the hard limits (workspace, floor, orientation, joint limits,
IK failure, every rejection) may stop the target at once: running into the table is worse
than a jerk.
"""

from __future__ import annotations

import math

import numpy as np

from nora_ros.actions import EndEffectorCommand
from nora_ros.errors import InvalidInputError
from nora_ros.robot.kinematics import WidowXModel, rotation_log
from nora_ros.safety.checks import check_command, check_state
from nora_ros.safety.config import SafetyConfig
from nora_ros.safety.geometry import (
    IDENTITY,
    add3,
    matmul3,
    matvec3,
    norm3,
    rotation_angle,
    scale3,
    sub3,
)
from nora_ros.safety.motion import ZERO3, command_like, limit_rotation, limit_translation, orientation_excess
from nora_ros.safety.status import Limit, SafetyResult, SafetyStatus

_LIMITS_PHRASE = "outside the limits minus margin"
"""How :meth:`WidowXModel.ik` names a solution that exists but leaves the joint limits minus the
margin (test_kinematics pins the phrase); the filter then reports the joint limit as well."""


class SafetyFilter:
    """Limits end-effector commands for one arm; call :meth:`step` once per control tick.

    Not thread-safe: the control loop owns it (the ROS node calls it from its timer only;
    e-stop/reset/enable requests are applied between ticks).
    """

    def __init__(self, config: SafetyConfig | None, model: WidowXModel):
        self.config = config if config is not None else SafetyConfig()
        self.model = model
        self._enabled = True
        self._estopped = False
        self._estop_reason = ""
        self._ticks = 0
        self._held_ticks = 0
        self._counts: dict[str, int] = {lim.value: 0 for lim in Limit}
        self._last_now = -math.inf
        self._last_stamp = -math.inf
        self._obs_stamp = -math.inf
        self._max_joint_step = model.max_joint_step(self.config.tick_period)
        self._clear_motion()

    # ------------------------------------------------------------------ operator controls
    def estop(self, reason: str = "operator e-stop") -> None:
        """Latch the e-stop: every tick holds until :meth:`reset_estop`."""
        if not self._estopped:
            self._estopped = True
            self._estop_reason = str(reason) or "e-stop"
        self._last_cmd = None
        self._clear_rates()  # the target is kept for reporting; reset re-anchors

    def reset_estop(self) -> None:
        """Clear the e-stop; the next tick re-anchors the target at the measured pose."""
        self._estopped = False
        self._estop_reason = ""
        self._clear_motion()

    def set_enabled(self, enabled: bool) -> None:
        """Actuation on or off. Off = dry run: everything computed and reported, nothing moves.

        Turning it on re-anchors at the measured pose on the next tick (the dry-run target has
        drifted from where the arm really is).
        """
        enabled = bool(enabled)
        if enabled and not self._enabled:
            self._clear_motion()
        self._enabled = enabled

    def reanchor(self, state) -> None:
        """Restart from the measured pose (trial start): target = measured, motion at rest.

        The open-loop budget starts exhausted when a camera observation was seen before, so
        nothing moves again until a command based on a *newer* observation arrives.
        """
        problem = check_state(self.model, self.config, state, None)
        if problem is not None:
            raise InvalidInputError(f"cannot re-anchor the safety filter: {problem[1]}")
        self._anchor(state)

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def estopped(self) -> bool:
        return self._estopped

    @property
    def estop_reason(self) -> str:
        return self._estop_reason

    @property
    def counts(self) -> dict[str, int]:
        """How often each limit has acted since the filter was created (limit name -> ticks)."""
        return dict(self._counts)

    @property
    def target_pose(self) -> np.ndarray | None:
        """The current end-effector target (None until the first tick anchors it)."""
        return None if self._target is None else self._target.copy()

    @property
    def target_joints(self) -> np.ndarray | None:
        return None if self._target_joints is None else self._target_joints.copy()

    # ------------------------------------------------------------------ the tick
    def step(self, cmd: EndEffectorCommand | None, state, now: float) -> SafetyResult:
        """Decide this tick's motion from ``cmd`` (``None``: nothing due, hold) and the measured ``state``."""
        cfg = self.config
        self._ticks += 1
        acted: list[tuple[Limit, str]] = []
        now = float(now)
        if not math.isfinite(now):
            return self._hold(state, [(Limit.NON_FINITE, f"tick time is {now}")])
        if now < self._last_now:
            return self._hold(state, [(Limit.OUT_OF_ORDER, f"tick time {now:.6f} s is before the previous tick "
                                                           f"{self._last_now:.6f} s")])
        self._last_now = now
        if self._estopped:
            return self._hold(state, [(Limit.ESTOP, f"e-stop latched ({self._estop_reason}); reset to move")])
        problem = check_state(self.model, cfg, state, now)
        if problem is not None:
            self._clear_rates()
            return self._hold(state, [problem])
        if self._target is None:
            self._anchor(state)

        # 1. which command runs this tick
        run: EndEffectorCommand | None = None
        if cmd is not None:
            problem = check_command(cfg, cmd, now, self._last_stamp, self._obs_stamp)
            if problem is not None:
                self._last_cmd = None
                self._clear_rates()
                return self._hold(state, [problem])
            if cmd.stamp > self._last_stamp:
                if cmd.observation_stamp > self._obs_stamp:
                    self._obs_stamp = float(cmd.observation_stamp)
                    self._ol_translation = 0.0
                    self._ol_rotation = 0.0
                self._last_stamp = float(cmd.stamp)
                self._last_cmd = cmd
                self._repeats = 0
                run = cmd
            elif self._last_cmd is None:
                self._clear_rates()
                return self._hold(state, [(Limit.COMMAND_TIMEOUT, "no fresh command since the filter re-anchored")])
            else:
                self._repeats += 1
                if self._repeats > cfg.command_timeout_ticks:
                    self._clear_rates()
                    return self._hold(state, [(Limit.COMMAND_TIMEOUT, f"no fresh command for {self._repeats} ticks "
                                                                      f"(command_timeout_ticks {cfg.command_timeout_ticks})")])
                run = self._last_cmd
        if run is None:
            self._clear_rates()
            return self._hold(state, acted)

        # 2. limits, 3. integrate and solve
        pose, joints, executed = self._move(run, state, now, acted)

        # 4. gripper
        gripper = self._gripper(run.gripper, now, acted)

        if not self._enabled:
            acted.append((Limit.DISABLED, "actuation disabled: dry run, nothing sent to the arm"))
            return self._result(pose, None, None, executed, acted)
        return self._result(pose, joints, gripper, executed, acted)

    # ------------------------------------------------------------------ motion
    def _move(self, cmd: EndEffectorCommand, state, now: float, acted: list) -> tuple:
        """Limit ``cmd``'s twist, advance the target, solve IK; returns (pose, joints or None, executed)."""
        cfg = self.config
        dt = cfg.tick_period
        target = self._target
        t = target.tolist()
        r_t = (tuple(t[0][:3]), tuple(t[1][:3]), tuple(t[2][:3]))
        p_t = (t[0][3], t[1][3], t[2][3])
        pm = np.asarray(state.ee_pose)
        p_m = (float(pm[0, 3]), float(pm[1, 3]), float(pm[2, 3]))

        budget_detail: list[str] = []
        w, rot_step, r_new = limit_rotation(tuple(cmd.angular.tolist()), self._w_prev, r_t, self._ol_rotation, cfg,
                                            acted, budget_detail)
        # translation of the target point: commanded + the swing of rotating about the measured point
        lever = sub3(p_t, p_m)
        swing = sub3(matvec3(rot_step, lever), lever)
        d, p_new = limit_translation(add3(scale3(tuple(cmd.linear.tolist()), dt), swing), self._v_prev, p_t,
                                     self._ol_translation, cfg, acted, budget_detail)

        if norm3(d) == 0.0 and rot_step is IDENTITY:
            self._clear_rates()
            return target.copy(), None, command_like(ZERO3, ZERO3, cmd)
        new_pose = np.array([[*r_new[0], p_new[0]], [*r_new[1], p_new[1]], [*r_new[2], p_new[2]], [0.0, 0.0, 0.0, 1.0]])
        seed = np.asarray(state.joints if self._enabled else self._target_joints, dtype=np.float64)
        ik = self.model.ik(new_pose, seed, max_joint_step=self._max_joint_step, margin=cfg.joint_margin)
        if not ik.success:
            self._clear_rates()
            if _LIMITS_PHRASE in ik.reason:
                acted.append((Limit.JOINT_LIMIT, f"{ik.reason}; target held"))
            acted.append((Limit.IK_FAILURE, f"no joints within limits minus {cfg.joint_margin} rad and "
                                            f"{self._max_joint_step:.3f} rad per tick: {ik.reason}; target held"))
            return target.copy(), None, command_like(ZERO3, ZERO3, cmd)
        q = np.asarray(ik.joints, dtype=np.float64)
        # Belt and braces: IK keeps the margin by construction; a joint outside it must never be sent.
        if not self.model.within_limits(q, cfg.joint_margin):
            self._clear_rates()
            acted.append((Limit.JOINT_LIMIT, "IK answer outside limits minus margin: "
                          + "; ".join(self.model.limit_violations(q, cfg.joint_margin))))
            return target.copy(), None, command_like(ZERO3, ZERO3, cmd)
        if not self.model.full_pose:
            # A 5-joint arm cannot reach every orientation: the target is what it does reach,
            # which must itself respect the rotation limits and bounds.
            reached = self.model.fk(q)[:3, :3]
            reached_t = tuple(tuple(row) for row in reached.tolist())
            turn = rotation_angle(matmul3(reached_t, tuple(zip(*r_t, strict=True))))
            if turn > cfg.max_step_rotation + 1e-9 or self._ol_rotation + turn > cfg.open_loop_rotation + 1e-9 or (
                    orientation_excess(cfg, reached_t) > orientation_excess(cfg, r_t) + 1e-12):
                self._clear_rates()
                acted.append((Limit.ORIENTATION, f"{self.model.name} reaches this position only with a "
                              f"{turn:.3f} rad turn, beyond the rotation limits or budget, or outside the "
                              "orientation bounds; target held"))
                return target.copy(), None, command_like(ZERO3, ZERO3, cmd)
            if ik.rotation_error > 1e-3:
                acted.append((Limit.ORIENTATION, f"{self.model.name} (5 joints) cannot reach the commanded "
                              f"orientation: {ik.rotation_error:.4f} rad off; the target takes the reachable one"))
            new_pose[:3, :3] = reached
            w = tuple(float(x) / dt for x in rotation_log(reached @ np.array(r_t).T))
        # commit
        self._target = new_pose
        self._target_joints = q
        self._v_prev = scale3(d, 1.0 / dt)
        self._w_prev = w
        self._ol_translation += norm3(d)
        self._ol_rotation += norm3(w) * dt
        executed = command_like(scale3(sub3(d, swing), 1.0 / dt), w, cmd)
        return new_pose.copy(), q.copy(), executed

    # ------------------------------------------------------------------ gripper
    def _gripper(self, value: float, now: float, acted: list) -> float | None:
        cfg = self.config
        want = self._gripper_open
        if value > cfg.gripper_threshold + cfg.gripper_hysteresis:
            want = True
        elif value < cfg.gripper_threshold - cfg.gripper_hysteresis:
            want = False
        if want == self._gripper_open:
            return None
        since = now - self._gripper_changed
        if since < cfg.gripper_min_dwell - 1e-9:  # tick times are sums of floats
            acted.append((Limit.GRIPPER_DWELL, f"gripper {'open' if want else 'close'} {since:.3f} s after the last "
                                               f"change (min dwell {cfg.gripper_min_dwell} s); kept"))
            return None
        self._gripper_open = want
        self._gripper_changed = now
        return 1.0 if want else 0.0

    # ------------------------------------------------------------------ checks
    # ------------------------------------------------------------------ bookkeeping
    def _anchor(self, state) -> None:
        self._clear_motion()
        self._target = np.array(state.ee_pose, dtype=np.float64)
        self._target_joints = np.array(state.joints, dtype=np.float64)
        self._gripper_open = float(state.gripper) > self.config.gripper_threshold
        if self._obs_stamp > -math.inf:
            self._ol_translation = self.config.open_loop_translation
            self._ol_rotation = self.config.open_loop_rotation

    def _clear_motion(self) -> None:
        """Forget the target (re-anchor on the next tick) and every motion in progress."""
        self._target: np.ndarray | None = None
        self._target_joints: np.ndarray | None = None
        self._last_cmd: EndEffectorCommand | None = None
        self._repeats = 0
        self._gripper_open: bool | None = None
        self._gripper_changed = -math.inf
        self._ol_translation = 0.0
        self._ol_rotation = 0.0
        self._clear_rates()

    def _clear_rates(self) -> None:
        self._v_prev: tuple[float, float, float] = ZERO3
        self._w_prev: tuple[float, float, float] = ZERO3

    def _hold(self, state, acted: list) -> SafetyResult:
        if self._target is not None:
            pose = self._target.copy()
        else:
            pose = np.array(getattr(state, "ee_pose", np.full((4, 4), np.nan)), dtype=np.float64)
        if self._gripper_open is not None:
            gripper = 1.0 if self._gripper_open else 0.0
        else:
            g = getattr(state, "gripper", 0.0)
            gripper = float(g) if isinstance(g, (int, float)) and math.isfinite(g) else 0.0
        stamp = self._last_now if math.isfinite(self._last_now) else 0.0
        hold = EndEffectorCommand(ZERO3, ZERO3, gripper, stamp)
        return self._result(pose, None, None, hold, acted)

    def _result(self, pose, joints, gripper, executed, acted: list) -> SafetyResult:
        for lim, _ in acted:
            self._counts[lim.value] += 1
        if joints is None and acted:
            self._held_ticks += 1
        status = SafetyStatus(
            limits=tuple(lim for lim, _ in acted),
            details=tuple(d for _, d in acted),
            holding=joints is None,
            estopped=self._estopped,
            estop_reason=self._estop_reason,
            enabled=self._enabled,
            tick=self._ticks,
            held_ticks=self._held_ticks,
            counts=dict(self._counts),
            open_loop_translation=self._ol_translation,
            open_loop_rotation=self._ol_rotation,
        )
        return SafetyResult(pose, joints, gripper, executed, status)

