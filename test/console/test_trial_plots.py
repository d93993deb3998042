"""Per-trial plots in the console: a real simulated trial recorded to a bag, plotted through the
server; the ids and trials that have no plot answered with a reason; the e-stop never waits."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("mujoco")
pytest.importorskip("rosbags")

from console_helpers import FakePort, ServerThread, request  # noqa: E402

from nora_ros.console.security import AccessPolicy  # noqa: E402
from nora_ros.console.trial_plots import TrialPlots  # noqa: E402
from nora_ros.trials.results_store import ResultsStore, TrialResult  # noqa: E402
from nora_ros.trials.score import parse_score  # noqa: E402
from nora_ros.trials.state import TrialState  # noqa: E402

INSTRUCTION = "put the carrot in the pot"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One scored sim trial recorded by the console's own port (TrialBags, as ``--console`` does),
    then three results the page may list without a usable bag: not recorded, bag deleted, bag junk."""
    from nora_ros.bag.record import TrialBags
    from nora_ros.console.sim_port import SimConsolePort
    from nora_ros.runner import LoopConfig, build_sim_stack
    from nora_ros.sim.expert import ScriptedExpertPolicy

    out = tmp_path_factory.mktemp("plots")
    results = out / "results.jsonl"
    bags = TrialBags(out / "bags")
    stack = build_sim_stack(ScriptedExpertPolicy, loop_config=LoopConfig(control_rate_hz=10.0, camera_rate_hz=5.0),
                            results_path=results, max_steps=40, render=False, recorder=bags,
                            safety_overrides={"max_linear_speed": 0.08}, model_id="secret-model-x")
    port = SimConsolePort(stack, results, realtime=False)
    port.start(INSTRUCTION)
    for _ in range(3000):
        if stack.supervisor.state is TrialState.AWAITING_SCORE:
            break
        port.tick()
    port.score("success")
    stack.close()
    junk = out / "bags" / "junk"
    junk.mkdir()
    (junk / "junk_0.mcap").write_bytes(b"not a bag at all")
    store = ResultsStore(results)
    for trial_id, recording in ((2, None), (3, str(out / "bags" / "gone")), (4, str(junk))):
        store.append(TrialResult(trial_id=trial_id, task="carrot in pot", instruction=INSTRUCTION,
                                 score=parse_score("failure"), start_time=0.0, end_time=1.0, recording=recording))
    server = ServerThread(port, AccessPolicy())
    yield server, port
    server.close()


def test_a_recorded_trial_has_a_plot(recorded):
    from PIL import Image

    from nora_ros.bag.trial_figure import read_trial

    server, port = recorded
    listed = {t["trial_id"]: t for t in port.results()["trials"]}
    assert listed[1]["recording"] and listed[1]["plot"] == "/api/trials/1/plot.png" and listed[2]["plot"] == ""
    series = read_trial(listed[1]["recording"], 1)  # what the plot draws: the filter capped the policy's speed
    assert len(series.sent_t) > 10 and {name for _, name in series.limits} == {"linear_speed"}
    speed = np.linalg.norm(series.sent[:, :3], axis=1).max(), np.linalg.norm(series.cmd[:, :3], axis=1).max()
    assert speed[0] < 0.081 < speed[1]  # the cap is on the filter's own point: within 0.1% here
    t0 = time.perf_counter()
    status, png = request(server.url + listed[1]["plot"])
    first = time.perf_counter() - t0
    assert status == 200 and isinstance(png, bytes) and png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.size == (640, 512) and 20_000 < len(png) < 300_000
    t0 = time.perf_counter()
    assert request(server.url + "/api/trials/1/plot.png") == (200, png)  # the cached copy
    print(f"plot drawn in {first * 1000:.0f} ms, served from the cache in {(time.perf_counter() - t0) * 1000:.0f} ms")


@pytest.mark.parametrize("trial_id, want, reason", [
    (99, 404, "no finished trial 99"), (2, 404, "was not recorded"), (3, 404, "cannot be found"),
    (4, 422, "cannot be read")])
