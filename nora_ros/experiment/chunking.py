"""The chunk-execution experiment: execution modes x control rates x latencies x seeds in the sim.

The NORA paper's open question (does chunking pay off at higher control rates?) as a grid a
lab can run: each *cell* (mode variant, rate, latency) builds one simulated stack (MuJoCo
world, safety filter, supervisor) with a policy that predicts chunks, and runs one trial per
seed in it. Each trial's measurements (:class:`TrialMetrics`) are appended as one JSON line to
the results file the moment it ends, so an interrupted run resumes where it stopped: cells and
seeds already in the file are not run again.

Motion is measured from the physics, not from the control ticks: :class:`EeSampler` reads the
end-effector site every 10 ms of simulated time, so jerk and path length mean the same at 5 Hz
and at 50 Hz control.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from nora_ros.errors import ConfigurationError

SAMPLE_PERIOD = 0.01
"""Seconds of simulated time between end-effector samples (100 Hz, above every control rate)."""


@dataclass(frozen=True)
class Variant:
    """An execution mode and, for ``hold`` / ``interpolate`` / ``rtc``, its ``execute_steps``."""

    mode: str
    execute_steps: int = 1

    @property
    def name(self) -> str:
        return self.mode if self.mode in ("ensemble", "blend") else f"{self.mode}:{self.execute_steps}"

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``hold:1``, ``interpolate:5``, ``ensemble``, ``blend``, ``rtc:2``."""
        from nora_ros.control.scheduler import MODES

        mode, _, steps = text.strip().partition(":")
        if mode not in MODES:
            raise ConfigurationError(f"unknown execution mode {mode!r} in {text!r}; modes: {', '.join(MODES)}")
        try:
            return cls(mode, int(steps) if steps else 1)
        except ValueError as exc:
            raise ConfigurationError(f"execute_steps in {text!r} must be an integer") from exc


@dataclass(frozen=True)
class Cell:
    """One point of the grid; every seed of a cell runs in the same stack."""

    variant: Variant
    rate: float
    latency: float

    @property
    def key(self) -> str:
        return f"{self.variant.name}|{self.rate:g}|{self.latency:g}"


@dataclass(frozen=True)
class PolicySpec:
    """The policy under test: ``expert`` (the chunking scripted expert, ground truth) or ``nora:PATH``
    (a NORA checkpoint folder or hub ID, e.g. a tiny one from ``nora-ros tiny-model``: mechanics
    only, random weights do not do the task)."""

    name: str = "expert"
    horizon: int = 5
    noise_translation: float = 0.001
    noise_rotation: float = 0.005

    def factory(self, seed: int) -> Callable[[object], object]:
        if self.name == "expert":
            from nora_ros.sim.chunking_expert import ChunkingConfig, ChunkingExpertPolicy

            config = ChunkingConfig(self.horizon, self.noise_translation, self.noise_rotation, seed)
            return lambda world: ChunkingExpertPolicy(world, config)
        if self.name.startswith("nora:"):
            from nora_ros.policy.factory import make_policy
            from nora_ros.policy.nora.config import NoraConfig

            config = NoraConfig(model=self.name[len("nora:"):], seed=seed)
            return lambda world: make_policy(config)
        raise ConfigurationError(f"policy must be 'expert' or 'nora:CHECKPOINT', got {self.name!r}")

    @property
    def renders(self) -> bool:
        return self.name != "expert"


@dataclass(frozen=True)
class ExperimentConfig:
    """The grid and the fixed settings of every trial."""

    variants: tuple[Variant, ...]
    rates: tuple[float, ...]
    latencies: tuple[float, ...]
    seeds: int
    policy: PolicySpec = field(default_factory=PolicySpec)
    task: str = "carrot_in_pot"
    max_steps: int = 80

    def cells(self) -> Iterator[Cell]:
        for variant in self.variants:
            for rate in self.rates:
                for latency in self.latencies:
                    yield Cell(variant, rate, latency)

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ConfigurationError(f"seeds must be >= 1, got {self.seeds}")
        if any(not (1.0 <= r <= 100.0) for r in self.rates):
            raise ConfigurationError(f"control rates must lie in 1..100 Hz, got {self.rates}")
        if any(not (0.0 <= x < 5.0) for x in self.latencies):
            raise ConfigurationError(f"latencies must lie in [0, 5) s, got {self.latencies}")


@dataclass(frozen=True)
class TrialMetrics:
    """One trial's measurements (one JSON line of the results file)."""

    cell: str
    mode: str
    execute_steps: int
    rate: float
    latency: float
    seed: int
    success: bool
    outcome: str
    time_s: float
    rms_jerk: float
    path_length: float
    skipped: int
    dropped: int
    ticks: int
    holds: int
    limits: dict[str, int]


class EeSampler:
    """A world controller that records the end-effector position every :data:`SAMPLE_PERIOD` s."""

    def __init__(self, world):
        self.world = world
        self.times: list[float] = []
        self.points: list[np.ndarray] = []
        self._next = -math.inf
        world.add_controller(self)

    def on_reset(self) -> None:
        """The world was reset (a new trial): start over."""
        self.clear()

    def clear(self) -> None:
        self.times.clear()
        self.points.clear()
        self._next = -math.inf

    def before_step(self, time: float) -> None:
        if time >= self._next - 1e-9:
            self.times.append(time)
            self.points.append(self.world.ee_pose()[:3, 3].copy())
            self._next = max(self._next + SAMPLE_PERIOD, time) if math.isfinite(self._next) else time + SAMPLE_PERIOD


