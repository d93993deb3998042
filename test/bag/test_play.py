"""A recorded simulator bag played into the real policy and safety node shells, as
``ros2 bag play --clock`` does under replay.launch.py (policy + safety in dry run, sim time).

No ROS here: the node shells run on test/fake_rclpy's toy bus (see test_ros_node_shells.py), and
a player publishes the bag's messages, as rosbags decoded them, in recorded order on the bag's
clock. What runs for real: the bag (recorded by the runner), the shells' callbacks and timers,
the scripted expert in the policy node's worker thread, the safety filter behind a read-only
topic arm fed the recorded joint states.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("rosbags")
pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (policy parameter defaults) absent")

import fake_rclpy  # noqa: E402
from bag_helpers import record  # noqa: E402

from nora_ros.bag.read import read_bag  # noqa: E402
from nora_ros.bag.run import RecordedRun  # noqa: E402

NS = "/nora"
PLAYED = (f"{NS}/camera/image_raw/compressed", f"{NS}/trial/status", f"{NS}/sim/ground_truth", f"{NS}/joint_states")
"""What replay.launch.py plays for a bag from nora-ros demo (JPEG images, the sim's joint states)."""


@pytest.fixture
def ros(monkeypatch):
    fake_rclpy.install(monkeypatch)
    return fake_rclpy


def _node(ros, name, **params):
    return ros.Node(name, parameter_overrides=[ros.Parameter(k, value=v) for k, v in params.items()])


def test_playing_a_sim_bag_drives_the_policy_and_safety_nodes(ros, tmp_path):
    from nora_ros.nodes.policy_node import PolicyNode
    from nora_ros.nodes.safety_node import SafetyNode

    rec = record(tmp_path, images="jpeg")
    contents = read_bag(rec.paths[0])
    recorded = RecordedRun(contents)
    messages = sorted((m for t in PLAYED for m in contents.topic(t)), key=lambda m: (m.ns, m.seq))
    ros.Clock.t = messages[0].t  # --clock: the nodes' time is the bag's
    policy = PolicyNode(_node(ros, "policy_node", model="scripted", compressed_image=True,
                              base_frame="wx250s/base_link"))
    safety = SafetyNode(_node(ros, "safety_node", arm_backend="topic", dry_run=True,
                              joint_states_topic=f"{NS}/joint_states",
                              **{"safety.tick_period": 0.1, "guard.enabled": False}))  # as replay.launch.py: the player publishes trial/status
    player = ros.Node("player")
    publishers = {t: player.create_publisher(None, t, None) for t in PLAYED}
    bus = ros.Bus([policy.node, safety.node, player])

    def wait_for_inference(node, timer):
        deadline = time.monotonic() + 2.0  # the worker runs on the wall clock, the bus on the bag's
        while node is policy.node and policy.worker.busy and time.monotonic() < deadline:
            time.sleep(0.001)

    try:
        for m in messages:
            bus.run(m.t - ros.Clock.t, after=wait_for_inference)  # the timers due before this message
            ros.Clock.t = m.t
            publishers[m.topic].publish(m.msg)
            bus.deliver()
        bus.run(0.3, after=wait_for_inference)
        chunks = policy.node.publishers["action_chunk"].msgs
        commands = policy.node.publishers["cmd"].msgs
        sent = safety.node.publishers["cmd_safe"].msgs
        status = safety.node.publishers["safety/status"].msgs
    finally:
        policy.shutdown()
        safety.shutdown()
    # the policy node ran the trial on the recorded frames and ground truth
    assert abs(len(chunks) - len(recorded.chunks)) <= 2 and len(commands) >= len(recorded.commands) - 2
    frames = recorded.frames_by_stamp()
    stamps = [c.header.stamp.sec * 10**9 + c.header.stamp.nanosec for c in chunks]
    assert all(s in frames for s in stamps)  # every chunk came from a recorded frame
    # ... and is what the scripted expert computes from those recorded frames and their ground
    # truth, in that order (the expert keeps state between calls, so the order matters). The node
    # computes a chunk a tick after its frame, where the runner that recorded the bag computed it
    # at once: it may act on other frames than the runner did, never on other data.
    from nora_ros.sim.expert import ScriptedExpertPolicy

    fresh = ScriptedExpertPolicy()
    fresh.reset(recorded.trials()[0].instruction)
    instruction = recorded.trials()[0].instruction
    expected = [fresh.act(recorded.frame(frames[s]), instruction).actions for s in stamps]
    assert all(np.array_equal(np.asarray(c.actions), e.reshape(-1)) for c, e in zip(chunks, expected, strict=True))
    assert any(abs(c.twist.linear.z) > 0 for c in commands)
    # the safety node, in dry run on the recorded joint states, filtered them and never latched an e-stop
    assert len(sent) > 40 and not any(s.estopped for s in status) and not any(s.enabled for s in status)
