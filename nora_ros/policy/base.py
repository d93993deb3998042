"""The Policy interface the rest of the package depends on."""

from __future__ import annotations

import abc

from nora_ros.actions import ActionChunk
from nora_ros.camera.frame import Frame


class Policy(abc.ABC):
    """Turns the latest camera frame and an instruction into an :class:`ActionChunk`.

    Contract:
    - :meth:`reset` is called once before each trial, with that trial's instruction.
    - :meth:`act` may block (model inference) and is called from a worker thread, never from
      the control loop; it returns a validated chunk or raises a
      :class:`nora_ros.errors.NoraError` that says why (the arm then holds).
    - ``model_id``, ``horizon`` (actions per chunk) and ``step_period`` (seconds per action)
      describe every chunk the policy returns.
    - ``needs_ground_truth``: the policy reads the simulator's ground truth from
      ``Frame.extras`` (a scripted expert); the policy node then subscribes to it.
    """

    model_id: str = "policy"
    horizon: int = 1
    step_period: float = 0.2
    needs_ground_truth: bool = False

    def reset(self, instruction: str) -> None:  # noqa: B027 - optional hook
        """Start a new trial with ``instruction`` (clears any per-trial state)."""

    @abc.abstractmethod
    def act(self, frame: Frame, instruction: str) -> ActionChunk:
        """Return the action chunk for ``frame`` under ``instruction``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (model weights, threads)."""
