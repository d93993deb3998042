"""The console's port in-process: the simulated closed loop of :mod:`nora_ros.runner`, run by a
control thread in real time, with operator commands applied between its ticks.

One lock guards the stack: the control thread holds it for one tick (camera, policy poll,
safety filter, arm, supervisor; milliseconds) and releases it while it sleeps to the next tick;
commands from the server take it, so they act between ticks and never race the world. The
e-stop takes the same short path: it latches the safety filter through
:meth:`~nora_ros.safety.SafeArm.estop` (the arm holds at once), and the next tick aborts the trial
in the supervisor, exactly as a latched filter does in :func:`nora_ros.runner.run_sim_trial`.

The trial loop here differs from ``run_sim_trial`` in one way: a task success stops the rollout
for the *operator's* score (the point of the console); nothing is scored on its own.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from nora_ros.console.port import ConsoleStatus, PlanView, SafetyView
from nora_ros.console.views import encode_jpeg, results_view
from nora_ros.errors import ConfigurationError, InvalidInputError
from nora_ros.policy.worker import ThreadedInference, VirtualInference
from nora_ros.trials.plan import EvalPlan, PlannedTrial, PlanProgress, progress
from nora_ros.trials.results_store import load_results
from nora_ros.trials.state import RunInfo, TrialBusyError, TrialState

log = logging.getLogger(__name__)

RECENT_LIMITS_S = 3.0
"""How far back the page's "limits that acted" list reaches (seconds of sim time)."""

PolicyFactory = Callable[[Any], Any]
"""``factory(world)`` -> a policy (see :func:`nora_ros.runner.build_sim_stack`)."""


