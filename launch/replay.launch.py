"""Replay a recorded run through the policy and safety nodes, in dry run, on the bag's clock.

    ros2 launch nora_ros replay.launch.py bag:=rosbag2_2026_11_21-15_00_00 model:=declare-lab/nora
    ros2 launch nora_ros replay.launch.py bag:=demo_out/bags/trial_0001 model:=scripted \
        compressed_image:=true joint_states_topic:=/nora/joint_states        # a bag from nora-ros demo

`ros2 bag play --clock` plays the recorded inputs (camera image, raw or JPEG, trial status with
the instruction, the arm's joint states, the simulator's ground truth when there is one) and
publishes /clock; every node uses sim time. The
policy computes what it would have done (cmd, action_chunk) and the safety node reports what
it would have sent (cmd_safe, safety/status) without commanding any arm: dry_run is forced on.
Record the outputs with `ros2 bag record` to compare them with the original run. Leave bag
empty to start the nodes only and play a bag yourself (with --clock). Discovery stays on this
host unless discovery_range says otherwise. The safety node's graph guard is off here: the bag
player publishes trial/status by design, and nothing can move (dry run).
"""

import os

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    GroupAction,
    LogInfo,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

try:  # Jazzy renamed it; Humble has only the old name
    from launch_ros.actions import PushROSNamespace
except ImportError:  # pragma: no cover - depends on the ROS distribution
    from launch_ros.actions import PushRosNamespace as PushROSNamespace


def _graph(context):
    """Discovery scope for the nodes and the player started after this (nora_ros.security.launch_env)."""
    from nora_ros.security.launch_env import graph_setup

    setup = graph_setup(discovery_range=LaunchConfiguration("discovery_range").perform(context), environ=os.environ)
    return [SetEnvironmentVariable(k, v) for k, v in setup.env.items()] + [LogInfo(msg=n) for n in setup.notes]


def generate_launch_description():
    bag = LaunchConfiguration("bag")
    rate = LaunchConfiguration("rate")
    model = LaunchConfiguration("model")
    robot_model = LaunchConfiguration("robot_model")
    robot_name = LaunchConfiguration("robot_name")
    params_file = LaunchConfiguration("params_file")
    namespace = LaunchConfiguration("namespace")
    log_level = LaunchConfiguration("log_level")
    joint_states_topic = LaunchConfiguration("joint_states_topic")
    compressed_image = LaunchConfiguration("compressed_image")

    arguments = [
        DeclareLaunchArgument(
            "bag", default_value="",
            description="rosbag2 folder to play (sqlite3 or mcap); empty: start the nodes only."),
        DeclareLaunchArgument(
            "rate", default_value="1.0",
            description="Playback rate of the bag (ros2 bag play --rate); below 1 gives a slow model time to keep up."),
        DeclareLaunchArgument(
            "model", default_value="declare-lab/nora",
            description="Policy checkpoint to replay the recording through: a local folder or hub ID."),
        DeclareLaunchArgument(
            "robot_model", default_value="wx250s", choices=["wx250s", "wx250"],
            description="Arm model of the recording (kinematics of the safety filter)."),
        DeclareLaunchArgument(
            "robot_name", default_value=robot_model,
            description="Namespace of the recorded xs driver: joint states are read from /<robot_name>/joint_states."),
        DeclareLaunchArgument(
            "joint_states_topic", default_value=["/", robot_name, "/joint_states"],
            description="Recorded joint states the safety node reads: /<robot_name>/joint_states (the xs driver's) "
                        "for a robot's bag, /nora/joint_states for a simulator bag (sim.launch.py, nora-ros demo)."),
        DeclareLaunchArgument(
            "compressed_image", default_value="false", choices=["true", "false"],
            description="true: the policy reads camera/image_raw/compressed (JPEG), as nora-ros demo records "
                        "by default."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("nora_ros"), "config", "widowx.yaml"]),
            description="YAML with the nodes' parameters, keyed by node name (the robot's, to replay as it ran)."),
        DeclareLaunchArgument(
            "namespace", default_value="nora",
            description="Namespace the recording's NORA topics were under."),
        DeclareLaunchArgument(
            "log_level", default_value="info", choices=["debug", "info", "warn", "error"],
            description="Log level of the nodes."),
        DeclareLaunchArgument(
            "discovery_range", default_value="LOCALHOST", choices=["LOCALHOST", "SUBNET", "OFF", "SYSTEM_DEFAULT"],
            description="How far ROS discovery reaches (ROS_AUTOMATIC_DISCOVERY_RANGE; ROS_LOCALHOST_ONLY on "
                        "Humble): LOCALHOST keeps the replay on this machine."),
    ]

    ros_args = ["--log-level", log_level]
    nodes = GroupAction([
        PushROSNamespace(namespace),
        Node(
            package="nora_ros", executable="policy_node", name="policy_node", output="screen",
            parameters=[params_file, {"model": ParameterValue(model, value_type=str),
                                      "compressed_image": ParameterValue(compressed_image, value_type=bool),
                                      "use_sim_time": True}],
            ros_arguments=ros_args,
        ),
        Node(
            package="nora_ros", executable="safety_node", name="safety_node", output="screen",
            parameters=[params_file, {
                "robot_model": ParameterValue(robot_model, value_type=str),
                "robot_name": ParameterValue(robot_name, value_type=str),
                # Reads the recorded joint states and never commands: nothing can move.
                "arm_backend": "topic",
                "joint_states_topic": ParameterValue(joint_states_topic, value_type=str),
                "dry_run": True,
                "guard.enabled": False,
                "use_sim_time": True,
            }],
            ros_arguments=ros_args,
        ),
    ])

    play = ExecuteProcess(
        cmd=[
            "ros2", "bag", "play", bag, "--clock", "--rate", rate,
            "--topics",
            PathJoinSubstitution(["/", namespace, "camera", "image_raw"]),
            PathJoinSubstitution(["/", namespace, "camera", "image_raw", "compressed"]),
            PathJoinSubstitution(["/", namespace, "camera", "camera_info"]),
            PathJoinSubstitution(["/", namespace, "trial", "status"]),
            PathJoinSubstitution(["/", namespace, "sim", "ground_truth"]),
            joint_states_topic,
        ],
        output="screen",
        condition=IfCondition(PythonExpression(["'", bag, "' != ''"])),
    )

    return LaunchDescription(arguments + [OpaqueFunction(function=_graph), nodes, play])
