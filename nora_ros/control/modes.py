"""The five ways of turning chunks into per-tick actions (``SchedulerConfig.mode``).

Each executor answers one question per control tick, "which action, as a velocity, now?", from
the chunks placed on the motion clock (:mod:`nora_ros.control.timeline`). The facade
(:class:`nora_ros.control.scheduler.ActionScheduler`) owns the clock, the age check and the
counters; the executors own only what differs:

- :class:`HoldExecutor` (``hold``): one chunk at a time, each action's velocity constant over its
  step, ``execute_steps`` actions per observation; a chunk that arrives early waits.
- :class:`InterpolateExecutor` (``interpolate``): the same chunks, moved along a C1 path through
  their waypoints (:mod:`nora_ros.control.smoothing`).
- :class:`EnsembleExecutor` (``ensemble``): ACT's temporal ensembling (Zhao et al. 2023): an
  observation every model step, every chunk that has an action for now contributes it,
  weighted ``exp(-k * i)`` with ``i = 0`` the oldest chunk (ACT's convention: k > 0 favours older
  predictions and smooths more; k < 0 favours the newest).
- :class:`BlendExecutor` (``blend``): LeRobot's async-inference aggregation: when a chunk
  arrives, each of its timesteps that the queue already holds becomes ``aggregate(old, new)``
  (``weighted_average`` 0.3 old + 0.7 new, ``latest_only``, ``average``, ``conservative`` 0.7 old
  + 0.3 new, LeRobot's names and weights); an observation is sent when the queue falls to
  ``blend_threshold`` of a chunk.
- :class:`RtcExecutor` (``rtc``): real-time chunking (Black et al. 2025): a new chunk replaces
  the executing one as soon as it is ready, at the action due then; the policy was guided to
  agree with the executing chunk on the steps that ran meanwhile (the guide is built by the
  facade when the observation is submitted).

Every executor starts a late chunk at the action due now (:meth:`Join.join`) and never
replays one whose time has passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nora_ros.actions import GRIPPER_DIM, EndEffectorCommand, action_to_command
from nora_ros.control.smoothing import chunk_path
from nora_ros.control.timeline import EPS, PlacedChunk

AGGREGATES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "weighted_average": lambda old, new: 0.3 * old + 0.7 * new,
    "latest_only": lambda old, new: new,
    "average": lambda old, new: 0.5 * old + 0.5 * new,
    "conservative": lambda old, new: 0.7 * old + 0.3 * new,
}
"""LeRobot's ``AGGREGATE_FUNCTIONS`` (lerobot.async_inference.configs): names and weights."""


@dataclass
class Counters:
    """What the scheduler threw away, and why (reported on diagnostics and in experiments)."""

    dropped: int = 0
    skipped: int = 0
    last_drop_reason: str = ""

    def drop(self, reason: str) -> None:
        self.dropped += 1
        self.last_drop_reason = reason


@dataclass(frozen=True)
class Tick:
    """One tick's context: wall time, motion time, the tick's length (s)."""

    now: float
    motion: float
    dt: float


@dataclass(frozen=True)
class Outlook:
    """What an executor needs to decide when to start the next inference: the tick period (s),
    the motion time of the last observation submitted, and the policy's step and horizon."""

    tick_period: float
    last_observed: float
    period: float
    horizon: int


@dataclass(frozen=True)
class Decision:
    """An executor's answer: an action as a velocity command, or ``None`` and why not; ``step_key``
    changes exactly when a new model step starts (the supervisor counts steps with it)."""

    command: EndEffectorCommand | None
    reason: str = ""
    step_key: tuple = ()


@dataclass
class Join:
    """Admits a chunk at the action due now: too old (``max_chunk_age``) or entirely in the past
    is dropped; otherwise the actions whose time has passed are counted as skipped."""

    max_chunk_age: float
    counters: Counters

    def join(self, placed: PlacedChunk, tick: Tick, limit: int) -> bool:
        chunk = placed.chunk
        age = tick.now - chunk.stamp
        if age > self.max_chunk_age:
            self.counters.drop(f"chunk {chunk.chunk_id} dropped: its frame is {age:.3f} s old (max_chunk_age "
                               f"{self.max_chunk_age} s)")
            return False
        due = placed.index(tick.motion)
        end = min(limit, placed.horizon)
        if due >= end:
            self.counters.skipped += end
            self.counters.drop(f"chunk {chunk.chunk_id} dropped: the arm moved {tick.motion - placed.origin:.3f} s "
                               f"since its frame, past all {end} of its actions")
            return False
        self.counters.skipped += max(0, due)
        return True


def _command(placed: PlacedChunk, action: np.ndarray, tick: Tick, index: int) -> EndEffectorCommand:
    return action_to_command(action, placed.period, stamp=tick.now, chunk_id=placed.chunk.chunk_id, index=index,
                             observation_stamp=placed.chunk.stamp)


