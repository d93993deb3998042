"""The supervisor node's inputs without ROS (nora_ros.trials.inputs) on the real
TrialSupervisor and results store: a whole trial from instruction to stored result, e-stop,
faults, step counting from commands, rejected inputs, and a clock that jumps back."""

from __future__ import annotations

import json

import pytest

from nora_ros.trials.inputs import SupervisorInputs
from nora_ros.trials.results_store import ResultsStore
from nora_ros.trials.state import RunInfo, SupervisorConfig, TrialState
from nora_ros.trials.supervisor import TrialSupervisor


@pytest.fixture
def rig(tmp_path):
    path = tmp_path / "results.jsonl"
    sup = TrialSupervisor(SupervisorConfig(max_steps=3, start_pose=(0.25, 0.0, 0.15, 0.0, 0.0, 0.0)),
                          run_info=RunInfo(model_id="nora"), store=ResultsStore(path))
    events = []
    sup.add_listener(events.append)
    return SupervisorInputs(sup), sup, events, path


def _safety(inputs, now, *, estopped=False, at_start=False, trial=0, limits=()):
    inputs.safety(estopped=estopped, estop_reason="operator e-stop" if estopped else "", at_start=at_start,
                  start_trial_id=trial, limits=limits, now=now)


def test_a_trial_from_instruction_to_stored_result(rig):
    inputs, sup, events, path = rig
    assert inputs.instruction("put carrot in pot", 1.0) == ""
    assert sup.state is TrialState.RESETTING and sup.trial_id == 1
    _safety(inputs, 1.5, at_start=True, trial=0)  # a stale report for no trial: ignored
    assert sup.state is TrialState.RESETTING
    _safety(inputs, 2.0, at_start=True, trial=1)
    assert sup.state is TrialState.RUNNING
    _safety(inputs, 2.1, limits=[("linear_speed", "0.40 > 0.25 m/s")])
    _safety(inputs, 2.2, limits=[("linear_speed", "0.30 > 0.25 m/s"), ("floor", "z at floor")])
    for i, (chunk, index) in enumerate([(1, 0), (1, 0), (0, 0), (2, 0), (2, 0), (3, 0)]):
        inputs.command(chunk, index, 2.5 + 0.1 * i)  # repeats and holds (chunk 0) are not steps
    assert sup.state is TrialState.AWAITING_SCORE and sup.steps == 3
    assert inputs.score("success carrot fully in", 5.0) == ""
    assert sup.state is TrialState.DONE
    (line,) = path.read_text().splitlines()
    stored = json.loads(line)
    assert stored["trial_id"] == 1 and stored["steps"] == 3 and stored["instruction"] == "put carrot in pot"
    # Each limit once per trial, with the detail of its first occurrence (the supervisor adds when).
    assert [e.split("] ", 1)[1] for e in stored["safety_events"]] == ["linear_speed: 0.40 > 0.25 m/s",
                                                                       "floor: z at floor"]
    assert [e.state.value for e in events] == ["RESETTING", "RUNNING", "AWAITING_SCORE", "DONE"]
    assert events[-1].result is not None and events[-1].result.score.kind.value == "success"


def test_estop_aborts_and_blocks_until_released(rig):
    inputs, sup, events, path = rig
    inputs.instruction("put carrot in pot", 1.0)
    _safety(inputs, 2.0, at_start=True, trial=1)
    _safety(inputs, 3.0, estopped=True)
    assert sup.state is TrialState.ABORTED and sup.estopped
    assert "e-stop" in inputs.instruction("put carrot in pot", 4.0)
    _safety(inputs, 5.0, estopped=False)
    assert not sup.estopped
    assert inputs.instruction("put carrot in pot", 6.0) == "" and sup.trial_id == 2
    assert json.loads(path.read_text().splitlines()[0])["score"] == "abort"


def test_fault_ends_the_trial_with_the_reason(rig):
    inputs, sup, events, _ = rig
    assert "no trial active" in inputs.fault("policy failed 3 times", 0.5)
    inputs.instruction("put carrot in pot", 1.0)
    _safety(inputs, 2.0, at_start=True, trial=1)
    assert inputs.fault("policy failed 3 times in a row: bpe", 3.0) == ""
    assert sup.state is TrialState.ABORTED and "policy failed 3 times in a row" in events[-1].reason


