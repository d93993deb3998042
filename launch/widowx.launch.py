"""Bring up NORA on a WidowX: camera, policy, safety and supervisor nodes, and the xs driver.

    ros2 launch nora_ros widowx.launch.py robot_model:=wx250s camera_source:=device:0

Every node reads its parameters from one YAML keyed by node name (params_file, default
config/widowx.yaml); the arguments below override the few that change per session. Types are
converted here (ParameterValue), not in the nodes. Interbotix's xsarm_control.launch.py is
included unless driver:=false (when the driver already runs); use_sim:=true runs Interbotix's
own simulated driver (xs_sdk_sim) instead of the motors, with the same topics and services.

Who can reach the arm: discovery_range (LOCALHOST by default) and static_peers bound the graph;
a policy on a GPU workstation needs SUBNET or the workstation as a static peer, and a warning
says so at start when that happens on ROS_DOMAIN_ID 0. secure:=true keystore:=PATH runs every
node in its SROS2 enclave (/nora/camera, /nora/policy, /nora/safety, /nora/supervisor; the xs
driver in /nora/driver) with permissions enforced: make it with nora-ros security init PATH.
"""

import os

from launch.actions import (
    DeclareLaunchArgument,
    GroupAction,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

try:  # Jazzy renamed it; Humble has only the old name
    from launch_ros.actions import PushROSNamespace
except ImportError:  # pragma: no cover - depends on the ROS distribution
    from launch_ros.actions import PushRosNamespace as PushROSNamespace


def _graph(context):
    """Discovery scope and SROS2 for the nodes started after this (nora_ros.security.launch_env)."""
    from nora_ros.security.launch_env import graph_setup

    started = {"camera": LaunchConfiguration("camera").perform(context),
               "policy": LaunchConfiguration("policy").perform(context),
               "driver": LaunchConfiguration("driver").perform(context),
               "console": LaunchConfiguration("console").perform(context)}
    roles = ["safety", "supervisor"] + [r for r, on in started.items() if on == "true"]
    setup = graph_setup(discovery_range=LaunchConfiguration("discovery_range").perform(context),
                        static_peers=LaunchConfiguration("static_peers").perform(context),
                        secure=LaunchConfiguration("secure").perform(context),
                        keystore=LaunchConfiguration("keystore").perform(context), roles=roles, environ=os.environ)
    return [SetEnvironmentVariable(k, v) for k, v in setup.env.items()] + [LogInfo(msg=n) for n in setup.notes]


def generate_launch_description():
    robot_model = LaunchConfiguration("robot_model")
    robot_name = LaunchConfiguration("robot_name")
    use_sim = LaunchConfiguration("use_sim")
    driver = LaunchConfiguration("driver")
    use_rviz = LaunchConfiguration("use_rviz")
    camera = LaunchConfiguration("camera")
    camera_source = LaunchConfiguration("camera_source")
    jpeg_quality = LaunchConfiguration("jpeg_quality")
    policy = LaunchConfiguration("policy")
    image_topic = LaunchConfiguration("image_topic")
    model = LaunchConfiguration("model")
    variant = LaunchConfiguration("variant")
    action_head = LaunchConfiguration("action_head")
    execution_mode = LaunchConfiguration("execution_mode")
    dry_run = LaunchConfiguration("dry_run")
    params_file = LaunchConfiguration("params_file")
    results_file = LaunchConfiguration("results_file")
    namespace = LaunchConfiguration("namespace")
    log_level = LaunchConfiguration("log_level")
    console = LaunchConfiguration("console")
    console_port = LaunchConfiguration("console_port")
    eval_plan = LaunchConfiguration("eval_plan")
    secure = LaunchConfiguration("secure")

    arguments = [
        DeclareLaunchArgument(
            "robot_model", default_value="wx250s", choices=["wx250s", "wx250"],
            description="Interbotix arm model: wx250s (6 joints) or wx250 (5 joints)."),
        DeclareLaunchArgument(
            "robot_name", default_value=robot_model,
            description="Namespace of the xs driver (its topics are /<robot_name>/...); defaults to robot_model."),
        DeclareLaunchArgument(
            "use_sim", default_value="false", choices=["true", "false"],
            description="true: Interbotix's simulated driver (xs_sdk_sim) instead of the motors; same topics."),
        DeclareLaunchArgument(
            "driver", default_value="true", choices=["true", "false"],
            description="true: include interbotix_xsarm_control's xsarm_control.launch.py; "
                        "false: the driver is already running."),
        DeclareLaunchArgument(
            "use_rviz", default_value="false", choices=["true", "false"],
            description="Passed to xsarm_control.launch.py: show the arm in RViz."),
        DeclareLaunchArgument(
            "camera", default_value="true", choices=["true", "false"],
            description="true: run our camera_node; false: another driver publishes the image (see image_topic)."),
        DeclareLaunchArgument(
            "camera_source", default_value="device:0",
            description="camera_node source: device:N or /dev/videoN (a camera), video:PATH, folder:PATH."),
        DeclareLaunchArgument(
            "jpeg_quality", default_value="0",
            description="camera_node also publishes camera/image_raw/compressed at this JPEG quality (1-100) for "
                        "a policy node on another computer; 0: raw images only."),
        DeclareLaunchArgument(
            "policy", default_value="true", choices=["true", "false"],
            description="true: run the policy node here; false: it runs elsewhere (a GPU workstation on the same "
                        "ROS_DOMAIN_ID)."),
        DeclareLaunchArgument(
            "image_topic", default_value="camera/image_raw",
            description="Image topic the policy reads (relative names are under the namespace); "
                        "point it at another driver's topic when camera:=false. With the policy's "
                        "compressed_image, it reads <image_topic>/compressed (image_transport's name)."),
        DeclareLaunchArgument(
            "model", default_value="declare-lab/nora",
            description="Policy checkpoint: a local folder or hub ID (declare-lab/nora, declare-lab/nora-long, "
                        "fine-tuned ones), or replay:EPISODE.npz to replay a recorded episode."),
        DeclareLaunchArgument(
            "variant", default_value="auto", choices=["auto", "nora", "nora-long", "nora-1.5"],
            description="NORA variant: auto (the checkpoint's own where it is known), nora (1 action per chunk), "
                        "nora-long (5) or nora-1.5 (5, flow-matching action expert); one that contradicts the "
                        "checkpoint is refused."),
        DeclareLaunchArgument(
            "action_head", default_value="flow", choices=["flow", "fast"],
            description="NORA-1.5 only: flow (the action expert) or fast (FAST+ tokens from the same VLM)."),
        DeclareLaunchArgument(
            "execution_mode", default_value="hold", choices=["hold", "interpolate", "ensemble", "blend", "rtc"],
            description="How chunks become per-tick commands (README: Chunk execution): hold, interpolate, "
                        "ensemble, blend, or rtc (NORA-1.5's flow head only)."),
        DeclareLaunchArgument(
            "dry_run", default_value="false", choices=["true", "false"],
            description="true: the safety node computes and reports everything but never moves the arm "
                        "(safety/enable cannot turn actuation on)."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("nora_ros"), "config", "widowx.yaml"]),
            description="YAML with every node's parameters, keyed by node name."),
        DeclareLaunchArgument(
            "results_file", default_value="nora_results.jsonl",
            description="JSONL file the supervisor appends one line per finished trial to (numbering continues)."),
        DeclareLaunchArgument(
            "namespace", default_value="nora",
            description="Namespace of the NORA nodes and topics (/nora/instruction, /nora/cmd, ...)."),
        DeclareLaunchArgument(
            "console", default_value="true", choices=["true", "false"],
            description="Start the operator web console (console_node: 127.0.0.1 only unless its host "
                        "parameter says otherwise, then with a token)."),
        DeclareLaunchArgument(
            "console_port", default_value="8080",
            description="TCP port of the operator console (http://127.0.0.1:PORT/)."),
        DeclareLaunchArgument(
            "eval_plan", default_value="",
            description="Evaluation plan YAML for the console (tasks, models, order, blind): Start runs the plan's "
                        "next trial, switching the policy node's model first; resumes from results_file."),
        DeclareLaunchArgument(
            "log_level", default_value="info", choices=["debug", "info", "warn", "error"],
            description="Log level of the NORA nodes."),
        DeclareLaunchArgument(
            "discovery_range", default_value="LOCALHOST", choices=["LOCALHOST", "SUBNET", "OFF", "SYSTEM_DEFAULT"],
            description="How far ROS discovery reaches (ROS_AUTOMATIC_DISCOVERY_RANGE; ROS_LOCALHOST_ONLY on "
                        "Humble): LOCALHOST (this computer only), SUBNET (the local network: a policy on a GPU "
                        "workstation), OFF, SYSTEM_DEFAULT. Operator terminals need the same setting."),
        DeclareLaunchArgument(
            "static_peers", default_value="",
            description="ROS_STATIC_PEERS: hosts reached whatever the range (e.g. the GPU workstation's address, "
                        "with discovery_range:=LOCALHOST), separated by ';'. Jazzy and newer."),
        DeclareLaunchArgument(
            "secure", default_value="false", choices=["true", "false"],
            description="true: SROS2 enforced, each node (and the xs driver) in its /nora/<role> enclave from keystore."),
        DeclareLaunchArgument(
            "keystore", default_value="",
            description="SROS2 keystore for secure:=true (nora-ros security init PATH makes one)."),
    ]

    # The driver's nodes are Interbotix's: no --enclave argument reaches them; rcl's override does.
    driver_enclave = SetEnvironmentVariable("ROS_SECURITY_ENCLAVE_OVERRIDE", "/nora/driver", condition=IfCondition(secure))
    interbotix_driver = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("interbotix_xsarm_control"), "launch", "xsarm_control.launch.py"])
        ),
        launch_arguments={
            "robot_model": robot_model,
            "robot_name": robot_name,
            "use_sim": use_sim,
            "use_rviz": use_rviz,
        }.items(),
        condition=IfCondition(driver),
    )

    ros_args = ["--log-level", log_level]
    nora_nodes = GroupAction([
        PushROSNamespace(namespace),
        Node(
            package="nora_ros", executable="camera_node", name="camera_node", output="screen",
            condition=IfCondition(camera),
            parameters=[params_file, {"source": ParameterValue(camera_source, value_type=str),
                                      "jpeg_quality": ParameterValue(jpeg_quality, value_type=int)}],
            ros_arguments=ros_args + ["--enclave", "/nora/camera"],
        ),
        Node(
            package="nora_ros", executable="policy_node", name="policy_node", output="screen",
            condition=IfCondition(policy),
            parameters=[params_file, {
                "model": ParameterValue(model, value_type=str),
                "variant": ParameterValue(variant, value_type=str),
                "action_head": ParameterValue(action_head, value_type=str),
                "execution_mode": ParameterValue(execution_mode, value_type=str),
            }],
            # A remap matches one whole name: the compressed topic needs its own.
            remappings=[("camera/image_raw", image_topic),
                        ("camera/image_raw/compressed", [image_topic, "/compressed"])],
            ros_arguments=ros_args + ["--enclave", "/nora/policy"],
        ),
        Node(
            package="nora_ros", executable="safety_node", name="safety_node", output="screen",
            parameters=[params_file, {
                "robot_model": ParameterValue(robot_model, value_type=str),
                "robot_name": ParameterValue(robot_name, value_type=str),
                "arm_backend": "interbotix",
                "dry_run": ParameterValue(dry_run, value_type=bool),
            }],
            ros_arguments=ros_args + ["--enclave", "/nora/safety"],
        ),
        Node(
            package="nora_ros", executable="supervisor_node", name="supervisor_node", output="screen",
            parameters=[params_file, {
                "results_file": ParameterValue(results_file, value_type=str),
                "model_id": ParameterValue(model, value_type=str),
            }],
            ros_arguments=ros_args + ["--enclave", "/nora/supervisor"],
        ),
        Node(
            package="nora_ros", executable="console_node", name="console_node", output="screen",
            condition=IfCondition(console),
            parameters=[params_file, {
                "port": ParameterValue(console_port, value_type=int),
                "eval_plan": ParameterValue(eval_plan, value_type=str),
                "results_file": ParameterValue(results_file, value_type=str),
                "model_id": ParameterValue(model, value_type=str),
            }],
            ros_arguments=ros_args + ["--enclave", "/nora/console"],
        ),
    ])

    driver_group = GroupAction([driver_enclave, interbotix_driver], scoped=True)
    return LaunchDescription(arguments + [OpaqueFunction(function=_graph), driver_group, nora_nodes])
