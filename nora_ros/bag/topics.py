"""The topics a run is recorded on: the names, types and QoS the nodes use (DESIGN.md section 5).

One table, so the recorder writes what the nodes publish and the reader looks for the same
names. Names are relative, as the nodes create them; :func:`resolve` puts them under the
namespace the launch files push (``nora`` by default), e.g. ``/nora/camera/image_raw``.

The QoS of each topic is stored in the bag because ``ros2 bag play`` republishes with the
recorded profile: ``trial/status`` and ``safety/status`` must come back transient-local, or the
policy and safety nodes' latched subscriptions would not match them and nothing would run.
The profiles mirror :func:`nora_ros.nodes.common.qos` (which needs rclpy, so it is not imported).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "nora"

SENSOR, COMMAND, LATCHED, EVENTS = "sensor", "command", "latched", "events"


@dataclass(frozen=True)
class Topic:
    """A topic relative to the namespace, its message type and its QoS kind."""

    name: str
    msgtype: str
    qos: str


IMAGE = Topic("camera/image_raw", "sensor_msgs/msg/Image", SENSOR)
COMPRESSED = Topic("camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", SENSOR)
CAMERA_INFO = Topic("camera/camera_info", "sensor_msgs/msg/CameraInfo", SENSOR)
INSTRUCTION = Topic("instruction", "std_msgs/msg/String", COMMAND)
TRIAL_STATUS = Topic("trial/status", "nora_ros/msg/TrialStatus", LATCHED)
TRIAL_RESULT = Topic("trial/result", "nora_ros/msg/TrialResult", EVENTS)
ACTION_CHUNK = Topic("action_chunk", "nora_ros/msg/ActionChunk", COMMAND)
CMD = Topic("cmd", "nora_ros/msg/EndEffectorCommand", COMMAND)
CMD_SAFE = Topic("cmd_safe", "nora_ros/msg/EndEffectorCommand", COMMAND)
SAFETY_STATUS = Topic("safety/status", "nora_ros/msg/SafetyStatus", LATCHED)
JOINT_STATES = Topic("joint_states", "sensor_msgs/msg/JointState", COMMAND)
"""The sim node's joint states (``/nora/joint_states``); the xs driver at the robot publishes
``/<robot_name>/joint_states`` instead (:func:`joint_states_candidates`)."""
GROUND_TRUTH = Topic("sim/ground_truth", "std_msgs/msg/String", COMMAND)
"""The simulator's ground truth (JSON) with each image: the scripted expert's input."""

RUN_TOPICS = (IMAGE, INSTRUCTION, TRIAL_STATUS, ACTION_CHUNK, CMD, CMD_SAFE, SAFETY_STATUS, JOINT_STATES)
"""What a recorded run must hold for a full replay (the camera may be compressed instead)."""

ALL_TOPICS = RUN_TOPICS + (COMPRESSED, CAMERA_INFO, TRIAL_RESULT, GROUND_TRUTH)


def resolve(namespace: str, name: str) -> str:
    """The absolute topic name: ``resolve("nora", "cmd") == "/nora/cmd"``; names starting with
    ``/`` are already absolute."""
    if name.startswith("/"):
        return name
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"


def joint_states_candidates(namespace: str, robot_names: tuple[str, ...] = ("wx250s", "wx250")) -> tuple[str, ...]:
    """Where an arm's joint states may be in a bag: the sim node's, then the xs driver's."""
    return (resolve(namespace, JOINT_STATES.name),) + tuple(f"/{r}/joint_states" for r in robot_names)


def qos_profile(kind: str):
    """The rosbags QoS profile recorded for a topic of QoS ``kind`` (as the nodes offer it)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    history, depth = QosHistory.KEEP_LAST, 10
    reliability, durability = QosReliability.RELIABLE, QosDurability.VOLATILE
    if kind == SENSOR:  # rclpy's qos_profile_sensor_data
        reliability, depth = QosReliability.BEST_EFFORT, 5
    elif kind == LATCHED:
        durability, depth = QosDurability.TRANSIENT_LOCAL, 1
    elif kind == EVENTS:
        durability = QosDurability.TRANSIENT_LOCAL
    elif kind != COMMAND:
        raise ValueError(f"unknown QoS kind '{kind}'")
    return Qos(history, depth, reliability, durability, zero, zero, QosLiveliness.AUTOMATIC, zero, False)
