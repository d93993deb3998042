"""The trial supervisor: every transition, faults and e-stops in each state, instructions, scores."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from nora_ros.errors import ConfigurationError, InvalidInputError, InvalidInstructionError
from nora_ros.trials.results_store import ResultsStore, load_results
from nora_ros.trials.score import Score, ScoreKind, parse_score
from nora_ros.trials.state import (
    ResultWriteError,
    RunInfo,
    SupervisorConfig,
    TrialBusyError,
    TrialState,
    TrialStateError,
    TrialStatus,
)
from nora_ros.trials.supervisor import TrialSupervisor

S = TrialState
T0 = 1_700_000_000.0
"""A wall-clock-like start time: results store times as given."""


class FileRecorder:
    """A minimal real recorder: writes a file per trial (the rosbag recorder comes later)."""

    def __init__(self, folder: pathlib.Path, fail_start: bool = False, fail_stop: bool = False):
        self.folder = folder
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.open_file = None
        self.calls: list[str] = []

    def start(self, trial_id: int, instruction: str) -> str:
        self.calls.append(f"start {trial_id}")
        if self.fail_start:
            raise OSError("disk full")
        path = self.folder / f"trial_{trial_id:04d}.log"
        self.open_file = path.open("w")
        self.open_file.write(instruction + "\n")
        return str(path)

    def stop(self) -> None:
        self.calls.append("stop")
        if self.fail_stop:
            raise RuntimeError("bag writer crashed")
        self.open_file.close()
        self.open_file = None


@pytest.fixture
def store(tmp_path: pathlib.Path) -> ResultsStore:
    return ResultsStore(tmp_path / "results.jsonl")


def make(store: ResultsStore | None = None, **config) -> tuple[TrialSupervisor, list[TrialStatus]]:
    sup = TrialSupervisor(SupervisorConfig(**config), RunInfo("nora", "/ckpt/nora", "abc123"), store)
    seen: list[TrialStatus] = []
    sup.add_listener(seen.append)
    return sup, seen


def states(events: list[TrialStatus]) -> list[TrialState]:
    return [e.state for e in events]


def to_state(sup: TrialSupervisor, target: TrialState, t: float = T0) -> float:
    """Drive ``sup`` from IDLE into ``target``; returns the time used."""
    if target is S.IDLE:
        return t
    sup.submit_instruction("put carrot in pot", t)
    if target is S.RESETTING:
        return t
    t += 2.0
    sup.arm_at_start(t)
    if target is S.RUNNING:
        return t
    t += 1.0
    sup.stop(t)
    if target is S.AWAITING_SCORE:
        return t
    t += 1.0
    if target is S.DONE:
        sup.score("success", t)
    elif target is S.ABORTED:
        sup.score("abort", t)
    assert sup.state is target
    return t


# --------------------------------------------------------------------- the happy path


def test_full_trial_emits_each_transition_and_writes_the_result(store):
    sup, seen = make(store, max_steps=5)
    assert sup.state is S.IDLE and not sup.policy_enabled and sup.trial_id == 0

    ev = sup.submit_instruction("  put carrot in pot  ", T0)
    assert states(ev) == [S.RESETTING]
    assert ev[0].trial_id == 1 and ev[0].instruction == "put carrot in pot" and ev[0].stamp == T0
    assert not sup.policy_enabled, "the policy must not act while the arm resets"

    ev = sup.arm_at_start(T0 + 3.0)
    assert states(ev) == [S.RUNNING] and sup.policy_enabled

    for i in range(4):
        assert sup.step(T0 + 3.2 + 0.2 * i) == []
    ev = sup.step(T0 + 4.0)
    assert states(ev) == [S.AWAITING_SCORE] and "step limit 5" in ev[0].reason and ev[0].steps == 5
    assert not sup.policy_enabled

    ev = sup.score("partial 1/2 carrot only", T0 + 10.0)
    assert states(ev) == [S.DONE]
    result = ev[0].result
    assert result is not None and result.trial_id == 1
    assert result.score.kind is ScoreKind.PARTIAL and result.score.value == 0.5 and result.note == "carrot only"
    assert result.steps == 5
    assert result.start_time == T0 and result.end_time == T0 + 10.0
    assert result.duration_s == pytest.approx(1.0)  # RUNNING from +3.0 to the step limit at +4.0
    assert (result.model_id, result.checkpoint, result.config_digest) == ("nora", "/ckpt/nora", "abc123")
    assert seen == [e for e in seen if isinstance(e, TrialStatus)] and states(seen) == [
        S.RESETTING,
        S.RUNNING,
        S.AWAITING_SCORE,
        S.DONE,
    ]

    stored = load_results(store.path)
    assert stored.warnings == ()
    assert [r.trial_id for r in stored.results] == [1]
    line = json.loads(store.path.read_text().splitlines()[0])
    assert (
        line["schema"] == 1
        and line["score"] == "partial"
        and line["value"] == 0.5
        and line["task"] == "put carrot in pot"
    )
    assert line["written_at"].endswith("+00:00")


def test_next_instruction_after_done_starts_trial_two(store):
    sup, _ = make(store)
    t = to_state(sup, S.DONE)
    ev = sup.submit_instruction("put the blue cube on the plate", t + 1)
    assert states(ev) == [S.RESETTING] and ev[0].trial_id == 2


def test_time_limit_stops_for_scoring_on_tick(store):
    sup, _ = make(store, time_limit_s=10.0)
    t = to_state(sup, S.RUNNING)
    assert sup.tick(t + 9.9) == []
    ev = sup.tick(t + 10.0)
    assert states(ev) == [S.AWAITING_SCORE] and "time limit 10 s" in ev[0].reason


def test_time_limit_also_checked_on_step(store):
    sup, _ = make(store, time_limit_s=10.0)
    t = to_state(sup, S.RUNNING)
    assert states(sup.step(t + 11.0)) == [S.AWAITING_SCORE]


def test_operator_stop_is_recorded_as_an_intervention(store):
    sup, _ = make(store)
    t = to_state(sup, S.RUNNING)
    sup.step(t + 0.2, steps=3)
    sup.safety_event("workspace clip z", t + 0.3)
    ev = sup.stop(t + 1.0)
    assert states(ev) == [S.AWAITING_SCORE] and ev[0].reason == "operator stop"
    ev = sup.score(parse_score("failure knocked the pot"), t + 2.0)
    result = ev[0].result
    assert result.score.value == 0.0 and result.note == "knocked the pot"
    assert result.interventions == ("operator stop at step 3",)
    assert len(result.safety_events) == 1 and result.safety_events[0].endswith("workspace clip z")


def test_score_while_running_stops_then_scores(store):
    sup, _ = make(store)
    t = to_state(sup, S.RUNNING)
    ev = sup.score("success", t + 5.0)
    assert states(ev) == [S.AWAITING_SCORE, S.DONE]
    assert not sup.policy_enabled


def test_auto_score_from_the_simulator_check(store):
    sup, _ = make(store)
    t = to_state(sup, S.AWAITING_SCORE)
    ev = sup.score(Score.from_success_check(True, note="carrot inside pot"), t + 1)
    assert ev[0].result.score.source == "sim" and ev[0].result.score.kind is ScoreKind.SUCCESS
    assert load_results(store.path).results[0].score.source == "sim"


def test_steps_outside_running_are_not_counted(store):
    sup, _ = make(store)
    sup.submit_instruction("put carrot in pot", T0)
    assert sup.step(T0 + 0.1, steps=10) == [] and sup.steps == 0
    sup.arm_at_start(T0 + 1)
    sup.step(T0 + 1.2, steps=2)
    sup.stop(T0 + 2)
    assert sup.step(T0 + 2.1) == [] and sup.steps == 2


def test_arm_at_start_outside_resetting_is_ignored(store):
    sup, _ = make(store)
    assert sup.arm_at_start(T0) == [] and sup.state is S.IDLE
    t = to_state(sup, S.RUNNING)
    assert sup.arm_at_start(t + 1) == [] and sup.state is S.RUNNING


# --------------------------------------------------------------------- reset timeout


def test_reset_timeout_aborts_on_tick(store):
    sup, _ = make(store, reset_timeout_s=5.0)
    sup.submit_instruction("put carrot in pot", T0)
    assert sup.tick(T0 + 5.0) == []
    ev = sup.tick(T0 + 5.5)
    assert states(ev) == [S.ABORTED] and "start pose within 5 s" in ev[0].reason
    assert ev[0].result.score.kind is ScoreKind.ABORT and ev[0].result.end_state == "ABORTED"
    assert not sup.policy_enabled


def test_late_arm_at_start_after_the_timeout_aborts_instead_of_running(store):
    sup, _ = make(store, reset_timeout_s=5.0)
    sup.submit_instruction("put carrot in pot", T0)
    ev = sup.arm_at_start(T0 + 6.0)
    assert states(ev) == [S.ABORTED] and not sup.policy_enabled


# --------------------------------------------------------------------- faults, aborts, e-stop in each state

ACTIVE = [S.RESETTING, S.RUNNING, S.AWAITING_SCORE]
INACTIVE = [S.IDLE, S.DONE, S.ABORTED]


@pytest.mark.parametrize("state", ACTIVE, ids=lambda s: s.value)
def test_fault_in_an_active_state_aborts_and_stores_the_trial(store, state):
    sup, _ = make(store)
    t = to_state(sup, state)
    ev = sup.fault("camera stale for 2.0 s", t + 0.5)
    assert states(ev) == [S.ABORTED] and ev[0].reason == "fault: camera stale for 2.0 s"
    assert not sup.policy_enabled
    stored = load_results(store.path).results
    assert len(stored) == 1 and stored[0].score.kind is ScoreKind.ABORT and stored[0].score.value is None
    assert stored[0].reason == "fault: camera stale for 2.0 s" and stored[0].score.source == "supervisor"


@pytest.mark.parametrize("state", INACTIVE, ids=lambda s: s.value)
def test_fault_without_an_active_trial_is_reported_and_changes_nothing(store, state):
    sup, _ = make(store)
    t = to_state(sup, state)
    before = len(load_results(store.path).results) if store.path.exists() else 0
    ev = sup.fault("camera stale", t + 0.5)
    assert states(ev) == [state] and "no active trial" in ev[0].reason
    after = len(load_results(store.path).results) if store.path.exists() else 0
    assert after == before


@pytest.mark.parametrize("state", ACTIVE, ids=lambda s: s.value)
def test_operator_abort_in_an_active_state(store, state):
    sup, _ = make(store)
    t = to_state(sup, state)
    ev = sup.abort("someone bumped the table", t + 0.5)
    assert states(ev) == [S.ABORTED] and "someone bumped the table" in ev[0].reason


@pytest.mark.parametrize("state", INACTIVE, ids=lambda s: s.value)
def test_operator_abort_without_a_trial_does_nothing(store, state):
    sup, _ = make(store)
    t = to_state(sup, state)
    assert sup.abort("nothing to abort", t + 0.5) == [] and sup.state is state


@pytest.mark.parametrize("state", ACTIVE, ids=lambda s: s.value)
def test_abort_score_aborts_in_any_active_state(store, state):
    sup, _ = make(store)
    t = to_state(sup, state)
    ev = sup.score("abort gripper cable caught", t + 0.5)
    assert states(ev) == [S.ABORTED]
    assert ev[0].result.score.note == "gripper cable caught" and ev[0].result.score.source == "operator"


@pytest.mark.parametrize("state", ACTIVE, ids=lambda s: s.value)
def test_estop_in_an_active_state_aborts_and_latches(store, state):
    sup, _ = make(store)
    t = to_state(sup, state)
    ev = sup.estop(t + 0.1)
    assert states(ev) == [S.ABORTED] and ev[0].reason == "e-stop"
    assert sup.estopped and not sup.policy_enabled
    assert sup.estop(t + 0.2) == [], "a repeated e-stop is a no-op"
    with pytest.raises(TrialBusyError, match="e-stop is latched"):
        sup.submit_instruction("put carrot in pot", t + 1)
    assert sup.state is S.ABORTED
    assert states(sup.release_estop(t + 2)) == [S.ABORTED]
    assert states(sup.submit_instruction("put carrot in pot", t + 3)) == [S.RESETTING]


def test_estop_during_resetting_stops_the_reset_and_ignores_a_late_arrival(store):
    recorder_dir = store.path.parent
    rec = FileRecorder(recorder_dir)
    sup = TrialSupervisor(SupervisorConfig(), RunInfo("nora"), store, rec)
    sup.submit_instruction("put carrot in pot", T0)
    ev = sup.estop(T0 + 1.0)
    assert states(ev) == [S.ABORTED] and ev[0].result.steps == 0 and ev[0].result.duration_s == 0.0
    assert sup.arm_at_start(T0 + 2.0) == [], "the arm arriving after the e-stop must not start the policy"
    assert not sup.policy_enabled and rec.calls == [], "nothing was recorded: the trial never ran"
    assert load_results(store.path).results[0].reason == "e-stop"


@pytest.mark.parametrize("state", INACTIVE, ids=lambda s: s.value)
def test_estop_without_a_trial_latches(store, state):
    sup, _ = make(store)
    t = to_state(sup, state)
    ev = sup.estop(t + 0.1)
    assert states(ev) == [state] and "latched" in ev[0].reason and sup.estopped
    assert sup.release_estop(t + 0.2)[0].reason == "e-stop released"
    assert sup.release_estop(t + 0.3) == []


def test_stop_during_reset_aborts(store):
    sup, _ = make(store)
    sup.submit_instruction("put carrot in pot", T0)
    ev = sup.stop(T0 + 1)
    assert states(ev) == [S.ABORTED] and "during reset" in ev[0].reason


@pytest.mark.parametrize("state", [S.IDLE, S.AWAITING_SCORE, S.DONE, S.ABORTED], ids=lambda s: s.value)
def test_stop_elsewhere_does_nothing(store, state):
    sup, _ = make(store)
    t = to_state(sup, state)
    assert sup.stop(t + 1) == [] and sup.state is state


# --------------------------------------------------------------------- scores in the wrong state


@pytest.mark.parametrize("state", INACTIVE, ids=lambda s: s.value)
def test_score_without_a_trial_is_refused(store, state):
    sup, _ = make(store)
    t = to_state(sup, state)
    with pytest.raises(TrialStateError, match="no trial is waiting for a score"):
        sup.score("success", t + 1)


def test_success_score_during_reset_is_refused(store):
    sup, _ = make(store)
    sup.submit_instruction("put carrot in pot", T0)
    with pytest.raises(TrialStateError, match="has not run yet"):
        sup.score("success", T0 + 1)
    assert sup.state is S.RESETTING


def test_bad_score_text_is_refused_and_the_trial_keeps_waiting(store):
    sup, _ = make(store)
    t = to_state(sup, S.AWAITING_SCORE)
    with pytest.raises(InvalidInputError, match="did you mean 'success'"):
        sup.score("sucess", t + 1)
    assert sup.state is S.AWAITING_SCORE


# --------------------------------------------------------------------- instructions


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("x" * (10 * 1024 * 1024), "at most 256"),
        ("put carrot" + "x" * 250, "at most 256"),
        ("put carrot\x00in pot", "non-printable character U\\+0000"),
        ("put carrot\x1b[31m in pot", "non-printable character U\\+001B"),
        ("put carrot\nin pot", "non-printable character U\\+000A"),
        ("put carrot\u202ein pot", "non-printable character U\\+202E"),
        (b"put carrot \xff\xfe in pot", "not valid UTF-8"),
        (b"put carrot \xc3", "not valid UTF-8"),
    ],
    ids=[
        "empty",
        "blank",
        "10MB",
        "257-chars",
        "nul",
        "escape",
        "newline",
        "bidi-override",
        "bad-utf8",
        "truncated-utf8",
    ],
)
def test_bad_instructions_are_rejected_with_a_reason_and_nothing_moves(store, text, reason):
    sup, seen = make(store)
    with pytest.raises(InvalidInstructionError, match=reason):
        sup.submit_instruction(text, T0)
    assert sup.state is S.IDLE and not sup.policy_enabled and seen == [] and sup.trial_id == 0
    assert not store.path.exists()


def test_utf8_bytes_instruction_is_accepted(store):
    sup, _ = make(store)
    ev = sup.submit_instruction("put the crème brûlée on the plate".encode(), T0)
    assert ev[0].instruction == "put the crème brûlée on the plate"


def test_busy_reject_mode_refuses_a_second_instruction(store):
    sup, _ = make(store, on_busy="reject")
    t = to_state(sup, S.RUNNING)
    with pytest.raises(TrialBusyError, match="trial 1 is RUNNING"):
        sup.submit_instruction("put the blue cube on the plate", t + 1)
    assert sup.state is S.RUNNING and sup.instruction == "put carrot in pot" and sup.queued == ()


def test_busy_queue_mode_starts_the_next_trial_after_done(store):
    sup, _ = make(store, on_busy="queue", max_queue=2)
    t = to_state(sup, S.RUNNING)
    ev = sup.submit_instruction("put the blue cube on the plate", t + 1, task="blue cube", category="pick place")
    assert states(ev) == [S.RUNNING] and "queued" in ev[0].reason and ev[0].queued == 1
    sup.submit_instruction("put eggplant in basket", t + 1.5)
    with pytest.raises(TrialBusyError, match="queue is full"):
        sup.submit_instruction("one too many", t + 1.6)
    ev = sup.score("success", t + 2)
    assert states(ev) == [S.AWAITING_SCORE, S.DONE, S.RESETTING]
    assert ev[2].trial_id == 2 and ev[2].instruction == "put the blue cube on the plate" and ev[2].task == "blue cube"
    assert sup.queued == ("put eggplant in basket",)
    sup.arm_at_start(t + 3)
    ev = sup.score("failure", t + 4)
    assert ev[1].result.task == "blue cube" and ev[1].result.category == "pick place"
    assert ev[2].trial_id == 3 and sup.queued == ()


def test_abort_clears_the_queue_so_nothing_starts_on_its_own(store):
    sup, _ = make(store, on_busy="queue")
    t = to_state(sup, S.RUNNING)
    sup.submit_instruction("put the blue cube on the plate", t + 1)
    ev = sup.fault("arm driver lost", t + 2)
    assert states(ev) == [S.ABORTED] and "1 queued instruction(s) dropped" in ev[0].reason
    assert sup.queued == () and sup.state is S.ABORTED


# --------------------------------------------------------------------- recorder


def test_recorder_path_is_stored_and_the_recording_covers_running(store):
    rec = FileRecorder(store.path.parent)
    sup = TrialSupervisor(SupervisorConfig(), RunInfo("nora"), store, rec)
    sup.submit_instruction("put carrot in pot", T0)
    assert rec.calls == []
    sup.arm_at_start(T0 + 1)
    assert rec.calls == ["start 1"] and rec.open_file is not None
    sup.stop(T0 + 2)
    assert rec.calls == ["start 1", "stop"]
    ev = sup.score("success", T0 + 3)
    path = ev[0].result.recording
    assert path == str(store.path.parent / "trial_0001.log") and pathlib.Path(path).read_text() == "put carrot in pot\n"
    assert load_results(store.path).results[0].recording == path


def test_recorder_failing_to_start_aborts_the_trial(store):
    rec = FileRecorder(store.path.parent, fail_start=True)
    sup = TrialSupervisor(SupervisorConfig(), RunInfo("nora"), store, rec)
    sup.submit_instruction("put carrot in pot", T0)
    ev = sup.arm_at_start(T0 + 1)
    assert states(ev) == [S.ABORTED] and "recorder failed to start: disk full" in ev[0].reason
    assert not sup.policy_enabled


def test_recorder_failing_to_stop_is_reported_in_the_result(store):
    rec = FileRecorder(store.path.parent, fail_stop=True)
    sup = TrialSupervisor(SupervisorConfig(), RunInfo("nora"), store, rec)
    sup.submit_instruction("put carrot in pot", T0)
    sup.arm_at_start(T0 + 1)
    sup.estop(T0 + 2)
    result = load_results(store.path).results[0]
    assert result.extra == {"recording_error": "recorder failed to stop: bag writer crashed"}
    assert rec.calls == ["start 1", "stop"]


# --------------------------------------------------------------------- inputs, config, persistence


def test_listener_sees_exactly_the_returned_events(store):
    sup, seen = make(store, on_busy="queue")
    returned = []
    returned += sup.submit_instruction("put carrot in pot", T0)
    returned += sup.submit_instruction("put the blue cube on the plate", T0 + 0.5)
    returned += sup.arm_at_start(T0 + 1)
    returned += sup.score("success", T0 + 2)
    returned += sup.estop(T0 + 3)
    assert seen == returned
    assert states(seen) == [S.RESETTING, S.RESETTING, S.RUNNING, S.AWAITING_SCORE, S.DONE, S.RESETTING, S.ABORTED]


@pytest.mark.parametrize("now", [float("nan"), float("inf"), "1.0", None])
def test_non_finite_or_non_numeric_time_is_refused(store, now):
    sup, _ = make(store)
    with pytest.raises(InvalidInputError, match="now must be a finite number"):
        sup.submit_instruction("put carrot in pot", now)


def test_clock_running_backwards_is_refused(store):
    sup, _ = make(store)
    sup.submit_instruction("put carrot in pot", T0)
    with pytest.raises(InvalidInputError, match="clock went backwards"):
        sup.arm_at_start(T0 - 1)
    assert sup.state is S.RESETTING


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_steps": 0}, "max_steps"),
        ({"time_limit_s": float("nan")}, "time_limit_s"),
        ({"reset_timeout_s": -1.0}, "reset_timeout_s"),
        ({"on_busy": "ignore"}, "on_busy must be one of"),
        ({"max_queue": 0}, "max_queue"),
        ({"max_instruction_chars": 0}, "max_instruction_chars"),
    ],
)
def test_bad_config_is_refused_with_the_fix(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        SupervisorConfig(**kwargs)


def test_restart_continues_numbering_from_the_store(tmp_path):
    path = tmp_path / "results.jsonl"
    sup, _ = make(ResultsStore(path))
    t = to_state(sup, S.DONE)
    sup.submit_instruction("put carrot in pot", t + 1)
    sup.estop(t + 2)
    sup2, _ = make(ResultsStore(path))
    ev = sup2.submit_instruction("put carrot in pot", t + 10)
    assert ev[0].trial_id == 3


def test_without_a_store_trials_are_numbered_in_memory():
    sup, _ = make(None)
    t = to_state(sup, S.DONE)
    assert sup.trial_id == 1
    assert sup.submit_instruction("put carrot in pot", t + 1)[0].trial_id == 2


def test_a_result_that_cannot_be_written_raises_after_the_trial_ends(tmp_path):
    path = tmp_path / "results.jsonl"
    sup, seen = make(ResultsStore(path))
    t = to_state(sup, S.AWAITING_SCORE)
    os.mkdir(path)  # the results path is now a folder: the append fails with an OSError
    with pytest.raises(ResultWriteError, match="trial 1 could not be written"):
        sup.score("success", t + 1)
    assert sup.state is S.DONE and not sup.policy_enabled
    assert seen[-1].state is S.DONE and "RESULT NOT SAVED" in seen[-1].reason


# --------------------------------------------------------------------- score text


@pytest.mark.parametrize(
    ("text", "kind", "value", "note"),
    [
        ("success", ScoreKind.SUCCESS, 1.0, ""),
        ("  SUCCESS  clean grasp ", ScoreKind.SUCCESS, 1.0, "clean grasp"),
        ("failure some note", ScoreKind.FAILURE, 0.0, "some note"),
        ("fail", ScoreKind.FAILURE, 0.0, ""),
        ("partial 0.5 carrot only", ScoreKind.PARTIAL, 0.5, "carrot only"),
        ("partial 1/3", ScoreKind.PARTIAL, 1 / 3, ""),
        ("partial 25% hotdog only", ScoreKind.PARTIAL, 0.25, "hotdog only"),
        ("partial 1", ScoreKind.PARTIAL, 1.0, ""),
        ("abort", ScoreKind.ABORT, None, ""),
        (b"abort cable caught", ScoreKind.ABORT, None, "cable caught"),
    ],
)
def test_score_text_parses(text, kind, value, note):
    score = parse_score(text)
    assert score.kind is kind and score.note == note and score.source == "operator"
    assert score.value == (pytest.approx(value) if value is not None else None)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "score is empty"),
        ("sucess", "did you mean 'success'"),
        ("yes", "unknown score 'yes'"),
        ("partial", "needs a fraction"),
        ("partial half", "fraction such as 0.5"),
        ("partial 1.5", r"within|\[0, 1\]"),
        ("partial 3/2", r"\[0, 1\]"),
        ("partial 1/0", "divides by zero"),
        ("partial 150%", r"\[0, 1\]"),
        ("partial -0.5", "fraction such as 0.5"),
        ("partial nan", "fraction such as 0.5"),
        (b"success \xff", "not valid UTF-8"),
        ("success " + "x" * 1001, "at most 1000"),
    ],
)
def test_bad_score_text_is_refused_with_the_accepted_forms(text, match):
    with pytest.raises(InvalidInputError, match=match):
        parse_score(text)


@pytest.mark.parametrize(
    ("check", "kind", "value"),
    [
        (True, ScoreKind.SUCCESS, 1.0),
        (False, ScoreKind.FAILURE, 0.0),
        (0.5, ScoreKind.PARTIAL, 0.5),
        (1.0, ScoreKind.SUCCESS, 1.0),
    ],
)
def test_score_from_a_success_check(check, kind, value):
    score = Score.from_success_check(check)
    assert score.kind is kind and score.value == value and score.source == "sim"


@pytest.mark.parametrize("check", [float("nan"), -0.1, 1.1])
def test_bad_success_check_values_are_refused(check):
    with pytest.raises(InvalidInputError, match="success check"):
        Score.from_success_check(check)


def test_only_partial_scores_carry_a_fraction():
    with pytest.raises(InvalidInputError, match="only a partial score"):
        Score(ScoreKind.SUCCESS, fraction=1.0)
    with pytest.raises(InvalidInputError, match="needs a fraction"):
        Score(ScoreKind.PARTIAL)


def test_every_status_carries_the_configured_start_pose(store):
    pose = [0.3, 0.0, 0.15, 0.0, 0.0, 0.0]
    sup, seen = make(store, start_pose=pose)
    to_state(sup, S.DONE)
    assert {e.start_pose for e in seen} == {tuple(pose)}
    sup_home, seen_home = make(None)
    to_state(sup_home, S.RESETTING)
    assert seen_home[0].start_pose == (), "empty = the arm's home pose"


@pytest.mark.parametrize("pose", [[0.3, 0.0, 0.15], [0.3, 0.0, float("nan"), 0, 0, 0], ["a", 0, 0, 0, 0, 0], 5])
def test_a_bad_start_pose_is_refused(pose):
    with pytest.raises(ConfigurationError, match="start_pose must be"):
        SupervisorConfig(start_pose=pose)


def test_config_from_a_mapping_round_trips_and_hints_at_typos():
    config = SupervisorConfig.from_mapping({"max_steps": 50, "on_busy": "queue", "start_pose": [0.3, 0, 0.15, 0, 0, 0]})
    assert config.max_steps == 50 and config.start_pose == (0.3, 0.0, 0.15, 0.0, 0.0, 0.0)
    assert SupervisorConfig.from_mapping(config.to_mapping()) == config
    assert SupervisorConfig.from_mapping(None) == SupervisorConfig()
    with pytest.raises(ConfigurationError, match="'max_step' \\(did you mean 'max_steps'\\?\\)"):
        SupervisorConfig.from_mapping({"max_step": 50})