def test_trials_without_a_plot_say_why(recorded, trial_id, want, reason):
    server, _ = recorded
    status, body = request(server.url + f"/api/trials/{trial_id}/plot.png")
    assert status == want and reason in body["error"] and "Traceback" not in body["error"]


@pytest.mark.parametrize("raw", ["../x", "..%2Fx", "%2e%2e%2f1", "1;rm", "1%3Brm", "0", "-1", "1.0", "+1", "1e3",
                                 "%EF%BC%91", "9" * 12])  # %EF%BC%91: a fullwidth digit one, which isdigit() accepts
def test_only_an_integer_id_is_taken_from_the_request(recorded, raw):
    server, _ = recorded
    status, body = request(server.url + f"/api/trials/{raw}/plot.png")
    assert status in (400, 404), raw
    assert isinstance(body, dict) and body["error"]


def test_the_title_names_the_trial_never_its_model(recorded, monkeypatch):
    import nora_ros.bag.trial_figure as figure

    _, port = recorded
    titles = []
    monkeypatch.setattr(figure, "render_png", lambda series, title: titles.append(title) or b"png")
    assert TrialPlots(port.results).png(1) == b"png"
    assert titles == ["trial 1: put the carrot in the pot (success)"]
    assert port.results()["trials"][-1]["model"] == "secret-model-x"  # it is in the results, not the plot


def test_plots_are_cached_until_the_bag_changes(tmp_path, monkeypatch):
    import nora_ros.console.trial_plots as plots

    bag = tmp_path / "trial_0001"
    bag.mkdir()
    (bag / "trial_0001_0.mcap").write_bytes(b"x")
    drawn = []
    monkeypatch.setattr(plots, "_render", lambda path, trial: drawn.append(trial["trial_id"]) or b"png%d" % len(drawn))
    views = [{"trial_id": k, "task": "t", "score": "success", "recording": str(bag)} for k in (1, 2, 3)]
    cache = TrialPlots(lambda: {"trials": views}, size=2)
    assert [cache.png(1), cache.png(1), cache.png(2), cache.png(3), cache.png(1)] == [b"png1", b"png1", b"png2",
                                                                                   b"png3", b"png4"]
    assert drawn == [1, 2, 3, 1]  # trial 1 fell out of the two-entry cache
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")  # the recording closed later
    assert cache.png(1) == b"png5" and drawn[-1] == 1


def test_a_slow_plot_never_delays_the_estop_or_the_status(monkeypatch):
    port = FakePort()
    port.results = lambda: {"trials": [{"trial_id": 1, "recording": "/nowhere", "task": "t", "score": "success"}]}
    started = threading.Event()

    def slow(self, trial_id):
        started.set()
        time.sleep(0.8)
        return b"\x89PNG"

    monkeypatch.setattr(TrialPlots, "png", slow)
    server = ServerThread(port, AccessPolicy())
    try:
        plots = [threading.Thread(target=request, args=(server.url + "/api/trials/1/plot.png",)) for _ in range(2)]
        for t in plots:
            t.start()
        assert started.wait(5)
        t0 = time.perf_counter()
        assert request(server.url + "/api/status")[0] == 200
        assert request(server.url + "/api/estop", "POST", {})[0] == 200
        assert time.perf_counter() - t0 < 0.5 and port.estopped
        for t in plots:
            t.join(10)
    finally:
        server.close()


def test_plots_follow_the_read_access_policy():
    server = ServerThread(FakePort(), AccessPolicy(host="0.0.0.0", token="t" * 24))
    try:
        status, body = request(server.url + "/api/trials/1/plot.png")
        assert status == 403 and "token" in body["error"]
        status, body = request(server.url + "/api/trials/1/plot.png", headers={"Cookie": "nora_token=" + "t" * 24})
        assert status == 404  # past the guard: the fake port lists no trials
    finally:
        server.close()
    server = ServerThread(FakePort(), AccessPolicy(host="0.0.0.0", token="t" * 24, public_view=True))
    try:
        assert request(server.url + "/api/trials/1/plot.png")[0] == 404  # a public read-only view sees plots
    finally:
        server.close()
