"""SimArm: the arm as a kinematic simulation (joints reach their targets on a smooth time
profile), for the runner, the safety replay and tests without MuJoCo or a robot."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nora_ros.clock import Clock, MonotonicClock
from nora_ros.errors import ArmError, ConfigurationError, InvalidInputError
from nora_ros.robot.arm import (
    GRIPPER_THRESHOLD,
    HOME_SPEED,
    Arm,
    ArmState,
    check_gripper,
    check_joint_target,
    home_duration,
    resolve_model,
)
from nora_ros.robot.kinematics import FINGER_LOWER, FINGER_UPPER, WidowXModel, finger_to_gripper

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimArmConfig:
    """Behaviour of the kinematic simulation.

    ``rate_hz``: joint states are sampled at this rate, like the driver's topic (100 Hz): a
    :meth:`SimArm.state` returns the sample of the latest tick. ``gripper_travel_time``: seconds
    for the fingers' full stroke (0.015 to 0.037 m); PWM gripping is not instantaneous and a
    policy must see that. ``gripper_threshold``: see :data:`GRIPPER_THRESHOLD`.
    """

    rate_hz: float = 100.0
    gripper_travel_time: float = 0.5
    gripper_threshold: float = GRIPPER_THRESHOLD

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ConfigurationError(f"rate_hz must be a positive rate in Hz (100 is the driver's), got {self.rate_hz}")
        if not (math.isfinite(self.gripper_travel_time) and self.gripper_travel_time > 0):
            raise ConfigurationError(f"gripper_travel_time must be > 0 s (about 0.5 s on a WidowX), got {self.gripper_travel_time}")
        if not (0.0 < self.gripper_threshold < 1.0):
            raise ConfigurationError(f"gripper_threshold must lie in (0, 1), got {self.gripper_threshold}")


class SimArm(Arm):
    """A kinematic WidowX: joints move in a straight line (in joint space) to each target, arriving
    after the commanded duration, or later if a joint would exceed the velocity limit (it then
    moves at the limit); the fingers travel at a finite speed; states are sampled at 100 Hz.

    Time is either the arm's own, advanced only by :meth:`advance` (deterministic, faster than
    real time: what tests and the safety replay use), or an injected clock's (``clock=`` with
    ``now()`` and ``sleep_until(t)``, e.g. :class:`~nora_ros.clock.MonotonicClock` for real time, or a simulated
    clock shared with a control loop). Motion is evaluated in closed form at the sample times,
    so advancing by any amount costs the same. :meth:`start_background` adds an optional thread
    that hands every 100 Hz sample to a callback (a simulator node publishing joint states).
    """

    def __init__(
        self,
        robot_model: WidowXModel | str = "wx250s",
        *,
        joints: np.ndarray | None = None,
        gripper: float = 1.0,
        config: SimArmConfig | None = None,
        clock: Clock | None = None,
        start_time: float = 0.0,
    ):
        self.kinematics = resolve_model(robot_model)
        self.config = config or SimArmConfig()
        self._clock = clock
        self._lock = threading.RLock()
        self._origin = float(clock.now()) if clock is not None else float(start_time)
        self._t = self._origin
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.reset(self.kinematics.sleep_joints if joints is None else joints, gripper)

    @classmethod
    def realtime(cls, robot_model: WidowXModel | str = "wx250s", **kwargs: Any) -> SimArm:
        """A SimArm on the wall clock."""
        return cls(robot_model, clock=MonotonicClock(), **kwargs)

    # ----------------------------------------------------------------- time

    @property
    def time(self) -> float:
        """The simulation's current time (s)."""
        with self._lock:
            return self._now()

    def advance(self, dt: float) -> ArmState:
        """Advance the arm's own time by ``dt`` seconds and return the state then (no sleeping)."""
        if self._clock is not None:
            raise ArmError("this SimArm follows an injected clock: advance that clock instead of calling advance()")
        if not (math.isfinite(dt) and dt >= 0.0):
            raise InvalidInputError(f"advance() takes a finite dt >= 0 s, got {dt}")
        with self._lock:
            self._t += float(dt)
            return self.state()

    def _now(self) -> float:
        if self._clock is not None:
            self._t = max(self._t, float(self._clock.now()))
        return self._t

    def _sample_time(self) -> float:
        """Time of the latest 100 Hz sample (an integer tick count from the start: no drift)."""
        ticks = math.floor((self._now() - self._origin) * self.config.rate_hz + 1e-9)
        return self._origin + ticks / self.config.rate_hz

    # ----------------------------------------------------------------- motion model

    def _joints_at(self, t: float) -> np.ndarray:
        if self._duration <= 0.0 or t >= self._t0 + self._duration:
            return self._goal
        s = max(0.0, (t - self._t0) / self._duration)
        return self._start + s * (self._goal - self._start)

    def _finger_at(self, t: float) -> float:
        speed = (FINGER_UPPER - FINGER_LOWER) / self.config.gripper_travel_time
        gap = self._finger_goal - self._finger_start
        moved = min(abs(gap), speed * max(0.0, t - self._finger_t0))
        return self._finger_start + math.copysign(moved, gap)

    def reset(self, joints: np.ndarray, gripper: float = 1.0) -> None:
        """Put the arm at ``joints`` with the gripper at ``gripper`` (0..1), at rest, at once."""
        q = check_joint_target(self.kinematics, joints, 1.0)
        g = check_gripper(gripper)
        with self._lock:
            now = self._now()
            self._start = self._goal = q
            self._t0, self._duration = now, 0.0
            self._finger_start = self._finger_goal = FINGER_LOWER + g * (FINGER_UPPER - FINGER_LOWER)
            self._finger_t0 = now

    # ----------------------------------------------------------------- Arm

    def state(self) -> ArmState:
        with self._lock:
            t = self._sample_time()
            q = np.array(self._joints_at(t))
            q.setflags(write=False)
            moving = self._duration > 0.0 and t < self._t0 + self._duration
            gripper = finger_to_gripper(self._finger_at(t))
        pose = self.kinematics.fk(q)
        pose.setflags(write=False)
        return ArmState(joints=q, ee_pose=pose, gripper=gripper, stamp=t, moving=moving)

    def command_joints(self, joints: np.ndarray, duration: float) -> None:
        """Move to ``joints``, arriving after ``duration`` s (later only if the velocity limit needs it)."""
        q = check_joint_target(self.kinematics, joints, duration)
        with self._lock:
            now = self._now()
            start = self._joints_at(now)  # from where the arm is now, not from the last sample
            travel = float(np.max(np.abs(q - start)))
            self._start, self._goal = start, q
            self._t0 = now
            self._duration = max(float(duration), travel / self.kinematics.max_joint_velocity)

    def command_gripper(self, value: float) -> None:
        v = check_gripper(value)
        goal = FINGER_UPPER if v > self.config.gripper_threshold else FINGER_LOWER
        with self._lock:
            if goal != self._finger_goal:
                now = self._now()
                self._finger_start, self._finger_goal, self._finger_t0 = self._finger_at(now), goal, now

    def hold(self) -> None:
        with self._lock:
            now = self._now()
            q = self._joints_at(now)
            self._start = self._goal = q
            self._t0, self._duration = now, 0.0

    def home(self, timeout: float = 5.0) -> None:
        self._move_and_wait(self.kinematics.home_joints, timeout)

    def sleep(self, timeout: float = 5.0) -> None:
        self._move_and_wait(self.kinematics.sleep_joints, timeout)

    def _move_and_wait(self, goal: np.ndarray, timeout: float) -> None:
        """Move slowly to ``goal``; return on arrival (in the arm's time), ArmError after ``timeout`` s."""
        with self._lock:
            duration = home_duration(self.kinematics, self._joints_at(self._now()), goal)
            self.command_joints(goal, duration)
            # the first 100 Hz sample at or after arrival, so state() shows the arm there
            ticks = math.ceil((self._t0 + self._duration - self._origin) * self.config.rate_hz - 1e-9)
            arrival = self._origin + ticks / self.config.rate_hz
            deadline = self._now() + timeout
        until = min(arrival, deadline)
        if self._clock is None:
            with self._lock:
                self._t = max(self._t, until)
        else:
            self._clock.sleep_until(until)
            if self.time < until - 1e-9:
                raise ArmError(
                    f"the injected clock's sleep_until({until:.3f}) returned at {self.time:.3f}: this clock cannot "
                    f"wait, so home()/sleep() cannot block; the arm keeps moving to {np.round(goal, 3).tolist()}"
                )
        if until < arrival:
            raise ArmError(
                f"the arm needs {duration:.2f} s to reach {np.round(goal, 3).tolist()} at {HOME_SPEED:.0%} of the "
                f"velocity limit, more than the timeout of {timeout} s; it keeps moving there"
            )

    # ----------------------------------------------------------------- optional real-time thread

    def start_background(self, on_state: Callable[[ArmState], None] | None = None) -> None:
        """Hand every joint-state sample to ``on_state`` from a thread, at ``rate_hz`` (real-time clocks only)."""
        if self._clock is None:
            raise ArmError("start_background() needs a clock (SimArm.realtime(...)); a stepped SimArm has no real time")
        if self._thread is not None:
            raise ArmError("the background thread is already running")
        self._stop.clear()
        period = 1.0 / self.config.rate_hz

        def loop() -> None:
            next_t = time.monotonic()
            while not self._stop.is_set():
                state = self.state()
                if on_state is not None:
                    on_state(state)
                next_t += period
                self._stop.wait(max(0.0, next_t - time.monotonic()))

        self._thread = threading.Thread(target=loop, name="SimArm-100Hz", daemon=True)
        self._thread.start()

    def stop_background(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=1.0)
            self._thread = None

    def close(self) -> None:
        self.stop_background()
        self.hold()

