"""The node shells' own code, run without ROS against test/fake_rclpy (the client library is the
boundary that cannot exist here; the middleware is not simulated). What runs for real: every
shell's construction (parameters, publishers, subscriptions, services, timers), its callbacks
and timers with messages built like rosidl's, the core components behind them (ReplayPolicy
in its worker thread, SafetyFilter + SimArm, TrialSupervisor + results file, SimWorld), and
main()'s clean shutdown. On a ROS machine, test_ros_nodes.py runs them on a real graph."""

from __future__ import annotations

import json
import time

import fake_rclpy
import numpy as np
import pytest
from conftest import shared_data_path
from ros_msg_standins import MSG

from nora_ros.interface import convert as rc


@pytest.fixture
def ros(monkeypatch):
    fake_rclpy.install(monkeypatch)
    fake_rclpy.Clock.t = 1000.0
    return fake_rclpy


def _node(ros, name, **params):
    return ros.Node(name, parameter_overrides=[ros.Parameter(k, value=v) for k, v in params.items()])


def _render_or_skip(sim_shell):
    """The sim node's camera needs offscreen OpenGL (OSMesa on a CPU): skip clearly without it."""
    from nora_ros.errors import ConfigurationError

    try:
        sim_shell.world.render()
    except ConfigurationError as exc:
        sim_shell.shutdown()
        pytest.skip(f"no offscreen OpenGL here (install libosmesa6, MUJOCO_GL=osmesa): {exc}")


def _advance(ros, dt):
    ros.Clock.t = round(ros.Clock.t + dt, 9)


def _status(trial_id, state, instruction="put carrot in pot", start_pose=(0.25, 0.0, 0.15, 0.0, 0.0, 0.0)):
    return rc.trial_status_to_msg(MSG["nora_ros/TrialStatus"], stamp=fake_rclpy.Clock.t, trial_id=trial_id,
                                  instruction=instruction, state_name=state, start_pose=start_pose)


def test_camera_shell_publishes_frames_info_and_diagnostics(ros):
    from nora_ros.nodes.camera_node import CameraNode

    folder = shared_data_path("simpler_real_bridge_frames")
    node = _node(ros, "camera_node", source=f"folder:{folder}", fps=5.0, jpeg_quality=80)
    shell = CameraNode(node)
    assert node.descriptors["fps"].read_only and node.descriptors["fps"].floating_point_range[0].to_value == 120.0
    node.fire(period=0.2)
    (img,) = node.publishers["camera/image_raw"].msgs
    assert (img.encoding, img.height, img.width, img.step) == ("bgr8", 480, 640, 1920)
    assert rc.stamp_to_seconds(img.header.stamp) == pytest.approx(1000.0)
    assert node.publishers["camera/camera_info"].msgs[0].width == 640
    (jpeg,) = node.publishers["camera/image_raw/compressed"].msgs
    assert rc.compressed_to_frame(jpeg).image.shape == (480, 640, 3)
    assert node.publishers["camera/image_raw"].qos.reliability is ros.ReliabilityPolicy.BEST_EFFORT
    node.fire(period=1.0)
    (diag,) = node.publishers["/diagnostics"].msgs
    assert diag.status[0].name == "/nora/camera_node: camera"
    assert node.set_parameters([ros.Parameter("reconnect_interval", value=2.0)])[0].successful
    assert not node.set_parameters([ros.Parameter("fps", value=10.0)])[0].successful
    shell.shutdown()


def test_policy_shell_turns_frames_into_commands_while_running(ros, bridge_episodes):
    pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (NoraConfig, the policy node's "
                        "parameter defaults) is not in this checkout")
    from nora_ros.nodes.policy_node import PolicyNode

    actions = np.load(bridge_episodes[0])["action"]
    node = _node(ros, "policy_node", model=f"replay:{bridge_episodes[0]}", base_frame="wx250s/base_link")
    shell = PolicyNode(node)
    cmd_pub = node.publishers["cmd"]
    node.fire(period=0.1)
    assert cmd_pub.msgs == []  # no trial: nothing published
    node.subscriptions["trial/status"](_status(1, "RUNNING"))
    image = rc.array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8", MSG["sensor_msgs/Image"], ros.Clock.t, "camera")
    node.subscriptions["camera/image_raw"](image)
    node.fire(period=0.1)  # submits the frame to the worker thread; holds meanwhile
    assert cmd_pub.msgs[-1].twist.linear.x == 0.0 and cmd_pub.msgs[-1].chunk_id == 0
    deadline = time.monotonic() + 10
    while not node.publishers["action_chunk"].msgs and time.monotonic() < deadline:
        time.sleep(0.01)
        node.fire(period=0.1)
    (chunk,) = node.publishers["action_chunk"].msgs
    assert list(chunk.actions) == pytest.approx(actions[0].tolist())
    cmd = cmd_pub.msgs[-1]
    assert cmd.chunk_id == chunk.chunk_id and cmd.header.frame_id == "wx250s/base_link"
    assert cmd.twist.linear.x == pytest.approx(actions[0][0] / 0.2)
    bad = rc.array_to_image(np.zeros((4, 4), np.uint8), "mono8", MSG["sensor_msgs/Image"], ros.Clock.t, "camera")
    bad.encoding = "yuv422"
    node.subscriptions["camera/image_raw"](bad)
    assert shell.image_errors == 1 and "yuv422" in shell.last_image_error
    assert node.set_parameters([ros.Parameter("execute_steps", value=2)])[0].successful
    assert not node.set_parameters([ros.Parameter("control_rate_hz", value=20.0)])[0].successful
    node.fire(period=1.0)
    report = node.publishers["/diagnostics"].msgs[-1].status[0]
    assert dict((kv.key, kv.value) for kv in report.values)["chunks"] == "1"
    shell.shutdown()


