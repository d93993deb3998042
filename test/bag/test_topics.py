"""The recorder's topic table (nora_ros.bag.topics) is the nodes' own: names, message types, and
what the bag's message classes make of nora_ros.interface.convert's messages.

The node shells are built on test/fake_rclpy (no ROS here) and their publishers and
subscriptions compared with the table, so a topic renamed in a node fails here, not in a
``ros2 bag play`` at the robot.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rosbags")

import fake_rclpy  # noqa: E402
from ros_msg_standins import MSG  # noqa: E402

from nora_ros.bag import topics as T  # noqa: E402
from nora_ros.bag.types import MessageClasses, typestore  # noqa: E402
from nora_ros.interface import convert as rc  # noqa: E402

NAMES = {cls: full for full, cls in MSG.items()}


def _msgtype(cls) -> str:
    pkg, name = NAMES[cls].split("/")
    return f"{pkg}/msg/{name}"


def test_every_recorded_topic_is_one_a_node_publishes_or_subscribes_with_that_type(monkeypatch, tmp_path):
    pytest.importorskip("nora_ros.sim.world", reason="MuJoCo is not installed")
    pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (policy parameter defaults) absent")
    fake_rclpy.install(monkeypatch)
    from nora_ros.nodes.policy_node import PolicyNode
    from nora_ros.nodes.safety_node import SafetyNode
    from nora_ros.nodes.sim_node import SimNode
    from nora_ros.nodes.supervisor_node import SupervisorNode

    def node(name, **params):
        return fake_rclpy.Node(name, parameter_overrides=[fake_rclpy.Parameter(k, value=v) for k, v in params.items()])

    shells = [SimNode(node("sim_node")), PolicyNode(node("policy_node", model="scripted", compressed_image=True)),
              SafetyNode(node("safety_node", arm_backend="kinematic")),
              SupervisorNode(node("supervisor_node", results_file=str(tmp_path / "r.jsonl")))]
    try:
        published = {f"/nora/{t}": _msgtype(p.msg_type) for s in shells for t, p in s.node.publishers.items()}
        subscribed = {f"/nora/{t}" for s in shells for t in s.node.subscriptions}
    finally:
        for s in shells:
            s.shutdown()
    for topic in T.ALL_TOPICS:
        name = T.resolve("nora", topic.name)
        if topic in (T.INSTRUCTION, T.COMPRESSED):  # the operator's / a camera driver's; the nodes read them
            assert name in subscribed, name
        else:
            assert published.get(name) == topic.msgtype, name
    assert T.joint_states_candidates("nora")[0] == "/nora/joint_states"


def test_the_bag_message_classes_serialize_what_convert_builds_and_read_it_back():
    m = MessageClasses()
    store = typestore()
    from nora_ros.actions import ActionChunk, EndEffectorCommand

    chunk = ActionChunk(np.arange(35, dtype=float).reshape(5, 7) / 100, step_period=0.2, model_id="nora-long",
                        timings={"total": 0.1}, token_ids=(151665, 151666), stamp=12.5, chunk_id=7)
    back = rc.chunk_from_msg(store.deserialize_cdr(m.serialize(rc.chunk_to_msg(chunk, m.ActionChunk, "base", 0.3)),
                                                   "nora_ros/msg/ActionChunk"))
    assert np.array_equal(back.actions, chunk.actions) and back.token_ids == chunk.token_ids
    assert back.stamp == 12.5 and back.chunk_id == 7 and back.timings == {"total": 0.1}
    cmd = EndEffectorCommand(np.array([0.1, -0.2, 0.3]), np.array([0.0, 0.5, -1.0]), 0.25, 3.25, 7, 2, 3.0)
    msg = store.deserialize_cdr(m.serialize(rc.command_to_msg(cmd, m.EndEffectorCommand, "base")),
                                "nora_ros/msg/EndEffectorCommand")
    got = rc.command_from_msg(msg)
    assert np.array_equal(got.linear, cmd.linear) and got.index == 2 and got.observation_stamp == 3.0
    status = rc.trial_status_to_msg(m.TrialStatus, stamp=1.0, trial_id=3, instruction="go", state_name="RUNNING",
                                    start_pose=[0.3, 0, 0.15, 0, 0, 0])
    decoded = store.deserialize_cdr(m.serialize(status), "nora_ros/msg/TrialStatus")
    assert rc.trial_state_name(decoded) == "RUNNING" and list(decoded.start_pose) == [0.3, 0, 0.15, 0, 0, 0]
    image = np.random.default_rng(0).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    img = store.deserialize_cdr(m.serialize(rc.array_to_image(image, "rgb8", m.Image, 2.0, "cam", step=20)),
                                "sensor_msgs/msg/Image")
    assert np.array_equal(rc.image_to_array(img), image) and img.step == 20
    # rosidl's defaults and checks: constants on the class, only the definition's fields
    assert m.TrialStatus.RUNNING == 2 and m.SafetyStatus.LIMIT_WORKSPACE == "workspace"
    assert m.Header().stamp.sec == 0 and m.CameraInfo().k == [0.0] * 9
    with pytest.raises(AttributeError):
        m.TrialStatus().instrucion = "typo"