def rms_jerk(points: np.ndarray, period: float = SAMPLE_PERIOD) -> float:
    """Root-mean-square jerk (m/s^3) of positions sampled every ``period`` s (third differences)."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 4:
        return math.nan
    jerk = np.diff(p, n=3, axis=0) / period**3
    return float(np.sqrt(np.mean(np.sum(jerk**2, axis=1))))


def path_length(points: np.ndarray) -> float:
    p = np.asarray(points, dtype=np.float64)
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) if len(p) > 1 else 0.0


def run_cell(config: ExperimentConfig, cell: Cell, seeds: list[int]) -> Iterator[TrialMetrics]:
    """Run ``seeds`` trials of ``cell``; yields each trial's metrics as it ends."""
    from nora_ros.control.policy_loop import LoopConfig
    from nora_ros.runner import build_sim_stack, run_sim_trial
    from nora_ros.sim.arm import MujocoArmConfig
    from nora_ros.sim.tasks import TASKS

    v = cell.variant
    loop = LoopConfig(control_rate_hz=cell.rate, camera_rate_hz=min(cell.rate, 30.0), execution_mode=v.mode,
                      execute_steps=v.execute_steps, max_chunk_age=max(1.0, 3 * cell.latency + 0.5),
                      max_image_age=max(0.5, 2.0 / min(cell.rate, 30.0)))
    stack = build_sim_stack(config.policy.factory(seeds[0] if seeds else 0), task=config.task, loop_config=loop,
                            latency=cell.latency, render=config.policy.renders, max_steps=config.max_steps,
                            arm_config=MujocoArmConfig(streaming=True))
    sampler = EeSampler(stack.world)
    policy_loop = stack.loop.policy
    instruction = TASKS[config.task].instruction
    try:
        for seed in seeds:
            sampler.clear()
            if hasattr(stack.policy, "reseed"):
                stack.policy.reseed(seed)  # a seed's trial is the same whatever ran before it (resume)
            skipped, dropped = policy_loop.scheduler.skipped, policy_loop.scheduler.dropped
            log = run_sim_trial(stack.world, stack.arm, stack.loop, stack.supervisor, instruction, seed=seed)
            points = np.array(sampler.points)
            success = log.outcome.startswith("success")
            yield TrialMetrics(
                cell=cell.key, mode=v.mode, execute_steps=v.execute_steps, rate=cell.rate, latency=cell.latency,
                seed=seed, success=success, outcome=log.outcome, time_s=log.sim_s,
                rms_jerk=rms_jerk(points), path_length=path_length(points),
                skipped=policy_loop.scheduler.skipped - skipped, dropped=policy_loop.scheduler.dropped - dropped,
                ticks=len(log.ticks), holds=sum(1 for r in log.ticks if r.hold_reason),
                limits=dict(log.limits))
    finally:
        stack.close()


# --------------------------------------------------------------------------- results file


def load_results(path: pathlib.Path) -> list[TrialMetrics]:
    """Every complete line of the results file (a line cut by an interruption is ignored)."""
    out: list[TrialMetrics] = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            out.append(TrialMetrics(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return out


def run_grid(config: ExperimentConfig, path: pathlib.Path, jobs: int = 1,
             progress: Callable[[int, int, TrialMetrics], None] | None = None) -> list[TrialMetrics]:
    """Run every (cell, seed) not yet in ``path``, appending each trial's line as it ends; returns
    all results (old and new). ``jobs`` > 1 runs cells in that many processes."""
    done = {(r.cell, r.seed) for r in load_results(path)}
    todo = [(cell, [s for s in range(config.seeds) if (cell.key, s) not in done]) for cell in config.cells()]
    todo = [(cell, seeds) for cell, seeds in todo if seeds]
    total = len(done) + sum(len(s) for _, s in todo)
    count = len(done)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            out.write("\n")  # an interrupted run cut its last line: start on a fresh one
        for metrics in _execute(config, todo, jobs):
            out.write(json.dumps(asdict(metrics)) + "\n")
            out.flush()
            count += 1
            if progress is not None:
                progress(count, total, metrics)
    return load_results(path)


def _execute(config: ExperimentConfig, todo: list[tuple[Cell, list[int]]], jobs: int) -> Iterator[TrialMetrics]:
    if jobs <= 1:
        for cell, seeds in todo:
            yield from run_cell(config, cell, seeds)
        return
    import concurrent.futures
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # MuJoCo and torch do not survive fork well
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        futures = [pool.submit(_cell_list, config, cell, seeds) for cell, seeds in todo]
        for future in concurrent.futures.as_completed(futures):
            yield from future.result()


def _cell_list(config: ExperimentConfig, cell: Cell, seeds: list[int]) -> list[TrialMetrics]:
    return list(run_cell(config, cell, seeds))