@pytest.mark.parametrize(("text", "match"), [("", "empty"), ("x" * 300, "at most 256"), ("put\ncarrot", "non-printable")])
def test_bad_instructions_are_rejected_with_the_reason(rig, text, match):
    inputs, sup, _, _ = rig
    reason = inputs.instruction(text, 1.0)
    assert reason.startswith("instruction rejected") and match in reason
    assert sup.state is TrialState.IDLE


def test_bad_scores_are_rejected_with_the_reason(rig):
    inputs, sup, _, _ = rig
    assert "no trial is waiting" in inputs.score("success", 1.0)
    inputs.instruction("put carrot in pot", 2.0)
    _safety(inputs, 3.0, at_start=True, trial=1)
    reason = inputs.score("great job", 4.0)
    assert reason.startswith("score rejected") and "partial" in reason
    assert sup.state is TrialState.RUNNING


def test_a_clock_that_jumps_back_does_not_break_the_supervisor(rig):
    inputs, sup, _, _ = rig
    inputs.instruction("put carrot in pot", 100.0)
    _safety(inputs, 5.0, at_start=True, trial=1)  # e.g. a replayed bag started over
    assert sup.state is TrialState.RUNNING
    inputs.tick(6.0)


def test_a_silent_safety_node_ends_the_running_trial_as_a_fault(rig):
    inputs, sup, events, path = rig
    inputs.instruction("put carrot in pot", 1.0)
    _safety(inputs, 1.2, at_start=True, trial=1)
    assert sup.state is TrialState.RUNNING
    for t in (1.3, 1.6, 1.9, 2.2):  # status every tick: alive, whatever the gaps between ticks
        _safety(inputs, t)
        inputs.tick(t + 0.05)
    inputs.tick(3.2)  # 1.0 s after the last status: still within the limit
    assert sup.state is TrialState.RUNNING
    inputs.tick(3.3)
    assert sup.state is TrialState.ABORTED
    stored = json.loads(path.read_text().splitlines()[-1])
    assert stored["score"] == "abort" and "safety node silent for 1.1 s" in stored["reason"] + stored["note"]


def test_silence_counts_from_the_trial_start_and_0_disables_the_watch(rig, tmp_path):
    inputs, sup, events, _ = rig
    inputs.tick(0.0)
    inputs.tick(50.0)  # idle: silence does not matter
    inputs.instruction("put carrot in pot", 100.0)
    inputs.tick(100.5)
    assert sup.state is TrialState.RESETTING  # never heard from it, but only 0.5 s into the trial
    inputs.tick(101.2)
    assert sup.state is TrialState.ABORTED
    assert "never heard from it" in events[-1].reason
    quiet = TrialSupervisor(SupervisorConfig(reset_timeout_s=1000.0), store=ResultsStore(tmp_path / "q.jsonl"))
    off = SupervisorInputs(quiet, safety_timeout=0.0)
    off.instruction("put carrot in pot", 1.0)
    off.tick(500.0)
    assert quiet.state is TrialState.RESETTING
    with pytest.raises(Exception, match="safety_timeout must be >= 0"):
        SupervisorInputs(quiet, safety_timeout=-1.0)


def test_a_running_trial_without_a_policy_ends_as_a_fault_not_a_failure(rig):
    """Seen on ROS 2: the policy node refused to start (a variant contradiction), the rest of the
    launch ran, and an instruction's trial ran to its time limit and was stored as the model's
    failure. The policy publishes cmd every tick while RUNNING (holds too): silence is a fault."""
    inputs, sup, events, path = rig
    inputs.instruction("put carrot in pot", 1.0)
    _safety(inputs, 1.2, at_start=True, trial=1)
    assert sup.state is TrialState.RUNNING
    for t in (1.3, 1.6, 1.9, 2.2, 2.5, 2.8, 3.1):  # the safety node is alive; no cmd ever comes
        _safety(inputs, t)
        inputs.tick(t + 0.05)
    assert sup.state is TrialState.RUNNING  # 1.95 s of RUNNING without a cmd: within the limit
    _safety(inputs, 3.3)
    inputs.tick(3.3)
    assert sup.state is TrialState.ABORTED
    stored = json.loads(path.read_text().splitlines()[-1])
    assert stored["score"] == "abort" and "policy node silent for 2.1 s while running (never heard from it" in stored["reason"]


