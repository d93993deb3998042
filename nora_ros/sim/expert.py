"""A scripted expert for the simulated pick-and-place tasks: ground truth in, Bridge actions out.

It reads object and gripper poses from the simulator (``Frame.extras``, filled by
:meth:`nora_ros.sim.world.SimWorld.observation`, or the :class:`SimWorld` it was given) and
emits one Bridge-semantics action ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` per 0.2 s step,
each inside Bridge's per-step limits (0.05 m, 0.25 rad), so the safety filter never has to cut
it and the actions look like BridgeData's. Phases: approach above the object (turning the
gripper across it), descend, close, lift, carry over the target, lower, open, retreat.

Translation steps aim at a goal from the *measured* end-effector position, so the loop closes
on the measurement like the Bridge teleoperators did; rotation steps aim at "gripper pointing
down, fingers across the object". It is for demos and tests (and later for generating data),
not a benchmark: it sees what a camera policy cannot.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from nora_ros.actions import DOWN, ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.errors import ConfigurationError, PolicyError
from nora_ros.policy.base import Policy
from nora_ros.sim import scene
from nora_ros.sim.tasks import TASKS, Task

MODEL_ID = "scripted-expert"


class Phase(enum.Enum):
    APPROACH = "approach"
    DESCEND = "descend"
    CLOSE = "close"
    LIFT = "lift"
    CARRY = "carry"
    LOWER = "lower"
    RELEASE = "release"
    RETREAT = "retreat"
    DONE = "done"


@dataclass(frozen=True)
class ExpertConfig:
    """How the expert moves. Distances in metres (base frame), angles in radians.

    ``max_step`` / ``max_rotation``: the largest translation (vector norm) and rotation (each
    Euler component) per action; Bridge's per-step clip is 0.05 m and 0.25 rad. The expert
    aims 5 % (translation) and 10 % (rotation) inside them so rounding never touches a limit.
    ``max_step_change`` / ``max_rotation_change``: the most one action's translation (m) or
    rotation (rad) grows over the previous one, so speed ramps up like a human
    teleoperator's; the defaults (0.09 m/s and 0.45 rad/s per step) stay inside the safety
    filter's default acceleration limits at control rates up to 10 Hz, where a whole step's
    change lands on one tick. ``gain``: the share of the
    remaining distance to a waypoint covered per step (below 1, the last steps shrink, so an
    observation a control tick old does not make the arm overshoot into the table).
    ``resync_distance``: steps aim from the target the expert's own actions set, not from the
    lagging measurement; when the two differ by more than this, or by more than 5 mm while the
    arm has stood still for two observations (the safety filter held or cut a step), the
    expert starts again from the measurement.
    ``hover_height``: the gripper's height above the object before descending.
    ``carry_height``: end-effector height while carrying (clears the pot's rim with the
    carrot hanging below). ``min_grasp_height``: lowest end-effector height when grasping,
    just above the safety filter's default floor (table + 0.02 m) so the goal is reachable
    through it; the pads reach 12 mm below the grasp point. ``tolerance``: how close to a waypoint counts as there.
    ``close_steps`` / ``release_steps``: steps spent closing / opening the gripper in place.
    """

    max_step: float = 0.05
    max_rotation: float = 0.25
    max_step_change: float = 0.018
    max_rotation_change: float = 0.09
    gain: float = 0.6
    resync_distance: float = 0.1
    hover_height: float = 0.07
    min_grasp_height: float = 0.025
    carry_height: float = 0.12
    tolerance: float = 0.008
    yaw_tolerance: float = 0.08
    close_steps: int = 3
    release_steps: int = 2
    step_period: float = 0.2

    def __post_init__(self) -> None:
        if not (0.0 < self.max_step <= 0.05):
            raise ConfigurationError(f"max_step must be in (0, 0.05] m (Bridge's per-step limit), got {self.max_step}")
        if not (0.0 < self.max_rotation <= 0.25):
            raise ConfigurationError(f"max_rotation must be in (0, 0.25] rad (Bridge's per-step limit), got {self.max_rotation}")
        if not (self.resync_distance > self.max_step):
            raise ConfigurationError(f"resync_distance must exceed max_step (one step of lag is normal), got {self.resync_distance}")
        if not (0.0 < self.gain <= 1.0):
            raise ConfigurationError(f"gain must be in (0, 1], got {self.gain}")
        if not (self.max_step_change > 0.0 and self.max_rotation_change > 0.0):
            raise ConfigurationError("max_step_change and max_rotation_change must be positive")
        if not (0.0 < self.tolerance < self.max_step):
            raise ConfigurationError(f"tolerance must be positive and below max_step, got {self.tolerance}")
        if self.carry_height <= scene.POT_HEIGHT + 0.05:
            raise ConfigurationError(f"carry_height must clear the pot rim with the carrot below: > {scene.POT_HEIGHT + 0.05} m")
        if self.close_steps < 1 or self.release_steps < 1:
            raise ConfigurationError("close_steps and release_steps must be at least 1")


def _ground_truth(frame: Frame, world: object | None) -> Mapping[str, object]:
    extras = frame.extras
    if "objects" in extras and "ee_pose" in extras:
        return extras
    if world is not None:
        return world.ground_truth()  # type: ignore[attr-defined]
    raise PolicyError(
        "the scripted expert needs simulator ground truth: pass frames from SimWorld.observation() "
        "(extras with 'objects' and 'ee_pose') or give it the SimWorld"
    )


def _task_for(instruction: str) -> Task:
    """The task whose instruction this is (case and spacing ignored); the expert does what it is
    told, which need not be the world's own task."""
    text = " ".join(instruction.lower().split())
    for task in TASKS.values():
        if task.instruction == text:
            return task
    raise PolicyError(f"the scripted expert knows only {[t.instruction for t in TASKS.values()]}, got '{instruction}'")