def test_safety_shell_moves_to_start_runs_and_serves_the_estop(ros):
    from nora_ros.nodes.safety_node import SafetyNode

    node = _node(ros, "safety_node", arm_backend="kinematic", **{"safety.tick_period": 0.1})
    shell = SafetyNode(node)
    assert node.descriptors["safety.max_linear_speed"].description.startswith("m/s")
    statuses = node.publishers["safety/status"].msgs
    node.subscriptions["trial/status"](_status(1, "RESETTING"))
    for _ in range(100):
        _advance(ros, 0.1)
        node.fire(period=0.1)
        if statuses[-1].at_start:
            break
    assert statuses[-1].at_start and statuses[-1].start_trial_id == 1
    node.subscriptions["trial/status"](_status(1, "RUNNING"))
    cmd = EndEffectorCommand_down(ros.Clock.t)
    node.subscriptions["cmd"](rc.command_to_msg(cmd, MSG["nora_ros/EndEffectorCommand"]))
    _advance(ros, 0.1)
    node.fire(period=0.1)
    safe = node.publishers["cmd_safe"].msgs[-1]
    assert safe.twist.linear.z == pytest.approx(-0.05) and safe.header.frame_id == "wx250s/base_link"
    # Loosening a limit while the trial runs is refused; tightening is fine.
    result = node.set_parameters([ros.Parameter("safety.max_linear_speed", value=0.5)])[0]
    assert not result.successful and "only be tightened" in result.reason
    assert node.set_parameters([ros.Parameter("safety.max_linear_speed", value=0.1)])[0].successful
    answer = node.call("safety/estop", None)
    assert answer.success
    _advance(ros, 0.1)
    node.fire(period=0.1)
    assert statuses[-1].estopped and "safety/estop" in statuses[-1].estop_reason and statuses[-1].holding
    assert node.call("safety/reset", None).success
    req = ros.SetBool.Request(data=False)
    assert node.call("safety/enable", req).success
    shell.shutdown()


def _running_safety_shell(ros):
    """A kinematic-arm safety shell with its trial RUNNING at the start pose, and a policy node
    that publishes cmd in the fake graph."""
    from nora_ros.nodes.safety_node import SafetyNode

    node = _node(ros, "safety_node", arm_backend="kinematic", **{"safety.tick_period": 0.1})
    shell = SafetyNode(node)
    ros.Node("policy_node").create_publisher(MSG["nora_ros/EndEffectorCommand"], "cmd", None)
    ros.Node("supervisor_node").create_publisher(MSG["nora_ros/TrialStatus"], "trial/status", None)
    statuses = node.publishers["safety/status"].msgs
    node.subscriptions["trial/status"](_status(1, "RESETTING"))
    for _ in range(100):
        _advance(ros, 0.1)
        node.fire(period=0.1)
        if statuses[-1].at_start:
            break
    node.subscriptions["trial/status"](_status(1, "RUNNING"))
    _advance(ros, 0.1)
    node.fire(period=0.1)
    assert not statuses[-1].estopped
    return shell, node, statuses


