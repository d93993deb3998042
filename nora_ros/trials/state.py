"""The trial's vocabulary: its states, the status events the supervisor emits, how trials are
run (:class:`SupervisorConfig`), what is evaluated (:class:`RunInfo`), the recorder plug-in's
contract, and the errors a rejected input raises. Shared by the supervisor, its ROS shell, the
runner and the recorders, none of which needs the state machine itself to speak of a trial.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from nora_ros.errors import ConfigurationError, NoraError
from nora_ros.trials.instruction import MAX_INSTRUCTION_CHARS
from nora_ros.trials.results_store import TrialResult


class TrialStateError(NoraError, RuntimeError):
    """An input that the current trial state does not accept (the message says which state)."""


class TrialBusyError(TrialStateError):
    """A new instruction was refused: a trial is active (and queueing is off or full), or the
    e-stop is latched."""


class ResultWriteError(NoraError, RuntimeError):
    """A finished trial could not be written to the results store (disk full, permissions)."""


class TrialState(str, enum.Enum):
    """Where the current (or last) trial is."""

    IDLE = "IDLE"
    RESETTING = "RESETTING"
    RUNNING = "RUNNING"
    AWAITING_SCORE = "AWAITING_SCORE"
    DONE = "DONE"
    ABORTED = "ABORTED"


ACTIVE_STATES = frozenset({TrialState.RESETTING, TrialState.RUNNING, TrialState.AWAITING_SCORE})
"""States in which a trial is under way (a new instruction is busy-handled)."""

ON_BUSY = ("reject", "queue")


@dataclass(frozen=True)
class TrialStatus:
    """One status event: the state the supervisor is in after an input, and why.

    ``trial_id`` is 0 before the first trial. ``reason`` is human-readable ("arm at start
    pose", "step limit 200 reached", "e-stop"). ``stamp`` is the ``now`` of the input that
    caused it. ``steps`` counts policy steps of the trial so far; ``queued`` is the number of
    instructions waiting. ``start_pose`` is :attr:`SupervisorConfig.start_pose` (empty = home),
    where the arm side moves the arm in RESETTING. ``result`` is set on the DONE/ABORTED event
    that ends a trial.
    """

    trial_id: int
    instruction: str
    state: TrialState
    reason: str
    stamp: float
    task: str = ""
    steps: int = 0
    queued: int = 0
    start_pose: tuple[float, ...] = ()
    result: TrialResult | None = None


@dataclass(frozen=True)
class SupervisorConfig:
    """How trials are run.

    ``max_steps``: policy steps before the trial stops for scoring (the NORA reference WidowX
    loop runs 200 steps). ``time_limit_s``: seconds of RUNNING before it stops for scoring
    (200 steps at 5 Hz take 40 s; the rest is headroom for inference). ``reset_timeout_s``:
    seconds to reach the start pose before the trial aborts. ``on_busy``: what a new
    instruction does while a trial is active, ``"reject"`` or ``"queue"``; ``max_queue``:
    instructions that may wait. ``max_instruction_chars``: longest instruction accepted.
    ``start_pose``: where the arm goes while RESETTING, a Bridge state ``[x, y, z, roll, pitch,
    yaw]`` of the end effector in the base frame (m, rad; zero angles = gripper pointing down),
    or empty for the arm's home pose; every :class:`TrialStatus` carries it for the arm side.
    """

    max_steps: int = 200
    time_limit_s: float = 120.0
    reset_timeout_s: float = 30.0
    on_busy: str = "reject"
    max_queue: int = 10
    max_instruction_chars: int = MAX_INSTRUCTION_CHARS
    start_pose: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ConfigurationError(f"max_steps must be an integer >= 1 (e.g. 200), got {self.max_steps!r}")
        for name in ("time_limit_s", "reset_timeout_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ConfigurationError(f"{name} must be a positive number of seconds, got {v!r}")
        if self.on_busy not in ON_BUSY:
            raise ConfigurationError(f"on_busy must be one of {ON_BUSY}, got {self.on_busy!r}")
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int) or self.max_queue < 1:
            raise ConfigurationError(f"max_queue must be an integer >= 1, got {self.max_queue!r}")
        if not isinstance(self.max_instruction_chars, int) or not 1 <= self.max_instruction_chars <= 4096:
            raise ConfigurationError(
                f"max_instruction_chars must be an integer in [1, 4096] (default {MAX_INSTRUCTION_CHARS}), "
                f"got {self.max_instruction_chars!r}"
            )
        try:
            pose = tuple(float(v) for v in self.start_pose)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"start_pose must be 6 numbers [x, y, z, roll, pitch, yaw] or empty: {exc}"
            ) from exc
        if pose and (len(pose) != 6 or not all(math.isfinite(v) for v in pose)):
            raise ConfigurationError(
                "start_pose must be 6 finite numbers [x, y, z, roll, pitch, yaw] (m, rad), or empty for the home "
                f"pose; got {list(self.start_pose)}"
            )
        object.__setattr__(self, "start_pose", pose)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> SupervisorConfig:
        """A config from a dict (YAML, ROS parameters); unknown keys are errors with a hint."""
        data = dict(data or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), names, n=1)
                hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            raise ConfigurationError(f"unknown supervisor parameter(s) {', '.join(hints)}; known: {', '.join(names)}")
        return cls(**data)

    def to_mapping(self) -> dict[str, Any]:
        """Plain values (a list for ``start_pose``), e.g. for YAML, ROS parameters or a config digest."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class RunInfo:
    """What is being evaluated; stored with every trial so tables can compare models.

    ``model_id`` is the column of the results table (e.g. ``"nora"``, ``"nora-long"``);
    ``checkpoint`` the path or hub id of the weights; ``config_digest`` from
    :func:`nora_ros.trials.results_store.config_digest` of the run's configuration.
    """

    model_id: str = ""
    checkpoint: str = ""
    config_digest: str = ""

    def __post_init__(self) -> None:
        for name in ("model_id", "checkpoint", "config_digest"):
            if not isinstance(getattr(self, name), str):
                raise ConfigurationError(f"{name} must be text, got {type(getattr(self, name)).__name__}")


@runtime_checkable
class Recorder(Protocol):
    """Records one trial (e.g. a rosbag2 recording of the trial's topics).

    Contract: :meth:`start` is called when a trial enters RUNNING and returns the path the
    recording is written to (stored in the trial's result), or ``None``; :meth:`stop` is called
    once when that trial leaves RUNNING (for scoring or abort). Both return quickly. An error
    from :meth:`start` aborts the trial (an evaluation that should be recorded is not run
    unrecorded); an error from :meth:`stop` is reported in the result.
    """

    def start(self, trial_id: int, instruction: str) -> str | None: ...

    def stop(self) -> None: ...


Listener = Callable[[TrialStatus], None]