WAITING = "no action due: waiting for the policy"


def _motion_step(motion: float, period: float) -> tuple:
    """The step key: which model step of *motion* the arm is in. A step is 0.2 s of executed
    motion however it is made up (a late chunk's partial first action, a blend of chunks), so
    the supervisor's step limit means the same in every mode."""
    return ("motion", math.floor(motion / period + EPS))


# --------------------------------------------------------------------------- one chunk at a time


@dataclass
class HoldExecutor:
    """``hold``: the current chunk runs ``execute_steps`` actions from its observation."""

    join: Join
    execute_steps: int
    current: PlacedChunk | None = None
    pending: PlacedChunk | None = None
    limit: float = 0.0
    """Position (in actions, fractional) where the current chunk's execution ends."""

    def offer(self, placed: PlacedChunk) -> None:
        if self.pending is not None:
            self.join.counters.drop(f"chunk {self.pending.chunk.chunk_id} superseded by chunk "
                                    f"{placed.chunk.chunk_id} before it started")
        self.pending = placed

    def clear(self) -> None:
        self.current = self.pending = None

    @property
    def active(self) -> bool:
        return self.current is not None or self.pending is not None

    @property
    def waiting(self) -> bool:
        """A chunk has arrived and not started yet."""
        return self.pending is not None

    def decide(self, tick: Tick) -> Decision:
        if self.current is not None and self.current.position(tick.motion) >= self.limit - EPS:
            self.current = None
        if self.current is None:
            reason = self._start(tick)
            if self.current is None:
                return Decision(None, reason)
        return self._act(self.current, tick)

    def _start(self, tick: Tick) -> str:
        placed, self.pending = self.pending, None
        if placed is None:
            return WAITING
        if not self.join.join(placed, tick, placed.horizon):
            return self.join.counters.last_drop_reason
        # execute_steps steps of motion from where the chunk starts (a late chunk starts part way)
        start = max(0.0, placed.position(tick.motion))
        self.current, self.limit = placed, min(start + self.execute_steps, float(placed.horizon))
        self._started(placed, tick)
        return ""

    def _started(self, placed: PlacedChunk, tick: Tick) -> None:
        """Hook for subclasses: a chunk started at ``tick``."""

    def _act(self, placed: PlacedChunk, tick: Tick) -> Decision:
        index = placed.index(tick.motion)
        return Decision(_command(placed, placed.action(index), tick, index),
                        step_key=_motion_step(tick.motion, placed.period))

    def remaining(self, motion: float) -> float:
        """Motion seconds of the current chunk left (0 when none)."""
        if self.current is None:
            return 0.0
        return max(0.0, (self.limit - self.current.position(motion)) * self.current.period)

    def wants(self, motion: float, latency: float, outlook: Outlook) -> bool:
        """Start inference now? When nothing is pending and the current chunk ends within the
        latency, so the next is ready as it ends (continuous motion) -- but only when that pays:
        the next chunk, ready ``latency`` into its own time, runs ``min(execute_steps x step,
        horizon x step - latency)``; if that is shorter than the latency, its successor could not
        be ready in time either and the arm would stop and go with less motion per observation
        than waiting. Then the loop observes when the chunk ends (synchronous, like the NORA
        reference loop: a one-action chunk at 400 ms)."""
        if self.pending is not None:
            return False
        if self.current is None:
            return True
        period = outlook.period
        span = min(self.execute_steps * period, outlook.horizon * period - latency)
        lead = latency if span >= latency - EPS else 0.0
        return self.remaining(motion) <= lead + EPS


@dataclass
class InterpolateExecutor(HoldExecutor):
    """``interpolate``: hold's chunk life cycle; commands follow :func:`chunk_path`."""

    velocity: np.ndarray = field(default_factory=lambda: np.zeros(6))
    _path: object = None
    _path_start: float = 0.0

    def clear(self) -> None:
        super().clear()
        self.velocity = np.zeros(6)

    def _started(self, placed: PlacedChunk, tick: Tick) -> None:
        start = max(0.0, placed.position(tick.motion))
        self._path = chunk_path(placed, start, self.limit, self.velocity)
        self._path_start = tick.motion

    def decide(self, tick: Tick) -> Decision:
        out = super().decide(tick)
        if out.command is None:
            self.velocity = np.zeros(6)
        return out

    def _act(self, placed: PlacedChunk, tick: Tick) -> Decision:
        index = placed.index(tick.motion)
        path = self._path
        tau = tick.motion - self._path_start
        move = (path.at(tau + tick.dt) - path.at(tau)) / tick.dt
        self.velocity = move
        action = placed.action(index)
        cmd = EndEffectorCommand(move[:3], move[3:], float(action[GRIPPER_DIM]), tick.now,
                                 chunk_id=placed.chunk.chunk_id, index=index, observation_stamp=placed.chunk.stamp)
        return Decision(cmd, step_key=_motion_step(tick.motion, placed.period))