def test_safety_shell_latches_a_foreign_publisher_on_cmd_within_one_tick(ros):
    """A second publisher on cmd (a stray ros2 topic pub): its message is not acted on, the next
    tick holds with a latched e-stop naming the node, on safety/status, trial/fault and
    /diagnostics; the reset is refused until that node is gone."""
    shell, node, statuses = _running_safety_shell(ros)
    intruder = ros.Node("_ros2cli_4242", namespace="")
    intruder.create_publisher(MSG["nora_ros/EndEffectorCommand"], "/nora/cmd", None)
    node.subscriptions["cmd"](rc.command_to_msg(EndEffectorCommand_down(ros.Clock.t),
                                                MSG["nora_ros/EndEffectorCommand"]))
    _advance(ros, 0.1)
    node.fire(period=0.1)
    status = statuses[-1]
    assert status.estopped and status.holding
    assert "foreign publisher on /nora/cmd: node /_ros2cli_4242" in status.estop_reason
    assert all(m.twist.linear.z == 0.0 for m in node.publishers["cmd_safe"].msgs)  # nothing moved, ever
    assert "/_ros2cli_4242" in node.publishers["trial/fault"].msgs[-1].data
    node.fire(period=1.0)
    (diag,) = node.publishers["/diagnostics"].msgs[-1].status
    assert "graph guard" in diag.message and {kv.key for kv in diag.values} >= {"graph_fault", "graph_check_us_median"}
    refused = node.call("safety/reset", ros.Trigger.Request())
    assert not refused.success and "/_ros2cli_4242" in refused.message
    intruder.destroy_node()
    assert node.call("safety/reset", ros.Trigger.Request()).success
    _advance(ros, 0.1)
    node.fire(period=0.1)
    assert not statuses[-1].estopped
    shell.shutdown()


def test_safety_shell_refuses_enable_while_an_unexpected_node_holds_a_client(ros):
    shell, node, statuses = _running_safety_shell(ros)
    ros.Node("_ros2cli_requester_std_srvs_SetBool", namespace="").create_client(ros.SetBool, "/nora/safety/enable")
    assert node.call("safety/enable", ros.SetBool.Request(data=True)).success  # the operator's CLI
    ros.Node("enabler", namespace="lab").create_client(ros.SetBool, "/nora/safety/enable")
    answer = node.call("safety/enable", ros.SetBool.Request(data=True))
    assert not answer.success and "client of /nora/safety/enable: node /lab/enabler" in answer.message
    _advance(ros, 0.1)
    node.fire(period=0.1)
    assert statuses[-1].estopped and "/lab/enabler" in statuses[-1].estop_reason
    shell.shutdown()


def test_safety_shell_with_the_guard_off_ignores_the_graph(ros):
    from nora_ros.nodes.safety_node import SafetyNode

    node = _node(ros, "safety_node", arm_backend="kinematic", **{"guard.enabled": False})
    shell = SafetyNode(node)
    ros.Node("talker", namespace="").create_publisher(MSG["nora_ros/EndEffectorCommand"], "/nora/cmd", None)
    node.fire(period=0.2)
    assert not node.publishers["safety/status"].msgs[-1].estopped
    assert any("graph guard off" in line for _, line in node.logger.lines)
    shell.shutdown()


def test_safety_shell_drives_the_interbotix_driver_topics(ros):
    """arm_backend interbotix: the xs driver is configured through its services, the start move
    goes out on /wx250s/commands/joint_group and the gripper opens on commands/joint_single."""
    from nora_ros.nodes.safety_node import SafetyNode

    node = _node(ros, "safety_node", arm_backend="interbotix", robot_model="wx250s", **{"safety.tick_period": 0.1})
    shell = SafetyNode(node)
    modes = node.clients["/wx250s/set_operating_modes"].requests
    assert [(r.name, r.mode) for r in modes] == [("arm", "position"), ("gripper", "pwm")]
    assert modes[0].profile_velocity == 100  # ms: moves of one 0.1 s tick
    sleep = shell.arm.kinematics.sleep_joints
    names = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper",
             "left_finger", "right_finger"]
    state = rc.joint_state_msg(MSG["sensor_msgs/JointState"], names, list(sleep) + [0.0, 0.037, -0.037], ros.Clock.t)
    node.subscriptions["/wx250s/joint_states"](state)
    node.subscriptions["trial/status"](_status(1, "RESETTING"))
    (group,) = node.publishers["/wx250s/commands/joint_group"].msgs
    assert group.name == "arm" and len(group.cmd) == 6
    from nora_ros.actions import pose_to_bridge_state

    np.testing.assert_allclose(pose_to_bridge_state(shell.arm.kinematics.fk(np.array(group.cmd)))[:3], [0.25, 0, 0.15],
                               atol=1e-3)
    (gripper,) = node.publishers["/wx250s/commands/joint_single"].msgs
    assert gripper.name == "gripper" and gripper.cmd > 0  # PWM open
    shell.shutdown()  # the final hold: the measured joints
    np.testing.assert_allclose(node.publishers["/wx250s/commands/joint_group"].msgs[-1].cmd, sleep, atol=1e-6)


