"""The smooth path of ``interpolate`` mode: a C1 cubic through a chunk's waypoints.

``hold`` mode moves each action's delta at constant velocity over its step, so the commanded
velocity jumps at every step boundary (at 50 Hz the whole change lands on one 20 ms tick, and
the safety filter's acceleration limit cuts it). Here the end-effector displacement is a
piecewise cubic Hermite curve through the same waypoints (the displacement after each whole
action is exactly the sum of the actions so far, as in ``hold``), with the velocity at each
waypoint the mean of the two steps around it and, at the start, the velocity the arm was
commanded on the previous tick, so velocity is continuous across step *and* chunk boundaries.
Catmull-Rom-style tangents rather than a global spline: each segment depends only on its
neighbours, so a late hand-off can start a path mid-chunk without solving anything.

Displacements are 6-vectors ``[dx, dy, dz, rx, ry, rz]``: translation in metres and the
action's rotation as a rotation vector (what :func:`nora_ros.actions.action_to_command` turns
into an angular velocity), so a path with the hold velocities at every knot reproduces ``hold``
exactly. Rotation vectors of successive small rotations are added as vectors; for Bridge's
<= 0.25 rad steps the composed rotation differs from the exact product by at most ~1e-3 rad per
step, which the next observation corrects.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from nora_ros.control.timeline import EPS, PlacedChunk


def displacement(action: np.ndarray) -> np.ndarray:
    """One Bridge action as a 6-vector: translation and the rotation vector of its Euler delta."""
    a = np.asarray(action, dtype=np.float64)
    return np.concatenate([a[:3], Rotation.from_euler("xyz", a[3:6]).as_rotvec()])


class HermitePath:
    """Piecewise cubic Hermite curve: ``values[i]`` at ``times[i]`` with ``velocities[i]``."""

    def __init__(self, times: np.ndarray, values: np.ndarray, velocities: np.ndarray):
        self.times = np.asarray(times, dtype=np.float64)
        self.values = np.asarray(values, dtype=np.float64)
        self.velocities = np.asarray(velocities, dtype=np.float64)
        if len(self.times) < 2 or np.any(np.diff(self.times) <= 0):
            raise ValueError(f"a path needs at least two increasing knot times, got {self.times.tolist()}")

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def at(self, t: float) -> np.ndarray:
        """Displacement at ``t`` (clamped to the path's span)."""
        t = min(max(t, float(self.times[0])), self.end)
        i = min(int(np.searchsorted(self.times, t, side="right")) - 1, len(self.times) - 2)
        t0, t1 = self.times[i], self.times[i + 1]
        h = t1 - t0
        u = (t - t0) / h
        h00 = 2 * u**3 - 3 * u**2 + 1
        h10 = u**3 - 2 * u**2 + u
        h01 = -2 * u**3 + 3 * u**2
        h11 = u**3 - u**2
        return (h00 * self.values[i] + h10 * h * self.velocities[i] + h01 * self.values[i + 1]
                + h11 * h * self.velocities[i + 1])


def chunk_path(placed: PlacedChunk, start: float, limit: float, start_velocity: np.ndarray) -> HermitePath:
    """The path through ``placed``'s waypoints from fractional position ``start`` to position
    ``limit`` (both in actions), times in motion seconds from the start, leaving with
    ``start_velocity`` (6-vector, per second).

    Knot velocities: the mean of the steps on either side, also at ``limit`` when the chunk has
    an action after it (the next chunk is likely to continue the motion); at the chunk's end
    the last step's.
    """
    period = placed.period
    deltas = np.array([displacement(placed.action(k)) for k in range(placed.horizon)])
    rates = deltas / period
    first = math.floor(start + EPS)

    def hold_value(pos: float) -> np.ndarray:
        k = min(math.floor(pos + EPS), placed.horizon)
        done = deltas[:k].sum(axis=0) if k > 0 else np.zeros(6)
        return done + (pos - k) * deltas[k] if k < placed.horizon and pos > k else done

    def knot_rate(k: int) -> np.ndarray:
        if k <= 0:
            return rates[0]
        if k >= placed.horizon:
            return rates[-1]
        return 0.5 * (rates[k - 1] + rates[k])

    last = math.floor(limit + EPS)
    positions = [start] + [float(k) for k in range(first + 1, last + 1) if start + EPS < k]
    if limit > positions[-1] + EPS:
        positions.append(limit)  # the window ends inside an action

    def rate_at(pos: float) -> np.ndarray:
        k = round(pos)
        return knot_rate(k) if abs(pos - k) < EPS else rates[min(math.floor(pos), placed.horizon - 1)]

    base = hold_value(start)
    times = [(p - start) * period for p in positions]
    values = [hold_value(p) - base for p in positions]
    velocities = [np.asarray(start_velocity, dtype=np.float64)] + [rate_at(p) for p in positions[1:]]
    return HermitePath(np.array(times), np.array(values), np.array(velocities))