# --------------------------------------------------------------------------- several chunks at once


@dataclass
class _Overlapping:
    """Shared by ``ensemble`` and ``blend``: chunks join when they arrive, leave when used up."""

    join: Join
    chunks: list[PlacedChunk] = field(default_factory=list)
    incoming: list[PlacedChunk] = field(default_factory=list)

    def offer(self, placed: PlacedChunk) -> None:
        self.incoming.append(placed)

    def clear(self) -> None:
        self.chunks.clear()
        self.incoming.clear()

    @property
    def active(self) -> bool:
        return bool(self.chunks or self.incoming)

    @property
    def waiting(self) -> bool:
        return bool(self.incoming)

    def _admit(self, tick: Tick) -> None:
        for placed in self.incoming:
            if self.join.join(placed, tick, placed.horizon):
                self.chunks.append(placed)
        self.incoming.clear()
        self.chunks = [c for c in self.chunks if c.index(tick.motion) < c.horizon]
        self.chunks.sort(key=lambda c: c.origin)  # oldest first (a late arrival of an older frame included)

    def remaining(self, motion: float) -> float:
        return max((max(0.0, (c.horizon - c.position(motion)) * c.period) for c in self.chunks), default=0.0)

    def _decision(self, action: np.ndarray, newest: PlacedChunk, tick: Tick) -> Decision:
        index = newest.index(tick.motion)
        return Decision(_command(newest, action, tick, index), step_key=_motion_step(tick.motion, newest.period))


@dataclass
class EnsembleExecutor(_Overlapping):
    """``ensemble``: the weighted mean of every chunk's action for now."""

    decay: float = 0.01

    def decide(self, tick: Tick) -> Decision:
        self._admit(tick)
        live = [c for c in self.chunks if c.covers(tick.motion)]
        if not live:
            return Decision(None, WAITING)
        weights = np.exp(-self.decay * np.arange(len(live)))
        actions = np.array([c.action(c.index(tick.motion)) for c in live])
        mean = weights @ actions / weights.sum()
        return self._decision(mean, live[-1], tick)

    def wants(self, motion: float, latency: float, outlook: Outlook) -> bool:
        """An observation every model step of motion, and sooner if the chunks run out."""
        return motion - outlook.last_observed >= outlook.period - EPS or self.remaining(motion) <= latency + EPS


@dataclass
class BlendExecutor(_Overlapping):
    """``blend``: the queue's action for now, each later chunk aggregated into it in arrival order."""

    aggregate: str = "weighted_average"
    threshold: float = 0.5

    def decide(self, tick: Tick) -> Decision:
        self._admit(tick)
        live = [c for c in self.chunks if c.covers(tick.motion)]
        if not live:
            return Decision(None, WAITING)
        fold = AGGREGATES[self.aggregate]
        value = live[0].action(live[0].index(tick.motion))
        for c in live[1:]:
            value = fold(value, c.action(c.index(tick.motion)))
        return self._decision(value, live[-1], tick)

    def wants(self, motion: float, latency: float, outlook: Outlook) -> bool:
        """LeRobot's trigger (queue at or below ``threshold`` of a chunk), or sooner if the
        queue would run out during the inference."""
        return self.remaining(motion) <= max(self.threshold * outlook.horizon * outlook.period, latency) + EPS


# --------------------------------------------------------------------------- real-time chunking


@dataclass
class RtcExecutor(HoldExecutor):
    """``rtc``: the newest chunk takes over as soon as it is ready; it runs to its end unless
    replaced. ``execute_steps`` is the execution horizon: steps between inference starts."""

    def decide(self, tick: Tick) -> Decision:
        reason = WAITING
        if self.pending is not None:
            placed, self.pending = self.pending, None
            if self.join.join(placed, tick, placed.horizon):
                self.current, self.limit = placed, float(placed.horizon)
            else:
                reason = self.join.counters.last_drop_reason
        if self.current is not None and self.current.position(tick.motion) >= self.limit - EPS:
            self.current = None
        if self.current is None:
            return Decision(None, reason)
        return self._act(self.current, tick)

    def wants(self, motion: float, latency: float, outlook: Outlook) -> bool:
        if self.pending is not None:
            return False
        if self.current is None:
            return True
        return (motion - outlook.last_observed >= self.execute_steps * outlook.period - EPS
                or self.remaining(motion) <= latency + EPS)

    def guide_actions(self, motion: float) -> tuple[np.ndarray, int] | None:
        """The executing chunk's actions from ``motion`` on (aligned to the nearest step), and the
        index they start at; ``None`` when nothing executes."""
        if self.current is None:
            return None
        start = max(0, round(self.current.position(motion)))
        if start >= self.current.horizon:
            return None
        return np.array(self.current.chunk.actions[start:]), start
