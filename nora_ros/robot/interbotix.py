"""InterbotixArm: the real WidowX through the Interbotix xs driver's topics and services (robot
only; ROS is imported lazily, inside the functions: the one ROS adapter in the core).

Why it talks to the xs driver's topics and services instead of using
``InterbotixManipulatorXS`` (checked on ROS 2 Jazzy with Interbotix's simulated driver, see
DESIGN.md section 6): that class wants its own node and fails with ours, removes our node from
our executor, shuts the whole rclpy context down on exit, and its "blocking" calls only sleep.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from nora_ros.errors import ArmError, ConfigurationError
from nora_ros.robot.arm import GRIPPER_THRESHOLD, Arm, ArmState, check_gripper, check_joint_target, home_duration
from nora_ros.robot.kinematics import FINGER_LOWER, FINGER_UPPER, ROBOT_MODELS, WidowXModel, finger_to_gripper

_log = logging.getLogger(__name__)


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
        q = check_joint_target(self.kinematics, joints, duration)
        if not self._configured:
            raise ArmError("InterbotixArm.configure() has not run: the motors' motion profile is unknown")
        self._set_profile(duration)
        self._publish_joints(q)
        self._move_end = self._clock() + float(duration)

    def _publish_joints(self, q: np.ndarray) -> None:
        self._group_pub.publish(self._msgs.JointGroupCommand(name="arm", cmd=[float(x) for x in q]))
        self._goal = q

    def command_gripper(self, value: float) -> None:
        v = check_gripper(value)
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
        self.command_joints(goal, home_duration(self.kinematics, start, goal))
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

