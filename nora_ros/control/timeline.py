"""Where a chunk's actions lie in time: the motion clock and chunks placed on it.

A chunk's action ``k`` is the motion the policy wants from its observation's state onwards,
from ``k`` to ``k + 1`` model steps later. What matters for "which action is due now" is how
much *motion* happened since that observation, not how many wall seconds passed:

- while the arm executed actions (of an older chunk) during the inference, that time is gone:
  the new chunk's first actions describe motion the arm already made and are skipped, never
  replayed (RTC's frozen prefix, LeRobot's "must-go" timestep filter);
- while the arm held waiting for the chunk (a synchronous loop, the start of a trial), the
  scene the frame showed is still the scene: nothing of the chunk is due yet, and action 0
  starts. Skipping by wall time there would throw away a single-action policy's only action
  whenever the latency exceeds one step (NORA at 400 ms).

:class:`MotionClock` counts the seconds during which the scheduler commanded motion; the
position of a chunk is ``(motion now - motion at its frame) / step_period`` (fractional: an
action can be entered half way). On a periodic timer every moving tick adds exactly one tick
period, so positions stay on the tick grid whatever the timer's jitter.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from nora_ros.actions import ActionChunk

EPS = 1e-6
"""Seconds (and steps): tick times are float sums; within a microsecond of a boundary is on it."""

_HISTORY = 4096
"""Ticks remembered to place a frame's stamp on the motion clock (82 s at 50 Hz); older stamps
take the oldest remembered value, which only makes a stale chunk look fresher by what the
scheduler's ``max_chunk_age`` check rejects anyway."""


class MotionClock:
    """Seconds of commanded motion, advanced by :meth:`tick` once per control tick."""

    def __init__(self, tick_period: float = 0.0):
        self.tick_period = float(tick_period)
        self._value = 0.0
        self._last: tuple[float, float, bool] | None = None  # (tick time, value at it, moved after it)
        self._history: collections.deque[tuple[float, float, bool]] = collections.deque(maxlen=_HISTORY)

    def tick(self, now: float) -> float:
        """Start the tick at ``now``: credit the previous tick's motion; returns the value now."""
        if self._last is not None:
            t, value, moved = self._last
            if moved:
                self._value = value + self._span(now - t)
        self._last = (now, self._value, False)
        self._history.append(self._last)
        return self._value

    def moved(self, moving: bool) -> None:
        """Whether the tick started by the last :meth:`tick` commands motion."""
        if self._last is not None:
            t, value, _ = self._last
            self._last = (t, value, bool(moving))
            self._history[-1] = self._last

    def at(self, t: float) -> float:
        """Motion seconds at wall time ``t`` (a frame's stamp, or now between ticks)."""
        if self._last is None:
            return self._value
        if t >= self._last[0] - EPS:
            return self._after(self._last, t)
        for entry in reversed(self._history):
            if entry[0] <= t + EPS:
                return self._after(entry, t)
        return self._history[0][1] if self._history else self._value

    def _after(self, entry: tuple[float, float, bool], t: float) -> float:
        tick_t, value, moved = entry
        if not moved:
            return value
        part = max(0.0, t - tick_t)
        if self.tick_period > 0:
            # a frame taken during a moving tick saw that tick's motion once it was half done
            return value + (self.tick_period if part >= self.tick_period / 2 - EPS else 0.0)
        return value + part

    def _span(self, elapsed: float) -> float:
        return self.tick_period if self.tick_period > 0 else max(0.0, elapsed)


@dataclass(frozen=True)
class PlacedChunk:
    """A chunk and the motion time of its observation (``origin``): action ``k`` covers motion
    ``origin + k * step_period`` to ``origin + (k + 1) * step_period``."""

    chunk: ActionChunk
    origin: float

    @property
    def period(self) -> float:
        return self.chunk.step_period

    @property
    def horizon(self) -> int:
        return self.chunk.horizon

    def position(self, motion: float) -> float:
        """Fractional action index at motion time ``motion`` (``2.5``: half way through action 2)."""
        return (motion - self.origin) / self.period

    def index(self, motion: float) -> int:
        """The action due at ``motion`` (may be past the end or, for a future origin, negative)."""
        return math.floor(self.position(motion) + EPS)

    def action(self, index: int) -> np.ndarray:
        return self.chunk.actions[index]

    def covers(self, motion: float, limit: int | None = None) -> bool:
        """Whether an action (below ``limit``, default the horizon) is due at ``motion``."""
        end = self.horizon if limit is None else min(limit, self.horizon)
        return 0 <= self.index(motion) < end
