"""The console node's shell against test/fake_rclpy: the page's buttons become the topics and
service calls of DESIGN.md section 5 (never anything that reaches the arm directly), and the
page shows what the trial/status and safety/status topics say."""

from __future__ import annotations

import fake_rclpy
import numpy as np
import pytest
from console_helpers import free_port, request
from ros_msg_standins import MSG

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

        assert request(url + "/api/start", "POST", {"instruction": "put the carrot in the pot"})[0] == 200
        assert [m.data for m in node.publishers["instruction"].msgs] == ["put the carrot in the pot"]
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
