"""The arm side of a trial, as the ROS safety node runs it (no ROS here).

The safety node owns the arm. Its callbacks hand over the latest command
(:meth:`SafetyLoop.on_command`) and trial status (:meth:`SafetyLoop.on_trial`); its timer
calls :meth:`SafetyLoop.tick` once per ``safety.tick_period``. What it does by trial phase:

- RESETTING: plan the move to the trial's start pose (:mod:`nora_ros.control.start_pose`), send it and
  open the gripper; report ``at_start`` once the arm stands there (the supervisor then starts
  the trial). Without an arm measurement yet, planning waits for one (the supervisor's reset
  timeout bounds the wait). With actuation off (dry run, disabled) nothing moves and ``at_start`` is
  reported at once, so a dry run still runs trials.
- RUNNING: the safety filter re-anchors at the measured pose, then every tick passes the
  latest command through :class:`~nora_ros.safety.SafeArm` (the one path to the motors); in a
  dry run the filter computes and reports, and nothing is sent.
- otherwise: nothing is commanded (a position-controlled arm stays at its last target); when
  a trial stops running, the arm is told to hold once.

Operator controls: a latched e-stop (:meth:`estop`, only :meth:`reset_estop` clears it),
actuation on/off (:meth:`set_enabled`; refused in a dry run), and live limit changes
(:meth:`update_limits`: only tightening while a trial runs). Arm errors end the trial as a
fault, with the reason, and latch the e-stop when they happen while the arm is moving.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nora_ros.actions import EndEffectorCommand
from nora_ros.control.start_pose import StartMove, plan_start_move, reached
from nora_ros.errors import ArmError, ConfigurationError, InvalidInputError, KinematicsError
from nora_ros.safety import SafeArm, SafetyConfig, SafetyResult

ARM_WAIT = 1.0
"""Seconds a trial that starts RUNNING waits for a fresh arm measurement before it faults."""


class Phase(str, enum.Enum):
    IDLE = "idle"
    WAITING_FOR_ARM = "waiting_for_arm"  # RESETTING, but no arm measurement yet to plan the move from
    STARTING = "starting"
    WAITING_TO_RUN = "waiting_to_run"  # RUNNING, but no fresh arm measurement yet to anchor the filter at
    AT_START = "at_start"
    RUNNING = "running"


@dataclass(frozen=True)
class SafetyTick:
    """What the safety node publishes for one tick.

    ``result``: the filter's decision while a trial runs (``cmd_safe`` is its ``executed``
    command; ``None`` outside RUNNING). ``holding``: nothing moved this tick. ``at_start`` /
    ``start_trial_id``: the arm stands at that trial's start pose. ``fault``: a reason to end
    the trial (published on trial/fault, once).
    """

    result: SafetyResult | None
    holding: bool
    at_start: bool
    start_trial_id: int
    fault: str = ""


class SafetyLoop:
    """Not thread-safe: the node calls every method from its executor thread."""

    def __init__(self, safe_arm: SafeArm, *, dry_run: bool = False, start_duration: float = 3.0,
                 start_tolerance: float = 0.02):
        self.safe_arm = safe_arm
        self.dry_run = dry_run
        self.start_duration = start_duration
        self.start_tolerance = start_tolerance
        self.phase = Phase.IDLE
        self.trial_id = 0
        self.move: StartMove | None = None
        self._cmd: EndEffectorCommand | None = None
        self._start_pose: tuple[float, ...] = ()
        self._run_requested = 0.0
        self.waiting_reason = ""
        self._faults: list[str] = []
        if dry_run:
            safe_arm.filter.set_enabled(False)

    @property
    def filter(self):
        return self.safe_arm.filter

    @property
    def arm(self):
        return self.safe_arm.arm

    @property
    def actuating(self) -> bool:
        return not self.dry_run and self.filter.enabled and not self.filter.estopped

    # ------------------------------------------------------------------ inputs
    def on_command(self, cmd: EndEffectorCommand) -> None:
        """The latest command from the policy (used only while a trial runs)."""
        self._cmd = cmd

    def on_trial(self, trial_id: int, state: str, start_pose: Sequence[float], now: float) -> None:
        if state == "RESETTING":
            if trial_id != self.trial_id or self.phase not in (Phase.WAITING_FOR_ARM, Phase.STARTING, Phase.AT_START):
                self.trial_id = trial_id
                self._start_pose = tuple(start_pose)
                self._start(start_pose)
        elif state == "RUNNING":
            if trial_id != self.trial_id or self.phase not in (Phase.RUNNING, Phase.WAITING_TO_RUN):
                self.trial_id = trial_id
                self._run_requested = now
                self._run(now)
        else:
            if self.phase is Phase.RUNNING and not self.dry_run:
                self._safely(self.arm.hold, "holding at the end of the trial")
            self.phase = Phase.IDLE
            self.move = None

    def estop(self, reason: str) -> None:
        if self.dry_run:
            self.filter.estop(reason)  # reported; nothing to stop
        else:
            self._safely(lambda: self.safe_arm.estop(reason), "e-stop", fallback=lambda: self.filter.estop(reason))
        if self.phase in (Phase.STARTING, Phase.WAITING_FOR_ARM):
            self.phase = Phase.IDLE

    def reset_estop(self) -> None:
        self.safe_arm.reset_estop()

    def set_enabled(self, enabled: bool) -> None:
        if enabled and self.dry_run:
            raise ConfigurationError("this safety node runs with dry_run: true; actuation cannot be turned on "
                                     "(restart without dry_run)")
        if self.dry_run:
            return
        self._safely(lambda: self.safe_arm.set_enabled(enabled), "actuation change",
                     fallback=lambda: self.filter.set_enabled(enabled))

    def update_limits(self, changes: Mapping[str, Any]) -> SafetyConfig:
        """Apply new limits (``SafetyConfig`` field names); while a trial moves the arm they may
        only tighten. Returns the new config; raises :class:`ConfigurationError` saying why not."""
        current = self.filter.config
        new = SafetyConfig.from_mapping({**current.to_mapping(), **changes})
        if new.tick_period != current.tick_period:
            raise ConfigurationError("safety.tick_period is fixed at start; restart the node to change it")
        if self.phase in (Phase.RUNNING, Phase.STARTING, Phase.WAITING_FOR_ARM, Phase.WAITING_TO_RUN):
            new.check_tightens(current)
        self.filter.config = new
        return new

    # ------------------------------------------------------------------ the control tick
    def tick(self, now: float) -> SafetyTick:
        if self.phase is Phase.WAITING_FOR_ARM:
            self._start(self._start_pose)  # the supervisor's reset timeout bounds the wait
        if self.phase is Phase.WAITING_TO_RUN:
            self._run(now)
        fault = self._faults.pop(0) if self._faults else ""
        if self.phase is Phase.RUNNING:
            cmd = self._cmd
            try:
                if self.dry_run:
                    result = self.filter.step(cmd, self.arm.state(), now)
                else:
                    result = self.safe_arm.tick(cmd, now)
            except (ArmError, InvalidInputError) as exc:
                reason = f"arm error while running: {exc}"
                self.filter.estop(reason)
                self.phase = Phase.IDLE
                return SafetyTick(None, True, False, 0, "; ".join(f for f in (fault, reason) if f))
            return SafetyTick(result, result.holding, False, 0, fault)
        if self.phase is Phase.STARTING and self.move is not None:
            try:
                if reached(self.arm.state(), self.move, self.start_tolerance):
                    self.phase = Phase.AT_START
            except ArmError as exc:
                self.phase = Phase.IDLE
                reason = f"arm error while moving to the start pose: {exc}"
                return SafetyTick(None, True, False, 0, "; ".join(f for f in (fault, reason) if f))
        at_start = self.phase is Phase.AT_START
        return SafetyTick(None, True, at_start, self.trial_id if at_start else 0, fault)

    # ------------------------------------------------------------------ internals
    def _start(self, start_pose: Sequence[float]) -> None:
        self.move = None
        if self.filter.estopped:
            self.phase = Phase.IDLE
            self._faults.append(f"cannot reset for trial {self.trial_id}: the e-stop is latched "
                                f"({self.filter.estop_reason}); call safety/reset first")
            return
        try:
            state = self.arm.state()
        except ArmError as exc:
            # No measurement yet (driver starting, first joint states in flight): plan on a later tick.
            self.phase = Phase.WAITING_FOR_ARM
            self.waiting_reason = str(exc)
            return
        self.waiting_reason = ""
        try:
            move = plan_start_move(self.arm.kinematics, self.filter.config, state, start_pose, self.start_duration)
        except (KinematicsError, ConfigurationError) as exc:
            self.phase = Phase.IDLE
            self._faults.append(f"cannot move to the start pose of trial {self.trial_id}: {exc}")
            return
        self.move = move
        if not self.actuating:
            self.phase = Phase.AT_START  # dry run / disabled: nothing moves, the trial may still run
            return

        def go() -> None:
            self.arm.command_joints(move.joints, move.duration)
            self.arm.command_gripper(1.0)

        self.phase = Phase.STARTING if self._safely(go, "moving to the start pose") else Phase.IDLE

    def _run(self, now: float) -> None:
        self._cmd = None
        try:
            self.safe_arm.reanchor()
        except (ArmError, InvalidInputError) as exc:
            # No fresh measurement (a replayed bag's first joint states, a driver hiccup): wait a
            # little, then end the trial as a fault. Nothing is commanded meanwhile.
            if now - self._run_requested < ARM_WAIT:
                self.phase = Phase.WAITING_TO_RUN
                self.waiting_reason = str(exc)
                return
            self.phase = Phase.IDLE
            self._faults.append(f"cannot start trial {self.trial_id}: {exc}")
            return
        self.waiting_reason = ""
        self.phase = Phase.RUNNING

    def _safely(self, action, what: str, fallback=None) -> bool:
        """Run an arm action; an arm error becomes a fault (and ``fallback`` runs instead)."""
        try:
            action()
            return True
        except ArmError as exc:
            self._faults.append(f"{what} failed: {exc}")
            if fallback is not None:
                fallback()
            return False
