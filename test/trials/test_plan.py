"""Evaluation plans: orders, validation, and resuming from a results file."""

from __future__ import annotations

import collections

import pytest

from nora_ros.errors import ConfigurationError
from nora_ros.trials.plan import EvalPlan, load_plan, progress
from nora_ros.trials.results_store import TrialResult
from nora_ros.trials.score import Score, ScoreKind

PLAN = {
    "name": "table1", "order": "blocked", "seed": 3, "blind": True,
    "models": [{"id": "a", "policy": "scripted"}, {"id": "b", "checkpoint": "ckpt", "policy": "nora"}],
    "tasks": [{"name": f"task {i}", "instruction": f"put the thing {i} in the pot", "trials": 3,
               "setup": f"thing {i} left"} for i in range(3)],
}


def plan(**changes) -> EvalPlan:
    return EvalPlan.from_mapping({**PLAN, **changes})


@pytest.mark.parametrize("order", ["blocked", "interleaved", "randomized"])
def test_every_order_schedules_each_slot_once(order):
    p = plan(order=order)
    slots = p.schedule()
    assert p.total == len(slots) == 18
    assert collections.Counter((s.task.name, s.model.id) for s in slots) == {
        (f"task {i}", m): 3 for i in range(3) for m in "ab"}
    assert [s.index for s in slots] == list(range(18))


def test_orders_differ_as_documented():
    blocked = [s.model.id for s in plan(order="blocked").schedule()]
    assert blocked == ["a"] * 9 + ["b"] * 9
    inter = [s.model.id for s in plan(order="interleaved").schedule()]
    assert inter[:4] == ["a", "b", "a", "b"]
    r1 = [(s.task.name, s.model.id) for s in plan(order="randomized", seed=1).schedule()]
    assert r1 == [(s.task.name, s.model.id) for s in plan(order="randomized", seed=1).schedule()]
    assert r1 != [(s.task.name, s.model.id) for s in plan(order="randomized", seed=2).schedule()]


@pytest.mark.parametrize("change, message", [({"order": "shuffled"}, "order must be"),
                                             ({"tasks": []}, "at least one task"),
                                             ({"colour": 1}, "unknown plan field"),
                                             ({"models": ["a", "a"]}, "unique")])
def test_bad_plans_say_what_to_fix(change, message):
    with pytest.raises(ConfigurationError, match=message):
        plan(**change)


def test_load_plan_from_yaml(tmp_path):
    import yaml

    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(PLAN))
    assert load_plan(path) == plan()


def result(tid: int, task: str, model: str, state: str = "DONE") -> TrialResult:
    kind = ScoreKind.SUCCESS if state == "DONE" else ScoreKind.ABORT
    return TrialResult(trial_id=tid, task=task, instruction="x", score=Score(kind), start_time=0.0,
                       end_time=30.0, model_id=model, end_state=state)


def test_progress_resumes_after_the_done_slots_and_reruns_aborted_ones():
    p = plan()
    first = progress(p, [])
    assert first.label == "trial 1 of 18" and first.next.index == 0 and first.eta_s == 18 * 60.0
    done = [result(1, "task 0", "a"), result(2, "task 0", "a", "ABORTED"), result(3, "task 0", "a")]
    prog = progress(p, done)
    assert prog.done == 2 and prog.label == "trial 3 of 18" and prog.next.index == 2
    assert prog.eta_s == pytest.approx(16 * 30.0)
    everything = [result(k + 1, s.task.name, s.model.id) for k, s in enumerate(p.schedule())]
    assert progress(p, everything).next is None and progress(p, everything).label == "plan complete (18 of 18)"


def test_a_bad_entry_is_named_with_the_fields_it_may_have():
    from nora_ros.errors import ConfigurationError
    from nora_ros.trials.plan import EvalPlan

    # YAML flow mapping {setup: same, second try}: the comma made a key 'second try'
    with pytest.raises(ConfigurationError, match=r"task 2 'b': unknown field\(s\) 'second try'; fields: name, "
                                                 r"instruction, trials, setup, sim_task \(quote"):
        EvalPlan.from_mapping({"models": ["m"], "tasks": [{"name": "a", "instruction": "x", "trials": 1},
                                                          {"name": "b", "instruction": "x", "trials": 1,
                                                           "setup": "same", "second try": None}]})
    with pytest.raises(ConfigurationError, match="model 1 'm': missing id|model 1 '': missing id"):
        EvalPlan.from_mapping({"models": [{"checkpoint": "c"}], "tasks": [{"name": "a", "instruction": "x", "trials": 1}]})
    with pytest.raises(ConfigurationError, match="task 1: expected a mapping"):
        EvalPlan.from_mapping({"models": ["m"], "tasks": ["just text"]})
