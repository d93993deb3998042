"""The node shells on a real ROS 2 graph: topics, services, parameters, and one whole trial.

These need rclpy and the built package (``colcon build``; ``source install/setup.bash``) for
the generated ``nora_ros.msg``; elsewhere they skip (every ROS-free part of the nodes is tested
in test/interface, test/control, test/trials/test_inputs.py, test/nodes/test_topic_arm.py,
test/camera/test_sources.py, and the shells themselves against a stand-in rclpy in
test/nodes/test_shells.py). Each test runs its nodes in-process on one
executor, with parameters given as overrides, and talks to them from a probe node.
"""

from __future__ import annotations

import time

import pytest
from conftest import shared_data_path


def _find_installed_messages() -> None:
    """`python -m pytest` from the repository root (and `colcon test`, which runs there) imports
    nora_ros from the source tree, which has no generated nora_ros.msg: seen on Jazzy, these
    tests then skipped as "not built" with the package built and sourced. Let the package also
    search the installed nora_ros directories on sys.path (the sources still come first)."""
    import pkgutil

    import nora_ros

    nora_ros.__path__ = pkgutil.extend_path(nora_ros.__path__, nora_ros.__name__)


# Each test skips on its own (not the module at import), so a run without ROS reports how many
# ROS tests it skipped and why: "SKIPPED [6] ... ROS 2 (rclpy) is not installed".
try:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    _find_installed_messages()
    try:
        import nora_ros.msg  # noqa: F401

        from nora_ros.nodes import common  # the shells import rclpy and the messages at the top
        MISSING = ""
    except ImportError:
        MISSING = "nora_ros messages are not built: colcon build the package and source install/setup.bash"
except ImportError:
    MISSING = "ROS 2 (rclpy) is not installed: these node tests run on a ROS 2 machine (source its setup.bash)"

pytestmark = [pytest.mark.ros, pytest.mark.skipif(bool(MISSING), reason=MISSING)]


@pytest.fixture
def ros():
    rclpy.init()
    executor = SingleThreadedExecutor()
    probe = Node("nora_test_probe")
    executor.add_node(probe)
    shells = []
    yield executor, probe, shells
    for shell in shells:
        shell.shutdown()
        shell.node.destroy_node()
    probe.destroy_node()
    rclpy.try_shutdown()


PROBE_MAY_CALL = {"guard.operator_nodes": ["/nora_test_probe"]}
"""The safety node's graph guard lets only these nodes hold a client of safety/enable and reset."""


