"""Which action is due now: turns action chunks into per-tick end-effector commands.

Shared by the in-process runner and the ROS policy node, so both execute chunks with the same
timing (DESIGN.md section 4):

- each action of a chunk takes one model step (``chunk.step_period``, 0.2 s for Bridge);
- ``mode`` says how chunks become commands (:mod:`nora_ros.control.modes`): ``hold`` (each
  action's velocity held over its step, the default), ``interpolate`` (a smooth path through
  the waypoints), ``ensemble`` (ACT's temporal ensembling), ``blend`` (LeRobot's aggregation),
  ``rtc`` (real-time chunking, NORA-1.5's flow head);
- every mode places a chunk on the motion clock (:mod:`nora_ros.control.timeline`): a chunk
  that is ready after the arm kept moving starts at the action due now, the past ones skipped
  and counted, never replayed;
- a chunk whose observation is older than ``max_chunk_age`` when it would start is dropped;
- when nothing valid is due, the answer is "hold" with a reason, never a stale action.

:meth:`ActionScheduler.wants_observation` tells the loop when to start the next inference:
early enough that, at the measured latency, the next chunk is ready when it is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nora_ros.actions import ActionChunk, EndEffectorCommand
from nora_ros.control.modes import (
    AGGREGATES,
    BlendExecutor,
    Counters,
    EnsembleExecutor,
    HoldExecutor,
    InterpolateExecutor,
    Join,
    Outlook,
    RtcExecutor,
    Tick,
)
from nora_ros.control.timeline import EPS, MotionClock, PlacedChunk
from nora_ros.errors import ConfigurationError

if TYPE_CHECKING:
    from nora_ros.policy.base import ChunkGuide

MODES = ("hold", "interpolate", "ensemble", "blend", "rtc")


@dataclass(frozen=True)
class SchedulerConfig:
    """Chunk execution parameters (the policy node declares each with its description).

    mode: ``hold`` | ``interpolate`` | ``ensemble`` | ``blend`` | ``rtc``.
    execute_steps: ``hold`` / ``interpolate``: actions of each chunk executed per observation,
        counted from the observation (1 = replan every step, NORA's WidowX setting; up to the
        chunk length). ``rtc``: the execution horizon, steps between inference starts.
        ``ensemble`` and ``blend`` run every chunk to its end (the safety filter's open-loop
        budget still bounds the motion per observation).
    max_chunk_age: seconds; a chunk whose camera frame is older than this when it would start
        executing is dropped (the scene has moved on). Must exceed the inference latency.
    tick_period: seconds between the control ticks; every moving tick advances the motion clock
        by exactly this, so timer jitter of up to half a tick can neither stretch an action by a
        tick nor cut one short (seen on ROS 2). 0: tick times are exact (``hold`` only: the other
        modes sample their path per tick).
    ensemble_decay: ``ensemble``: k in ACT's weights ``exp(-k i)``, ``i = 0`` the oldest chunk;
        0.01 is ACT's; larger k trusts older predictions more (smoother, slower to react),
        negative k trusts the newest.
    blend_aggregate: ``blend``: how a new chunk's action combines with the queued one for the same
        time: ``weighted_average`` (0.3 old + 0.7 new), ``latest_only``, ``average``, ``conservative``
        (0.7 old + 0.3 new), as LeRobot names them.
    blend_threshold: ``blend``: send the next observation when the queue holds at most this share
        of a chunk (LeRobot's ``chunk_size_threshold``), or sooner if it would run out first.
    rtc_guidance_weight: ``rtc``: beta, the clip on the guidance weight (the paper uses 5).
    rtc_mask_horizon: ``rtc``: how many of the executing chunk's remaining actions guide the new
        chunk (the soft mask decays to 0 there); 0 = all it has left.
    """

    execute_steps: int = 1
    max_chunk_age: float = 1.0
    tick_period: float = 0.0
    mode: str = "hold"
    ensemble_decay: float = 0.01
    blend_aggregate: str = "weighted_average"
    blend_threshold: float = 0.5
    rtc_guidance_weight: float = 5.0
    rtc_mask_horizon: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigurationError(f"execution mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.execute_steps < 1:
            raise ConfigurationError(f"execute_steps must be >= 1, got {self.execute_steps}")
        if not (self.max_chunk_age > 0 and math.isfinite(self.max_chunk_age)):
            raise ConfigurationError(f"max_chunk_age must be a positive number of seconds, got {self.max_chunk_age}")
        if not (self.tick_period >= 0 and math.isfinite(self.tick_period)):
            raise ConfigurationError(f"tick_period must be >= 0 seconds (0: exact tick times), got {self.tick_period}")
        if self.mode != "hold" and self.tick_period == 0:
            raise ConfigurationError(f"execution mode {self.mode!r} needs the control tick_period (> 0 s): its "
                                     "commands are sampled per tick")
        if not math.isfinite(self.ensemble_decay):
            raise ConfigurationError(f"ensemble_decay must be a finite number, got {self.ensemble_decay}")
        if self.blend_aggregate not in AGGREGATES:
            raise ConfigurationError(f"blend_aggregate must be one of {', '.join(AGGREGATES)}, got "
                                     f"{self.blend_aggregate!r}")
        if not (0.0 <= self.blend_threshold <= 1.0):
            raise ConfigurationError(f"blend_threshold must be in [0, 1], got {self.blend_threshold}")
        if not (self.rtc_guidance_weight >= 0 and math.isfinite(self.rtc_guidance_weight)):
            raise ConfigurationError(f"rtc_guidance_weight must be >= 0, got {self.rtc_guidance_weight}")
        if self.rtc_mask_horizon < 0:
            raise ConfigurationError(f"rtc_mask_horizon must be >= 0 (0: all), got {self.rtc_mask_horizon}")


@dataclass(frozen=True)
class Scheduled:
    """The scheduler's answer for one tick: a command, or ``None`` and why the arm holds.
    ``step_key`` changes exactly when a new model step starts (the supervisor counts steps)."""

    command: EndEffectorCommand | None
    reason: str = ""
    step_key: tuple = ()


class ActionScheduler:
    """Executes action chunks in the configured mode; not thread-safe (call from the control loop)."""

    def __init__(self, config: SchedulerConfig | None = None):
        self.config = config or SchedulerConfig()
        c = self.config
        self.counters = Counters()
        self.clock = MotionClock(c.tick_period)
        join = Join(c.max_chunk_age, self.counters)
        self.executor = {
            "hold": lambda: HoldExecutor(join, c.execute_steps),
            "interpolate": lambda: InterpolateExecutor(join, c.execute_steps),
            "ensemble": lambda: EnsembleExecutor(join, decay=c.ensemble_decay),
            "blend": lambda: BlendExecutor(join, aggregate=c.blend_aggregate, threshold=c.blend_threshold),
            "rtc": lambda: RtcExecutor(join, c.execute_steps),
        }[c.mode]()
        self._last_observed = -math.inf
        self._period = 0.2
        self._horizon = 1

    # ------------------------------------------------------------------ input
    def offer(self, chunk: ActionChunk) -> None:
        """A new chunk from the policy, placed at its frame's motion time; what happens next is
        the mode's (``hold``: it starts when the current one is used up; a newer pending chunk
        replaces an older pending one, counted as dropped)."""
        self._period, self._horizon = chunk.step_period, chunk.horizon
        self.executor.offer(PlacedChunk(chunk, self.clock.at(chunk.stamp)))

    def submitted(self, frame_stamp: float) -> None:
        """The loop started an inference on the frame taken at ``frame_stamp``."""
        self._last_observed = self.clock.at(frame_stamp)

    def clear(self) -> None:
        """Forget every chunk (trial ended, e-stop, policy disabled)."""
        self.executor.clear()
        self._last_observed = -math.inf

    # ------------------------------------------------------------------ output
    def command_at(self, now: float) -> Scheduled:
        """The command for the control tick at ``now`` (seconds, the chunks' clock)."""
        motion = self.clock.tick(now)
        # only hold runs on exact tick times (tick_period 0), and hold does not sample a path
        decision = self.executor.decide(Tick(now, motion, self.config.tick_period))
        self.clock.moved(decision.command is not None)
        return Scheduled(decision.command, decision.reason, decision.step_key)

    def wants_observation(self, now: float, expected_latency: float, frame_stamp: float | None = None) -> bool:
        """Whether to start an inference now (on the frame taken at ``frame_stamp``) so its chunk
        is ready when it is needed.

        While nothing executes, only a frame taken after the arm stopped is worth an inference:
        one taken during the last motion would start its chunk part way (that motion already
        happened), and a frame of the stopped arm is at most a camera period away (seen on ROS 2
        with a 5 Hz camera not in step with the control timer: one-action chunks ran a quarter of
        their step)."""
        motion = self.clock.at(now)
        if frame_stamp is not None and self.executor.remaining(motion) <= EPS and not self.executor.waiting:
            if motion - self.clock.at(frame_stamp) > EPS:
                return False
        outlook = Outlook(self.config.tick_period, self._last_observed, self._period, self._horizon)
        return self.executor.wants(motion, expected_latency, outlook)

    def guide(self, frame_stamp: float, expected_latency: float) -> ChunkGuide | None:
        """``rtc``: what the executing chunk plans from the frame at ``frame_stamp`` on, for the
        policy's guided sampling; ``None`` in other modes or when nothing executes."""
        if not isinstance(self.executor, RtcExecutor):
            return None
        from nora_ros.policy.base import ChunkGuide  # the policy layer; the scheduler needs it only here

        found = self.executor.guide_actions(self.clock.at(frame_stamp))
        if found is None:
            return None
        actions, _ = found
        horizon = self._horizon
        mask = len(actions) if self.config.rtc_mask_horizon == 0 else min(len(actions), self.config.rtc_mask_horizon)
        frozen = min(mask, math.ceil(expected_latency / self._period - EPS))
        return ChunkGuide(actions=actions[:mask], frozen_steps=max(0, frozen),
                          execution_horizon=max(1, horizon - mask),
                          guidance_weight=self.config.rtc_guidance_weight)

    @property
    def active(self) -> bool:
        """A chunk is executing or waiting."""
        return self.executor.active

    @property
    def dropped(self) -> int:
        return self.counters.dropped

    @property
    def skipped(self) -> int:
        """Actions never executed because their time had passed when their chunk was ready."""
        return self.counters.skipped

    @property
    def last_drop_reason(self) -> str:
        return self.counters.last_drop_reason
