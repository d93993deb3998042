"""What the supervisor node hears, turned into :class:`~nora_ros.trials.supervisor.TrialSupervisor` calls
(no ROS here).

- ``instruction`` text starts (or queues) a trial; ``trial/score`` text judges it; a component's
  ``trial/fault`` text ends it as a fault.
- ``trial/start`` (a service: the console, an evaluation plan) starts a trial with its task,
  model and the model id the policy's chunks must report; it never queues. ``trial/stop`` ends
  the rollout for scoring.
- ``action_chunk``: while a trial started that way runs, every chunk must come from the model
  it was started for; a chunk from another ends the trial as a fault (a trial is never stored
  under a model that did not run it).
- ``safety/status``: a latched e-stop aborts the trial and blocks new ones until it is reset;
  ``at_start`` for the current trial (while RESETTING) starts the policy; the first time each
  limit acts in a trial it is recorded in the trial's result.
- ``cmd``: each new action (chunk id, index) is one policy step for the step limit.
- silence: the safety node publishes ``safety/status`` every control tick; when none arrives
  for ``safety_timeout`` seconds while a trial is resetting or running, the safety node is down
  (nothing commands or watches the arm) and the trial ends as a fault instead of running on to
  its time limit. Likewise the policy node publishes ``cmd`` every control tick while a trial
  runs (zero velocity while it waits for inference): none for ``policy_timeout`` seconds of
  RUNNING means no policy is there (it died, or refused to start: seen on ROS 2, where such a
  trial ran to its time limit and was stored as the model's failure), and the trial ends as a
  fault.

Rejected inputs return the reason (the node logs it and says it on trial/status); nothing
moves then. ROS time may jump back (a bag replayed in a loop); the supervisor needs a clock that
does not, so times are clamped to the latest seen.
"""

from __future__ import annotations

from collections.abc import Sequence

from nora_ros.errors import ConfigurationError, NoraError
from nora_ros.trials.state import ACTIVE_STATES, RunInfo, TrialState
from nora_ros.trials.supervisor import TrialSupervisor

_WATCHED = (TrialState.RESETTING, TrialState.RUNNING)
"""States in which the arm moves, so a silent safety node ends the trial (AWAITING_SCORE: it holds)."""


