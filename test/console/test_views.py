"""The console's plain-data views: the results table, and its pooled form for a blind plan."""

from __future__ import annotations

from nora_ros.console.views import POOLED, results_view
from nora_ros.trials.results_store import ResultsStore, TrialResult
from nora_ros.trials.score import parse_score


def write(path, rows) -> None:
    store = ResultsStore(path)
    for k, (task, model, score) in enumerate(rows, start=1):
        store.append(TrialResult(trial_id=k, task=task, instruction=f"do {task}", score=parse_score(score),
                                 start_time=10.0 * k, end_time=10.0 * k + 5, model_id=model))


def test_pooled_view_has_one_column_and_lists_no_model(tmp_path):
    path = tmp_path / "results.jsonl"
    write(path, [("pot", "a", "success"), ("pot", "b", "failure"), ("plate", "a", "success"),
                 ("plate", "b", "success"), ("pot", "a", "partial 0.5"), ("pot", "b", "abort slipped")])
    plain = results_view(path)
    assert plain["models"] == ["a", "b"] and not plain["pooled"]
    assert plain["rows"][0] == {"category": "", "task": "pot",
                                "cells": ["75.0% (1.5/2) [19.8, 97.3]", "0.0% (0/1) [0.0, 79.3]"]}
    assert {t["model"] for t in plain["trials"]} == {"a", "b"}

    pooled = results_view(path, pool_models=True)
    assert pooled["pooled"] and pooled["models"] == [POOLED]
    # each cell pools both models' trials: pot 1 + 0 + 0.5 of 3 judged (the abort is not in n);
    # [12.5, 87.5] is the Wilson interval at p = 0.5, n = 3 worked by hand
    assert [r["cells"] for r in pooled["rows"]] == [["50.0% (1.5/3) [12.5, 87.5]"], ["100.0% (2/2) [34.2, 100.0]"]]
    assert pooled["average"] == ["70.0% (3.5/5) [29.9, 92.7]"]
    assert len(pooled["trials"]) == 6 and all(t["model"] == "" for t in pooled["trials"])
    assert [t["score"] for t in pooled["trials"]][:2] == ["abort", "partial 0.5"]  # the rest stays


def test_views_of_a_missing_file_are_empty(tmp_path):
    for pool in (False, True):
        view = results_view(tmp_path / "none.jsonl", pool_models=pool)
        assert view["models"] == [] and view["trials"] == [] and view["pooled"] is pool