class SimConsolePort:
    """:class:`~nora_ros.console.port.ConsolePort` over a :class:`~nora_ros.runner.SimStack`.

    ``models``: policy factories by model id, for a plan with several models (each is loaded
    on first use and kept loaded: switching between trials costs nothing). ``realtime``: pace
    the sim to the wall clock (the console's normal mode); off, it runs as fast as it can (tests).
    ``seed``: trial k's layout uses ``seed + k``.
    """

    def __init__(self, stack, results_path, *, plan: EvalPlan | None = None,
                 models: Mapping[str, PolicyFactory] | None = None, realtime: bool = True, seed: int = 0,
                 latency: float | None = 0.0):
        self.stack = stack
        self.results_path = results_path
        self.plan = plan
        self.realtime = realtime
        self._factories = dict(models or {})
        self._workers: dict[str, ThreadedInference | VirtualInference] = {}
        self._latency = latency
        self._seed = seed
        self._trials_started = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame: np.ndarray | None = None
        self._frame_seq = 0
        self._jpeg: tuple[int, bytes] | None = None
        self._limits: collections.deque[tuple[float, str]] = collections.deque(maxlen=200)
        self._trial_limits: collections.Counter[str] = collections.Counter()
        self._chunks: collections.deque[float] = collections.deque(maxlen=50)
        self._latency_s: float | None = None
        self._loop_running = False
        self._last_reason = ""
        self._planned: PlannedTrial | None = None
        self._next_frame = 0.0
        self.stack.supervisor.add_listener(self._on_status)
        if self.plan is not None:
            for m in self.plan.models:
                if m.id not in self._factories:
                    raise ConfigurationError(f"plan model {m.id!r} has no policy here; known: {sorted(self._factories)}")

    # ----------------------------------------------------------------- lifecycle

    def start_thread(self) -> None:
        """Run the control loop in a daemon thread until :meth:`close`."""
        self._thread = threading.Thread(target=self._run, name="console-sim", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for worker in self._workers.values():
            if worker is not self.stack.loop.worker:
                worker.close()

    def _run(self) -> None:
        dt = self.stack.loop.config.tick_period
        next_wall = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                active = self.tick()
            if self.realtime:
                next_wall += dt
                delay = next_wall - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_wall = time.monotonic()  # behind (a slow render): don't try to catch up
            elif not active:
                self._stop.wait(0.002)  # idle: nothing to simulate, let the server run

    # ----------------------------------------------------------------- one control tick

    def tick(self) -> bool:
        """One tick of the sim under the lock (public for tests that step by hand).
        Returns whether a trial was moving (RESETTING or RUNNING)."""
        s = self.stack
        sup = s.supervisor
        now = s.world.time
        if s.safe_arm.filter.estopped and not sup.estopped:
            sup.estop(now, s.safe_arm.filter.estop_reason or "e-stop")
        if sup.state is TrialState.RESETTING:
            task = self._planned.task.sim_task if self._planned and self._planned.task.sim_task else None
            s.world.reset(seed=self._seed + self._trials_started - 1, task=task)
            self._next_frame = s.world.time
            sup.arm_at_start(s.world.time)
            s.loop.begin(sup.instruction, s.world.time)
            self._loop_running = True
            self._trial_limits.clear()
            return True
        if sup.state is TrialState.RUNNING:
            self._running_tick(now)
            return True
        if self._loop_running:
            self._end_rollout(now)
        # No trial moving: keep the arm held and the camera live for the page.
        s.safe_arm.tick(None, now)
        if now >= self._next_frame:
            self._store_frame(s.world.observation(render=s.loop.camera.render).image)
            self._next_frame = now + 1.0 / s.loop.config.camera_rate_hz
        s.world.step(s.loop.config.tick_period)
        return False

    def _running_tick(self, now: float) -> None:
        s = self.stack
        sup = s.supervisor
        rec = s.loop.tick(now, sup.policy_enabled)
        if s.recorder is not None:
            s.recorder.on_tick(rec)
        if rec.frame is not None:
            self._store_frame(rec.frame.image)
        if rec.policy.chunk is not None:
            self._chunks.append(now)
            self._latency_s = rec.policy.latency
        for lim in rec.result.status.limits:
            self._limits.append((now, lim.value))
            self._trial_limits[lim.value] += 1
        if rec.new_step:
            sup.step(now)
        if s.loop.policy_failed:
            sup.fault(f"policy failed {s.loop.failures} times in a row: {s.loop.last_error}", now)
        elif rec.result.status.estopped:
            sup.estop(now, rec.result.status.estop_reason or "e-stop")
        else:
            s.world.step(s.loop.config.tick_period)
            outcome = s.world.success()
            if outcome.success:
                sup.stop(s.world.time, f"sim check says success ({outcome.reason}): score it")
            else:
                sup.tick(s.world.time)
        if sup.state is not TrialState.RUNNING:
            self._end_rollout(s.world.time)

    def _end_rollout(self, now: float) -> None:
        s = self.stack
        s.loop.end(now)
        s.arm.hold()
        self._loop_running = False
        for name, count in sorted(self._trial_limits.items()):
            s.supervisor.safety_event(f"{name} acted on {count} ticks", now)
        self._trial_limits.clear()

    def _store_frame(self, image: np.ndarray) -> None:
        if image.ndim == 3 and image.shape[0] > 1:
            self._frame = image
            self._frame_seq += 1

    def _on_status(self, event) -> None:
        self._last_reason = event.reason

    # ----------------------------------------------------------------- port: reads

    def status(self) -> ConsoleStatus:
        with self._lock:
            s = self.stack
            sup = s.supervisor
            now = s.world.time
            flt = s.safe_arm.filter
            recent = tuple(sorted({name for t, name in self._limits if now - t <= RECENT_LIMITS_S}))
            chunks = [t for t in self._chunks if now - t <= 5.0]
            rate = (len(chunks) - 1) / (chunks[-1] - chunks[0]) if len(chunks) > 1 and chunks[-1] > chunks[0] else None
            created = sup.trial_created
            active = sup.state in (TrialState.RESETTING, TrialState.RUNNING, TrialState.AWAITING_SCORE)
            prog = progress(self.plan, self._results()) if self.plan is not None else None
            # Blind: no model while the plan is incomplete (see results()): not while a trial
            # runs, and not once it is scored either, or the operator could tally the models.
            hidden = self.plan is not None and self.plan.blind and (active or prog.next is not None)
            model = "" if hidden else sup.run_info.model_id
            return ConsoleStatus(
                state=sup.state.value, trial_id=sup.trial_id, instruction=sup.instruction,
                task=self._planned.task.name if self._planned and active else "",
                model=model, elapsed_s=round(now - created, 2) if created is not None else 0.0,
                steps=sup.steps, reason=self._last_reason, latency_s=self._latency_s, rate_hz=rate,
                safety=SafetyView(flt.enabled, flt.estopped, flt.estop_reason, recent,
                                  holding=s.safe_arm.last is None or s.safe_arm.last.holding),
                plan=self._plan_view(prog), presets=self._presets(), frame_seq=self._frame_seq)

    def _presets(self) -> tuple[str, ...]:
        if self.plan is not None:
            return tuple(t.instruction for t in self.plan.tasks)
        return (self.stack.world.task.instruction,)

    def _plan_view(self, prog: PlanProgress | None) -> PlanView | None:
        return None if self.plan is None or prog is None else PlanView.of(self.plan, prog)

    def _results(self):
        return load_results(self.results_path).results if self.results_path and self._exists() else ()

    def _exists(self) -> bool:
        import pathlib

        return pathlib.Path(self.results_path).exists()

    def camera_jpeg(self) -> tuple[int, bytes] | None:
        seq, frame = self._frame_seq, self._frame
        if frame is None:
            return None
        cached = self._jpeg
        if cached is None or cached[0] != seq:
            cached = (seq, encode_jpeg(frame))
            self._jpeg = cached
        return cached

    def model_input_jpeg(self) -> bytes | None:
        from nora_ros.camera.preprocess import to_model_image

        frame = self._frame
        return None if frame is None else encode_jpeg(to_model_image(frame))

    def results(self) -> dict[str, Any]:
        """The results view; while a blind plan is incomplete, with the models pooled
        (:func:`~nora_ros.console.views.results_view`): RoboArena and AutoEval reveal
        comparisons only at the end, so per-model rates cannot bias the scores still to come."""
        with self._lock:
            sup = self.stack.supervisor
            blind = self.plan is not None and self.plan.blind
            hide = sup.trial_id if blind and sup.state in (
                TrialState.RESETTING, TrialState.RUNNING, TrialState.AWAITING_SCORE) else 0
        pool = blind and progress(self.plan, self._results()).next is not None
        return results_view(self.results_path, hide_model_of=hide, pool_models=pool)

    # ----------------------------------------------------------------- port: commands

    def start(self, instruction: str = "", task: str = "") -> None:
        with self._lock:
            sup = self.stack.supervisor
            now = self.stack.world.time
            if sup.estopped:
                raise TrialBusyError("e-stop is latched: press Reset after checking the arm")
            planned = None
            if self.plan is not None:
                planned = progress(self.plan, self._results()).next
                if planned is None:
                    raise TrialBusyError("the evaluation plan is complete")
                instruction, task = planned.task.instruction, planned.task.name
                if sup.state not in (TrialState.RESETTING, TrialState.RUNNING, TrialState.AWAITING_SCORE):
                    self._switch_model(planned.model.id, planned.model.checkpoint)
            if not instruction.strip():
                raise InvalidInputError("type an instruction (or pick a preset) first")
            sup.submit_instruction(instruction, now, task=task or None)
            self._planned = planned
            self._trials_started += 1

    def _switch_model(self, model_id: str, checkpoint: str) -> None:
        s = self.stack
        if s.supervisor.run_info.model_id == model_id and model_id in self._workers:
            return
        worker = self._workers.get(model_id)
        if worker is None:
            policy = self._factories[model_id](s.world)
            worker = ThreadedInference(policy) if self.realtime and self._latency is None else \
                VirtualInference(policy, self._latency)
            self._workers[model_id] = worker
        s.loop.worker = worker
        s.supervisor.run_info = RunInfo(model_id=model_id, checkpoint=checkpoint,
                                        config_digest=s.supervisor.run_info.config_digest)
        log.info("console: switched to model %s", model_id)

    def stop(self) -> None:
        with self._lock:
            self.stack.supervisor.stop(self.stack.world.time, "operator stop (console)")

    def score(self, text: str) -> None:
        with self._lock:
            self.stack.supervisor.score(text, self.stack.world.time)

    def estop(self, reason: str = "console e-stop") -> None:
        with self._lock:
            self.stack.safe_arm.estop(reason)
            self.stack.supervisor.estop(self.stack.world.time, reason)
            if self._loop_running:
                self._end_rollout(self.stack.world.time)

    def reset(self) -> None:
        with self._lock:
            self.stack.safe_arm.reset_estop()
            self.stack.supervisor.release_estop(self.stack.world.time)

    def set_enabled(self, enabled: bool) -> None:
        with self._lock:
            self.stack.safe_arm.set_enabled(bool(enabled))