def test_safety_shell_in_dry_run_never_talks_to_the_driver(ros):
    from nora_ros.nodes.safety_node import SafetyNode

    node = _node(ros, "safety_node", arm_backend="interbotix", dry_run=True)
    shell = SafetyNode(node)
    assert node.clients["/wx250s/set_operating_modes"].requests == []
    node.subscriptions["trial/status"](_status(1, "RESETTING"))
    node.fire(period=0.2)
    assert not node.publishers["safety/status"].msgs[-1].at_start  # no measurement yet: waits for one
    names = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "left_finger"]
    sleep = list(shell.arm.kinematics.sleep_joints)
    node.subscriptions["/wx250s/joint_states"](
        rc.joint_state_msg(MSG["sensor_msgs/JointState"], names, sleep + [0.037], ros.Clock.t))
    node.fire(period=0.2)
    assert node.publishers["safety/status"].msgs[-1].at_start  # dry run: nothing to move, the trial may run
    shell.shutdown()
    assert node.publishers["/wx250s/commands/joint_group"].msgs == []
    assert node.publishers["/wx250s/commands/joint_single"].msgs == []


def EndEffectorCommand_down(t):
    from nora_ros.actions import EndEffectorCommand

    return EndEffectorCommand(np.array([0.0, 0.0, -0.05]), np.zeros(3), 1.0, stamp=t, observation_stamp=t)


def test_supervisor_shell_runs_a_trial_and_publishes_the_result(ros, tmp_path):
    from nora_ros.nodes.supervisor_node import SupervisorNode

    path = tmp_path / "results.jsonl"
    node = _node(ros, "supervisor_node", results_file=str(path), model_id="replay", max_steps=2,
                 start_pose=[0.25, 0.0, 0.15, 0.0, 0.0, 0.0])
    SupervisorNode(node)
    statuses = node.publishers["trial/status"].msgs
    assert statuses[-1].state_name == "IDLE" and statuses[-1].reason == "supervisor started"
    String = MSG["std_msgs/String"]
    node.subscriptions["instruction"](String(data=""))
    assert "empty" in statuses[-1].reason
    node.subscriptions["instruction"](String(data="put carrot in pot"))
    assert statuses[-1].state_name == "RESETTING" and list(statuses[-1].start_pose)[:3] == [0.25, 0.0, 0.15]
    safety = rc.safety_status_to_msg(MSG["nora_ros/SafetyStatus"], stamp=ros.Clock.t, enabled=True, estopped=False,
                                     holding=True, at_start=True, start_trial_id=1)
    _advance(ros, 1.0)
    node.subscriptions["safety/status"](safety)
    assert statuses[-1].state_name == "RUNNING"
    for chunk in (1, 2):
        _advance(ros, 0.2)
        cmd = rc.command_to_msg(EndEffectorCommand_down(ros.Clock.t), MSG["nora_ros/EndEffectorCommand"])
        cmd.chunk_id = chunk
        node.subscriptions["cmd"](cmd)
    assert statuses[-1].state_name == "AWAITING_SCORE" and statuses[-1].steps == 2
    node.subscriptions["trial/score"](String(data="partial 0.5 carrot on the rim"))
    assert statuses[-1].state_name == "DONE"
    (result,) = node.publishers["trial/result"].msgs
    assert result.score == MSG["nora_ros/TrialResult"].PARTIAL and result.score_value == 0.5
    assert result.note == "carrot on the rim" and result.results_file == str(path) and result.steps == 2
    assert json.loads(path.read_text())["trial_id"] == 1


def test_supervisor_shell_serves_trial_start_and_stop_and_checks_the_model_that_ran(ros, tmp_path):
    from ros_msg_standins import SRV

    from nora_ros.nodes.supervisor_node import SupervisorNode

    path = tmp_path / "results.jsonl"
    node = _node(ros, "supervisor_node", results_file=str(path), model_id="default")
    SupervisorNode(node)
    start, trigger = SRV["nora_ros/StartTrial"], ros.Trigger
    statuses = node.publishers["trial/status"].msgs
    got = node.call("trial/start", start.Request(instruction="put carrot in pot", task="carrot", model_id="nora-long",
                                                checkpoint="/ckpt/nl", served_model_id="/ckpt/nl"))
    assert (got.success, got.trial_id, got.message) == (True, 1, "trial 1 started")
    busy = node.call("trial/start", start.Request(instruction="put carrot in pot"))
    assert not busy.success and busy.trial_id == 0 and "trial 1 is RESETTING" in busy.message
    assert "trial 1 is RESETTING" in statuses[-1].reason  # said on trial/status too
    _advance(ros, 1.0)
    node.subscriptions["safety/status"](rc.safety_status_to_msg(
        MSG["nora_ros/SafetyStatus"], stamp=ros.Clock.t, enabled=True, estopped=False, holding=True, at_start=True,
        start_trial_id=1))
    chunk = MSG["nora_ros/ActionChunk"](model_id="/ckpt/nl")
    node.subscriptions["action_chunk"](chunk)
    assert statuses[-1].state_name == "RUNNING"
    stopped = node.call("trial/stop", trigger.Request())
    assert stopped.success and statuses[-1].state_name == "AWAITING_SCORE"
    assert not node.call("trial/stop", trigger.Request()).success
    node.subscriptions["trial/score"](MSG["std_msgs/String"](data="success"))
    stored = json.loads(path.read_text().splitlines()[-1])
    assert (stored["task"], stored["model_id"], stored["checkpoint"]) == ("carrot", "nora-long", "/ckpt/nl")
    # the next trial was started for model b, but a's chunks arrive: a fault, never b's result
    node.call("trial/start", start.Request(instruction="put carrot in pot", model_id="b", served_model_id="/ckpt/b"))
    _advance(ros, 1.0)
    node.subscriptions["safety/status"](rc.safety_status_to_msg(
        MSG["nora_ros/SafetyStatus"], stamp=ros.Clock.t, enabled=True, estopped=False, holding=True, at_start=True,
        start_trial_id=2))
    node.subscriptions["action_chunk"](chunk)
    assert statuses[-1].state_name == "ABORTED" and "policy ran model '/ckpt/nl'" in statuses[-1].reason


