"""Bookkeeping of the trial under way: what happened in it, its recording, and the result it
becomes when it ends. The state machine (:mod:`nora_ros.trials.supervisor`) decides *when*;
this module keeps *what*.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nora_ros.errors import InvalidInputError
from nora_ros.trials.instruction import validate_instruction
from nora_ros.trials.results_store import TrialResult
from nora_ros.trials.score import Score, ScoreKind
from nora_ros.trials.state import Recorder, RunInfo, TrialState


@dataclass
class ActiveTrial:
    """Mutable record of the active trial (owned by one supervisor)."""

    trial_id: int
    instruction: str
    task: str
    category: str
    created: float
    running_since: float | None = None
    ended_running: float | None = None
    steps: int = 0
    safety_events: list[str] = field(default_factory=list)
    interventions: list[str] = field(default_factory=list)
    recording: str | None = None
    recording_active: bool = False
    recording_error: str = ""
    run_info: RunInfo | None = None
    """What this trial evaluates, when given with its instruction (an evaluation plan's model);
    ``None``: the supervisor's run info."""

    def elapsed(self, now: float) -> str:
        """``[t+1.23s step 4]``: where in the trial an event happened."""
        return f"[t+{now - self.created:.2f}s step {self.steps}]"

    def stop_recording(self, recorder: Recorder | None) -> None:
        """Stop the trial's recording once; a failure is reported in the result, never raised."""
        if not self.recording_active or recorder is None:
            return
        self.recording_active = False
        try:
            recorder.stop()
        except Exception as exc:  # reported in the result, never hides the trial's end
            self.recording_error = f"recorder failed to stop: {exc}"

    def result(self, state: TrialState, score: Score, reason: str, now: float, run_info: RunInfo) -> TrialResult:
        """The result this trial ends with (``state`` DONE or ABORTED); ``run_info`` unless the trial
        carries its own."""
        run_info = self.run_info or run_info
        duration = 0.0
        if self.running_since is not None:
            duration = (self.ended_running if self.ended_running is not None else now) - self.running_since
        extra = {"recording_error": self.recording_error} if self.recording_error else {}
        return TrialResult(
            trial_id=self.trial_id,
            task=self.task,
            instruction=self.instruction,
            score=score,
            start_time=self.created,
            end_time=now,
            steps=self.steps,
            duration_s=duration,
            model_id=run_info.model_id,
            checkpoint=run_info.checkpoint,
            config_digest=run_info.config_digest,
            category=self.category,
            end_state=state.value,
            reason=reason,
            safety_events=tuple(self.safety_events),
            interventions=tuple(self.interventions),
            recording=self.recording,
            extra=extra,
        )


@dataclass(frozen=True)
class QueuedInstruction:
    """An instruction waiting for the active trial to finish (``on_busy: queue``)."""

    instruction: str
    task: str
    category: str
    run_info: RunInfo | None = None


def fraction_text(score: Score) -> str:
    return f" {score.fraction:g}" if score.kind is ScoreKind.PARTIAL else ""


def clean_label(text: str, what: str, allow_empty: bool = False) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be text, got {type(text).__name__}")
    text = text.strip()
    if not text:
        if allow_empty:
            return ""
        raise InvalidInputError(f"{what} is empty")
    try:
        return validate_instruction(text)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what} rejected: {exc}") from exc
