"""Which action is due now: turns action chunks into per-tick end-effector commands.

Shared by the in-process runner and the ROS policy node, so both execute chunks with the same
timing (DESIGN.md section 4):

- each action of a chunk takes one model step (``chunk.step_period``, 0.2 s for Bridge); over
  the control ticks of its step the command is that action's delta divided by the period;
- ``execute_steps`` actions of a chunk are executed before the next observation is used (1 by
  default, as the NORA paper found on WidowX); a chunk that arrives while another executes
  waits as *pending* and starts when the current one is used up;
- a chunk whose observation is older than ``max_chunk_age`` when it would start is dropped;
- when nothing valid is due, the answer is "hold" with a reason, never a stale action.

:meth:`ActionScheduler.wants_observation` tells the loop when to start the next inference:
early enough that, at the expected latency, the next chunk is ready as the current one ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nora_ros.actions import ActionChunk, EndEffectorCommand, action_to_command
from nora_ros.errors import ConfigurationError

_EPS = 1e-6
"""Seconds: tick times are floats; a tick within a microsecond of a step boundary is on it."""


@dataclass(frozen=True)
class SchedulerConfig:
    """Chunk execution parameters.

    execute_steps: actions of each chunk executed before the next observation is used
        (1 = replan every step, NORA's WidowX setting; up to the chunk length).
    max_chunk_age: seconds; a chunk whose camera frame is older than this when it would start
        executing is dropped (the scene has moved on). Must exceed the inference latency.
    tick_period: seconds between the control ticks that ask for commands; each tick is placed on
        the grid of ticks that started the chunk (rounded to the nearest), so timer jitter of up
        to half a tick can neither stretch an action by a tick nor cut one short (seen on ROS 2:
        a tick 0.19995 s after an action's start ran the 0.2 s action for a third 0.1 s tick,
        1.5 times its motion). 0: tick times are exact (a simulated clock).
    """

    execute_steps: int = 1
    max_chunk_age: float = 1.0
    tick_period: float = 0.0

    def __post_init__(self) -> None:
        if self.execute_steps < 1:
            raise ConfigurationError(f"execute_steps must be >= 1, got {self.execute_steps}")
        if not (self.max_chunk_age > 0 and math.isfinite(self.max_chunk_age)):
            raise ConfigurationError(f"max_chunk_age must be a positive number of seconds, got {self.max_chunk_age}")
        if not (self.tick_period >= 0 and math.isfinite(self.tick_period)):
            raise ConfigurationError(f"tick_period must be >= 0 seconds (0: exact tick times), got {self.tick_period}")


@dataclass(frozen=True)
class Scheduled:
    """The scheduler's answer for one tick: a command, or ``None`` and why the arm holds."""

    command: EndEffectorCommand | None
    reason: str = ""


class ActionScheduler:
    """Executes action chunks step by step; not thread-safe (call from the control loop)."""

    def __init__(self, config: SchedulerConfig | None = None):
        self.config = config or SchedulerConfig()
        self._current: ActionChunk | None = None
        self._start = 0.0
        self._steps = 0  # actions of the current chunk that will be executed
        self._pending: ActionChunk | None = None
        self.dropped = 0
        self.last_drop_reason = ""

    # ------------------------------------------------------------------ input
    def offer(self, chunk: ActionChunk) -> None:
        """A new chunk from the policy; it starts when the current one is used up.

        A newer pending chunk replaces an older pending one (the older is counted as dropped).
        """
        if self._pending is not None:
            self._drop(f"chunk {self._pending.chunk_id} superseded by chunk {chunk.chunk_id} before it started")
        self._pending = chunk

    def clear(self) -> None:
        """Forget every chunk (trial ended, e-stop, policy disabled)."""
        self._current = None
        self._pending = None

    # ------------------------------------------------------------------ output
    def command_at(self, now: float) -> Scheduled:
        """The command for the control tick at ``now`` (seconds, the chunks' clock)."""
        if self._current is not None and self._elapsed(now) >= self._steps * self._current.step_period - _EPS:
            self._current = None
        if self._current is None:
            reason = self._start_pending(now)
            if self._current is None:
                return Scheduled(None, reason)
        chunk = self._current
        index = min(int((self._elapsed(now) + _EPS) / chunk.step_period), self._steps - 1)
        cmd = action_to_command(
            chunk.actions[index],
            chunk.step_period,
            stamp=now,
            chunk_id=chunk.chunk_id,
            index=index,
            observation_stamp=chunk.stamp,
        )
        return Scheduled(cmd)

    def wants_observation(self, now: float, expected_latency: float) -> bool:
        """Whether to start an inference now so its chunk is ready when the current one ends."""
        if self._pending is not None:
            return False
        if self._current is None:
            return True
        return self._end_time() - now <= expected_latency

    @property
    def active(self) -> bool:
        """A chunk is executing or waiting."""
        return self._current is not None or self._pending is not None

    # ------------------------------------------------------------------ internals
    def _elapsed(self, now: float) -> float:
        """Seconds since the current chunk started, on the tick grid when ticks are periodic."""
        elapsed = now - self._start
        tick = self.config.tick_period
        return round(elapsed / tick) * tick if tick > 0 else elapsed

    def _end_time(self) -> float:
        assert self._current is not None
        return self._start + self._steps * self._current.step_period

    def _start_pending(self, now: float) -> str:
        chunk = self._pending
        if chunk is None:
            return "no action due: waiting for the policy"
        self._pending = None
        age = now - chunk.stamp
        if age > self.config.max_chunk_age:
            self._drop(f"chunk {chunk.chunk_id} dropped: its frame is {age:.3f} s old (max_chunk_age "
                       f"{self.config.max_chunk_age} s)")
            return self.last_drop_reason
        self._current = chunk
        self._start = now
        self._steps = min(self.config.execute_steps, chunk.horizon)
        return ""

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        self.last_drop_reason = reason
