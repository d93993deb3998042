"""The Policy interface the rest of the package depends on, and what real-time chunking hands it."""

from __future__ import annotations

import abc
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nora_ros.actions import ACTION_DIM, ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.errors import ConfigurationError, InvalidInputError, NoraError


def _count(name: str, value: object, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` (a bool or a float is refused: a step count is a count)."""
    if isinstance(value, bool):
        raise InvalidInputError(f"chunk guide: {name} must be an integer, got {value!r}")
    try:
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError as exc:
        raise InvalidInputError(f"chunk guide: {name} must be an integer, got {value!r}") from exc
    if n < minimum:
        raise InvalidInputError(f"chunk guide: {name} must be >= {minimum}, got {n}")
    return int(n)


@dataclass(frozen=True)
class ChunkGuide:
    """What real-time chunking needs from the chunk being executed (Black et al. 2025, arXiv 2506.07339).

    The scheduler builds one when it asks for a new chunk while another still executes; the
    policy then denoises the new chunk so that it agrees with the old one where the two overlap
    (the paper's guided inpainting), instead of starting from scratch and jumping at the hand-off.

    - ``actions`` ``(K, 7)``: unnormalized Bridge actions the executing chunk plans for the NEW
      chunk's steps ``0..K-1`` (already aligned to the new chunk's time axis), ``1 <= K``
      (``K <= horizon`` is checked by the policy, which knows its horizon). Steps ``>= K`` have no
      prior and get weight 0. Stored read-only, float64.
    - ``frozen_steps`` ``d >= 0``: steps that will already have executed (from the old chunk)
      when the new chunk is ready; they are guided with weight 1 (the new chunk must continue
      from exactly what the arm did).
    - ``execution_horizon`` ``s >= 1``: steps of a chunk that execute before the next one takes
      over. Following the paper's soft mask (its eq. 5), steps ``i >= H - s`` (the last ``s`` of
      a horizon-``H`` chunk, which the old chunk does not reach) get weight 0, and the steps
      ``d <= i < H - s`` between get an exponentially decaying weight.
    - ``guidance_weight`` ``beta >= 0``: the clip on the guidance weight (the paper's ``beta``,
      default 5). ``0`` turns guidance off (the chunk is then exactly the unguided one).
    """

    actions: np.ndarray
    frozen_steps: int
    execution_horizon: int
    guidance_weight: float = 5.0

    def __post_init__(self) -> None:
        try:
            actions = np.array(self.actions, dtype=np.float64, copy=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"chunk guide: actions must be numbers, got {type(self.actions).__name__}") from exc
        if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or actions.shape[0] < 1:
            raise InvalidInputError(
                f"chunk guide: actions must have shape (K, {ACTION_DIM}) with K >= 1, got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            rows = sorted({int(r) for r in np.argwhere(~np.isfinite(actions))[:, 0]})
            raise InvalidInputError(f"chunk guide: actions hold a NaN or infinity (steps {rows})")
        actions.setflags(write=False)
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "frozen_steps", _count("frozen_steps", self.frozen_steps, 0))
        object.__setattr__(self, "execution_horizon", _count("execution_horizon", self.execution_horizon, 1))
        beta = self.guidance_weight
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
            raise InvalidInputError(f"chunk guide: guidance_weight must be a number, got {beta!r}")
        if not math.isfinite(float(beta)) or float(beta) < 0.0:
            raise InvalidInputError(f"chunk guide: guidance_weight must be finite and >= 0, got {beta!r}")
        object.__setattr__(self, "guidance_weight", float(beta))

    @property
    def prior_steps(self) -> int:
        """``K``: how many of the new chunk's steps the executing chunk has an action for."""
        return int(self.actions.shape[0])

    def check_horizon(self, horizon: int) -> None:
        """Refuse (:class:`InvalidInputError`) a guide that cannot describe a ``horizon``-step chunk."""
        if self.prior_steps > horizon:
            raise InvalidInputError(
                f"chunk guide: {self.prior_steps} prior actions for a {horizon}-step chunk; give at most {horizon}")
        if self.frozen_steps >= horizon:
            raise InvalidInputError(
                f"chunk guide: frozen_steps {self.frozen_steps} >= horizon {horizon}: no step of the new chunk "
                "would execute")
        if self.execution_horizon > horizon:
            raise InvalidInputError(
                f"chunk guide: execution_horizon {self.execution_horizon} > horizon {horizon}")


class Policy(abc.ABC):
    """Turns the latest camera frame and an instruction into an :class:`ActionChunk`.

    Contract:
    - :meth:`reset` is called once before each trial, with that trial's instruction.
    - :meth:`act` may block (model inference) and is called from a worker thread, never from
      the control loop; it returns a validated chunk or raises a
      :class:`nora_ros.errors.NoraError` that says why (the arm then holds).
    - :meth:`act_guided` is :meth:`act` steered by a :class:`ChunkGuide` (real-time chunking);
      only policies with ``supports_guide`` implement it, the others refuse it.
    - ``model_id``, ``horizon`` (actions per chunk) and ``step_period`` (seconds per action)
      describe every chunk the policy returns.
    - ``needs_ground_truth``: the policy reads the simulator's ground truth from
      ``Frame.extras`` (a scripted expert); the policy node then subscribes to it.
    - :meth:`act_batch` (several robots served by one policy, :mod:`nora_ros.policy.batching`):
      one result per observation, equal to what :meth:`act` gives for it alone; per-robot state
      (a flow head's noise generator) is kept per ``robots`` name and reset by :meth:`reset_robot`.
    """

    model_id: str = "policy"
    horizon: int = 1
    step_period: float = 0.2
    needs_ground_truth: bool = False
    supports_guide: bool = False

    def reset(self, instruction: str) -> None:  # noqa: B027 - optional hook
        """Start a new trial with ``instruction`` (clears any per-trial state)."""

    def reset_robot(self, robot: str, instruction: str) -> None:
        """Start a new trial of ``robot``, one of several robots this policy serves: clears only
        that robot's state. By default :meth:`reset` (a policy without per-robot state)."""
        self.reset(instruction)

    @abc.abstractmethod
    def act(self, frame: Frame, instruction: str) -> ActionChunk:
        """Return the action chunk for ``frame`` under ``instruction``."""

    def act_batch(self, frames: Sequence[Frame], instructions: Sequence[str], robots: Sequence[str] | None = None,
                  guides: Sequence[ChunkGuide | None] | None = None) -> list[ActionChunk | NoraError]:
        """The chunks for several observations (one per robot), in order: row ``i`` is what
        :meth:`act` (or :meth:`act_guided` with ``guides[i]``) gives for ``frames[i]`` under
        ``instructions[i]`` for robot ``robots[i]``. A row that fails is its :class:`NoraError`
        in that row's place (the other rows stand); an unexpected exception raises for the batch.

        By default one :meth:`act` per row; NORA's backends run the rows in one forward pass."""
        out: list[ActionChunk | NoraError] = []
        for i, (frame, instruction) in enumerate(zip(frames, instructions, strict=True)):
            guide = guides[i] if guides is not None else None
            try:
                out.append(self.act(frame, instruction) if guide is None else self.act_guided(frame, instruction, guide))
            except NoraError as exc:
                out.append(exc)
        return out

    def act_guided(self, frame: Frame, instruction: str, guide: ChunkGuide) -> ActionChunk:
        """Return the chunk for ``frame`` guided to agree with the executing chunk (real-time
        chunking). Only a flow-matching head can be guided this way (the guidance steers its
        denoising), so by default this is a :class:`ConfigurationError` naming the policy."""
        raise ConfigurationError(
            f"real-time chunking needs NORA-1.5's flow head (action_head: flow); policy '{self.model_id}' "
            f"({type(self).__name__}) cannot be guided: choose another execution mode or run NORA-1.5 with "
            "action_head: flow")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (model weights, threads)."""
