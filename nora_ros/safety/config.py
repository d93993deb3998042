"""The safety filter's limits: one frozen dataclass, every value documented with its unit.

The defaults are the one place each default lives (the YAML files only override them). They
follow BridgeData V2 / widowx_envs, the data NORA was trained on: 0.05 m and 0.25 rad per
0.2 s step, the Bridge workspace box. A config can be checked to only *tighten* another, which
is what the ROS safety node allows while a trial runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nora_ros.errors import ConfigurationError

_VECTOR_FIELDS = ("workspace_lower", "workspace_upper", "orientation_lower", "orientation_upper")
_INT_FIELDS = ("command_timeout_ticks",)


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of :class:`nora_ros.safety.SafetyFilter`.

    Speeds and accelerations apply to the end-effector *target* per control tick; the filter
    integrates over ``tick_period`` (not the measured time between calls), so a late tick can
    never produce a larger step.
    """

    tick_period: float = 0.2
    """s: control tick of the filter; commands are integrated over exactly this long. 0.2 s
    is Bridge's 5 Hz model step; a faster control loop sets e.g. 0.033 (30 Hz)."""

    max_linear_speed: float = 0.25
    """m/s: speed of the end-effector target (Bridge clips steps to 0.05 m per 0.2 s)."""

    max_angular_speed: float = 1.25
    """rad/s: rotation rate of the target (Bridge clips to 0.25 rad per 0.2 s)."""

    max_linear_accel: float = 1.0
    """m/s^2: change of the target's velocity per second, so chunk and step boundaries cannot
    jump: at 5 Hz at most 0.2 m/s (0.04 m per step) from one step to the next. The 25 real
    Bridge episodes need at most 0.64. Braking along the current direction is never limited:
    stopping is the filter's safe action."""

    max_angular_accel: float = 5.0
    """rad/s^2: change of the target's angular velocity per second (at 5 Hz at most 1 rad/s,
    0.2 rad per step, from one step to the next; real Bridge data needs up to 4.97, except
    one episode that also exceeds the angular speed limit). Braking is never limited."""

    workspace_lower: tuple[float, float, float] = (0.1, -0.20, -0.01)
    """m: lower corner (x, y, z) of the box the end-effector target stays in, base frame
    (BridgeData V2 / OpenVLA bounds)."""

    workspace_upper: tuple[float, float, float] = (0.45, 0.25, 0.30)
    """m: upper corner (x, y, z) of the workspace box, base frame."""

    table_z: float = 0.0
    """m: height of the table surface in the base frame (the arm stands on the table)."""

    floor_margin: float = 0.02
    """m: the target stays at least this far above ``table_z``; the effective floor is
    ``max(workspace_lower[2], table_z + floor_margin)``."""

    orientation_lower: tuple[float, float, float] = (-1.2, -1.2, -2.6)
    """rad: lower bounds of the target's Bridge-state Euler angles (roll, pitch, yaw of
    ``R_ee @ DOWN.T``: all zero = gripper pointing straight down). Pitch must stay inside
    (-pi/2, pi/2), where the angles are unique."""

    orientation_upper: tuple[float, float, float] = (1.2, 1.2, 2.6)
    """rad: upper bounds of the Bridge-state Euler angles (roll, pitch, yaw)."""

    joint_margin: float = 0.05
    """rad: target joints stay this far inside every joint limit."""

    open_loop_translation: float = 0.10
    """m: path length the target may travel on commands based on one camera observation
    (``observation_stamp``); restarts when a newer observation arrives. Two full Bridge
    steps: this is what keeps an executed chunk from accumulating into a crash."""

    open_loop_rotation: float = 0.5
    """rad: rotation the target may accumulate on one camera observation."""

    command_timeout_ticks: int = 2
    """ticks: a command passed again (same stamp: no fresher one arrived) is executed on at
    most this many further ticks; then the arm holds. ``None`` holds at once."""

    max_command_age: float = 0.5
    """s: a command whose stamp is further than this from the tick time is rejected as
    stale (also a command stamped in the future by more than this)."""

    max_state_age: float = 0.25
    """s: the arm measurement may be at most this old; older = stale data, the arm holds."""

    gripper_threshold: float = 0.5
    """[0, 1]: gripper commands above it open, below it close (widowx_envs opens above 0.5)."""

    gripper_hysteresis: float = 0.1
    """[0, 1]: the gripper changes only when the command passes the threshold by this much,
    so values hovering near 0.5 do not chatter."""

    gripper_min_dwell: float = 0.4
    """s: minimum time between two gripper changes."""

    def __post_init__(self) -> None:
        for name in _VECTOR_FIELDS:
            value = getattr(self, name)
            try:
                vec = tuple(float(v) for v in value)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"safety.{name} must be 3 numbers (x, y, z or roll, pitch, yaw), got {value!r}") from exc
            if len(vec) != 3 or not all(math.isfinite(v) for v in vec):
                raise ConfigurationError(f"safety.{name} must be 3 finite numbers, got {value!r}")
            object.__setattr__(self, name, vec)
        for f in dataclasses.fields(self):
            if f.name in _VECTOR_FIELDS:
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigurationError(f"safety.{f.name} must be a number, got {value!r}")
            if f.name in _INT_FIELDS:
                if int(value) != value:
                    raise ConfigurationError(f"safety.{f.name} must be a whole number of ticks, got {value!r}")
                object.__setattr__(self, f.name, int(value))
            elif not math.isfinite(value):
                raise ConfigurationError(f"safety.{f.name} must be finite, got {value!r}")
            else:
                object.__setattr__(self, f.name, float(value))
        for name in ("tick_period", "max_linear_speed", "max_angular_speed", "max_linear_accel",
                     "max_angular_accel", "open_loop_translation", "open_loop_rotation",
                     "max_command_age", "max_state_age"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"safety.{name} must be > 0, got {getattr(self, name)}; "
                                         "to stop the arm use the e-stop or disable actuation, not a zero limit")
        for name in ("floor_margin", "joint_margin", "gripper_hysteresis", "gripper_min_dwell"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"safety.{name} must be >= 0, got {getattr(self, name)}")
        if self.command_timeout_ticks < 0:
            raise ConfigurationError(f"safety.command_timeout_ticks must be >= 0, got {self.command_timeout_ticks}")
        lo, hi = self.workspace_lower, self.workspace_upper
        if not all(a < b for a, b in zip(lo, hi, strict=True)):
            raise ConfigurationError(f"safety.workspace_lower {lo} must be below workspace_upper {hi} on every axis")
        if self.floor_z >= hi[2]:
            raise ConfigurationError(f"the floor (table_z + floor_margin = {self.floor_z:.3f} m) must be below "
                                     f"workspace_upper z = {hi[2]} m; lower table_z or floor_margin")
        olo, ohi = self.orientation_lower, self.orientation_upper
        if not all(a < b for a, b in zip(olo, ohi, strict=True)):
            raise ConfigurationError(f"safety.orientation_lower {olo} must be below orientation_upper {ohi}")
        if not (-math.pi / 2 < olo[1] and ohi[1] < math.pi / 2):
            raise ConfigurationError(f"safety orientation pitch bounds ({olo[1]}, {ohi[1]}) must lie inside "
                                     "(-pi/2, pi/2), where Bridge Euler angles are unique")
        if not 0.0 <= self.gripper_threshold - self.gripper_hysteresis < self.gripper_threshold + self.gripper_hysteresis <= 1.0:
            raise ConfigurationError(
                f"gripper_threshold +- gripper_hysteresis must lie in [0, 1], got {self.gripper_threshold} +- "
                f"{self.gripper_hysteresis}"
            )

    # ------------------------------------------------------------------ derived
    @property
    def floor_z(self) -> float:
        """m: lowest z the target may reach: the table plus margin, or the box, whichever is higher."""
        return max(self.workspace_lower[2], self.table_z + self.floor_margin)

    @property
    def max_step_translation(self) -> float:
        """m: the most the target moves in one tick."""
        return self.max_linear_speed * self.tick_period

    @property
    def max_step_rotation(self) -> float:
        """rad: the most the target rotates in one tick."""
        return self.max_angular_speed * self.tick_period

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> SafetyConfig:
        """A config from a dict (YAML, ROS parameters); unknown keys are errors with a hint."""
        data = dict(data or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), names, n=1)
                hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            raise ConfigurationError(f"unknown safety parameter(s) {', '.join(hints)}; known: {', '.join(names)}")
        return cls(**data)

    def to_mapping(self) -> dict[str, Any]:
        """Plain values (lists for vectors), e.g. for YAML or ROS parameters."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> SafetyConfig:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ tightening
    def loosenings(self, current: SafetyConfig) -> list[str]:
        """What this (proposed) config loosens compared with ``current``; empty = only tightens.

        The ROS safety node allows tightening while a trial runs, never loosening; values that
        are not limits (``tick_period``, ``gripper_threshold``) must stay equal.
        """
        out: list[str] = []

        def check(name: str, ok: bool, how: str) -> None:
            if not ok:
                out.append(f"{name}: {getattr(current, name)} -> {getattr(self, name)} ({how})")

        for name in ("tick_period", "gripper_threshold"):
            check(name, getattr(self, name) == getattr(current, name), "must not change while running")
        for name in ("max_linear_speed", "max_angular_speed", "max_linear_accel", "max_angular_accel",
                     "open_loop_translation", "open_loop_rotation", "command_timeout_ticks", "max_command_age",
                     "max_state_age"):
            check(name, getattr(self, name) <= getattr(current, name), "may only decrease")
        for name in ("joint_margin", "gripper_hysteresis", "gripper_min_dwell"):
            check(name, getattr(self, name) >= getattr(current, name), "may only increase")
        for name in ("workspace_lower", "orientation_lower"):
            check(name, all(a >= b for a, b in zip(getattr(self, name), getattr(current, name), strict=True)),
                  "may only rise")
        for name in ("workspace_upper", "orientation_upper"):
            check(name, all(a <= b for a, b in zip(getattr(self, name), getattr(current, name), strict=True)),
                  "may only fall")
        if self.floor_z < current.floor_z:
            out.append(f"floor (table_z + floor_margin): {current.floor_z:.4f} -> {self.floor_z:.4f} m (may only rise)")
        return out

    def check_tightens(self, current: SafetyConfig) -> None:
        """Raise :class:`ConfigurationError` naming every value this config loosens."""
        bad = self.loosenings(current)
        if bad:
            raise ConfigurationError("a running trial's safety limits may only be tightened; loosened: " + "; ".join(bad))
