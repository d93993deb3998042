"""The results store (durability, torn lines, numbering) and the table (`nora-ros results`)."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from scipy.stats import binomtest

from nora_ros.cli import main as cli_main
from nora_ros.errors import InvalidInputError
from nora_ros.trials.results_store import SCHEMA_VERSION, ResultsStore, TrialResult, config_digest, load_results
from nora_ros.trials.results_table import build_table, format_table, wilson_interval
from nora_ros.trials.score import Score, ScoreKind
from nora_ros.trials.state import RunInfo
from nora_ros.trials.supervisor import TrialSupervisor

REPO = pathlib.Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0


def result(trial_id: int, kind: str = "success", **kw) -> TrialResult:
    fraction = kw.pop("fraction", None)
    base = {
        "task": "put carrot in pot",
        "instruction": "put carrot in pot",
        "start_time": T0 + trial_id,
        "end_time": T0 + trial_id + 0.5,
        "model_id": "nora",
    }
    base.update(kw)
    return TrialResult(trial_id=trial_id, score=Score(ScoreKind(kind), fraction=fraction), **base)


# --------------------------------------------------------------------- the store


def test_round_trip_through_a_line_keeps_every_field(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    original = TrialResult(
        trial_id=1,
        task="carrot",
        instruction="put carrot in pot",
        score=Score(ScoreKind.PARTIAL, fraction=0.5, note="carrot only \u00e9"),
        start_time=T0,
        end_time=T0 + 42.0,
        steps=120,
        duration_s=30.5,
        model_id="nora-long",
        checkpoint="/ckpt/nora-long",
        config_digest=config_digest({"execute_steps": 1, "rate": 5}),
        category="pick place",
        safety_events=("[t+1.00s step 3] workspace clip z",),
        interventions=("operator stop at step 120",),
        recording="/bags/trial_0001",
    )
    written = store.append(original)
    loaded = load_results(store.path)
    assert loaded.warnings == () and loaded.results == (written,)
    assert written.written_at and written == original.__class__(
        **{**original.__dict__, "written_at": written.written_at}
    )
    assert store.path.read_bytes().endswith(b"\n") and store.path.read_bytes().count(b"\n") == 1


def test_config_digest_is_stable_and_order_independent():
    assert config_digest({"a": 1, "b": [1, 2]}) == config_digest({"b": [1, 2], "a": 1})
    assert config_digest({"a": 1}) != config_digest({"a": 2})
    assert len(config_digest({})) == 16


def test_a_restart_continues_the_numbering(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultsStore(path)
    for _ in range(3):
        store.append(result(store.allocate_trial_id()))
    assert [r.trial_id for r in load_results(path).results] == [1, 2, 3]
    assert ResultsStore(path).next_trial_id() == 4


def test_a_torn_last_line_is_reported_skipped_and_isolated_from_the_next_append(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultsStore(path)
    store.append(result(1))
    store.append(result(2))
    full_line = json.dumps(result(3).to_dict()).encode()
    with path.open("ab") as f:
        f.write(full_line[: len(full_line) // 2])  # a power cut in the middle of trial 3's line

    loaded = load_results(path)
    assert [r.trial_id for r in loaded.results] == [1, 2]
    assert len(loaded.warnings) == 1 and ":3: skipped torn last line" in loaded.warnings[0]

    reopened = ResultsStore(path)
    assert reopened.warnings == loaded.warnings and reopened.next_trial_id() == 3
    reopened.append(result(reopened.allocate_trial_id()))
    again = load_results(path)
    assert [r.trial_id for r in again.results] == [1, 2, 3]
    assert len(again.warnings) == 1 and ":3: skipped unreadable line" in again.warnings[0]


def test_a_complete_last_line_without_newline_is_kept_with_a_warning(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(result(1).to_dict()))
    loaded = load_results(path)
    assert [r.trial_id for r in loaded.results] == [1] and "was kept" in loaded.warnings[0]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b"\xff\xfe not utf-8", "invalid start byte"),
        (b"{not json", "Expecting property name"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({**result(9).to_dict(), "schema": SCHEMA_VERSION + 1}).encode(), "newer than this nora_ros reads"),
        (json.dumps({k: v for k, v in result(9).to_dict().items() if k != "task"}).encode(), "lacks the field 'task'"),
        (json.dumps({**result(9).to_dict(), "trial_id": -3}).encode(), "positive integer"),
        (json.dumps({**result(9).to_dict(), "score": "maybe"}).encode(), "bad value"),
        (json.dumps({**result(9).to_dict(), "score": "partial", "fraction": 2}).encode(), r"\[0, 1\]"),
        (json.dumps(result(1).to_dict()).encode(), "duplicate trial id 1"),
    ],
    ids=["utf8", "json", "array", "schema", "missing", "id", "score", "fraction", "duplicate"],
)
def test_bad_lines_anywhere_are_skipped_with_their_line_number(tmp_path, line, match):
    path = tmp_path / "r.jsonl"
    path.write_bytes(
        json.dumps(result(1).to_dict()).encode()
        + b"\n"
        + line
        + b"\n"
        + json.dumps(result(2).to_dict()).encode()
        + b"\n"
    )
    loaded = load_results(path)
    assert [r.trial_id for r in loaded.results] == [1, 2]
    assert len(loaded.warnings) == 1 and f"{path}:2:" in loaded.warnings[0]
    assert re.search(match, loaded.warnings[0]), loaded.warnings[0]


def test_missing_file_and_missing_folder_are_clear_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_results(tmp_path / "nope.jsonl")
    with pytest.raises(InvalidInputError, match="create it first"):
        ResultsStore(tmp_path / "no_such_folder" / "r.jsonl")


CHILD = textwrap.dedent(
    """
    import sys
    from nora_ros.trials.results_store import ResultsStore
    from nora_ros.trials.state import RunInfo
    from nora_ros.trials.supervisor import TrialSupervisor

    sup = TrialSupervisor(run_info=RunInfo("nora"), store=ResultsStore(sys.argv[1]))
    t = 1.0
    while True:
        sup.submit_instruction("put carrot in pot", t)
        sup.arm_at_start(t + 0.1)
        sup.step(t + 0.2, steps=3)
        done = sup.score("partial 0.5 carrot only", t + 0.3)
        print(done[-1].trial_id, flush=True)  # printed only after the result is fsynced
        t += 1.0
    """
)


def test_sigkill_in_the_middle_of_a_series_loses_no_finished_trial(tmp_path):
    path = tmp_path / "r.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO, env=env
    )
    reported: list[int] = []
    watchdog = threading.Timer(60.0, child.kill)  # a hung child fails the test instead of hanging it
    watchdog.start()
    try:
        while len(reported) < 5:
            line = child.stdout.readline()
            assert line, f"child exited early with {child.poll()}"
            reported.append(int(line))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        watchdog.cancel()
    reported += [int(x) for x in child.stdout.read().split()]  # anything printed before the kill
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    loaded = load_results(path)
    assert loaded.warnings == (), "a SIGKILL cannot tear a single write"
    ids = [r.trial_id for r in loaded.results]
    assert set(reported) <= set(ids), "every trial reported finished is in the file"
    assert ids == list(range(1, len(ids) + 1))
    assert all(r.score.value == 0.5 and r.steps == 3 for r in loaded.results)

    sup = TrialSupervisor(run_info=RunInfo("nora"), store=ResultsStore(path))
    assert sup.submit_instruction("put carrot in pot", T0)[0].trial_id == len(ids) + 1


# --------------------------------------------------------------------- the interval


@pytest.mark.parametrize("n", [1, 2, 5, 10, 30])
def test_wilson_interval_matches_scipy_for_every_count(n):
    for k in range(n + 1):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12), (k, n)


def test_wilson_interval_with_a_fractional_count():
    # 6.5 / 10 by hand: p = 0.65, z = 1.959964, d = 1 + z^2/10 = 1.384146,
    # centre = (0.65 + z^2/20) / d = 0.608369, half = z sqrt(0.02275 + z^2/400) / d = 0.254699.
    lo, hi = wilson_interval(6.5, 10)
    assert lo == pytest.approx(0.353671, abs=1e-6) and hi == pytest.approx(0.863069, abs=1e-6)
    assert wilson_interval(6, 10)[0] < lo < wilson_interval(7, 10)[0]


@pytest.mark.parametrize(
    ("s", "n", "match"), [(1, 0, "at least one trial"), (11, 10, "must lie in"), (-1, 10, "must lie in")]
)
def test_wilson_interval_refuses_impossible_counts(s, n, match):
    with pytest.raises(InvalidInputError, match=match):
        wilson_interval(s, n)


# --------------------------------------------------------------------- the table and `nora-ros results`

TASKS = [
    ("put carrot in pot", "in distribution"),
    ("put the blue cube on the plate", "in distribution"),
    ("put the carrot and hotdog in pot", "multi object"),
]
OUTCOMES = {
    # model -> task -> ten operator scores (plus extra aborted trials that must not count)
    "nora": {
        TASKS[0][0]: ["success"] * 7 + ["failure"] * 3 + ["abort e-stop"],
        TASKS[1][0]: ["success", "failure"] * 5,
        TASKS[2][0]: ["success"] * 10,
    },
    "spatialvla": {
        TASKS[0][0]: ["failure", "success", "failure"] * 3 + ["failure"],
        TASKS[1][0]: ["failure no grasp"] * 10,
        TASKS[2][0]: ["success"] * 6 + ["partial 0.5 carrot only"] + ["failure"] * 3,
    },
}
EXPECTED = {
    # by hand: rate = successes / 10; 95% Wilson intervals (z = 1.96) of 7, 5, 10, 3, 0 of 10,
    # 6.5 of 10 (see test_wilson_interval_with_a_fractional_count), 22 and 9.5 of 30.
    ("put carrot in pot", "nora"): "70.0% (7/10) [39.7, 89.2]",
    ("put the blue cube on the plate", "nora"): "50.0% (5/10) [23.7, 76.3]",
    ("put the carrot and hotdog in pot", "nora"): "100.0% (10/10) [72.2, 100.0]",
    ("Average", "nora"): "73.3% (22/30) [55.6, 85.8]",
    ("put carrot in pot", "spatialvla"): "30.0% (3/10) [10.8, 60.3]",
    ("put the blue cube on the plate", "spatialvla"): "0.0% (0/10) [0.0, 27.8]",
    ("put the carrot and hotdog in pot", "spatialvla"): "65.0% (6.5/10) [35.4, 86.3]",
    ("Average", "spatialvla"): "31.7% (9.5/30) [17.9, 49.6]",
}


def write_series(folder: pathlib.Path) -> list[pathlib.Path]:
    """Run the 3 tasks x 2 models x 10 trials through the real supervisor into two files."""
    paths = []
    for model, per_task in OUTCOMES.items():
        path = folder / f"{model}.jsonl"
        sup = TrialSupervisor(run_info=RunInfo(model, f"/ckpt/{model}"), store=ResultsStore(path))
        t = T0
        for task, category in TASKS:
            for score in per_task[task]:
                sup.submit_instruction(task, t, category=category)
                sup.arm_at_start(t + 1)
                sup.step(t + 2, steps=10)
                sup.score(score, t + 3)
                t += 10
        paths.append(path)
    return paths


def parse_cells(stdout: str) -> dict[tuple[str, str], str]:
    lines = stdout.splitlines()
    header = [c.strip() for c in lines[0].split("|")]
    models = header[1:]
    cells = {}
    for line in lines[2:]:
        cols = [c.strip() for c in line.split("|")]
        if len(cols) == len(header) and any(cols[1:]):
            for m, c in zip(models, cols[1:], strict=True):
                cells[(cols[0], m)] = c
    return cells


def test_results_command_matches_hand_computed_percentages_and_intervals(tmp_path, capsys):
    paths = write_series(tmp_path)
    out_csv, out_png = tmp_path / "table.csv", tmp_path / "table.png"
    rc = cli_main(["results", *map(str, paths), "--csv", str(out_csv), "--png", str(out_png)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "warning" not in captured.err
    cells = parse_cells(captured.out)
    assert cells == EXPECTED
    # Rows grouped by category, in the order first seen; aborted trials reported, not counted.
    out = captured.out
    assert out.index("in distribution") < out.index("put carrot in pot") < out.index("multi object")
    assert "aborted trials: nora: 1" in out

    with out_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    by_key = {(r["task"], r["model"]): r for r in rows}
    avg = by_key[("Average", "spatialvla")]
    assert (avg["n"], float(avg["successes"]), float(avg["success_pct"])) == (
        "30",
        9.5,
        pytest.approx(31.667, abs=1e-3),
    )
    carrot = by_key[("put carrot in pot", "nora")]
    assert carrot["category"] == "in distribution" and carrot["aborted"] == "1"
    assert (float(carrot["ci_low_pct"]), float(carrot["ci_high_pct"])) == (39.678, 89.221)

    png = out_png.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_results_command_prints_the_table_despite_a_torn_last_line(tmp_path, capsys):
    paths = write_series(tmp_path)
    with paths[0].open("ab") as f:
        f.write(b'{"schema": 1, "trial_id": 32, "task": "put carr')
    rc = cli_main(["results", *map(str, paths)])
    captured = capsys.readouterr()
    assert rc == 0
    assert f"warning: {paths[0]}:32: skipped torn last line" in captured.err
    assert parse_cells(captured.out) == EXPECTED


def test_results_command_on_a_missing_file_fails_clearly(tmp_path, capsys):
    rc = cli_main(["results", str(tmp_path / "absent.jsonl")])
    assert rc == 1 and "does not exist" in capsys.readouterr().err


def test_results_command_on_a_file_without_trials_fails_clearly(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    rc = cli_main(["results", str(path)])
    assert rc == 1 and "no trials to tabulate" in capsys.readouterr().err


def test_a_model_missing_a_task_has_its_average_marked(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    sa, sb = ResultsStore(a), ResultsStore(b)
    sa.append(result(1, model_id="nora", task="carrot"))
    sa.append(result(2, "failure", model_id="nora", task="cube"))
    sb.append(result(1, model_id="octo", task="carrot"))
    table = build_table([load_results(a), load_results(b)])
    text = format_table(table)
    assert table.incomplete == {"octo"}
    assert "100.0% (1/1) [20.7, 100.0]*" in text and "* average over fewer tasks" in text
    cube_row = next(line for line in text.splitlines() if line.startswith("cube"))
    assert cube_row.rstrip().endswith("-")


def test_an_empty_model_id_falls_back_to_the_file_name(tmp_path):
    path = tmp_path / "run_monday.jsonl"
    ResultsStore(path).append(result(1, model_id=""))
    assert build_table([load_results(path)]).models == ("run_monday",)