def test_sim_shell_publishes_the_world_takes_commands_and_scores(ros):
    # Imported first: it sets MUJOCO_GL=osmesa (CPU rendering) before mujoco loads.
    pytest.importorskip("nora_ros.sim.world", reason="MuJoCo is not installed")
    from nora_ros.nodes.sim_node import SimNode

    node = _node(ros, "sim_node", camera_rate_hz=5.0)
    shell = SimNode(node)
    _render_or_skip(shell)
    try:
        node.fire(period=1 / 30.0)
        (js,) = node.publishers["joint_states"].msgs
        assert list(js.name)[-2:] == ["left_finger", "right_finger"] and len(js.position) == 8
        q0 = np.array(js.position[:6])
        target = q0 + np.array([0.2, 0, 0, 0, 0, 0])
        traj = rc.joint_trajectory_msg(MSG["trajectory_msgs/JointTrajectory"], MSG["trajectory_msgs/JointTrajectoryPoint"],
                                       MSG["builtin_interfaces/Duration"], shell.names, target, 0.5, ros.Clock.t)
        node.subscriptions["sim/joint_command"](traj)
        for _ in range(40):  # 0.8 s of physics at 50 Hz
            node.fire(period=0.02)
        np.testing.assert_allclose(shell.world.arm_joints(), target, atol=0.02)
        node.fire(period=0.2)
        (img,) = node.publishers["camera/image_raw"].msgs
        assert (img.encoding, img.height, img.width) == ("rgb8", 480, 640)
        (truth,) = node.publishers["sim/ground_truth"].msgs
        stamp, gt = rc.ground_truth_from_json(truth.data)
        assert stamp == pytest.approx(rc.stamp_to_seconds(img.header.stamp))
        np.testing.assert_allclose(gt["ee_pose"], shell.world.ee_pose(), atol=1e-9)
        node.subscriptions["trial/status"](_status(3, "RESETTING"))
        assert shell.world.seed == 3  # laid out from seed + trial id
        node.subscriptions["trial/status"](_status(3, "AWAITING_SCORE"))
        (score,) = node.publishers["trial/score"].msgs
        assert score.data.startswith("failure sim check:")
    finally:
        shell.shutdown()


def test_main_shuts_down_cleanly_on_ctrl_c(ros, tmp_path):
    from nora_ros.nodes import supervisor_node

    created = []

    class Recording(supervisor_node.SupervisorNode):
        def __init__(self):
            super().__init__(_node(ros, "supervisor_node", results_file=str(tmp_path / "r.jsonl")))
            created.append(self)

        def shutdown(self):
            self.shut = True
            super().shutdown()

    assert supervisor_node.common.run(Recording) == 0
    (shell,) = created
    assert shell.shut and shell.node.destroyed


def test_main_shuts_down_cleanly_on_sigterm(ros, monkeypatch, tmp_path):
    """rclpy's own signal handler (off, so the final hold can still be sent) also handled SIGTERM;
    seen on Jazzy without it: `kill <node>` ended the process at once, no shutdown. SIGTERM now
    takes the Ctrl-C path, and main() puts the previous handler back."""
    import os
    import signal
    import sys

    from nora_ros.nodes import supervisor_node

    def spin(node, executor=None):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5.0)  # the handler interrupts this
        raise AssertionError("SIGTERM did not stop the spin")

    monkeypatch.setattr(sys.modules["rclpy"], "spin", spin)
    created = []

    class Recording(supervisor_node.SupervisorNode):
        def __init__(self):
            super().__init__(_node(ros, "supervisor_node", results_file=str(tmp_path / "r.jsonl")))
            created.append(self)

        def shutdown(self):
            self.shut = True
            super().shutdown()

    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    assert supervisor_node.common.run(Recording) == 0
    assert time.monotonic() - started < 4.0
    (shell,) = created
    assert shell.shut and shell.node.destroyed
    assert signal.getsignal(signal.SIGTERM) is before


