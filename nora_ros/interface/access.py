"""Who may do what on the ROS graph: per topic its publishers and subscribers, per service its
server and callers, by role (one role per node, one SROS2 enclave per role).

Built on the topic table the recorder uses (:mod:`nora_ros.bag.topics`: names, types, QoS), so
three things come from this one table and cannot drift: the SROS2 permission policy
(:mod:`nora_ros.security.policy`, ``config/nora_policy.xml``), the safety node's graph guard
(which publishers it accepts on what it acts on, :mod:`nora_ros.safety.graph_guard`) and README's
access table (:func:`render_markdown`).

Names are relative to the NORA namespace (``nora``) unless they start with ``/``; ``{robot}`` in
a name is the Interbotix driver's namespace (``robot_name``). Hidden endpoints every node makes
by itself (``/rosout``, ``/parameter_events``, its parameter and type-description services) are
not listed here: the policy generator adds them per node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nora_ros.bag import topics as t
from nora_ros.bag.topics import Topic, resolve
from nora_ros.errors import ConfigurationError

ENCLAVE_ROOT = "/nora"
"""Enclaves are ``/nora/<role>``, whatever namespace the nodes run in."""


@dataclass(frozen=True)
class Role:
    """A participant in the graph: one node (``node``) or, for ``operator``, people's terminals
    (any node name). ``enclave`` is its SROS2 enclave; ``launched_by`` names the launch files
    that start it (an enclave the keystore needs for them)."""

    name: str
    node: str
    what: str
    launched_by: tuple[str, ...] = ()

    @property
    def enclave(self) -> str:
        return f"{ENCLAVE_ROOT}/{self.name}"


ROLES: tuple[Role, ...] = (
    Role("camera", "camera_node", "the camera node", ("widowx",)),
    Role("policy", "policy_node", "the policy node (on the robot or a GPU workstation)", ("widowx", "sim")),
    Role("safety", "safety_node", "the safety node, the only one that commands the arm", ("widowx", "sim")),
    Role("supervisor", "supervisor_node", "the trial supervisor", ("widowx", "sim")),
    Role("sim", "sim_node", "the MuJoCo simulator (sim.launch.py only)", ("sim",)),
    Role("console", "console_node", "the operator web console: starts, stops and scores trials, switches "
         "models and e-stops through the same services and topics as an operator's terminal", ("widowx", "sim")),
    Role("driver", "", "Interbotix's xs driver and its helpers (widowx.launch.py)", ("widowx",)),
    Role("operator", "", "people's terminals: ros2 topic/service/param, rosbag2 record", ()),
)
"""Every role. The console node has the operator's grants on the trial, policy-model and safety
services and trial/score (not the instruction topic: it starts trials through trial/start), and
none on anything that moves the arm."""

ROLE_NAMES = tuple(r.name for r in ROLES)
NODE_ROLES = tuple(r.name for r in ROLES if r.node)
"""Roles that are one of our nodes (they get the hidden endpoints of an rclpy node)."""


def role(name: str) -> Role:
    for r in ROLES:
        if r.name == name:
            return r
    raise ConfigurationError(f"unknown role '{name}'; known: {', '.join(ROLE_NAMES)}")


@dataclass(frozen=True)
class TopicAccess:
    topic: Topic
    publishers: tuple[str, ...]
    subscribers: tuple[str, ...]
    acts_on: bool = False
    """The safety node acts on what arrives here (commands, start poses): the graph guard checks
    that only ``publishers`` publish on it."""


@dataclass(frozen=True)
class ServiceAccess:
    name: str
    srvtype: str
    servers: tuple[str, ...]
    clients: tuple[str, ...]
    guarded: bool = False
    """A call from a node that is not an expected client latches a fault (safety/enable, reset)."""


# The operator watches everything (ros2 topic echo, rosbag2 record): a subscriber of every topic.
_WATCH = ("operator",)

SIM_JOINT_COMMAND = Topic("sim/joint_command", "trajectory_msgs/msg/JointTrajectory", t.COMMAND)
SIM_GRIPPER_COMMAND = Topic("sim/gripper_command", "std_msgs/msg/Float64", t.COMMAND)
DIAGNOSTICS = Topic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", t.COMMAND)
TRIAL_SCORE = Topic("trial/score", "std_msgs/msg/String", t.COMMAND)
TRIAL_FAULT = Topic("trial/fault", "std_msgs/msg/String", t.COMMAND)
DRIVER_JOINT_GROUP = Topic("/{robot}/commands/joint_group", "interbotix_xs_msgs/msg/JointGroupCommand", t.COMMAND)
DRIVER_JOINT_SINGLE = Topic("/{robot}/commands/joint_single", "interbotix_xs_msgs/msg/JointSingleCommand", t.COMMAND)
DRIVER_TRAJECTORY = Topic("/{robot}/commands/joint_trajectory", "interbotix_xs_msgs/msg/JointTrajectoryCommand",
                          t.COMMAND)
DRIVER_JOINT_STATES = Topic("/{robot}/joint_states", "sensor_msgs/msg/JointState", t.COMMAND)
DRIVER_COMMANDS = (DRIVER_JOINT_GROUP, DRIVER_JOINT_SINGLE, DRIVER_TRAJECTORY)
"""``/<robot_name>/commands/*``: the xs driver moves the motors on these; only the safety node
publishes them."""

NORA_NODES = ("camera", "policy", "safety", "supervisor", "sim")
_CONSOLE = ("console",)

TOPICS: tuple[TopicAccess, ...] = (
    TopicAccess(t.IMAGE, ("camera", "sim"), ("policy",) + _CONSOLE + _WATCH),
    TopicAccess(t.COMPRESSED, ("camera",), ("policy",) + _WATCH),
    TopicAccess(t.CAMERA_INFO, ("camera", "sim"), _WATCH),
    TopicAccess(t.INSTRUCTION, ("operator",), ("supervisor",) + _WATCH),  # the console uses trial/start
    TopicAccess(t.TRIAL_STATUS, ("supervisor",), ("policy", "safety", "sim") + _CONSOLE + _WATCH, acts_on=True),
    TopicAccess(TRIAL_SCORE, ("operator", "sim") + _CONSOLE, ("supervisor",) + _WATCH),
    TopicAccess(TRIAL_FAULT, ("policy", "safety"), ("supervisor",) + _WATCH),
    TopicAccess(t.TRIAL_RESULT, ("supervisor",), _WATCH),
    TopicAccess(t.ACTION_CHUNK, ("policy",), ("supervisor",) + _CONSOLE + _WATCH),
    TopicAccess(t.CMD, ("policy",), ("safety", "supervisor") + _WATCH, acts_on=True),
    TopicAccess(t.CMD_SAFE, ("safety",), _WATCH),
    TopicAccess(t.SAFETY_STATUS, ("safety",), ("supervisor",) + _CONSOLE + _WATCH),
    TopicAccess(t.JOINT_STATES, ("sim",), ("safety",) + _WATCH),
    TopicAccess(t.GROUND_TRUTH, ("sim",), ("policy",) + _WATCH),
    TopicAccess(SIM_JOINT_COMMAND, ("safety",), ("sim",) + _WATCH, acts_on=True),
    TopicAccess(SIM_GRIPPER_COMMAND, ("safety",), ("sim",) + _WATCH, acts_on=True),
    TopicAccess(DIAGNOSTICS, NORA_NODES, _WATCH),
    TopicAccess(DRIVER_JOINT_GROUP, ("safety",), ("driver",) + _WATCH, acts_on=True),
    TopicAccess(DRIVER_JOINT_SINGLE, ("safety",), ("driver",) + _WATCH, acts_on=True),
    TopicAccess(DRIVER_TRAJECTORY, ("safety",), ("driver",) + _WATCH, acts_on=True),
    TopicAccess(DRIVER_JOINT_STATES, ("driver",), ("safety",) + _WATCH),
)

SERVICES: tuple[ServiceAccess, ...] = (
    ServiceAccess("safety/estop", "std_srvs/srv/Trigger", ("safety",), ("operator",) + _CONSOLE),
    ServiceAccess("safety/reset", "std_srvs/srv/Trigger", ("safety",), ("operator",) + _CONSOLE, guarded=True),
    ServiceAccess("safety/enable", "std_srvs/srv/SetBool", ("safety",), ("operator",) + _CONSOLE, guarded=True),
    ServiceAccess("trial/start", "nora_ros/srv/StartTrial", ("supervisor",), ("operator",) + _CONSOLE),
    ServiceAccess("trial/stop", "std_srvs/srv/Trigger", ("supervisor",), ("operator",) + _CONSOLE),
    ServiceAccess("policy/select_model", "nora_ros/srv/SelectModel", ("policy",), ("operator",) + _CONSOLE),
    ServiceAccess("/{robot}/set_operating_modes", "interbotix_xs_msgs/srv/OperatingModes", ("driver",), ("safety",)),
    ServiceAccess("/{robot}/set_motor_registers", "interbotix_xs_msgs/srv/RegisterValues", ("driver",), ("safety",)),
)

assert {r for a in TOPICS for r in a.publishers + a.subscribers} <= set(ROLE_NAMES)
assert {r for s in SERVICES for r in s.servers + s.clients} <= set(ROLE_NAMES)


def absolute(name: str, namespace: str = t.DEFAULT_NAMESPACE, robot_name: str = "wx250s") -> str:
    """The graph name of a table entry: under ``namespace`` unless absolute, ``{robot}`` filled in."""
    return resolve(namespace, name.replace("{robot}", robot_name.strip("/")))


def publishers_of(name: str) -> tuple[str, ...]:
    """Roles that may publish the (relative or absolute, unresolved) topic ``name``."""
    for a in TOPICS:
        if a.topic.name == name:
            return a.publishers
    raise ConfigurationError(f"topic '{name}' is not in the access table")


def grants(role_name: str) -> dict[str, tuple[str, ...]]:
    """What ``role_name`` may do, by kind: ``publish``, ``subscribe``, ``serve`` (reply) and
    ``call`` (request); names unresolved, as in the table."""
    role(role_name)
    return {
        "publish": tuple(a.topic.name for a in TOPICS if role_name in a.publishers),
        "subscribe": tuple(a.topic.name for a in TOPICS if role_name in a.subscribers),
        "serve": tuple(s.name for s in SERVICES if role_name in s.servers),
        "call": tuple(s.name for s in SERVICES if role_name in s.clients),
    }


def _cell(names: Iterable[str]) -> str:
    return ", ".join(names) or "-"


def render_markdown() -> str:
    """README's access table: every topic and service with who may publish / serve it and who may
    subscribe / call it (roles; the SROS2 policy grants exactly this, each role in its enclave)."""
    lines = ["| topic or service (under `/nora`) | type | publishers / server | subscribers / callers |",
             "|---|---|---|---|"]
    for a in TOPICS:
        name = a.topic.name.replace("{robot}", "<robot_name>")
        guard = " (guarded)" if a.acts_on else ""
        lines.append(f"| `{name}` | {a.topic.msgtype} | {_cell(a.publishers)}{guard} | {_cell(a.subscribers)} |")
    for s in SERVICES:
        name = s.name.replace("{robot}", "<robot_name>")
        guard = " (guarded)" if s.guarded else ""
        lines.append(f"| `{name}` | {s.srvtype} | {_cell(s.servers)} | {_cell(s.clients)}{guard} |")
    return "\n".join(lines) + "\n"


README_BEGIN = "<!-- access: generated by nora-ros security policy --readme README.md -->"
README_END = "<!-- access: end -->"


def update_readme(text: str) -> str:
    """``text`` with the part between :data:`README_BEGIN` and :data:`README_END` regenerated."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ConfigurationError(f"README has no access section: add the lines {README_BEGIN!r} and {README_END!r}")
    return text[: begin + len(README_BEGIN)] + "\n\n" + render_markdown() + "\n" + text[end:]
