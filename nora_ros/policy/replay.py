"""ReplayPolicy: plays the actions of a recorded episode, one chunk per observation.

Why: the control loop, the safety filter, the simulator and the ROS nodes can then be run and
tested on real WidowX motion without a model or a GPU, and a recorded trial can be re-driven
exactly. The frame and instruction passed to :meth:`ReplayPolicy.act` are ignored: the
recording decides.

Chunks slide by one action per call, as NORA's loop replans after every executed action: call
``k`` returns ``actions[k : k + horizon]``. Near the end the chunks get *shorter* (the last is
one action); nothing is padded, because a repeated last action would be motion the recording
never made. After the last action :meth:`act` raises :class:`PolicyError` (the arm holds) until
:meth:`reset` rewinds.
"""

from __future__ import annotations

import math
import pathlib
import time

import numpy as np

from nora_ros.actions import ACTION_DIM, BRIDGE_STEP_PERIOD, GRIPPER_DIM, ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.errors import ConfigurationError, InvalidInputError, PolicyError
from nora_ros.policy.base import Policy


class ReplayPolicy(Policy):
    """Plays ``actions`` ``(N, 7)`` (Bridge semantics) in order; see the module docstring.

    ``states`` ``(N, 7)`` and ``instruction`` are what the recording holds, if anything, for
    callers that want to start a simulator where the episode started.
    """

    def __init__(
        self,
        actions: np.ndarray,
        horizon: int = 1,
        step_period: float = BRIDGE_STEP_PERIOD,
        model_id: str = "replay",
        states: np.ndarray | None = None,
        instruction: str = "",
        source: str = "actions",
    ) -> None:
        if not isinstance(horizon, int | np.integer) or isinstance(horizon, bool) or horizon < 1:
            raise ConfigurationError(f"replay horizon must be a positive integer (actions per chunk), got {horizon!r}")
        if not (isinstance(step_period, int | float) and math.isfinite(step_period) and step_period > 0):
            raise ConfigurationError(f"replay step_period must be a positive number of seconds, got {step_period!r}")
        self._actions = _checked_table(actions, "action", source)
        if self._actions.shape[0] == 0:
            raise InvalidInputError(f"{source}: 'action' holds no actions")
        g = self._actions[:, GRIPPER_DIM]
        if np.any((g < 0.0) | (g > 1.0)):
            i = int(np.flatnonzero((g < 0.0) | (g > 1.0))[0])
            raise InvalidInputError(f"{source}: gripper action {g[i]:g} at step {i} is outside [0, 1] (1 = open)")
        self.states = None if states is None else _checked_table(states, "state", source)
        if self.states is not None and self.states.shape[0] != self._actions.shape[0]:
            raise InvalidInputError(
                f"{source}: 'state' has {self.states.shape[0]} rows but 'action' has {self._actions.shape[0]}"
            )
        self.horizon = int(horizon)
        self.step_period = float(step_period)
        self.model_id = model_id
        self.instruction = instruction
        self.source = source
        self._next = 0
        self._chunk_id = 0

    @classmethod
    def from_npz(cls, path: str | pathlib.Path, horizon: int = 1, step_period: float = BRIDGE_STEP_PERIOD) -> ReplayPolicy:
        """Load an episode ``.npz`` with ``action`` ``(N, 7)`` and optional ``state`` ``(N, 7)``
        and ``language_instruction`` (the layout of ../shared/data/octo_bridge_debug)."""
        from nora_ros.episode import load_episode

        episode = load_episode(path)
        return cls(
            episode.action,
            horizon=horizon,
            step_period=step_period,
            model_id=f"replay:{episode.path.name}",
            states=episode.state,
            instruction=episode.instruction,
            source=str(episode.path),
        )

    @property
    def actions(self) -> np.ndarray:
        """The whole recording, ``(N, 7)`` float64, read-only."""
        return self._actions

    @property
    def remaining(self) -> int:
        """Chunks left before the episode is exhausted."""
        return self._actions.shape[0] - self._next

    def reset(self, instruction: str = "") -> None:
        """Rewind to the first action (the instruction does not change what is replayed)."""
        self._next = 0

    def act(self, frame: Frame, instruction: str) -> ActionChunk:
        start = time.perf_counter()
        n = self._actions.shape[0]
        if self._next >= n:
            raise PolicyError(f"replay of {self.source} is exhausted after {n} actions; reset() rewinds")
        actions = self._actions[self._next : self._next + self.horizon]
        self._next += 1
        self._chunk_id += 1
        chunk = ActionChunk(
            actions=actions,
            step_period=self.step_period,
            model_id=self.model_id,
            timings={"total": time.perf_counter() - start},
            stamp=frame.stamp,
            chunk_id=self._chunk_id,
        )
        return chunk


def _checked_table(values: np.ndarray, name: str, source: str) -> np.ndarray:
    """``values`` as a read-only ``(N, 7)`` float64 array, or an error naming file and problem."""
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{source}: '{name}' is not numeric: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] != ACTION_DIM:
        raise InvalidInputError(f"{source}: '{name}' must be (N, {ACTION_DIM}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        step, dim = np.argwhere(~np.isfinite(arr))[0]
        raise InvalidInputError(f"{source}: '{name}' has a non-finite value at step {step}, dim {dim}")
    arr.setflags(write=False)
    return arr
