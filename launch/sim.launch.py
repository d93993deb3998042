"""NORA closed-loop in the MuJoCo simulator over ROS 2: no robot, no Interbotix packages.

    ros2 launch nora_ros sim.launch.py                            # scripted expert: no GPU needed
    ros2 launch nora_ros sim.launch.py model:=declare-lab/nora    # NORA (a GPU for real time)
    ros2 launch nora_ros sim.launch.py model:=declare-lab/nora-1.5 variant:=nora-1.5 action_head:=flow
    ros2 topic pub --once /nora/instruction std_msgs/msg/String "{data: 'put the carrot in the pot'}"
    (or open the operator console: http://127.0.0.1:8080/ ; console:=false leaves it out)

The sim node owns the MuJoCo world: it publishes camera/image_raw and joint_states and takes
the arm's joint commands on sim/joint_command (trajectory_msgs/JointTrajectory) and the gripper
on sim/gripper_command (std_msgs/Float64). The policy, safety and supervisor nodes run exactly
as on the robot; only the safety node's arm points at the sim node (arm_backend "topic")
instead of the Interbotix driver. The sim node scores each trial from the physics state when
auto_score is on, so an instruction runs a trial that ends with a TrialResult.

Discovery stays on this host unless discovery_range says otherwise; secure:=true keystore:=PATH
runs every node in its SROS2 enclave (/nora/sim, /nora/policy, /nora/safety, /nora/supervisor,
/nora/console)
with permissions enforced (make the keystore with nora-ros security init PATH).
"""

import os

from launch.actions import DeclareLaunchArgument, GroupAction, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
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

    setup = graph_setup(discovery_range=LaunchConfiguration("discovery_range").perform(context),
                        secure=LaunchConfiguration("secure").perform(context),
                        keystore=LaunchConfiguration("keystore").perform(context),
                        roles=("sim", "policy", "safety", "supervisor")
                        + (("console",) if LaunchConfiguration("console").perform(context) == "true" else ()),
                        environ=os.environ)
    return [SetEnvironmentVariable(k, v) for k, v in setup.env.items()] + [LogInfo(msg=n) for n in setup.notes]


def generate_launch_description():
    model = LaunchConfiguration("model")
    variant = LaunchConfiguration("variant")
    action_head = LaunchConfiguration("action_head")
    execution_mode = LaunchConfiguration("execution_mode")
    task = LaunchConfiguration("task")
    seed = LaunchConfiguration("seed")
    dry_run = LaunchConfiguration("dry_run")
    params_file = LaunchConfiguration("params_file")
    results_file = LaunchConfiguration("results_file")
    namespace = LaunchConfiguration("namespace")
    log_level = LaunchConfiguration("log_level")
    console = LaunchConfiguration("console")
    console_port = LaunchConfiguration("console_port")
    eval_plan = LaunchConfiguration("eval_plan")

    arguments = [
        DeclareLaunchArgument(
            "model", default_value="scripted",
            description="Policy: scripted (the sim's scripted expert on ground truth: no GPU, no weights), "
                        "a NORA checkpoint folder or hub ID (declare-lab/nora), or replay:EPISODE.npz."),
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
            "task", default_value="carrot_in_pot",
            description="Simulated task (scene objects and success check), a name from nora_ros.sim.tasks."),
        DeclareLaunchArgument(
            "seed", default_value="0",
            description="Random seed of the object layout; trial N uses seed + N."),
        DeclareLaunchArgument(
            "dry_run", default_value="false", choices=["true", "false"],
            description="true: the safety node computes and reports everything but never moves the simulated arm."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("nora_ros"), "config", "sim.yaml"]),
            description="YAML with every node's parameters, keyed by node name."),
        DeclareLaunchArgument(
            "results_file", default_value="nora_sim_results.jsonl",
            description="JSONL file the supervisor appends one line per finished trial to."),
        DeclareLaunchArgument(
            "namespace", default_value="nora",
            description="Namespace of the nodes and topics (/nora/instruction, /nora/cmd, ...)."),
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
            description="Log level of the nodes."),
        DeclareLaunchArgument(
            "discovery_range", default_value="LOCALHOST", choices=["LOCALHOST", "SUBNET", "OFF", "SYSTEM_DEFAULT"],
            description="How far ROS discovery reaches (ROS_AUTOMATIC_DISCOVERY_RANGE; ROS_LOCALHOST_ONLY on "
                        "Humble): LOCALHOST keeps the simulated robot's graph on this machine."),
        DeclareLaunchArgument(
            "secure", default_value="false", choices=["true", "false"],
            description="true: SROS2 enforced, each node in its /nora/<role> enclave from keystore."),
        DeclareLaunchArgument(
            "keystore", default_value="",
            description="SROS2 keystore for secure:=true (nora-ros security init PATH makes one)."),
    ]

    ros_args = ["--log-level", log_level]
    nodes = GroupAction([
        PushROSNamespace(namespace),
        Node(
            package="nora_ros", executable="sim_node", name="sim_node", output="screen",
            parameters=[params_file, {
                "task": ParameterValue(task, value_type=str),
                "seed": ParameterValue(seed, value_type=int),
            }],
            ros_arguments=ros_args + ["--enclave", "/nora/sim"],
        ),
        Node(
            package="nora_ros", executable="policy_node", name="policy_node", output="screen",
            parameters=[params_file, {
                "model": ParameterValue(model, value_type=str),
                "variant": ParameterValue(variant, value_type=str),
                "action_head": ParameterValue(action_head, value_type=str),
                "execution_mode": ParameterValue(execution_mode, value_type=str),
            }],
            ros_arguments=ros_args + ["--enclave", "/nora/policy"],
        ),
        Node(
            package="nora_ros", executable="safety_node", name="safety_node", output="screen",
            parameters=[params_file, {
                "arm_backend": "topic",
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

    return LaunchDescription(arguments + [OpaqueFunction(function=_graph), nodes])