def test_holds_from_the_policy_keep_the_trial_alive_and_0_disables_the_watch(rig, tmp_path):
    inputs, sup, _, _ = rig
    inputs.instruction("put carrot in pot", 1.0)
    _safety(inputs, 1.2, at_start=True, trial=1)
    for k in range(40):  # 4 s of holds (chunk id 0) while inference is slow: not a step, but alive
        t = 1.3 + 0.1 * k
        _safety(inputs, t)
        inputs.command(0, 0, t)
        inputs.tick(t + 0.01)
    assert sup.state is TrialState.RUNNING and sup.steps == 0
    quiet = TrialSupervisor(SupervisorConfig(time_limit_s=1000.0), store=ResultsStore(tmp_path / "q.jsonl"))
    off = SupervisorInputs(quiet, policy_timeout=0.0, safety_timeout=0.0)
    off.instruction("put carrot in pot", 1.0)
    _safety(off, 1.2, at_start=True, trial=1)
    off.tick(500.0)
    assert quiet.state is TrialState.RUNNING
    with pytest.raises(Exception, match="policy_timeout must be >= 0"):
        SupervisorInputs(quiet, policy_timeout=-1.0)


def test_a_plan_trial_started_by_service_is_stored_under_its_model_and_task(rig):
    inputs, sup, events, path = rig
    tid, reason = inputs.start_trial("put the carrot in the pot", 1.0, task="carrot", model_id="nora-long",
                                     checkpoint="/ckpt/nora-long", served_model_id="/ckpt/nora-long")
    assert (tid, reason) == (1, "") and sup.state is TrialState.RESETTING
    # no queueing for a planned trial: the next one is refused while this one is active
    assert inputs.start_trial("put the carrot in the pot", 1.1) == (0, "trial 1 is RESETTING: stop or score it first")
    _safety(inputs, 2.0, at_start=True, trial=1)
    inputs.chunk("/ckpt/nora-long", 2.1)
    assert sup.state is TrialState.RUNNING
    assert inputs.stop(2.5) == "" and sup.state is TrialState.AWAITING_SCORE
    assert inputs.stop(2.6) == "no trial is running (trial 1 is AWAITING_SCORE)"
    assert inputs.score("success", 3.0) == ""
    stored = json.loads(path.read_text().splitlines()[-1])
    assert (stored["task"], stored["model_id"], stored["checkpoint"]) == ("carrot", "nora-long", "/ckpt/nora-long")
    # without a model the supervisor's own run info is stored, as for the instruction topic
    assert inputs.start_trial("put the carrot in the pot", 4.0) == (2, "")
    inputs.abort("test", 4.1)
    assert json.loads(path.read_text().splitlines()[-1])["model_id"] == "nora"


def test_a_chunk_from_another_model_ends_the_trial_as_a_fault(rig):
    inputs, sup, events, path = rig
    inputs.start_trial("put the carrot in the pot", 1.0, model_id="b", served_model_id="/ckpt/b")
    _safety(inputs, 2.0, at_start=True, trial=1)
    inputs.chunk("/ckpt/b", 2.1)
    assert sup.state is TrialState.RUNNING
    inputs.chunk("/ckpt/a", 2.2)
    assert sup.state is TrialState.ABORTED
    stored = json.loads(path.read_text().splitlines()[-1])
    assert stored["score"] == "abort" and "policy ran model '/ckpt/a'" in stored["reason"]


def test_start_trial_refuses_a_bad_instruction_and_a_latched_estop(rig):
    inputs, sup, events, path = rig
    tid, reason = inputs.start_trial("line one\nline two", 1.0)
    assert tid == 0 and reason.startswith("instruction rejected") and "non-printable" in reason
    _safety(inputs, 1.5, estopped=True)
    tid, reason = inputs.start_trial("put the carrot in the pot", 2.0)
    assert tid == 0 and "e-stop is latched" in reason
    assert inputs.stop(2.1).startswith("no trial is running") and not path.exists()
