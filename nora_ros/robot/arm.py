"""The Arm interface: what the safety filter commands, on the robot and in simulation.

Implementations: ``SimArm`` (kinematic simulation, here), ``InterbotixArm`` (the xs driver,
robot only, lazy ROS imports, here) and the MuJoCo arm in :mod:`nora_ros.sim`. Only the safety
layer calls the commanding methods, so no path to the motors bypasses the checks.

Why ``InterbotixArm`` talks to the xs driver's topics and services instead of using
``InterbotixManipulatorXS`` (checked on ROS 2 Jazzy with Interbotix's simulated driver, see
DESIGN.md section 6): that class wants its own node and fails with ours, removes our node from
our executor, shuts the whole rclpy context down on exit, and its "blocking" calls only sleep.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from nora_ros.clock import Clock, MonotonicClock
from nora_ros.errors import ArmError, ConfigurationError, InvalidInputError, KinematicsError
from nora_ros.robot.kinematics import (
    FINGER_LOWER,
    FINGER_UPPER,
    ROBOT_MODELS,
    IKResult,
    WidowXModel,
    finger_to_gripper,
)

_log = logging.getLogger(__name__)

GRIPPER_THRESHOLD = 0.5
"""Gripper commands above this open, others close (widowx_envs' rule). The real gripper runs in
PWM effort mode: it cannot hold a half-open position, so every arm here treats it as binary."""

HOME_SPEED = 0.5
"""Fraction of the joint velocity limit for :meth:`Arm.home` / :meth:`Arm.sleep` moves (at
least 1 s): big moves near people are made slowly."""


@dataclass(frozen=True)
class ArmState:
    """A measurement of the arm.

    ``joints``: arm joint positions (rad; 6 for wx250s, 5 for wx250), ``ee_pose``: 4x4 pose of
    the end effector in the base frame from forward kinematics of ``joints``, ``gripper``:
    opening in [0, 1] (1 = open), ``stamp``: seconds when measured, ``moving``: whether the
    arm is still travelling to its last target.
    """

    joints: np.ndarray
    ee_pose: np.ndarray
    gripper: float
    stamp: float
    moving: bool = False


class Arm(abc.ABC):
    """A WidowX arm that moves to joint targets.

    Contract:
    - :meth:`state` never blocks for long (it returns the latest measurement).
    - :meth:`command_joints` sends a joint target to be reached over ``duration`` seconds and
      returns at once; targets outside the joint limits raise, they are never clipped here.
    - :meth:`command_gripper` sets the gripper, absolute: 1 = open, 0 = closed.
    - :meth:`hold` stops where the arm is now.
    - :meth:`home` and :meth:`sleep` move to the named poses (blocking up to ``timeout`` s).
    """

    @abc.abstractmethod
    def state(self) -> ArmState:
        """The latest measurement."""

    @abc.abstractmethod
    def command_joints(self, joints: np.ndarray, duration: float) -> None:
        """Move to ``joints`` over ``duration`` seconds."""

    @abc.abstractmethod
    def command_gripper(self, value: float) -> None:
        """Open (1) or close (0) the gripper."""

    @abc.abstractmethod
    def hold(self) -> None:
        """Stop at the current position."""

    @abc.abstractmethod
    def home(self, timeout: float = 5.0) -> None:
        """Move to the home pose."""

    @abc.abstractmethod
    def sleep(self, timeout: float = 5.0) -> None:
        """Move to the sleep pose."""

    def close(self) -> None:  # noqa: B027 - optional hook, most arms hold nothing
        """Release the connection; the arm holds."""

    kinematics: WidowXModel | None = None
    """The arm's kinematic model (implementations set it)."""

    def command_pose(self, pose: np.ndarray, duration: float, *, margin: float = 0.0) -> IKResult:
        """Move the end effector to ``pose`` over ``duration`` s, IK seeded from the measured joints.

        Every joint step is bounded by the velocity limit over ``duration``. Raises
        :class:`KinematicsError` with the IK's reason when there is no such solution; then
        nothing moves. (The safety filter runs its own IK and calls :meth:`command_joints`;
        this is for scripts and tools.)
        """
        if self.kinematics is None:
            raise ArmError(f"{type(self).__name__} has no kinematic model: set its `kinematics`")
        seed = self.state().joints
        result = self.kinematics.ik(pose, seed, max_joint_step=self.kinematics.max_joint_step(duration), margin=margin)
        if not result.success:
            raise KinematicsError(f"no joint target for the requested pose: {result.reason}")
        self.command_joints(result.joints, duration)
        return result


# --------------------------------------------------------------------------- shared checks


def _check_joint_target(model: WidowXModel, joints: Any, duration: float) -> np.ndarray:
    """The joint target as floats, or an error naming what is wrong with it (never clipped)."""
    q = np.asarray(joints, dtype=np.float64).reshape(-1)
    if q.shape != (model.n_joints,):
        raise InvalidInputError(f"{model.name} takes {model.n_joints} joint targets {model.joint_names}, got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ArmError(f"joint target has non-finite values {q.tolist()}; the arm keeps its previous target")
    violations = model.limit_violations(q)
    if violations:
        raise ArmError(
            "joint target outside the joint limits (not clipped; the arm keeps its previous target): " + "; ".join(violations)
        )
    if not (math.isfinite(duration) and duration > 0.0):
        raise ArmError(f"move duration must be a finite number of seconds > 0, got {duration}")
    q.setflags(write=False)
    return q


def _check_gripper(value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ArmError(f"gripper command must lie in [0, 1] (1 = open, 0 = closed), got {value}")
    return v


def _model(robot_model: WidowXModel | str) -> WidowXModel:
    return robot_model if isinstance(robot_model, WidowXModel) else WidowXModel.from_name(robot_model)


def _home_duration(model: WidowXModel, start: np.ndarray, goal: np.ndarray) -> float:
    travel = float(np.max(np.abs(np.asarray(goal) - np.asarray(start))))
    return max(1.0, travel / (HOME_SPEED * model.max_joint_velocity))


# --------------------------------------------------------------------------- SimArm


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
        self.kinematics = _model(robot_model)
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
        q = _check_joint_target(self.kinematics, joints, 1.0)
        g = _check_gripper(gripper)
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
        q = _check_joint_target(self.kinematics, joints, duration)
        with self._lock:
            now = self._now()
            start = self._joints_at(now)  # from where the arm is now, not from the last sample
            travel = float(np.max(np.abs(q - start)))
            self._start, self._goal = start, q
            self._t0 = now
            self._duration = max(float(duration), travel / self.kinematics.max_joint_velocity)

    def command_gripper(self, value: float) -> None:
        v = _check_gripper(value)
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
            duration = _home_duration(self.kinematics, self._joints_at(self._now()), goal)
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


# --------------------------------------------------------------------------- InterbotixArm


def interbotix_messages() -> SimpleNamespace:
    """The ROS message and service classes InterbotixArm uses (lazy import: robot only)."""
    try:
        from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
        from interbotix_xs_msgs.srv import OperatingModes, RegisterValues
        from sensor_msgs.msg import JointState
    except ImportError as exc:
        raise ArmError(
            "InterbotixArm needs ROS 2 with interbotix_xs_msgs and sensor_msgs; source the ROS and "
            f"Interbotix workspaces first ({exc})"
        ) from exc
    return SimpleNamespace(
        JointGroupCommand=JointGroupCommand,
        JointSingleCommand=JointSingleCommand,
        JointState=JointState,
        OperatingModes=OperatingModes,
        RegisterValues=RegisterValues,
    )


@dataclass(frozen=True)
class InterbotixArmConfig:
    """How :class:`InterbotixArm` drives the xs driver.

    ``robot_model``: "wx250s" or "wx250". ``robot_name``: the driver's namespace (empty: the
    robot model, as ``xsarm_control.launch.py`` does). ``gripper_pressure`` in [0, 1]: PWM
    effort ``150 + 200 * pressure`` (Interbotix's range). ``accel_time`` (s): acceleration part
    of the time-based motion profile, at most half of each move's duration. ``arrival_tolerance``
    (rad): ``moving`` ends when the move's time is up and every joint is this close to its
    target. ``service_timeout`` (s): how long :meth:`InterbotixArm.configure` waits for the
    driver's services. ``state_timeout`` (s): joint states older than this (by receipt) are
    stale: :meth:`InterbotixArm.state` raises instead of returning them (the driver publishes at
    30 to 100 Hz; silence means it is gone, and planning from old joints is unsafe).
    """

    robot_model: str = "wx250s"
    robot_name: str = ""
    gripper_pressure: float = 0.5
    gripper_threshold: float = GRIPPER_THRESHOLD
    accel_time: float = 0.04
    arrival_tolerance: float = 0.02
    service_timeout: float = 5.0
    state_timeout: float = 0.5

    def __post_init__(self) -> None:
        if self.robot_model not in ROBOT_MODELS:
            raise ConfigurationError(f"robot_model must be one of {ROBOT_MODELS}, got '{self.robot_model}'")
        if not (0.0 <= self.gripper_pressure <= 1.0):
            raise ConfigurationError(f"gripper_pressure must lie in [0, 1] (effort 150..350 PWM), got {self.gripper_pressure}")
        if not (0.0 < self.gripper_threshold < 1.0):
            raise ConfigurationError(f"gripper_threshold must lie in (0, 1), got {self.gripper_threshold}")
        if not (0.0 <= self.accel_time < 10.0):
            raise ConfigurationError(f"accel_time must be in [0, 10) s, got {self.accel_time}")
        if not (self.arrival_tolerance > 0.0):
            raise ConfigurationError(f"arrival_tolerance must be a positive angle in rad, got {self.arrival_tolerance}")
        if not (self.service_timeout > 0.0):
            raise ConfigurationError(f"service_timeout must be > 0 s, got {self.service_timeout}")
        if not (self.state_timeout > 0.0):
            raise ConfigurationError(f"state_timeout must be > 0 s (a few driver periods, e.g. 0.5), got {self.state_timeout}")

    @property
    def namespace(self) -> str:
        return "/" + (self.robot_name or self.robot_model)

    @property
    def gripper_effort(self) -> float:
        return 150.0 + 200.0 * self.gripper_pressure


class InterbotixArm(Arm):
    """The real WidowX through the Interbotix xs driver, on a node we own.

    Publishes joint targets on ``/<robot_name>/commands/joint_group`` (group ``arm``) and the
    gripper's PWM effort on ``/<robot_name>/commands/joint_single`` (joint ``gripper``),
    reads ``/<robot_name>/joint_states`` (by joint name), and sets the arm's time-based motion
    profile (profile velocity = move duration in ms, profile acceleration = ramp in ms) through
    ``set_operating_modes`` / ``set_motor_registers``. Our IK, our node: nothing here starts a
    node, an executor or a thread, and nothing blocks except :meth:`configure`, :meth:`home`
    and :meth:`sleep` (call those from a thread other than the executor's that delivers joint
    states, or they wait for states that cannot arrive).

    ``messages`` holds the message and service classes (default :func:`interbotix_messages`,
    imported only here); ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        node: Any,
        config: InterbotixArmConfig | None = None,
        *,
        messages: SimpleNamespace | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config = config or InterbotixArmConfig()
        self.kinematics = WidowXModel.from_name(self.config.robot_model)
        self._msgs = messages or interbotix_messages()
        self._node = node
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        ns = self.config.namespace
        self._group_pub = node.create_publisher(self._msgs.JointGroupCommand, f"{ns}/commands/joint_group", 10)
        self._single_pub = node.create_publisher(self._msgs.JointSingleCommand, f"{ns}/commands/joint_single", 10)
        self._sub = node.create_subscription(self._msgs.JointState, f"{ns}/joint_states", self._on_joint_states, 10)
        self._modes = node.create_client(self._msgs.OperatingModes, f"{ns}/set_operating_modes")
        self._registers = node.create_client(self._msgs.RegisterValues, f"{ns}/set_motor_registers")
        self._latest: tuple[np.ndarray, float, float, float] | None = None  # joints, finger (m), stamp, receipt
        self.rejected_states = 0
        """Joint-state messages ignored because a joint was missing (see :attr:`last_rejection`)."""
        self.last_rejection = ""
        self._configured = False
        self._profile_ms: tuple[int, int] | None = None
        self._goal: np.ndarray | None = None
        self._move_end = -math.inf
        self._gripper_dir = 0  # +1 opening, -1 closing, 0 unknown
        self._gripper_moving = False
        self.pending = []  # service futures, newest last (for diagnostics)

    # ----------------------------------------------------------------- setup

    def configure(self, timeout: float | None = None, duration: float = 0.2) -> None:
        """Wait for the driver's services, then put the arm in time-based position mode for moves of
        ``duration`` s and the gripper in PWM mode. Blocks up to ``timeout`` s per service."""
        wait = self.config.service_timeout if timeout is None else timeout
        for client, name in ((self._modes, "set_operating_modes"), (self._registers, "set_motor_registers")):
            if not client.wait_for_service(timeout_sec=wait):
                raise ArmError(
                    f"the xs driver's service {self.config.namespace}/{name} did not appear within {wait} s; "
                    f"is xsarm_control running with robot_name '{self.config.namespace[1:]}'?"
                )
        velocity_ms, accel_ms = self._profile(duration)
        req = self._msgs.OperatingModes.Request(
            cmd_type="group", name="arm", mode="position", profile_type="time",
            profile_velocity=velocity_ms, profile_acceleration=accel_ms,
        )
        self.pending.append(self._modes.call_async(req))
        self.pending.append(self._modes.call_async(self._msgs.OperatingModes.Request(
            cmd_type="single", name="gripper", mode="pwm", profile_type="velocity",
            profile_velocity=0, profile_acceleration=0,
        )))
        self._profile_ms = (velocity_ms, accel_ms)
        self._configured = True

    def _profile(self, duration: float) -> tuple[int, int]:
        velocity_ms = int(round(duration * 1000.0))
        accel_ms = int(round(min(self.config.accel_time, duration / 2.0) * 1000.0))
        return velocity_ms, accel_ms

    def _set_profile(self, duration: float) -> None:
        """Update the motors' profile when a move's duration differs (asynchronous: the driver applies
        it in order with other service calls; moves of the control loop all share one duration)."""
        velocity_ms, accel_ms = self._profile(duration)
        if self._profile_ms == (velocity_ms, accel_ms):
            return
        for reg, value in (("Profile_Velocity", velocity_ms), ("Profile_Acceleration", accel_ms)):
            req = self._msgs.RegisterValues.Request(cmd_type="group", name="arm", reg=reg, value=value)
            self.pending.append(self._registers.call_async(req))
        self._profile_ms = (velocity_ms, accel_ms)
        del self.pending[:-8]

    # ----------------------------------------------------------------- joint states

    def _on_joint_states(self, msg: Any) -> None:
        names = list(msg.name)
        positions = list(msg.position)
        try:
            q = np.array([positions[names.index(j)] for j in self.kinematics.joint_names], dtype=np.float64)
            finger = float(positions[names.index("left_finger")])
        except (ValueError, IndexError):
            self.rejected_states += 1
            self.last_rejection = (f"joint_states without all of {self.kinematics.joint_names} + left_finger "
                                   f"(got {names}); is robot_model '{self.config.robot_model}' right?")
            return
        stamp = float(msg.header.stamp.sec) + 1e-9 * float(msg.header.stamp.nanosec)
        if stamp == 0.0:
            stamp = self._clock()
        q.setflags(write=False)
        with self._lock:
            self._latest = (q, finger, stamp, self._clock())
        # PWM keeps pushing: stop it once the fingers reach their travel limit (as Interbotix does),
        # but keep squeezing an object the fingers closed on.
        if self._gripper_moving and (
            (self._gripper_dir > 0 and finger >= FINGER_UPPER) or (self._gripper_dir < 0 and finger <= FINGER_LOWER)
        ):
            self._single_pub.publish(self._msgs.JointSingleCommand(name="gripper", cmd=0.0))
            self._gripper_moving = False

    # ----------------------------------------------------------------- Arm

    def state(self) -> ArmState:
        """The latest joint state; ArmError when there is none yet or it is stale (``state_timeout``)."""
        with self._lock:
            latest = self._latest
        if latest is None:
            raise ArmError(
                f"no joint states received on {self.config.namespace}/joint_states yet; is the xs driver running?"
                + (f" ({self.rejected_states} rejected: {self.last_rejection})" if self.rejected_states else "")
            )
        q, finger, stamp, received = latest
        age = self._clock() - received
        if age > self.config.state_timeout:
            raise ArmError(
                f"joint states on {self.config.namespace}/joint_states are stale: the last arrived {age:.2f} s ago "
                f"(state_timeout {self.config.state_timeout} s); is the xs driver still running?"
            )
        moving = self._clock() < self._move_end or (
            self._goal is not None and float(np.max(np.abs(q - self._goal))) > self.config.arrival_tolerance
        )
        pose = self.kinematics.fk(q)
        pose.setflags(write=False)
        # a finger reading may overshoot its nominal range by a little; report the opening within [0, 1]
        gripper = min(1.0, max(0.0, finger_to_gripper(finger)))
        return ArmState(joints=q, ee_pose=pose, gripper=gripper, stamp=stamp, moving=moving)

    def command_joints(self, joints: np.ndarray, duration: float) -> None:
        q = _check_joint_target(self.kinematics, joints, duration)
        if not self._configured:
            raise ArmError("InterbotixArm.configure() has not run: the motors' motion profile is unknown")
        self._set_profile(duration)
        self._publish_joints(q)
        self._move_end = self._clock() + float(duration)

    def _publish_joints(self, q: np.ndarray) -> None:
        self._group_pub.publish(self._msgs.JointGroupCommand(name="arm", cmd=[float(x) for x in q]))
        self._goal = q

    def command_gripper(self, value: float) -> None:
        v = _check_gripper(value)
        direction = 1 if v > self.config.gripper_threshold else -1
        if direction == self._gripper_dir:
            return  # already opening/open or closing/closed: PWM needs no repeat
        self._single_pub.publish(
            self._msgs.JointSingleCommand(name="gripper", cmd=float(direction * self.config.gripper_effort))
        )
        self._gripper_dir = direction
        self._gripper_moving = True

    def hold(self) -> None:
        """Command the measured joints (within the current profile): the arm stops where it is.

        Without a fresh measurement nothing new is sent (the arm stops at its last target, at most
        one step ahead) and a warning says why: hold never raises, it is the e-stop's action.
        """
        try:
            q = self.state().joints
        except ArmError as exc:
            _log.warning("hold: %s; the arm keeps its last target", exc)
            return
        self._publish_joints(q)
        self._move_end = self._clock()

    def home(self, timeout: float = 5.0) -> None:
        self._move_and_wait(self.kinematics.home_joints, timeout)

    def sleep(self, timeout: float = 5.0) -> None:
        self._move_and_wait(self.kinematics.sleep_joints, timeout)

    def _move_and_wait(self, goal: np.ndarray, timeout: float) -> None:
        start = self.state().joints
        self.command_joints(goal, _home_duration(self.kinematics, start, goal))
        deadline = self._clock() + timeout
        while self.state().moving:
            if self._clock() >= deadline:
                raise ArmError(
                    f"the arm did not reach {np.round(goal, 3).tolist()} within {timeout} s (at "
                    f"{np.round(self.state().joints, 3).tolist()}); it keeps its target"
                )
            self._sleep(0.02)

    def close(self) -> None:
        """Hold (when states have arrived) and release the publishers, subscription and clients."""
        if self._configured:
            self.hold()
        for kind, handle in (("publisher", self._group_pub), ("publisher", self._single_pub),
                             ("subscription", self._sub), ("client", self._modes), ("client", self._registers)):
            destroy = getattr(self._node, f"destroy_{kind}", None)
            if destroy is not None:
                destroy(handle)
