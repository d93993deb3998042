"""The console node's shell against test/fake_rclpy: the page's buttons become the topics and
service calls of DESIGN.md section 5 (never anything that reaches the arm directly), and the
page shows what the trial/status and safety/status topics say."""

from __future__ import annotations

import fake_rclpy
import numpy as np
import pytest
from console_helpers import free_port, request
from ros_msg_standins import MSG, SRV

from nora_ros.interface import convert as rc

pytest.importorskip("aiohttp")


@pytest.fixture
def ros(monkeypatch):
    fake_rclpy.install(monkeypatch)
    fake_rclpy.Clock.t = 1000.0
    return fake_rclpy


def test_console_shell_turns_page_actions_into_topics_and_service_calls(ros, tmp_path):
    from nora_ros.nodes.console_node import ConsoleNode

    port = free_port()
    node = ros.Node("console_node", parameter_overrides=[
        ros.Parameter("port", value=port), ros.Parameter("results_file", value=str(tmp_path / "r.jsonl")),
        ros.Parameter("presets", value=["put the carrot in the pot"])])
    shell = ConsoleNode(node)
    url = f"http://127.0.0.1:{port}"
    try:
        assert node.descriptors["host"].read_only and "loopback" in node.descriptors["host"].description
        status = MSG["nora_ros/TrialStatus"]
        node.subscriptions["trial/status"](rc.trial_status_to_msg(
            status, stamp=1000.0, trial_id=3, instruction="put the carrot in the pot", state_name="RUNNING",
            start_pose=()))
        safety = MSG["nora_ros/SafetyStatus"](enabled=True, estopped=False, estop_reason="", holding=False,
                                              limits=["linear_speed"], details=["capped"])
        node.subscriptions["safety/status"](safety)
        image = MSG["sensor_msgs/Image"]
        node.subscriptions["camera/image_raw"](rc.array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8", image,
                                                                 1000.0, "camera"))
        got = request(url + "/api/status")[1]
        assert got["state"] == "RUNNING" and got["trial_id"] == 3 and got["presets"] == ["put the carrot in the pot"]
        assert got["safety"]["recent_limits"] == ["linear_speed"]
        assert request(url + "/api/camera.jpg")[0] == 200

        # a trial is RUNNING: Start is refused here, before anything goes out
        code, body = request(url + "/api/start", "POST", {"instruction": "put the carrot in the pot"})
        assert code == 409 and "trial 3 is RUNNING" in body["error"]
        node.subscriptions["trial/status"](rc.trial_status_to_msg(status, stamp=1000.0, trial_id=3, instruction="x",
                                                                  state_name="DONE", start_pose=()))
        start = node.clients["trial/start"]
        start.respond = lambda req: SRV["nora_ros/StartTrial"].Response(success=True, message="trial 4 started",
                                                                        trial_id=4)
        assert request(url + "/api/start", "POST", {"instruction": "put the carrot in the pot"})[0] == 200
        assert [r.instruction for r in start.requests] == ["put the carrot in the pot"]
        assert start.requests[0].model_id == "" and "instruction" not in node.publishers
        start.respond = lambda req: SRV["nora_ros/StartTrial"].Response(success=False, message="e-stop is latched")
        request(url + "/api/start", "POST", {"instruction": "put the carrot in the pot"})
        assert request(url + "/api/status")[1]["reason"] == "trial not started: e-stop is latched"
        node.subscriptions["trial/status"](rc.trial_status_to_msg(status, stamp=1000.0, trial_id=4, instruction="x",
                                                                  state_name="RUNNING", start_pose=()))
        node.clients["trial/stop"].respond = lambda req: ros.Trigger.Response(success=True, message="stopped")
        assert request(url + "/api/stop", "POST", {})[0] == 200 and len(node.clients["trial/stop"].requests) == 1
        assert request(url + "/api/score", "POST", {"text": "partial 1/2 carrot only"})[0] == 200
        status_code, body = request(url + "/api/score", "POST", {"text": "sucess"})
        assert status_code == 400 and "did you mean" in body["error"]
        assert [m.data for m in node.publishers["trial/score"].msgs] == ["partial 1/2 carrot only"]
        assert request(url + "/api/estop", "POST", {})[0] == 200
        assert len(node.clients["safety/estop"].requests) == 1
        assert request(url + "/api/enable", "POST", {"enabled": False})[0] == 200
        assert node.clients["safety/enable"].requests[-1].data is False
        # the latch as the safety node reports it refuses a start until reset
        node.subscriptions["safety/status"](MSG["nora_ros/SafetyStatus"](enabled=True, estopped=True,
                                                                         estop_reason="safety/estop", holding=True))
        code, body = request(url + "/api/start", "POST", {"instruction": "put the carrot in the pot"})
        assert code == 409 and "e-stop" in body["error"]
        assert request(url + "/api/reset", "POST", {})[0] == 200
        assert len(node.clients["safety/reset"].requests) == 1
    finally:
        shell.shutdown()


def _store_done(path, trial_task, model_id, instruction):
    """Score one trial through the real supervisor core into the results file (what the supervisor
    node does on the robot)."""
    from nora_ros.trials.results_store import ResultsStore
    from nora_ros.trials.state import RunInfo
    from nora_ros.trials.supervisor import TrialSupervisor

    sup = TrialSupervisor(store=ResultsStore(path))
    sup.submit_instruction(instruction, 1.0, task=trial_task, run_info=RunInfo(model_id=model_id))
    sup.arm_at_start(2.0)
    sup.score("success", 3.0)


