"""Clocks for the control loop: wall time for the robot and real-time simulation, simulated
time for fast deterministic runs. The loop is written once against :class:`Clock`."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Seconds on one monotonic time line."""

    def now(self) -> float:
        """Current time."""

    def sleep_until(self, t: float) -> None:
        """Return at time ``t`` (at once if it has passed)."""


class MonotonicClock:
    """Wall time from ``time.monotonic``, with a short spin before each deadline.

    ``time.sleep`` alone wakes up to a millisecond or more late under load; sleeping until
    ``spin`` seconds before the deadline and yielding in a loop for the rest keeps tick jitter
    well under the 2 ms the control loop allows, at the cost of that much CPU per tick.
    """

    def __init__(self, spin: float = 0.002):
        self.spin = spin

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        remaining = t - time.monotonic()
        if remaining > self.spin:
            time.sleep(remaining - self.spin)
        while time.monotonic() < t:
            time.sleep(0)  # yield the GIL to the inference thread while spinning


class SimulatedClock:
    """Time that advances only when the loop sleeps: runs as fast as the CPU allows."""

    def __init__(self, start: float = 0.0):
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        self._t = max(self._t, float(t))