def _start(ros, shell_cls, name, **params):
    executor, _, shells = ros
    node = Node(name, namespace="nora", parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    shell = shell_cls(node)
    executor.add_node(shell.node)
    shells.append(shell)
    return shell


def _spin_until(executor, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        if predicate():
            return True
    return False


def _collect(probe, msg_type, topic, qos_kind="command"):
    got = []
    probe.create_subscription(msg_type, topic, got.append, common.qos(qos_kind))
    return got


def _call(executor, probe, srv_type, name, request):
    client = probe.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=5.0), f"service {name} is not offered"
    future = client.call_async(request)
    assert _spin_until(executor, future.done), f"{name} did not answer"
    return future.result()


def test_camera_node_publishes_frames_and_declares_its_parameters(ros):
    from rcl_interfaces.msg import ParameterType
    from sensor_msgs.msg import CameraInfo, Image

    from nora_ros.nodes.camera_node import CameraNode

    executor, probe, _ = ros
    folder = shared_data_path("simpler_real_bridge_frames")
    shell = _start(ros, CameraNode, "camera_node", source=f"folder:{folder}", fps=10.0)
    images = _collect(probe, Image, "/nora/camera/image_raw", common.SENSOR)
    infos = _collect(probe, CameraInfo, "/nora/camera/camera_info", common.SENSOR)
    assert _spin_until(executor, lambda: len(images) >= 2 and infos)
    assert (images[0].height, images[0].width, images[0].encoding) == (480, 640, "bgr8")
    assert images[0].step == 640 * 3 and infos[0].width == 640
    (desc,) = shell.node.describe_parameters(["fps"])
    assert desc.read_only and desc.type == ParameterType.PARAMETER_DOUBLE and "per second" in desc.description
    assert desc.floating_point_range[0].to_value == 120.0
    assert not shell.node.set_parameters([Parameter("fps", value=30.0)])[0].successful
    assert shell.node.set_parameters([Parameter("reconnect_interval", value=2.0)])[0].successful
    assert not shell.node.set_parameters([Parameter("reconnect_interval", value=0.0)])[0].successful


def test_safety_node_services_and_status(ros, tmp_path):
    from nora_ros.msg import SafetyStatus
    from std_srvs.srv import SetBool, Trigger

    from nora_ros.nodes.safety_node import SafetyNode

    executor, probe, _ = ros
    shell = _start(ros, SafetyNode, "safety_node", arm_backend="kinematic", robot_model="wx250s", **PROBE_MAY_CALL)
    statuses = _collect(probe, SafetyStatus, "/nora/safety/status", common.LATCHED)
    assert _spin_until(executor, lambda: statuses)
    assert statuses[-1].enabled and not statuses[-1].estopped
    assert _call(executor, probe, Trigger, "/nora/safety/estop", Trigger.Request()).success
    assert _spin_until(executor, lambda: statuses[-1].estopped)
    assert "safety/estop" in statuses[-1].estop_reason
    assert _call(executor, probe, Trigger, "/nora/safety/reset", Trigger.Request()).success
    assert _spin_until(executor, lambda: not statuses[-1].estopped)
    assert _call(executor, probe, SetBool, "/nora/safety/enable", SetBool.Request(data=False)).success
    assert _spin_until(executor, lambda: not statuses[-1].enabled)
    # Limits: any valid change while idle; a negative speed is refused with the reason.
    assert shell.node.set_parameters([Parameter("safety.max_linear_speed", value=0.1)])[0].successful
    result = shell.node.set_parameters([Parameter("safety.max_linear_speed", value=-1.0)])[0]
    assert not result.successful and "max_linear_speed" in result.reason


def test_safety_node_in_dry_run_refuses_actuation(ros):
    from std_srvs.srv import SetBool

    from nora_ros.nodes.safety_node import SafetyNode

    executor, probe, _ = ros
    _start(ros, SafetyNode, "safety_node", arm_backend="kinematic", dry_run=True, **PROBE_MAY_CALL)
    answer = _call(executor, probe, SetBool, "/nora/safety/enable", SetBool.Request(data=True))
    assert not answer.success and "dry_run" in answer.message


def test_safety_node_latches_a_foreign_publisher_on_cmd_and_refuses_the_reset_while_it_is_there(ros):
    """The graph guard on rclpy's real graph queries: a second publisher on /nora/cmd (the probe,
    not /nora/policy_node) latches the e-stop naming it; the reset is refused until it is gone."""
    from nora_ros.msg import EndEffectorCommand, SafetyStatus
    from std_srvs.srv import Trigger

    from nora_ros.nodes.safety_node import SafetyNode

    executor, probe, _ = ros
    _start(ros, SafetyNode, "safety_node", arm_backend="kinematic", **PROBE_MAY_CALL)
    statuses = _collect(probe, SafetyStatus, "/nora/safety/status", common.LATCHED)
    assert _spin_until(executor, lambda: statuses and not statuses[-1].estopped)
    pub = probe.create_publisher(EndEffectorCommand, "/nora/cmd", common.qos(common.COMMAND))
    assert _spin_until(executor, lambda: statuses[-1].estopped)
    assert "foreign publisher on /nora/cmd: node /nora_test_probe" in statuses[-1].estop_reason
    refused = _call(executor, probe, Trigger, "/nora/safety/reset", Trigger.Request())
    assert not refused.success and "/nora_test_probe" in refused.message
    probe.destroy_publisher(pub)
    assert _spin_until(executor, lambda: _call(executor, probe, Trigger, "/nora/safety/reset", Trigger.Request()).success)


def test_an_override_rclpy_refuses_is_a_configuration_error_naming_it(ros, tmp_path):
    """rclpy raises its own exceptions from declare_parameter for an out-of-range or wrongly typed
    override; the shell turns them into one ConfigurationError (main() prints it and exits 1)."""
    from nora_ros.errors import ConfigurationError
    from nora_ros.nodes.supervisor_node import SupervisorNode

    for bad, match in (({"tick_rate_hz": 1e6}, "tick_rate_hz refused by rclpy: .*out of range"),
                       ({"max_steps": 2.5}, "max_steps refused by rclpy: .*type")):
        node = Node("supervisor_node", namespace="nora", parameter_overrides=[
            Parameter(k, value=v) for k, v in {"results_file": str(tmp_path / "r.jsonl"), **bad}.items()])
        with pytest.raises(ConfigurationError, match=match):
            SupervisorNode(node)
        node.destroy_node()


def test_supervisor_rejects_a_bad_instruction_and_starts_a_good_one(ros, tmp_path):
    from nora_ros.msg import TrialStatus
    from std_msgs.msg import String

    from nora_ros.nodes.supervisor_node import SupervisorNode

    executor, probe, _ = ros
    _start(ros, SupervisorNode, "supervisor_node", results_file=str(tmp_path / "r.jsonl"))
    statuses = _collect(probe, TrialStatus, "/nora/trial/status", common.LATCHED)
    pub = probe.create_publisher(String, "/nora/instruction", common.qos(common.COMMAND))
    assert _spin_until(executor, lambda: statuses and pub.get_subscription_count() > 0)
    assert statuses[-1].state == TrialStatus.IDLE
    pub.publish(String(data="   "))
    assert _spin_until(executor, lambda: "empty" in statuses[-1].reason)
    pub.publish(String(data="put carrot in pot"))
    assert _spin_until(executor, lambda: statuses[-1].state == TrialStatus.RESETTING)
    assert statuses[-1].trial_id == 1 and statuses[-1].instruction == "put carrot in pot"


def test_sim_launch_stack_runs_a_trial_to_a_result(ros, tmp_path):
    """sim.launch.py's four nodes in one process: an instruction runs a trial (the scripted
    expert on the sim's ground truth) that ends with a TrialResult scored by the sim check."""
    pytest.importorskip("nora_ros.sim.world", reason="MuJoCo is not installed")  # sets MUJOCO_GL first
    from nora_ros.msg import EndEffectorCommand, TrialResult, TrialStatus
    from std_msgs.msg import String

    from nora_ros.nodes.policy_node import PolicyNode
    from nora_ros.nodes.safety_node import SafetyNode
    from nora_ros.nodes.sim_node import SimNode
    from nora_ros.nodes.supervisor_node import SupervisorNode

    executor, probe, _ = ros
    _start(ros, SimNode, "sim_node", camera_rate_hz=5.0)
    _start(ros, PolicyNode, "policy_node", model="scripted", control_rate_hz=10.0)
    _start(ros, SafetyNode, "safety_node", arm_backend="topic", **{"safety.tick_period": 0.1})
    _start(ros, SupervisorNode, "supervisor_node", results_file=str(tmp_path / "r.jsonl"),
           start_pose=[0.25, 0.0, 0.15, 0.0, 0.0, 0.0])
    statuses = _collect(probe, TrialStatus, "/nora/trial/status", common.LATCHED)
    results = _collect(probe, TrialResult, "/nora/trial/result", common.EVENTS)
    commands = _collect(probe, EndEffectorCommand, "/nora/cmd_safe")
    from sensor_msgs.msg import JointState

    joint_states = _collect(probe, JointState, "/nora/joint_states")
    pub = probe.create_publisher(String, "/nora/instruction", common.qos(common.COMMAND))
    assert _spin_until(executor, lambda: pub.get_subscription_count() > 0 and joint_states)
    pub.publish(String(data="put the carrot in the pot"))
    assert _spin_until(executor, lambda: results, timeout=90.0), [s.state_name + ": " + s.reason for s in statuses]
    states = [s.state_name for s in statuses]
    assert "RUNNING" in states and states[-1] == "DONE"
    assert results[0].trial_id == 1 and results[0].score in (TrialResult.SUCCESS, TrialResult.FAILURE)
    assert results[0].steps > 5 and "sim check" in results[0].note and commands
    assert (tmp_path / "r.jsonl").read_text().count("\n") == 1


def test_one_policy_node_serves_two_robot_namespaces(ros, bridge_episodes):
    """robots: [left, right] on a real graph: each robot's topics under its name, its own trial."""
    import numpy as np
    from nora_ros.msg import ActionChunk, EndEffectorCommand, TrialStatus
    from sensor_msgs.msg import Image

    from nora_ros.interface import convert as rc
    from nora_ros.nodes.policy_node import PolicyNode

    executor, probe, _ = ros
    shell = _start(ros, PolicyNode, "policy_node", model=f"replay:{bridge_episodes[0]}", robots=["left", "right"],
                   base_frame="wx250s/base_link")
    assert list(shell.node.get_parameter("robots").value) == ["left", "right"]
    chunks = {r: _collect(probe, ActionChunk, f"/nora/{r}/action_chunk") for r in ("left", "right")}
    cmds = _collect(probe, EndEffectorCommand, "/nora/left/cmd")
    status_pub = probe.create_publisher(TrialStatus, "/nora/left/trial/status", common.qos(common.LATCHED))
    image_pubs = {r: probe.create_publisher(Image, f"/nora/{r}/camera/image_raw", common.qos(common.SENSOR))
                  for r in ("left", "right")}
    now = probe.get_clock().now().nanoseconds * 1e-9
    status_pub.publish(rc.trial_status_to_msg(TrialStatus, stamp=now, trial_id=1, instruction="put carrot in pot",
                                              state_name="RUNNING", start_pose=(0.25, 0.0, 0.15, 0.0, 0.0, 0.0)))

    def publish_images():
        t = probe.get_clock().now().nanoseconds * 1e-9
        for pub in image_pubs.values():
            pub.publish(rc.array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8", Image, t, "camera"))
        return bool(chunks["left"])

    assert _spin_until(executor, publish_images, timeout=15.0), "no chunk for the left robot"
    assert _spin_until(executor, lambda: bool(cmds))
    assert cmds[-1].header.frame_id == "left/base_link"
    assert chunks["right"] == []  # the right arm runs no trial


def test_console_walks_a_blind_two_model_plan_on_the_sim_graph(ros, tmp_path, bridge_episodes):
    """The console node on a real graph with sim.launch.py's nodes: Start runs the plan's next
    trial, the policy node switches model first (policy/select_model), the supervisor stores each
    trial under the model that ran (checked against action_chunk); Stop ends a rollout."""
    pytest.importorskip("nora_ros.sim.world", reason="MuJoCo is not installed")
    pytest.importorskip("aiohttp", reason="the console needs aiohttp")
    import json

    from console_helpers import free_port, request
    from nora_ros.msg import TrialResult, TrialStatus

    from nora_ros.nodes.console_node import ConsoleNode
    from nora_ros.nodes.policy_node import PolicyNode
    from nora_ros.nodes.safety_node import SafetyNode
    from nora_ros.nodes.sim_node import SimNode
    from nora_ros.nodes.supervisor_node import SupervisorNode

    executor, probe, _ = ros
    plan = tmp_path / "plan.yaml"
    replay = f"replay:{bridge_episodes[0]}"
    plan.write_text("name: ab\norder: interleaved\nblind: true\nmodels:\n  - {id: expert, policy: scripted}\n"
                    f"  - {{id: replayed, checkpoint: '{replay}'}}\n"
                    "tasks:\n  - {name: carrot, instruction: put the carrot in the pot, trials: 1}\n")
    results_file = tmp_path / "r.jsonl"
    _start(ros, SimNode, "sim_node", camera_rate_hz=5.0)
    policy = _start(ros, PolicyNode, "policy_node", model="scripted", control_rate_hz=10.0)
    _start(ros, SafetyNode, "safety_node", arm_backend="topic", **{"safety.tick_period": 0.1})
    _start(ros, SupervisorNode, "supervisor_node", results_file=str(results_file), max_steps=15,
           start_pose=[0.25, 0.0, 0.15, 0.0, 0.0, 0.0])
    port = free_port()
    _start(ros, ConsoleNode, "console_node", port=port, results_file=str(results_file), eval_plan=str(plan))
    url = f"http://127.0.0.1:{port}"
    statuses = _collect(probe, TrialStatus, "/nora/trial/status", common.LATCHED)
    results = _collect(probe, TrialResult, "/nora/trial/result", common.EVENTS)
    assert _spin_until(executor, lambda: request(url + "/api/status")[1]["safety"]["enabled"] and statuses)
    assert request(url + "/api/status")[1]["plan"]["label"] == "trial 1 of 2"

    assert request(url + "/api/start", "POST", {})[0] == 200
    assert _spin_until(executor, lambda: results, timeout=60.0), [s.state_name + ": " + s.reason for s in statuses]
    assert (results[0].model_id, results[0].task) == ("expert", "carrot")
    assert _spin_until(executor, lambda: request(url + "/api/status")[1]["state"] == "DONE")  # the page caught up
    got = request(url + "/api/status")[1]
    assert got["plan"]["label"] == "trial 2 of 2" and got["model"] == ""  # blind until the plan is complete

    code, body = request(url + "/api/start", "POST", {})  # the replayed model: loaded, then started
    assert code == 200, body
    assert _spin_until(executor, lambda: statuses[-1].state_name == "RUNNING" and statuses[-1].trial_id == 2,
                       timeout=30.0), [s.state_name + ": " + s.reason for s in statuses]
    assert policy.models.current == replay and policy.models.loaded == ("scripted", replay)
    assert request(url + "/api/stop", "POST", {})[0] == 200
    assert _spin_until(executor, lambda: len(results) == 2, timeout=30.0), [s.reason for s in statuses]
    assert results[1].model_id == "replayed" and any(s.reason == "operator stop" for s in statuses)
    stored = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert [(r["model_id"], r["end_state"]) for r in stored] == [("expert", "DONE"), ("replayed", "DONE")]
    table = request(url + "/api/results")[1]
    assert table["models"] == ["expert", "replayed"] and not table["pooled"]
    assert request(url + "/api/status")[1]["plan"]["label"] == "plan complete (2 of 2)"
