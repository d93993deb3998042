"""What the supervisor node hears, turned into :class:`~nora_ros.supervisor.TrialSupervisor` calls
(no ROS here).

- ``instruction`` text starts (or queues) a trial; ``trial/score`` text judges it; a component's
  ``trial/fault`` text ends it as a fault.
- ``safety/status``: a latched e-stop aborts the trial and blocks new ones until it is reset;
  ``at_start`` for the current trial (while RESETTING) starts the policy; the first time each
  limit acts in a trial it is recorded in the trial's result.
- ``cmd``: each new action (chunk id, index) is one policy step for the step limit.

Rejected inputs return the reason (the node logs it and says it on trial/status); nothing
moves then. ROS time may jump back (a bag replayed in a loop); the supervisor needs a clock that
does not, so times are clamped to the latest seen.
"""

from __future__ import annotations

from collections.abc import Sequence

from nora_ros.errors import NoraError
from nora_ros.supervisor import TrialState, TrialSupervisor


class SupervisorInputs:
    def __init__(self, supervisor: TrialSupervisor):
        self.supervisor = supervisor
        self._now = float("-inf")
        self._last_action: tuple[int, int] | None = None
        self._limits_seen: set[str] = set()
        self._limits_trial = 0

    def _clock(self, now: float) -> float:
        self._now = max(self._now, float(now))
        return self._now

    def instruction(self, text: str, now: float) -> str:
        try:
            self.supervisor.submit_instruction(text, self._clock(now))
        except NoraError as exc:
            return f"instruction rejected: {exc}"
        return ""

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
        sup = self.supervisor
        if estopped and not sup.estopped:
            sup.estop(now, estop_reason or "e-stop")
        elif not estopped and sup.estopped:
            sup.release_estop(now)
        if at_start and sup.state is TrialState.RESETTING and start_trial_id == sup.trial_id:
            sup.arm_at_start(now)
        if sup.state is TrialState.RUNNING and limits:
            if self._limits_trial != sup.trial_id:
                self._limits_trial, self._limits_seen = sup.trial_id, set()
            for name, detail in limits:
                if name not in self._limits_seen:
                    self._limits_seen.add(name)
                    sup.safety_event(f"{name}: {detail}", now)

    def command(self, chunk_id: int, index: int, now: float) -> None:
        """A command from the policy; a new (chunk, index) pair while RUNNING is one step."""
        key = (int(chunk_id), int(index))
        if chunk_id == 0 or key == self._last_action:
            return  # holds carry chunk id 0
        self._last_action = key
        if self.supervisor.state is TrialState.RUNNING:
            self.supervisor.step(self._clock(now))

    def abort(self, reason: str, now: float) -> None:
        self.supervisor.abort(reason, self._clock(now))

    def tick(self, now: float) -> None:
        self.supervisor.tick(self._clock(now))