class SupervisorInputs:
    def __init__(self, supervisor: TrialSupervisor, safety_timeout: float = 1.0, policy_timeout: float = 2.0):
        """``safety_timeout``: seconds of ``safety/status`` silence that fault an active trial;
        ``policy_timeout``: seconds of ``cmd`` silence that fault a running one (0: never)."""
        for name, value in (("safety_timeout", safety_timeout), ("policy_timeout", policy_timeout)):
            if not (value >= 0.0):
                raise ConfigurationError(f"{name} must be >= 0 s (0: never), got {value}")
        self.supervisor = supervisor
        self.safety_timeout = float(safety_timeout)
        self.policy_timeout = float(policy_timeout)
        self._last_safety = float("-inf")
        self._last_command = float("-inf")
        self._running = (0, float("-inf"))  # (trial id, when the supervisor first ran it here)
        self._now = float("-inf")
        self._last_action: tuple[int, int] | None = None
        self._limits_seen: set[str] = set()
        self._limits_trial = 0
        self._served: tuple[int, str] = (0, "")  # (trial id, the model its chunks must come from)

    def _clock(self, now: float) -> float:
        self._now = max(self._now, float(now))
        return self._now

    def instruction(self, text: str, now: float) -> str:
        try:
            self.supervisor.submit_instruction(text, self._clock(now))
        except NoraError as exc:
            return f"instruction rejected: {exc}"
        return ""

    def start_trial(self, instruction: str, now: float, *, task: str = "", model_id: str = "", checkpoint: str = "",
                    served_model_id: str = "") -> tuple[int, str]:
        """Start a trial now or refuse: (trial id, "") or (0, reason). Empty ``model_id``/``checkpoint``:
        the supervisor's run info; ``served_model_id``: what this trial's chunks must report."""
        sup = self.supervisor
        if sup.state in ACTIVE_STATES:
            return 0, f"trial {sup.trial_id} is {sup.state.value}: stop or score it first"
        info = sup.run_info
        if model_id:
            info = RunInfo(model_id=model_id, checkpoint=checkpoint or model_id, config_digest=info.config_digest)
        try:
            sup.submit_instruction(instruction, self._clock(now), task=task or None, run_info=info)
        except NoraError as exc:
            return 0, f"instruction rejected: {exc}"
        self._served = (sup.trial_id, served_model_id)
        return sup.trial_id, ""

    def stop(self, now: float, reason: str = "operator stop") -> str:
        """End the rollout for scoring (a trial still resetting aborts: it never ran); else the reason."""
        sup = self.supervisor
        if sup.state not in _WATCHED:
            return f"no trial is running (trial {sup.trial_id} is {sup.state.value})"
        sup.stop(self._clock(now), reason)
        return ""

    def chunk(self, model_id: str, now: float) -> None:
        """A chunk from the policy: during a trial started for a model, it must be that model's."""
        sup = self.supervisor
        trial, served = self._served
        if sup.state is TrialState.RUNNING and trial == sup.trial_id and served and model_id != served:
            sup.fault(f"policy ran model {model_id!r} but trial {trial} was started for {served!r}; "
                      "not stored under the wrong model", self._clock(now))

    def score(self, text: str, now: float) -> str:
        try:
            self.supervisor.score(text, self._clock(now))
        except NoraError as exc:
            return f"score rejected: {exc}"
        return ""

    def fault(self, text: str, now: float) -> str:
        if self.supervisor.state not in (TrialState.RESETTING, TrialState.RUNNING, TrialState.AWAITING_SCORE):
            return f"fault reported with no trial active: {text}"
        self.supervisor.fault(text or "a component reported a fault", self._clock(now))
        return ""

    def safety(self, *, estopped: bool, estop_reason: str, at_start: bool, start_trial_id: int,
               limits: Sequence[tuple[str, str]], now: float) -> None:
        now = self._clock(now)
        self._last_safety = now
        sup = self.supervisor
        if estopped and not sup.estopped:
            sup.estop(now, estop_reason or "e-stop")
        elif not estopped and sup.estopped:
            sup.release_estop(now)
        if at_start and sup.state is TrialState.RESETTING and start_trial_id == sup.trial_id:
            sup.arm_at_start(now)
            if sup.state is TrialState.RUNNING:
                self._running = (sup.trial_id, now)
        if sup.state is TrialState.RUNNING and limits:
            if self._limits_trial != sup.trial_id:
                self._limits_trial, self._limits_seen = sup.trial_id, set()
            for name, detail in limits:
                if name not in self._limits_seen:
                    self._limits_seen.add(name)
                    sup.safety_event(f"{name}: {detail}", now)

    def command(self, chunk_id: int, index: int, now: float) -> None:
        """A command from the policy; a new (chunk, index) pair while RUNNING is one step."""
        self._last_command = self._clock(now)
        key = (int(chunk_id), int(index))
        if chunk_id == 0 or key == self._last_action:
            return  # holds carry chunk id 0
        self._last_action = key
        if self.supervisor.state is TrialState.RUNNING:
            self.supervisor.step(self._clock(now))

    def abort(self, reason: str, now: float) -> None:
        self.supervisor.abort(reason, self._clock(now))

    def tick(self, now: float) -> None:
        now = self._clock(now)
        self._check_safety_alive(now)
        self._check_policy_alive(now)
        self.supervisor.tick(now)

    def _check_policy_alive(self, now: float) -> None:
        sup = self.supervisor
        if sup.state is not TrialState.RUNNING:
            return
        if self._running[0] != sup.trial_id:
            self._running = (sup.trial_id, now)
        if self.policy_timeout <= 0.0:
            return
        silent = now - max(self._last_command, self._running[1])
        if silent > self.policy_timeout:
            heard = "never heard from it" if self._last_command == float("-inf") else \
                f"last cmd {now - self._last_command:.1f} s ago"
            sup.fault(f"policy node silent for {silent:.1f} s while running ({heard}, limit {self.policy_timeout:g} s): "
                      "no policy is running (did it fail to start?)", now)

    def _check_safety_alive(self, now: float) -> None:
        sup = self.supervisor
        if self.safety_timeout <= 0.0 or sup.state not in _WATCHED:
            return
        created = sup.trial_created
        # Counted from the trial's start at most: a supervisor may get an instruction before its first status.
        silent = now - max(self._last_safety, now if created is None else created)
        if silent > self.safety_timeout:
            heard = "never heard from it" if self._last_safety == float("-inf") else \
                f"last safety/status {now - self._last_safety:.1f} s ago"
            sup.fault(f"safety node silent for {silent:.1f} s ({heard}, limit {self.safety_timeout:g} s): nothing "
                      "commands or watches the arm", now)
