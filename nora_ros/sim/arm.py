"""MujocoArm: the :class:`~nora_ros.robot.arm.Arm` interface backed by the simulated WidowX.

It behaves like the xs driver in time-based profile mode: a joint target is reached over the
commanded ``duration`` along a trapezoidal velocity profile (``accel_time`` to speed up and to
slow down), never faster than the joint velocity limit (pi rad/s): a move that would need more
is stretched in time, as the motors would do. The profile sets the position servos' targets
before every physics step, with the profile's velocity fed forward so the servos do not lag.

Nothing here sleeps: time is the world's. :meth:`home` and :meth:`sleep` are the only calls
that advance the world themselves (they block until arrival, in sim time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nora_ros.errors import ArmError, ConfigurationError, InvalidInputError
from nora_ros.robot.arm import Arm, ArmState
from nora_ros.robot.kinematics import gripper_to_finger
from nora_ros.sim.world import SimWorld


@dataclass(frozen=True)
class MujocoArmConfig:
    """Motion profile of the simulated arm.

    ``accel_time`` (s): ramp time at each end of a move (clamped to half its duration), like
    the driver's profile acceleration. ``arrival_tolerance`` (rad): ``moving`` turns false when
    the profile has ended and every joint is this close to its target. ``gripper_threshold``:
    gripper commands above it open, others close, as widowx_envs does (the real gripper runs in
    PWM effort mode: it cannot hold a half-open position).
    """

    accel_time: float = 0.04
    arrival_tolerance: float = 0.01
    gripper_threshold: float = 0.5
    streaming: bool = False
    """A command that arrives while a move is under way continues from that move's velocity
    (cubic from the current velocity to the new move's mean velocity) instead of ramping from
    rest: what a servo does with a stream of goal positions at 25-50 Hz (each 20 ms move would
    otherwise stop and start, and the arm's jerk would measure that instead of the commands).
    Off by default: one move per 0.2 s step is the WidowX driver's use."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.accel_time < 10.0):
            raise ConfigurationError(f"accel_time must be in [0, 10) s, got {self.accel_time}")
        if not (self.arrival_tolerance > 0.0):
            raise ConfigurationError(f"arrival_tolerance must be a positive angle in rad, got {self.arrival_tolerance}")
        if not (0.0 < self.gripper_threshold < 1.0):
            raise ConfigurationError(f"gripper_threshold must be in (0, 1), got {self.gripper_threshold}")


class MujocoArm(Arm):
    """The simulated WidowX behind the robot's :class:`~nora_ros.robot.arm.Arm` interface."""

    def __init__(self, world: SimWorld, config: MujocoArmConfig | None = None):
        self.world = world
        self.config = config or MujocoArmConfig()
        self.kinematics = world.kinematics
        m = world.model
        ids = world.arm_actuators
        kp = m.actuator_gainprm[ids, 0]
        kv = -m.actuator_biasprm[ids, 2]
        self._feedforward = kv / kp  # ctrl = q_ref + (kv / kp) * qdot_ref cancels the damping lag
        self._lower = self.kinematics.lower
        self._upper = self.kinematics.upper
        self.on_reset()
        world.add_controller(self)

    # ------------------------------------------------------------------ Controller

    def on_reset(self) -> None:
        q = self.world.arm_joints()
        self._start = q
        self._goal = q.copy()
        self._t0 = self.world.time
        self._duration = 0.0
        self._ramp = 0.0
        self._t0_prev, self._duration_prev = self._t0, 0.0
        self._v0: np.ndarray | None = None
        self._v1: np.ndarray | None = None
        self._finger = float(self.world.data.ctrl[self.world.finger_actuators[0]])

    def _profile(self, t: float) -> tuple[float, float]:
        """Progress ``s`` in [0, 1] along the move and its rate ``ds/dt`` at time ``t``."""
        T, ta = self._duration, self._ramp
        tau = t - self._t0
        if T <= 0.0 or tau >= T:
            return 1.0, 0.0
        if tau <= 0.0:
            return 0.0, 0.0
        v = 1.0 / (T - ta)  # peak rate of s
        if tau < ta:
            return 0.5 * v / ta * tau * tau, v * tau / ta
        if tau <= T - ta:
            return v * (tau - 0.5 * ta), v
        r = T - tau
        return 1.0 - 0.5 * v / ta * r * r, v * r / ta

    def setpoint(self, t: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Joint position and velocity the profile asks for at time ``t`` (now by default)."""
        t = self.world.time if t is None else t
        if self._v0 is not None:
            return self._cubic(t)
        s, ds = self._profile(t)
        delta = self._goal - self._start
        return self._start + s * delta, ds * delta

    def _cubic(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Streaming moves: Hermite from (start, v0) to (goal, v1) over the duration, then the goal."""
        T = self._duration
        tau = t - self._t0
        if tau > T + 0.5 * self.world.timestep:  # the stream's next command is due at T (float sums)
            return self._goal.copy(), np.zeros_like(self._goal)
        tau = min(max(tau, 0.0), T)
        u = tau / T
        p0, p1, m0, m1 = self._start, self._goal, self._v0 * T, self._v1 * T
        q = ((2 * u**3 - 3 * u**2 + 1) * p0 + (u**3 - 2 * u**2 + u) * m0 + (-2 * u**3 + 3 * u**2) * p1
             + (u**3 - u**2) * m1)
        dq = ((6 * u**2 - 6 * u) * p0 + (3 * u**2 - 4 * u + 1) * m0 + (-6 * u**2 + 6 * u) * p1
              + (3 * u**2 - 2 * u) * m1) / T
        return q, dq

    def before_step(self, time: float) -> None:
        q, qd = self.setpoint(time)
        d = self.world.data
        d.ctrl[self.world.arm_actuators] = np.clip(q + self._feedforward * qd, self._lower, self._upper)
        d.ctrl[self.world.finger_actuators] = self._finger

    # ------------------------------------------------------------------ Arm

    def state(self) -> ArmState:
        w = self.world
        q = w.arm_joints()
        done = w.time >= self._t0 + self._duration - 0.5 * w.timestep  # float sums of steps fall short
        moving = not (done and np.max(np.abs(q - self._goal)) <= self.config.arrival_tolerance)
        return ArmState(joints=q, ee_pose=w.ee_pose(), gripper=w.gripper_opening(), stamp=w.time, moving=moving)

    def command_joints(self, joints: np.ndarray, duration: float) -> None:
        """Start moving to ``joints`` over ``duration`` s (longer if the velocity limit needs it)."""
        q = np.asarray(joints, dtype=np.float64).reshape(-1)
        n = self.kinematics.n_joints
        if q.shape != (n,):
            raise InvalidInputError(f"{self.kinematics.name} takes {n} joint targets, got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise InvalidInputError(f"joint targets must be finite, got {q.tolist()}; the arm holds its previous target")
        violations = self.kinematics.limit_violations(q)
        if violations:
            raise InvalidInputError("joint target outside the limits (not clipped): " + "; ".join(violations))
        if not (duration >= 0.0 and math.isfinite(duration)):
            raise InvalidInputError(f"duration must be a finite number of seconds >= 0, got {duration}")
        now = self.world.time
        start, velocity = self.setpoint(now)  # continue from where the profile is, not from the lagging measurement
        ramp = min(self.config.accel_time, duration / 2.0)
        travel = float(np.max(np.abs(q - start)))
        # peak velocity of the trapezoid is travel / (T - ramp): stretch T to respect the limit
        needed = travel / self.kinematics.max_joint_velocity + ramp
        self._start, self._goal = start, q.copy()
        self._t0, self._duration, self._ramp = now, max(float(duration), needed), ramp
        # the stream goes on if this command came before (or as) the last move ended
        moving = now <= self._t0_prev + self._duration_prev + 0.5 * self.world.timestep
        self._t0_prev, self._duration_prev = now, self._duration
        if self.config.streaming and moving and self._duration > 0:
            self._v0, self._v1 = velocity, (q - start) / self._duration
        else:
            self._v0 = self._v1 = None

    def command_gripper(self, value: float) -> None:
        """Open (value above ``gripper_threshold``) or close the gripper; value in [0, 1]."""
        v = float(value)
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise InvalidInputError(f"gripper command must be in [0, 1] (1 = open), got {value}")
        self._finger = gripper_to_finger(1.0 if v > self.config.gripper_threshold else 0.0)

    def hold(self) -> None:
        """Stop where the arm is now (its measured joints become the target)."""
        q = self.world.arm_joints()
        self._start, self._goal = q, q.copy()
        self._t0, self._duration, self._ramp = self.world.time, 0.0, 0.0
        self._t0_prev, self._duration_prev = self._t0, 0.0
        self._v0 = self._v1 = None

    def home(self, timeout: float = 5.0) -> None:
        self._move_and_wait(self.kinematics.home_joints, timeout)

    def sleep(self, timeout: float = 5.0) -> None:
        self._move_and_wait(self.kinematics.sleep_joints, timeout)

    def _move_and_wait(self, joints: np.ndarray, timeout: float) -> None:
        """Move to ``joints`` at up to half the velocity limit, stepping the world until arrival."""
        travel = float(np.max(np.abs(np.asarray(joints) - self.world.arm_joints())))
        self.command_joints(joints, max(1.0, 2.0 * travel / self.kinematics.max_joint_velocity))
        deadline = self.world.time + timeout
        while self.state().moving:
            if self.world.time >= deadline:
                raise ArmError(
                    f"the simulated arm did not reach {np.round(joints, 3).tolist()} within {timeout} s "
                    f"(now at {np.round(self.world.arm_joints(), 3).tolist()}); is it blocked by an object?"
                )
            self.world.step(0.02)