def test_main_routes_the_core_python_logging_to_the_ros_loggers(ros):
    """Core modules log with Python's logging; under main() their records reach ROS (seen on
    Jazzy without it: the policy's warnings came out bare on stderr, not in /rosout): while the
    shell is built under the "nora_ros" logger, then under the node's; and not after main()."""
    import logging

    from nora_ros.nodes import common

    core = logging.getLogger("nora_ros.policy.nora.policy")
    made = []

    class Shell:
        def __init__(self):
            self.node = _node(ros, "policy_node")
            core.warning("chunk %d: clipped", 1)
            made.append(self)

        def shutdown(self):
            core.error("hold refused")
            core.debug("below the node's level: dropped")

    assert common.run(Shell) == 0
    assert ros.NAMED_LOGGERS["nora_ros"].lines == [("warning", "nora_ros.policy.nora.policy: chunk 1: clipped")]
    assert made[0].node.logger.lines == [("error", "nora_ros.policy.nora.policy: hold refused")]
    assert not any(isinstance(h, common.RosLogHandler) for h in logging.getLogger("nora_ros").handlers)


def test_an_override_rclpy_refuses_at_start_is_a_one_line_configuration_error(ros, capsys):
    """rclpy's declare_parameter raises its own exceptions for an override outside the range or
    of the wrong static type (seen on Jazzy: `ros2 run nora_ros policy_node --ros-args -p
    control_rate_hz:=500.0` died with a traceback); main() says which parameter, and exits 1."""
    from nora_ros.errors import ConfigurationError
    from nora_ros.nodes import common, supervisor_node

    with pytest.raises(ConfigurationError, match=r"tick_rate_hz refused by rclpy: .*out of range"):
        supervisor_node.SupervisorNode(_node(ros, "supervisor_node", tick_rate_hz=1e6))
    with pytest.raises(ConfigurationError, match=r"max_steps refused by rclpy: .*type"):
        supervisor_node.SupervisorNode(_node(ros, "supervisor_node", max_steps=2.5))
    assert common.run(lambda: supervisor_node.SupervisorNode(_node(ros, "supervisor_node", tick_rate_hz=1e6))) == 1
    assert "tick_rate_hz refused by rclpy" in capsys.readouterr().err


def test_sim_stack_runs_an_instruction_to_a_trial_result(ros, tmp_path):
    """sim.launch.py's four shells wired by a toy bus: the operator's instruction starts a trial,
    the safety node takes the simulated arm to the start pose, the scripted expert (fed the sim's
    ground truth) acts through the safety filter, and the sim's check scores it: a TrialResult."""
    pytest.importorskip("nora_ros.sim.world", reason="MuJoCo is not installed")  # sets MUJOCO_GL first
    pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (policy parameter defaults) absent")
    from nora_ros.nodes.policy_node import PolicyNode
    from nora_ros.nodes.safety_node import SafetyNode
    from nora_ros.nodes.sim_node import SimNode
    from nora_ros.nodes.supervisor_node import SupervisorNode

    path = tmp_path / "results.jsonl"
    sim = SimNode(_node(ros, "sim_node", seed=0))
    _render_or_skip(sim)
    policy = PolicyNode(_node(ros, "policy_node", model="scripted", base_frame="wx250s/base_link"))
    safety = SafetyNode(_node(ros, "safety_node", arm_backend="topic", **{"safety.tick_period": 0.1}))
    supervisor = SupervisorNode(_node(ros, "supervisor_node", results_file=str(path), model_id="scripted",
                                      start_pose=[0.25, 0.0, 0.15, 0.0, 0.0, 0.0]))
    operator = ros.Node("operator")
    instruction = operator.create_publisher(MSG["std_msgs/String"], "/nora/instruction", None)
    bus = ros.Bus([sim.node, policy.node, safety.node, supervisor.node, operator])

    def wait_for_inference(node, timer):
        # The worker thread runs on the wall clock; the bus on a fake one: let it finish.
        deadline = time.monotonic() + 2.0
        while node is policy.node and policy.worker.busy and time.monotonic() < deadline:
            time.sleep(0.001)

    try:
        bus.run(0.5)  # joint states flow, latched statuses go out
        instruction.publish(MSG["std_msgs/String"](data="put the carrot in the pot"))
        bus.deliver()
        results = supervisor.node.publishers["trial/result"].msgs
        assert bus.run(60.0, stop=lambda: bool(results), after=wait_for_inference), (
            [s.state_name + ": " + s.reason for s in supervisor.node.publishers["trial/status"].msgs])
        states = [s.state_name for s in supervisor.node.publishers["trial/status"].msgs]
        assert states[-4:] == ["RESETTING", "RUNNING", "AWAITING_SCORE", "DONE"], states
        (result,) = results
        assert result.trial_id == 1 and result.steps > 10 and result.model_id == "scripted"
        # Seed 0's layout is one the expert solves; the run is deterministic (fake clock, waited worker).
        assert result.score == MSG["nora_ros/TrialResult"].SUCCESS and result.note == "sim check: carrot is in the pot"
        stored = json.loads(path.read_text())
        assert stored["trial_id"] == 1 and stored["steps"] == result.steps and stored["score"] == "success"
        sent = safety.node.publishers["cmd_safe"].msgs
        assert sent and any(m.twist.linear.z != 0.0 for m in sent)
    finally:
        for shell in (sim, policy, safety, supervisor):
            shell.shutdown()


