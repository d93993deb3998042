"""Health reports of the nodes (rates, latencies, faults), without ROS.

Each node keeps :class:`RateMeter` / :class:`LatencyMeter` for its streams and turns them into
:class:`DiagnosticReport` items once a second; the node publishes them on ``/diagnostics``
(``diagnostic_msgs/DiagnosticArray``, converted in :mod:`nora_ros.interface.convert`). Levels are
decided here from numbers, never from status text.
"""

from __future__ import annotations

import collections
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


class Level(enum.IntEnum):
    """``diagnostic_msgs/DiagnosticStatus`` levels (same numbers)."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class DiagnosticReport:
    """One ``DiagnosticStatus``: ``name`` (e.g. ``"nora/policy: inference"``), level, a one-line
    message, and key/value details (values as text, as the message carries them)."""

    name: str
    level: Level
    message: str
    values: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def worst(cls, name: str, parts: list[tuple[Level, str]], values: Mapping[str, object]) -> DiagnosticReport:
        """A report whose level is the worst of ``parts`` and whose message lists the non-OK ones."""
        level = max((lvl for lvl, _ in parts), default=Level.OK)
        bad = [msg for lvl, msg in parts if lvl > Level.OK]
        return cls(name, Level(level), "; ".join(bad) if bad else "ok",
                   {k: _fmt(v) for k, v in values.items()})


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class RateMeter:
    """Events per second over a sliding window (seconds on the caller's clock)."""

    def __init__(self, window: float = 5.0):
        if not (window > 0 and math.isfinite(window)):
            raise ValueError(f"window must be a positive number of seconds, got {window}")
        self.window = window
        self._times: collections.deque[float] = collections.deque()
        self.count = 0
        self.last: float | None = None

    def tick(self, now: float) -> None:
        self._times.append(now)
        self.count += 1
        self.last = now
        self._trim(now)

    def rate(self, now: float) -> float:
        """Events per second in the last ``window`` seconds (0 with fewer than two events)."""
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def age(self, now: float) -> float:
        """Seconds since the last event (inf before the first)."""
        return math.inf if self.last is None else now - self.last

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()


class LatencyMeter:
    """The last ``size`` durations (seconds): median and 90th percentile."""

    def __init__(self, size: int = 100):
        self._values: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, seconds: float) -> None:
        if math.isfinite(seconds):
            self._values.append(float(seconds))

    def __len__(self) -> int:
        return len(self._values)

    def median(self) -> float:
        return float(np.median(self._values)) if self._values else 0.0

    def p90(self) -> float:
        return float(np.percentile(self._values, 90)) if self._values else 0.0


def rate_check(what: str, meter: RateMeter, now: float, expected_hz: float, stale_after: float) -> tuple[Level, str]:
    """OK near the expected rate; WARN below half of it; STALE when nothing came for ``stale_after`` s."""
    age = meter.age(now)
    if age > stale_after:
        never = meter.last is None
        return Level.STALE, f"no {what} " + ("yet" if never else f"for {age:.1f} s")
    rate = meter.rate(now)
    if rate < 0.5 * expected_hz:
        return Level.WARN, f"{what} at {rate:.1f} Hz, expected {expected_hz:.1f} Hz"
    return Level.OK, ""
