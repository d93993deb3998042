"""The scripted expert predicting T-step chunks, with noise: a stand-in for NORA-Long / NORA-1.5.

The chunk-execution experiment needs a policy that predicts several steps ahead, is good
enough that differences between execution modes show, and whose errors can be dialled.
:class:`ChunkingExpertPolicy` runs the scripted expert's step function T times on a
*predicted* world: after each action the end effector is moved by that action (Bridge
semantics, :func:`nora_ros.actions.apply_bridge_delta`) and a grasped object moves with it, so
action k is what the expert would do after k perfectly executed steps. Then Gaussian noise
(``noise_translation`` metres, ``noise_rotation`` radians, per action and dimension) is added:
the later a chunk's action, the more the world will have drifted from its prediction, like a
learned policy's open-loop error.

The expert's script has state (its phase, step counters, its aim). At the next observation it
resumes from the state it had after the prefix of the last chunk that was actually executed,
found as the predicted waypoint nearest the measured end effector, so it neither repeats a
phase's counted steps nor runs ahead of the arm.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from nora_ros.actions import ActionChunk, apply_bridge_delta
from nora_ros.camera.frame import Frame
from nora_ros.errors import ConfigurationError
from nora_ros.policy.base import Policy
from nora_ros.sim.expert import ExpertConfig, ScriptedExpertPolicy, _ground_truth, _task_for

MODEL_ID = "scripted-expert-chunks"
_STATE_SKIP = ("world", "config")
"""ScriptedExpertPolicy attributes that are not script state (never copied or restored)."""


@dataclass(frozen=True)
class ChunkingConfig:
    """horizon: actions per chunk (NORA-Long and NORA-1.5: 5). noise_translation / noise_rotation:
    standard deviation of the noise added to each action's translation (m) and rotation (rad)
    components. seed: the noise generator's seed; each trial's reset restarts it (``reset``
    mixes in the trial's instruction count, so trials differ but a run replays exactly)."""

    horizon: int = 5
    noise_translation: float = 0.0
    noise_rotation: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ConfigurationError(f"horizon must be >= 1, got {self.horizon}")
        if not (self.noise_translation >= 0 and self.noise_rotation >= 0):
            raise ConfigurationError("noise_translation and noise_rotation must be >= 0")


class ChunkingExpertPolicy(Policy):
    """T-step chunks from the scripted expert on a predicted world (see the module docstring)."""

    model_id = MODEL_ID
    needs_ground_truth = True

    def __init__(self, world: object | None = None, config: ChunkingConfig | None = None,
                 expert: ExpertConfig | None = None):
        self.config = config or ChunkingConfig()
        self.expert = ScriptedExpertPolicy(world, expert)
        self.world = world
        self.horizon = self.config.horizon
        self.step_period = self.expert.step_period
        self._trials = 0
        self.reset("")

    def reseed(self, seed: int) -> None:
        """Restart the noise from ``seed`` (an experiment's trial seed), as if the policy were new."""
        self.config = ChunkingConfig(self.config.horizon, self.config.noise_translation,
                                     self.config.noise_rotation, seed)
        self._trials = 0

    def reset(self, instruction: str) -> None:
        self.expert.reset(instruction)
        self._rng = np.random.default_rng([self.config.seed, self._trials])
        self._trials += 1
        self._snapshots: list[dict] = []
        self._waypoints: list[np.ndarray] = []
        self._last_stamp = 0.0
        self._chunks = 0

    def act(self, frame: Frame, instruction: str) -> ActionChunk:
        t0 = time.perf_counter()
        truth = _ground_truth(frame, self.world)
        task = _task_for(instruction)
        self._resume(np.asarray(truth["ee_pose"], dtype=np.float64)[:3, 3], frame.stamp)
        self._last_stamp = frame.stamp
        world = _copy_truth(truth)
        snapshots, waypoints, actions = [self._state()], [world["ee_pose"][:3, 3].copy()], []
        for _ in range(self.config.horizon):
            action = self.expert._next_action(task, world)
            actions.append(action)
            _advance(world, task.obj, action)
            snapshots.append(self._state())
            waypoints.append(world["ee_pose"][:3, 3].copy())
        # the script continues from step 1 unless the next observation shows more was executed
        self._restore(snapshots[1])
        self._snapshots, self._waypoints = snapshots, waypoints
        out = np.array(actions)
        c = self.config
        if c.noise_translation > 0 or c.noise_rotation > 0:
            out[:, :3] += self._rng.normal(0.0, c.noise_translation, (len(out), 3)) if c.noise_translation else 0.0
            out[:, 3:6] += self._rng.normal(0.0, c.noise_rotation, (len(out), 3)) if c.noise_rotation else 0.0
        self._chunks += 1
        return ActionChunk(actions=out, step_period=self.step_period, model_id=MODEL_ID,
                           timings={"total": time.perf_counter() - t0}, stamp=frame.stamp, chunk_id=self._chunks,
                           metadata={"noise_translation": c.noise_translation, "noise_rotation": c.noise_rotation})

    # ------------------------------------------------------------------ script state
    def _resume(self, measured: np.ndarray, stamp: float) -> None:
        """Restore the script as it was after the executed prefix of the last chunk: the
        predicted waypoint nearest the measured end effector; among waypoints within 2 mm of
        it (the gripper closing in place moves nothing), the latest the elapsed time allows."""
        if not self._snapshots:
            return
        dist = np.array([float(np.linalg.norm(measured - w)) for w in self._waypoints])
        elapsed = int(np.floor((stamp - self._last_stamp) / self.step_period + 1e-6))
        near = [k for k in np.flatnonzero(dist <= dist.min() + 0.002) if k <= max(elapsed, 1)]
        k = int(max(near)) if near else int(np.argmin(dist))
        self._restore(self._snapshots[max(k, 1)])

    def _state(self) -> dict:
        return copy.deepcopy({k: v for k, v in vars(self.expert).items() if k not in _STATE_SKIP})

    def _restore(self, state: dict) -> None:
        vars(self.expert).update(copy.deepcopy(state))


def _copy_truth(truth) -> dict:
    return {
        "ee_pose": np.array(truth["ee_pose"], dtype=np.float64),
        "objects": {k: np.array(v, dtype=np.float64) for k, v in truth["objects"].items()},
        "grasped": dict(truth.get("grasped", {})),
    }


def _advance(world: dict, obj: str, action: np.ndarray) -> None:
    """The predicted world after one perfectly executed action: the end effector moves by it;
    an object the gripper holds moves with the end effector's translation."""
    ee = world["ee_pose"]
    moved = apply_bridge_delta(ee, ee[:3, 3], action)
    if world["grasped"].get(obj, False):
        world["objects"][obj][:3, 3] += moved[:3, 3] - ee[:3, 3]
    world["ee_pose"] = moved