def test_estop_during_a_sim_trial_aborts_it_holds_the_arm_and_blocks_the_next(ros, tmp_path):
    """The operator's e-stop over the same wiring: the safety node latches it and holds the arm,
    the supervisor aborts the trial (stored as abort) and refuses instructions until reset."""
    pytest.importorskip("nora_ros.sim.world", reason="MuJoCo is not installed")  # sets MUJOCO_GL first
    pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (policy parameter defaults) absent")
    from nora_ros.nodes.policy_node import PolicyNode
    from nora_ros.nodes.safety_node import SafetyNode
    from nora_ros.nodes.sim_node import SimNode
    from nora_ros.nodes.supervisor_node import SupervisorNode

    path = tmp_path / "results.jsonl"
    sim = SimNode(_node(ros, "sim_node", seed=1))
    _render_or_skip(sim)
    policy = PolicyNode(_node(ros, "policy_node", model="scripted"))
    safety = SafetyNode(_node(ros, "safety_node", arm_backend="topic", **{"safety.tick_period": 0.1}))
    supervisor = SupervisorNode(_node(ros, "supervisor_node", results_file=str(path),
                                      start_pose=[0.25, 0.0, 0.15, 0.0, 0.0, 0.0]))
    operator = ros.Node("operator")
    instruction = operator.create_publisher(MSG["std_msgs/String"], "/nora/instruction", None)
    bus = ros.Bus([sim.node, policy.node, safety.node, supervisor.node, operator])
    statuses = supervisor.node.publishers["trial/status"].msgs

    def wait_for_inference(node, timer):
        deadline = time.monotonic() + 2.0
        while node is policy.node and policy.worker.busy and time.monotonic() < deadline:
            time.sleep(0.001)

    try:
        bus.run(0.5)
        instruction.publish(MSG["std_msgs/String"](data="put the carrot in the pot"))
        bus.deliver()
        steps = lambda: statuses[-1].state_name == "RUNNING" and supervisor.supervisor.steps >= 5  # noqa: E731
        assert bus.run(20.0, stop=steps, after=wait_for_inference)
        assert safety.node.call("safety/estop", ros.Trigger.Request()).success
        assert bus.run(1.0, stop=lambda: statuses[-1].state_name == "ABORTED", after=wait_for_inference)
        held = sim.world.arm_joints()
        bus.run(1.0, after=wait_for_inference)
        np.testing.assert_allclose(sim.world.arm_joints(), held, atol=2e-3)  # nothing moves while latched
        assert json.loads(path.read_text())["score"] == "abort"
        instruction.publish(MSG["std_msgs/String"](data="put the carrot in the pot"))
        bus.deliver()
        assert "e-stop" in statuses[-1].reason and statuses[-1].state_name == "ABORTED"
        assert safety.node.call("safety/reset", ros.Trigger.Request()).success
        bus.run(0.3)
        instruction.publish(MSG["std_msgs/String"](data="put the carrot in the pot"))
        bus.deliver()
        assert statuses[-1].state_name == "RESETTING" and statuses[-1].trial_id == 2
    finally:
        for shell in (sim, policy, safety, supervisor):
            shell.shutdown()


