"""The console's in-process port over the simulated closed loop: a blind evaluation plan run
end to end, killed half-way and resumed from the results file; the e-stop through the filter."""

from __future__ import annotations

import collections

import pytest

pytest.importorskip("mujoco")

from nora_ros.console.sim_port import SimConsolePort  # noqa: E402
from nora_ros.console.views import POOLED  # noqa: E402
from nora_ros.runner import LoopConfig, build_sim_stack  # noqa: E402
from nora_ros.sim.expert import ScriptedExpertPolicy  # noqa: E402
from nora_ros.trials.plan import EvalPlan  # noqa: E402
from nora_ros.trials.results_store import load_results  # noqa: E402
from nora_ros.trials.state import TrialBusyError, TrialState  # noqa: E402

PLAN = EvalPlan.from_mapping({
    "name": "blind-ab", "order": "randomized", "seed": 5, "blind": True,
    "models": [{"id": "expert-a", "policy": "scripted"}, {"id": "expert-b", "policy": "scripted"}],
    "tasks": [{"name": "carrot in pot", "instruction": "put the carrot in the pot", "trials": 3,
               "sim_task": "carrot_in_pot"},
              {"name": "carrot on plate", "instruction": "put the carrot on the plate", "trials": 3,
               "sim_task": "carrot_on_plate"},
              {"name": "carrot in pot, second scorer", "instruction": "put the carrot in the pot", "trials": 3,
               "sim_task": "carrot_in_pot"}],
})


def make_port(results, plan=PLAN, render=False) -> SimConsolePort:
    stack = build_sim_stack(ScriptedExpertPolicy, loop_config=LoopConfig(control_rate_hz=10.0, camera_rate_hz=5.0),
                            results_path=results, max_steps=60, render=render)
    models = {m.id: ScriptedExpertPolicy for m in plan.models} if plan is not None else {}
    return SimConsolePort(stack, results, plan=plan, models=models, realtime=False)


def run_until(port: SimConsolePort, states: set[TrialState], max_ticks: int = 2000) -> None:
    for _ in range(max_ticks):
        if port.stack.supervisor.state in states:
            return
        port.tick()
    raise AssertionError(f"still {port.stack.supervisor.state} after {max_ticks} ticks")


def run_planned_trial(port: SimConsolePort) -> str:
    port.start()
    status = port.status()
    assert status.model == "", "blind: the model is hidden while the trial runs"
    assert status.plan is not None and status.plan.next_model == ""
    run_until(port, {TrialState.AWAITING_SCORE})
    assert port.status().model == ""  # hidden while it waits for its score
    port.score("success looked clean")
    assert port.stack.supervisor.state is TrialState.DONE
    return port.status().model  # revealed once the plan is complete, not when the trial is scored


@pytest.mark.slow
def test_blind_plan_runs_end_to_end_and_resumes_after_a_kill(tmp_path):
    results = tmp_path / "results.jsonl"
    port = make_port(results)
    assert port.status().plan.label == "trial 1 of 18" and port.status().model == ""
    revealed = [run_planned_trial(port) for _ in range(7)]
    assert not any(revealed), "a scored trial's model would let the operator tally the pooled table"
    port.start()  # trial 8 under way when the process dies: nothing of it is stored
    run_until(port, {TrialState.RUNNING})
    for _ in range(5):
        port.tick()
    del port  # the kill: no close, no flush beyond what the store already did

    port = make_port(results)
    status = port.status()
    assert status.plan.label == "trial 8 of 18" and status.plan.done == 7
    assert status.plan.eta_s is not None and status.plan.eta_s > 0
    revealed = [run_planned_trial(port) for _ in range(11)]
    assert port.status().plan.label == "plan complete (18 of 18)"
    assert not any(revealed[:-1]) and revealed[-1] == PLAN.schedule()[-1].model.id
    with pytest.raises(TrialBusyError, match="complete"):
        port.start()
    port.close()
    port.stack.close()

    stored = load_results(results).results
    assert len(stored) == 18 and all(r.end_state == "DONE" for r in stored)
    assert len({r.trial_id for r in stored}) == 18
    per_slot = collections.Counter((r.task, r.model_id) for r in stored)
    assert per_slot == {(t.name, m.id): 3 for t in PLAN.tasks for m in PLAN.models}
    assert all(r.note == "looked clean" for r in stored)
    # the randomized order was followed (resume included): results appear in schedule order
    assert [(r.task, r.model_id) for r in stored] == [(s.task.name, s.model.id) for s in PLAN.schedule()]


def test_estop_goes_through_the_safety_filter_and_blocks_trials_until_reset(tmp_path):
    port = make_port(tmp_path / "r.jsonl", plan=None, render=True)
    port.start("put the carrot in the pot")
    run_until(port, {TrialState.RUNNING})
    for _ in range(10):
        port.tick()
    assert port.camera_jpeg() is not None and port.model_input_jpeg()[:2] == b"\xff\xd8"
    port.estop("test e-stop")
    assert port.stack.safe_arm.filter.estopped  # latched where the motors are guarded
    assert port.stack.supervisor.state is TrialState.ABORTED
    port.tick()
    assert port.stack.safe_arm.last.holding  # the filter holds the arm
    status = port.status()
    assert status.safety.estopped and status.safety.estop_reason == "test e-stop"
    with pytest.raises(TrialBusyError, match="e-stop"):
        port.start("put the carrot in the pot")
    port.reset()
    assert not port.status().safety.estopped
    port.start("put the carrot in the pot")
    run_until(port, {TrialState.RUNNING})
    stored = load_results(tmp_path / "r.jsonl").results
    assert stored[0].end_state == "ABORTED" and "test e-stop" in stored[0].reason
    port.set_enabled(False)
    assert not port.status().safety.enabled
    port.close()
    port.stack.close()


AB = EvalPlan.from_mapping({
    "name": "blind-two", "order": "blocked", "blind": True,
    "models": [{"id": "expert-a", "policy": "scripted"}, {"id": "expert-b", "policy": "scripted"}],
    "tasks": [{"name": "carrot in pot", "instruction": "put the carrot in the pot", "trials": 1,
               "sim_task": "carrot_in_pot"}],
})


def test_blind_plan_pools_the_models_until_it_is_complete(tmp_path):
    port = make_port(tmp_path / "results.jsonl", plan=AB)
    port.start()
    run_until(port, {TrialState.AWAITING_SCORE})
    port.score("success")
    while_blind = port.results()
    assert while_blind["pooled"] and while_blind["models"] == [POOLED]
    assert while_blind["rows"][0]["cells"] == ["100.0% (1/1) [20.7, 100.0]"]
    assert [t["model"] for t in while_blind["trials"]] == [""]

    port.start()
    run_until(port, {TrialState.AWAITING_SCORE})
    port.score("failure dropped it")
    done = port.results()
    assert not done["pooled"] and done["models"] == ["expert-a", "expert-b"]
    assert done["rows"][0]["cells"] == ["100.0% (1/1) [20.7, 100.0]", "0.0% (0/1) [0.0, 79.3]"]
    assert [(t["trial_id"], t["model"], t["score"]) for t in done["trials"]] == [
        (2, "expert-b", "failure"), (1, "expert-a", "success")]
    port.close()
    port.stack.close()