def test_console_shell_walks_a_blind_plan_switching_the_policy_model_first(ros, tmp_path):
    from nora_ros.nodes.console_node import ConsoleNode

    plan = tmp_path / "plan.yaml"
    plan.write_text("name: ab\norder: interleaved\nblind: true\nmodels:\n"
                    "  - {id: a, checkpoint: /ckpt/a}\n  - {id: b, policy: scripted}\n"
                    "tasks:\n  - {name: carrot, instruction: put the carrot in the pot, trials: 1, setup: carrot left}\n")
    results = tmp_path / "r.jsonl"
    port = free_port()
    node = ros.Node("console_node", parameter_overrides=[
        ros.Parameter("port", value=port), ros.Parameter("results_file", value=str(results)),
        ros.Parameter("eval_plan", value=str(plan))])
    shell = ConsoleNode(node)
    url = f"http://127.0.0.1:{port}"
    select, start = node.clients["policy/select_model"], node.clients["trial/start"]
    select.hold = True
    select.respond = lambda req: SRV["nora_ros/SelectModel"].Response(success=True, message="loaded",
                                                                      served_model_id="served:" + req.model)
    start.respond = lambda req: SRV["nora_ros/StartTrial"].Response(success=True, trial_id=1)
    try:
        got = request(url + "/api/status")[1]
        assert got["plan"]["label"] == "trial 1 of 2" and got["plan"]["next_setup"] == "carrot left"
        assert got["plan"]["next_model"] == "" and got["presets"] == ["put the carrot in the pot"]
        assert request(url + "/api/start", "POST", {})[0] == 200
        assert [(r.model_id, r.model) for r in select.requests] == [("a", "/ckpt/a")]
        got = request(url + "/api/status")[1]
        assert got["reason"] == "loading the next model"  # blind: not which
        code, body = request(url + "/api/start", "POST", {})
        assert code == 409 and "busy: loading the next model" in body["error"]
        assert start.requests == []  # nothing starts before the model serves
        select.answer()
        (req,) = start.requests
        assert (req.instruction, req.task, req.model_id, req.checkpoint, req.served_model_id) == (
            "put the carrot in the pot", "carrot", "a", "/ckpt/a", "served:/ckpt/a")
        node.subscriptions["trial/status"](rc.trial_status_to_msg(
            MSG["nora_ros/TrialStatus"], stamp=1000.0, trial_id=1, instruction=req.instruction, state_name="RUNNING",
            start_pose=()))
        got = request(url + "/api/status")[1]
        assert got["model"] == "" and got["task"] == "carrot" and got["reason"] == ""
        _store_done(results, "carrot", "a", req.instruction)  # the supervisor scored it
        node.subscriptions["trial/status"](rc.trial_status_to_msg(
            MSG["nora_ros/TrialStatus"], stamp=1001.0, trial_id=1, instruction=req.instruction, state_name="DONE",
            start_pose=()))
        got = request(url + "/api/status")[1]
        assert got["model"] == "" and got["plan"]["label"] == "trial 2 of 2"  # scored, but the plan is not done
        table = request(url + "/api/results")[1]
        assert table["pooled"] and len(table["models"]) == 1 and [t["model"] for t in table["trials"]] == [""]
        select.hold = False
        select.respond = lambda req: SRV["nora_ros/SelectModel"].Response(success=False, message="out of memory")
        assert request(url + "/api/start", "POST", {})[0] == 200
        assert select.requests[-1].model == "scripted" and len(start.requests) == 1
        assert request(url + "/api/status")[1]["reason"] == "the policy node did not switch model: out of memory"
        _store_done(results, "carrot", "b", "put the carrot in the pot")  # the plan complete: models shown
        got, table = request(url + "/api/status")[1], request(url + "/api/results")[1]
        assert got["model"] == "a" and got["plan"]["label"] == "plan complete (2 of 2)"
        assert table["models"] == ["a", "b"] and not table["pooled"]
    finally:
        shell.shutdown()


def test_console_shell_refuses_a_plan_model_the_robot_cannot_load(ros, tmp_path):
    from nora_ros.errors import ConfigurationError
    from nora_ros.nodes.console_node import ConsoleNode

    plan = tmp_path / "plan.yaml"
    plan.write_text("models: [{id: x, policy: nora}]\ntasks: [{name: t, instruction: pick it, trials: 1}]\n")
    node = ros.Node("console_node", parameter_overrides=[ros.Parameter("port", value=free_port()),
                                                        ros.Parameter("eval_plan", value=str(plan))])
    with pytest.raises(ConfigurationError, match="plan model 'x'.*checkpoint"):
        ConsoleNode(node)


def test_console_shell_says_when_a_service_is_not_there(ros, tmp_path):
    """A Start whose service is never discovered ends with that reason on the page (a call to it
    would wait for ever); the wait runs in its own thread, so the page keeps answering."""
    import time

    from nora_ros.nodes.console_node import ConsoleNode

    port = free_port()
    node = ros.Node("console_node", parameter_overrides=[ros.Parameter("port", value=port),
                                                        ros.Parameter("service_wait", value=0.0)])
    shell = ConsoleNode(node)
    url = f"http://127.0.0.1:{port}"
    try:
        node.clients["trial/start"].ready = False
        assert request(url + "/api/start", "POST", {"instruction": "put the carrot in the pot"})[0] == 200
        deadline = time.monotonic() + 5
        while "not available" not in request(url + "/api/status")[1]["reason"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert request(url + "/api/status")[1]["reason"] == (
            "trial not started: the supervisor's trial/start service is not available after 0 s (is that node running?)")
        assert node.clients["trial/start"].requests == []
    finally:
        shell.shutdown()