def test_policy_shell_serves_several_robots_with_one_model(ros, bridge_episodes):
    """robots: [left, right]: one policy, each robot's topics under its namespace, its own trial."""
    pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (policy parameter defaults) absent")
    from nora_ros.nodes.policy_node import PolicyNode

    actions = np.load(bridge_episodes[0])["action"]
    node = _node(ros, "policy_node", model=f"replay:{bridge_episodes[0]}", base_frame="wx250s/base_link",
                 robots=["left", "right"])
    shell = PolicyNode(node)
    assert node.descriptors["robots"].read_only and shell.batching is not None
    assert "cmd" not in node.publishers and "camera/image_raw" not in node.subscriptions
    node.subscriptions["left/trial/status"](_status(1, "RUNNING"))  # only the left arm runs a trial
    image = rc.array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8", MSG["sensor_msgs/Image"], ros.Clock.t, "camera")
    for robot in ("left", "right"):
        node.subscriptions[f"{robot}/camera/image_raw"](image)
    deadline = time.monotonic() + 10
    while not node.publishers["left/action_chunk"].msgs and time.monotonic() < deadline:
        time.sleep(0.01)
        node.fire(period=0.1)
    (chunk,) = node.publishers["left/action_chunk"].msgs
    assert list(chunk.actions) == pytest.approx(actions[0].tolist())
    cmd = node.publishers["left/cmd"].msgs[-1]
    assert cmd.header.frame_id == "left/base_link" and cmd.twist.linear.x == pytest.approx(actions[0][0] / 0.2)
    assert node.publishers["right/cmd"].msgs == [] and node.publishers["right/action_chunk"].msgs == []
    node.fire(period=1.0)
    names = [s.name for s in node.publishers["/diagnostics"].msgs[-1].status]
    assert names == ["/nora/policy_node: policy left", "/nora/policy_node: policy right"]
    shell.shutdown()


@pytest.mark.parametrize(("robots", "match"), [(["left", "left"], "more than once"), (["left/arm"], "namespace")])
def test_policy_shell_refuses_bad_robot_names(ros, bridge_episodes, robots, match):
    pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (policy parameter defaults) absent")
    from nora_ros.errors import ConfigurationError
    from nora_ros.nodes.policy_node import PolicyNode

    with pytest.raises(ConfigurationError, match=match):
        PolicyNode(_node(ros, "policy_node", model=f"replay:{bridge_episodes[0]}", robots=robots))


def test_policy_shell_switches_models_between_trials_and_keeps_them_loaded(ros, bridge_episodes):
    """policy/select_model: answered once the model serves; refused during a trial and for a model
    that cannot load (the served one keeps serving); a model served before comes back at once."""
    pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (policy parameter defaults) absent")
    from ros_msg_standins import SRV

    from nora_ros.nodes.policy_node import PolicyNode

    select = SRV["nora_ros/SelectModel"]
    first, second = (f"replay:{e}" for e in bridge_episodes[:2])
    node = _node(ros, "policy_node", model=first, base_frame="wx250s/base_link")
    shell = PolicyNode(node)
    assert type(shell.executor).__name__ == "MultiThreadedExecutor"
    got = node.call("policy/select_model", select.Request(model_id="b", model=second))
    assert got.success and "loaded in" in got.message and got.served_model_id == shell.policy.model_id != first
    node.subscriptions["trial/status"](_status(1, "RUNNING"))
    node.subscriptions["camera/image_raw"](rc.array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8",
                                                             MSG["sensor_msgs/Image"], ros.Clock.t, "camera"))
    deadline = time.monotonic() + 10
    while not node.publishers["action_chunk"].msgs and time.monotonic() < deadline:
        time.sleep(0.01)
        node.fire(period=0.1)
    (chunk,) = node.publishers["action_chunk"].msgs
    assert chunk.model_id == got.served_model_id
    assert list(chunk.actions) == pytest.approx(np.load(bridge_episodes[1])["action"][0].tolist())
    refused = node.call("policy/select_model", select.Request(model_id="a", model=first))
    assert not refused.success and "a trial is running" in refused.message
    node.subscriptions["trial/status"](_status(1, "DONE"))
    back = node.call("policy/select_model", select.Request(model_id="a", model=first))
    assert back.success and "switched at once" in back.message and shell.models.loaded == (second, first)
    broken = node.call("policy/select_model", select.Request(model_id="c", model="replay:/no/such.npz"))
    assert not broken.success and "cannot serve replay:/no/such.npz" in broken.message
    assert broken.served_model_id == back.served_model_id and shell.models.current == first
    assert not node.call("policy/select_model", select.Request(model_id="", model=" ")).success
    shell.shutdown()
    assert shell.models.loaded == ()


def test_policy_shell_faults_a_trial_that_starts_while_no_model_can_act(ros, bridge_episodes):
    pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (policy parameter defaults) absent")
    from nora_ros.nodes.policy_node import PolicyNode

    node = _node(ros, "policy_node", model=f"replay:{bridge_episodes[0]}")
    shell = PolicyNode(node)
    shell._switching = "policy node is loading model b: the trial cannot run"  # as during a long load
    node.subscriptions["trial/status"](_status(4, "RUNNING"))
    node.fire(period=0.1)
    node.fire(period=0.1)
    assert [m.data for m in node.publishers["trial/fault"].msgs] == [shell._switching]  # once per trial
    assert node.publishers["cmd"].msgs == []  # nothing from the old model: the safety node holds
    shell.shutdown()