def _limit_norm(v: np.ndarray, limit: float) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v * (limit / n) if n > limit else v


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


class ScriptedExpertPolicy(Policy):
    """Pick ``task.obj`` and place it in / on ``task.target`` from simulator ground truth."""

    model_id = MODEL_ID
    horizon = 1
    needs_ground_truth = True

    def __init__(self, world: object | None = None, config: ExpertConfig | None = None):
        self.world = world
        self.config = config or ExpertConfig()
        self.step_period = self.config.step_period
        self.reset("")

    @property
    def phase(self) -> Phase:
        return self._phase

    def reset(self, instruction: str) -> None:
        self._phase = Phase.APPROACH
        self._count = 0
        self._chunk_id = 0
        self._previous = np.zeros(6)
        self._aim: np.ndarray | None = None
        self._last_p: np.ndarray | None = None
        self._still = 0

    def act(self, frame: Frame, instruction: str) -> ActionChunk:
        t0 = time.perf_counter()
        truth = _ground_truth(frame, self.world)
        task = _task_for(instruction)
        action = self._next_action(task, truth)
        self._chunk_id += 1
        return ActionChunk(
            actions=action[None, :],
            step_period=self.config.step_period,
            model_id=MODEL_ID,
            timings={"total": time.perf_counter() - t0},
            stamp=frame.stamp,
            chunk_id=self._chunk_id,
        )

    # ------------------------------------------------------------------ the script

    def _next_action(self, task: Task, truth: Mapping[str, object]) -> np.ndarray:
        c = self.config
        ee = np.asarray(truth["ee_pose"], dtype=np.float64)
        objects = truth["objects"]
        obj = np.asarray(objects[task.obj], dtype=np.float64)  # type: ignore[index]
        dest = np.asarray(objects[task.target], dtype=np.float64)  # type: ignore[index]
        grasped = bool(truth.get("grasped", {}).get(task.obj, False))  # type: ignore[union-attr]
        p = ee[:3, 3]
        o = obj[:3, 3]
        yaw = self._grasp_yaw(obj, ee)
        # where the object hangs relative to the gripper once held: carry the object, not the gripper
        offset = p - o

        phase = self._phase
        gripper = 1.0
        goal = p.copy()
        if phase is Phase.APPROACH:
            goal = np.array([o[0], o[1], o[2] + c.hover_height])
            if self._at(p, goal) and self._yaw_ok(ee, yaw):
                phase = Phase.DESCEND
        if phase is Phase.DESCEND:
            goal = np.array([o[0], o[1], max(o[2], c.min_grasp_height)])
            if self._at(p, goal):
                phase, self._count = Phase.CLOSE, 0
        if phase is Phase.CLOSE:
            gripper = 0.0
            self._count += 1
            if self._count > c.close_steps:
                phase = Phase.LIFT
        if phase is Phase.LIFT:
            gripper = 0.0
            goal = np.array([p[0], p[1], c.carry_height])
            if not grasped and p[2] > o[2] + 0.03:
                phase = Phase.APPROACH  # it slipped: open and try again
                gripper, goal = 1.0, np.array([o[0], o[1], o[2] + c.hover_height])
            elif self._at(p, goal):
                phase = Phase.CARRY
        if phase is Phase.CARRY:
            gripper = 0.0
            goal = np.array([dest[0, 3] + offset[0], dest[1, 3] + offset[1], c.carry_height])
            if not grasped:
                phase, gripper = Phase.APPROACH, 1.0
                goal = np.array([o[0], o[1], o[2] + c.hover_height])
            elif self._at(p, goal):
                phase = Phase.LOWER
        if phase is Phase.LOWER:
            gripper = 0.0
            goal = np.array([dest[0, 3] + offset[0], dest[1, 3] + offset[1], task.release_height() + offset[2]])
            if self._at(p, goal):
                phase, self._count = Phase.RELEASE, 0
        if phase is Phase.RELEASE:
            gripper = 1.0
            self._count += 1
            if self._count > c.release_steps:
                phase = Phase.RETREAT
        if phase is Phase.RETREAT:
            goal = np.array([p[0], p[1], c.carry_height])
            if self._at(p, goal):
                phase = Phase.DONE
        self._phase = phase

        # Bridge deltas move the *target*; the measurement trails it (servo lag, and in the real-time
        # loop a frame a step old). Aim from where this expert's own actions put the target, as a
        # teleoperator does, re-synced to the measurement when they disagree (a hold, a limit).
        # still for two observations in a row: with one observation of delay the arm may not have
        # started the previous action yet, but by the next one it has
        still = self._last_p is not None and np.linalg.norm(p - self._last_p) < 0.002
        self._still = self._still + 1 if still else 0
        off = np.inf if self._aim is None else float(np.linalg.norm(self._aim - p))
        if off > c.resync_distance or (self._still >= 2 and off > 0.005):
            self._aim = p.copy()
        self._last_p = p.copy()
        step = _limit_norm(c.gain * (goal - self._aim), 0.95 * c.max_step)
        if phase in (Phase.CLOSE, Phase.RELEASE, Phase.DONE):
            step[:] = 0.0
        rotation = self._rotation_step(ee, yaw)
        # ramp up: speed up or turn by a bounded amount per step; slowing down is never limited,
        # so a waypoint is not overshot (the safety filter's acceleration limits work the same way)
        prev_step, prev_rot = self._previous[:3], self._previous[3:]
        if np.linalg.norm(step) > np.linalg.norm(prev_step):
            step = prev_step + _limit_norm(step - prev_step, c.max_step_change)
        if np.linalg.norm(rotation) > np.linalg.norm(prev_rot):
            rotation = prev_rot + np.clip(rotation - prev_rot, -c.max_rotation_change, c.max_rotation_change)
        self._previous = np.concatenate([step, rotation])
        self._aim = self._aim + step
        return np.concatenate([step, rotation, [gripper]])

    def _at(self, p: np.ndarray, goal: np.ndarray) -> bool:
        return float(np.linalg.norm(goal - p)) <= self.config.tolerance

    @staticmethod
    def _gripper_yaw(ee: np.ndarray) -> float:
        """Heading of the gripper's z axis (the one the fingers close across)."""
        return math.atan2(ee[1, 2], ee[0, 2])

    def _grasp_yaw(self, obj: np.ndarray, ee: np.ndarray) -> float:
        """Gripper heading with the fingers across the object's long (x) axis, nearest the current one."""
        axis = obj[:3, 0]
        obj_yaw = math.atan2(axis[1], axis[0])
        cur = self._gripper_yaw(ee)
        return cur + _wrap(2 * (obj_yaw - cur)) / 2  # the object is symmetric: modulo pi

    def _yaw_ok(self, ee: np.ndarray, yaw: float) -> bool:
        return abs(_wrap(self._gripper_yaw(ee) - yaw)) <= self.config.yaw_tolerance

    def _rotation_step(self, ee: np.ndarray, yaw: float) -> np.ndarray:
        """Euler delta (roll, pitch, yaw) toward "pointing down at ``yaw``", within the step limit."""
        goal = Rotation.from_euler("z", yaw).as_matrix() @ DOWN
        rotvec = Rotation.from_matrix(goal @ ee[:3, :3].T).as_rotvec()
        angle = float(np.linalg.norm(rotvec))
        limit = 0.9 * self.config.max_rotation  # Euler components of a rotation can exceed its angle a little
        if angle > limit:
            rotvec *= limit / angle
        rpy = Rotation.from_rotvec(rotvec).as_euler("xyz")
        return np.clip(rpy, -self.config.max_rotation, self.config.max_rotation)
