"""The ROS parameters of every node, without ROS: names, defaults, descriptions, ranges.

One default per parameter, in one place: parameters that configure a core component take
their default (and, where the component documents its fields with attribute docstrings, their
description) from that component's frozen config dataclass (:class:`SafetyConfig`,
:class:`SupervisorConfig`, :class:`SchedulerConfig`, :class:`NoraConfig`); the nodes' own
parameters are defined here. The nodes declare each :class:`ParamSpec` with a
``ParameterDescriptor`` (description, range, read-only), read the values once into the
node's frozen config, and validate live changes with :meth:`ParamSpec.check`. The YAML files
in ``config/`` may omit any parameter to take this default; the tests check that every key
they set is declared here, with the right type.

ROS parameters cannot be ``None``: an optional string is ``""`` and an optional integer ``0``
when it means "automatic / none" (said in each description).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nora_ros.errors import ConfigurationError

ParamValue = bool | int | float | str | tuple[float, ...] | tuple[str, ...]

TYPES = ("bool", "int", "float", "str", "float_array", "str_array")


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter.

    ``type`` is one of :data:`TYPES`; ``minimum``/``maximum`` bound numbers (inclusive);
    ``choices`` restricts strings; ``read_only`` parameters are fixed at start (changing them
    needs a restart: the model, the arm backend). ``none_value`` is the value that stands for
    the component's ``None`` (see the module docstring).
    """

    name: str
    default: ParamValue
    description: str
    type: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False
    none_value: ParamValue | None = None

    def __post_init__(self) -> None:
        if not self.type:
            object.__setattr__(self, "type", _infer_type(self.default, self.name))
        if self.type not in TYPES:
            raise ConfigurationError(f"parameter {self.name}: type must be one of {TYPES}, got {self.type}")
        if isinstance(self.default, list):
            object.__setattr__(self, "default", tuple(self.default))
        if not self.description.strip():
            raise ConfigurationError(f"parameter {self.name} needs a description")
        self.check(self.default)

    def check(self, value: Any) -> ParamValue:
        """The value, validated and in its canonical Python type; raises :class:`ConfigurationError`
        saying what is wrong and what is allowed."""
        name = self.name
        if self.type == "bool":
            if not isinstance(value, bool):
                raise ConfigurationError(f"parameter {name} must be true or false, got {value!r}")
            return value
        if self.type in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigurationError(f"parameter {name} must be a number, got {value!r}")
            if self.type == "int" and int(value) != value:
                raise ConfigurationError(f"parameter {name} must be a whole number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigurationError(f"parameter {name} must be finite, got {value!r}")
            if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
                raise ConfigurationError(f"parameter {name} = {value} is outside [{self.minimum}, {self.maximum}]")
            return int(value) if self.type == "int" else float(value)
        if self.type == "str":
            if not isinstance(value, str):
                raise ConfigurationError(f"parameter {name} must be a string, got {value!r}")
            if self.choices and value not in self.choices:
                raise ConfigurationError(f"parameter {name} must be one of {list(self.choices)}, got '{value}'")
            return value
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ConfigurationError(f"parameter {name} must be a list, got {value!r}")
        items = tuple(value)
        if self.type == "str_array":
            if not all(isinstance(v, str) for v in items):
                raise ConfigurationError(f"parameter {name} must be a list of strings, got {value!r}")
            return items
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in items):
            raise ConfigurationError(f"parameter {name} must be a list of finite numbers, got {value!r}")
        if isinstance(self.default, tuple) and self.default and len(items) != len(self.default):
            raise ConfigurationError(f"parameter {name} must have {len(self.default)} values, got {len(items)}")
        return tuple(float(v) for v in items)

    def to_component(self, value: ParamValue) -> Any:
        """The value for the component's config (``none_value`` becomes ``None``)."""
        if self.none_value is not None and value == self.none_value:
            return None
        return value


def _infer_type(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
        return "str_array"
    if isinstance(value, (tuple, list)) and value:
        return "float_array"
    raise ConfigurationError(f"parameter {name}: cannot tell the type of default {value!r}")


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string right after a field) of a dataclass, read from its source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    out: dict[str, str] = {}
    for prev, node in zip(body, body[1:], strict=False):
        if (isinstance(prev, ast.AnnAssign) and isinstance(prev.target, ast.Name)
                and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            out[prev.target.id] = " ".join(node.value.value.split())
    return out


def dataclass_params(
    cls: type,
    *,
    prefix: str = "",
    descriptions: Mapping[str, str] | None = None,
    ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
    read_only: Iterable[str] = (),
    skip: Iterable[str] = (),
) -> tuple[ParamSpec, ...]:
    """Parameters for the fields of a config dataclass, with the dataclass's defaults.

    Descriptions come from ``descriptions`` or the fields' attribute docstrings. A field whose
    default is ``None`` becomes ``""`` (strings) or ``0`` (integers), said in its description.
    """
    docs = {**_attribute_docstrings(cls), **(descriptions or {})}
    ranges, choices = ranges or {}, choices or {}
    read_only, skip = set(read_only), set(skip)
    specs = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default
        if default is dataclasses.MISSING:
            raise ConfigurationError(f"{cls.__name__}.{f.name} has no default to declare")
        annotation = str(f.type)
        none_value = None
        if default is None:
            if "int" in annotation:
                default, none_value, note = 0, 0, " (0: none / automatic)"
            else:
                default, none_value, note = "", "", " (empty: automatic)"
        else:
            note = ""
        lo, hi = ranges.get(f.name, (None, None))
        # A field added to the dataclass later still becomes a parameter (never a node that cannot
        # start); its description then points at the dataclass's documentation.
        description = docs.get(f.name) or f"{cls.__name__}.{f.name}: see {cls.__module__}.{cls.__name__}"
        specs.append(ParamSpec(
            name=prefix + f.name,
            default=tuple(default) if isinstance(default, (list, tuple)) else default,
            description=description + note,
            type="float_array" if "tuple[float" in annotation else "",
            minimum=lo, maximum=hi,
            choices=tuple(choices.get(f.name, ())),
            read_only=f.name in read_only,
            none_value=none_value,
        ))
    return tuple(specs)


def values_for(specs: Sequence[ParamSpec], values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The component-config keyword arguments for the specs under ``prefix`` (prefix removed)."""
    out = {}
    for spec in specs:
        if spec.name.startswith(prefix) and spec.name in values:
            out[spec.name[len(prefix):]] = spec.to_component(spec.check(values[spec.name]))
    return out


# --------------------------------------------------------------------------- the nodes


CAMERA_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("source", "device:0", "Frame source: device:N or /dev/videoN (an OpenCV camera), video:PATH "
              "(a video file), folder:PATH (images in name order).", read_only=True),
    ParamSpec("frame_id", "camera", "frame_id of the published images and camera info.", read_only=True),
    ParamSpec("fps", 15.0, "Frames per second read and published (Hz); for files, the playback rate.",
              minimum=0.5, maximum=120.0, read_only=True),
    ParamSpec("width", 0, "Image width requested from a device (pixels; 0: the driver's default).",
              minimum=0, maximum=8192, read_only=True),
    ParamSpec("height", 0, "Image height requested from a device (pixels; 0: the driver's default).",
              minimum=0, maximum=8192, read_only=True),
    ParamSpec("loop", True, "Video file and image folder sources start over at the end.", read_only=True),
    ParamSpec("reconnect_interval", 1.0, "Seconds between attempts to reopen a device that dropped.",
              minimum=0.1, maximum=60.0),
    ParamSpec("jpeg_quality", 0, "Also publish camera/image_raw/compressed (JPEG at this quality) for a policy "
              "node on another computer across a slow link; 0: raw images only.", minimum=0, maximum=100,
              read_only=True),
)


@functools.cache
def policy_params() -> tuple[ParamSpec, ...]:
    """The policy node's parameters (defaults of the runner's LoopConfig and of NoraConfig)."""
    from nora_ros.control.policy_loop import LoopConfig
    from nora_ros.policy.nora.config import NoraConfig

    own = (
        ParamSpec("base_frame", "base_link", "frame_id of the published cmd and action_chunk (the arm's base "
                  "frame, e.g. wx250s/base_link).", read_only=True),
        ParamSpec("compressed_image", False, "Subscribe to camera/image_raw/compressed (sensor_msgs/"
                  "CompressedImage) instead of camera/image_raw: for a policy on a GPU workstation "
                  "across a slow link.", read_only=True),
    )
    loop = dataclass_params(
        LoopConfig,
        descriptions={
            "control_rate_hz": "Rate of the control timer that publishes cmd (Hz): each action's delta / "
                               "step_period, held over the ticks of its step; zero velocity when nothing is due. "
                               "Match the safety node's safety.tick_period.",
            "max_image_age": "Seconds: a camera frame older than this (by its header stamp) is not given to the "
                             "policy; the arm holds until a fresh one arrives.",
            "execute_steps": "Actions of each chunk executed before the next observation is used (1: replan "
                             "every step, NORA's WidowX setting; up to the chunk length).",
            "max_chunk_age": "Seconds: a chunk whose camera frame is older than this when it would start is "
                             "dropped. Must exceed the inference latency.",
            "max_policy_failures": "Failed inferences in a row (decode errors, crashes) after which the trial "
                                   "ends as a fault (published on trial/fault).",
        },
        ranges={"control_rate_hz": (1.0, 100.0), "max_image_age": (0.01, 10.0), "execute_steps": (1, 64),
                "max_chunk_age": (0.01, 30.0), "max_policy_failures": (1, 1000)},
        read_only=["control_rate_hz"],
        skip=["camera_rate_hz"],
    )
    nora = dataclass_params(
        NoraConfig,
        descriptions={
            "model": "Checkpoint: a local folder or hub ID (declare-lab/nora, declare-lab/nora-long, fine-tuned "
                     "ones); replay:EPISODE.npz replays a recorded episode's actions; scripted runs the "
                     "simulator's scripted expert on the sim node's ground truth (sim.launch.py only).",
            "variant": "nora (1 action per chunk) or nora-long (5 actions per chunk).",
            "unnorm_key": "Statistics entry that unnormalizes actions (bridge_orig, the LIBERO suites).",
            "norm_stats": "Statistics file to use instead of the checkpoint's norm_stats.json",
            "fast_tokenizer": "FAST+ table (folder, tokenizer.json or hub ID) instead of the checkpoint's",
            "device": "cpu, cuda or cuda:N",
            "dtype": "bfloat16, float16 or float32; automatic is bfloat16 on a GPU, float32 on a CPU",
            "attention": "sdpa, eager or flash_attention_2",
            "lowercase_instruction": "Lower-case instructions, as NORA's training data was.",
            "max_instruction_chars": "Longest instruction accepted; longer ones are rejected, not cut.",
            "jpeg_quality": "JPEG round trip at this quality before resizing, as in training",
            "step_period": "Seconds each action takes (Bridge: 0.2, NORA ran at 5 Hz).",
        },
        ranges={"max_instruction_chars": (1, 4096), "jpeg_quality": (0, 100), "step_period": (0.01, 5.0)},
        choices={"variant": ("nora", "nora-long"), "dtype": ("", "bfloat16", "float16", "float32"),
                 "attention": ("", "sdpa", "eager", "flash_attention_2")},
        read_only=[f.name for f in dataclasses.fields(NoraConfig)],
    )
    return own + loop + nora


@functools.cache
def safety_params() -> tuple[ParamSpec, ...]:
    """The safety node's parameters; limits are ``safety.<SafetyConfig field>``."""
    from nora_ros.safety.config import SafetyConfig

    own = (
        ParamSpec("robot_model", "wx250s", "Arm model (kinematics and joint limits).", choices=("wx250s", "wx250"),
                  read_only=True),
        ParamSpec("robot_name", "", "Namespace of the Interbotix xs driver (/<robot_name>/joint_states ...); "
                  "empty: robot_model.", read_only=True),
        ParamSpec("arm_backend", "interbotix", "Which arm the node commands: interbotix (the xs driver's topics "
                  "and services), topic (joint commands on joint_command_topic, e.g. the sim node), kinematic "
                  "(an in-process kinematic simulation).", choices=("interbotix", "topic", "kinematic"),
                  read_only=True),
        ParamSpec("dry_run", False, "Never move the arm: everything is computed and published, and "
                  "safety/enable cannot turn actuation on.", read_only=True),
        ParamSpec("base_frame", "", "frame_id of cmd_safe and safety/status; empty: <robot_name>/base_link.",
                  read_only=True),
        ParamSpec("joint_states_topic", "joint_states", "topic backend: sensor_msgs/JointState of the arm "
                  "(relative names are under the node's namespace).", read_only=True),
        ParamSpec("joint_command_topic", "sim/joint_command", "topic backend: trajectory_msgs/JointTrajectory "
                  "joint targets are published here.", read_only=True),
        ParamSpec("gripper_command_topic", "sim/gripper_command", "topic backend: std_msgs/Float64 gripper "
                  "commands (1 open, 0 closed) are published here.", read_only=True),
        ParamSpec("driver_timeout", 30.0, "interbotix backend: seconds to wait at start for the xs driver's services "
                  "(it takes several seconds to come up, longer when it writes the motor configs).", minimum=1.0,
                  maximum=600.0, read_only=True),
        ParamSpec("start_duration", 3.0, "Seconds the move to a trial's start pose takes.", minimum=0.5,
                  maximum=30.0),
        ParamSpec("start_tolerance", 0.02, "rad: every joint within this of the start pose counts as arrived.",
                  minimum=0.001, maximum=0.5),
    )
    limits = dataclass_params(SafetyConfig, prefix="safety.", read_only=["tick_period"])
    return own + limits


@functools.cache
def supervisor_params() -> tuple[ParamSpec, ...]:
    """The supervisor node's parameters (SupervisorConfig's defaults)."""
    from nora_ros.trials.supervisor import SupervisorConfig

    own = (
        ParamSpec("results_file", "nora_results.jsonl", "JSONL file one line per finished trial is appended to "
                  "(flushed and fsynced; numbering continues from it).", read_only=True),
        ParamSpec("model_id", "", "Model the trials evaluate: the column of the results table.", read_only=True),
        ParamSpec("checkpoint", "", "Path or hub ID of the weights, stored with each result.", read_only=True),
        ParamSpec("tick_rate_hz", 10.0, "Rate of the timer that checks the reset timeout and the time limit (Hz).",
                  minimum=1.0, maximum=100.0, read_only=True),
        ParamSpec("safety_timeout_s", 1.0, "Seconds without a safety/status message (the safety node publishes "
                  "one per control tick) after which a trial that is resetting or running ends as a fault: the "
                  "safety node is down, nothing commands the arm; 0: never.", minimum=0.0, maximum=60.0,
                  read_only=True),
    )
    config = dataclass_params(
        SupervisorConfig,
        descriptions={
            "max_steps": "Policy steps before the trial stops for scoring (the NORA reference runs 200).",
            "time_limit_s": "Seconds of RUNNING before the trial stops for scoring.",
            "reset_timeout_s": "Seconds to reach the start pose before the trial aborts.",
            "on_busy": "A new instruction while a trial is active: reject, or queue it.",
            "max_queue": "Instructions that may wait (on_busy: queue).",
            "max_instruction_chars": "Longest instruction accepted.",
            "start_pose": "Bridge state [x, y, z, roll, pitch, yaw] (m, rad, base frame; zero angles: gripper "
                          "pointing down) the arm goes to before each trial; empty: the arm's home pose.",
        },
        ranges={"max_steps": (1, 100000), "time_limit_s": (0.1, 86400.0), "reset_timeout_s": (0.1, 600.0),
                "max_queue": (1, 1000), "max_instruction_chars": (1, 4096)},
        choices={"on_busy": ("reject", "queue")},
    )
    return own + config


SIM_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("task", "carrot_in_pot", "Simulated task: scene objects and success check (nora_ros.sim.tasks).",
              read_only=True),
    ParamSpec("seed", 0, "Seed of the object layout; trial N is laid out from seed + N.", minimum=0,
              maximum=2**31 - 1, read_only=True),
    ParamSpec("physics_rate_hz", 50.0, "Rate of the timer that advances the physics by 1 / rate seconds (Hz).",
              minimum=5.0, maximum=1000.0, read_only=True),
    ParamSpec("camera_rate_hz", 5.0, "Rendered camera images per second (480x640 on the CPU; Hz).",
              minimum=0.5, maximum=60.0, read_only=True),
    ParamSpec("joint_state_rate_hz", 30.0, "joint_states messages per second (the xs driver publishes ~30 Hz).",
              minimum=1.0, maximum=500.0, read_only=True),
    ParamSpec("frame_id", "camera", "frame_id of the rendered images.", read_only=True),
    ParamSpec("auto_score", True, "Score each trial from the physics state when it awaits a score "
              "(publishes success or failure on trial/score)."),
)


def node_params(node: str) -> tuple[ParamSpec, ...]:
    """The parameters of ``node`` (camera_node, policy_node, safety_node, supervisor_node, sim_node)."""
    table = {
        "camera_node": lambda: CAMERA_PARAMS,
        "policy_node": policy_params,
        "safety_node": safety_params,
        "supervisor_node": supervisor_params,
        "sim_node": lambda: SIM_PARAMS,
    }
    if node not in table:
        raise ConfigurationError(f"unknown node '{node}'; known: {sorted(table)}")
    return table[node]()


NODES = ("camera_node", "policy_node", "safety_node", "supervisor_node", "sim_node")


def check_values(specs: Sequence[ParamSpec], values: Mapping[str, Any]) -> dict[str, ParamValue]:
    """Every spec's value from ``values`` (default where absent), validated; unknown names are errors."""
    by_name = {s.name: s for s in specs}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        import difflib

        hints = [k + (f" (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, by_name, n=1)) else "")
                 for k in unknown]
        raise ConfigurationError(f"unknown parameter(s): {', '.join(hints)}")
    return {name: spec.check(values.get(name, spec.default)) for name, spec in by_name.items()}


# --------------------------------------------------------------------------- YAML


def _yaml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid YAML string
    return repr(value)


def render_yaml(overrides: Mapping[str, Mapping[str, Any]], header: str) -> str:
    """A ROS 2 parameter file documenting every parameter of every node in ``overrides``.

    Each node's parameters are listed with their description; those in ``overrides[node]`` are
    set, the others appear commented out with the code default (the file omits them, so the
    default stays in one place). Nodes are keyed ``/**/<node>`` so the file applies in any
    namespace. ``safety.x`` parameters are nested under ``safety:``.
    """
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    for node, values in overrides.items():
        specs = node_params(node)
        check_values(specs, values)
        lines += ["", f"/**/{node}:", "  ros__parameters:"]
        group = ""
        for spec in specs:
            prefix, _, leaf = spec.name.rpartition(".")
            if prefix != group:
                if prefix:
                    lines.append(f"    {prefix}:")
                group = prefix
            indent = "      " if prefix else "    "
            for chunk in textwrap.wrap(_spec_text(spec), width=100 - len(indent) - 2):
                lines.append(f"{indent}# {chunk}")
            if spec.name in values:
                lines.append(f"{indent}{leaf}: {_yaml_value(spec.check(values[spec.name]))}")
            else:
                lines.append(f"{indent}# {leaf}: {_yaml_value(spec.default)}  (code default)")
    return "\n".join(lines) + "\n"


def _spec_text(spec: ParamSpec) -> str:
    """The description with the range, choices and "fixed at start" (the YAML comment, README's cell)."""
    extra = []
    if spec.minimum is not None or spec.maximum is not None:
        extra.append(f"range [{spec.minimum}, {spec.maximum}]")
    if spec.choices:
        extra.append("one of " + ", ".join(repr(c) for c in spec.choices))
    if spec.read_only:
        extra.append("fixed at start")
    return spec.description + (f" ({'; '.join(extra)})" if extra else "")


README_BEGIN = "<!-- parameters: generated by python -m nora_ros.interface.node_params --readme README.md -->"
README_END = "<!-- parameters: end -->"


def render_markdown(nodes: Iterable[str] = NODES) -> str:
    """Markdown tables of every parameter of ``nodes`` (README's parameter reference).

    Generated from the same specs the nodes declare, so the README cannot drift from the code:
    a test compares README's section with this rendering.
    """
    out: list[str] = []
    for node in nodes:
        out += [f"**{node}**", "", "| parameter | default | meaning |", "|---|---|---|"]
        for spec in node_params(node):
            text = _spec_text(spec).replace("|", "/")
            out.append(f"| `{spec.name}` | `{_yaml_value(spec.default)}` | {text} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def update_readme(text: str) -> str:
    """``text`` with the part between :data:`README_BEGIN` and :data:`README_END` regenerated."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ConfigurationError(f"README has no parameter section: add the lines {README_BEGIN!r} and {README_END!r}")
    return text[: begin + len(README_BEGIN)] + "\n\n" + render_markdown() + "\n" + text[end:]


def read_yaml(text: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The header comment and the values a parameter file sets, per node (``safety.x`` flattened)."""
    import yaml

    header_lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header_lines.append(line[1:].strip())
    data = yaml.safe_load(text) or {}
    overrides: dict[str, dict[str, Any]] = {}
    for key, section in data.items():
        node = str(key).rsplit("/", 1)[-1]
        if node not in NODES:
            raise ConfigurationError(f"parameter file section '{key}' names no node of ours; known: {NODES}")
        params = (section or {}).get("ros__parameters")
        if not isinstance(params, dict):
            raise ConfigurationError(f"parameter file section '{key}' has no ros__parameters mapping")
        flat: dict[str, Any] = {}

        def walk(prefix: str, mapping: Mapping[str, Any], flat: dict[str, Any] = flat) -> None:
            for k, v in mapping.items():
                if isinstance(v, dict):
                    walk(f"{prefix}{k}.", v)
                else:
                    flat[f"{prefix}{k}"] = v

        walk("", params)
        overrides[node] = flat
    return "\n".join(header_lines), overrides


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nora_ros.interface.node_params FILE...``: rewrite parameter files in place so they list
    every parameter (after a config dataclass gained or changed one), keeping their values.
    ``--readme README.md`` regenerates README's parameter tables instead."""
    import pathlib
    import sys

    files = list(sys.argv[1:] if argv is None else argv)
    if files[:1] == ["--readme"] and len(files) == 2:
        path = pathlib.Path(files[1])
        path.write_text(update_readme(path.read_text()))
        print(f"{path}: parameter tables of {', '.join(NODES)} regenerated")
        return 0
    if not files or files[0].startswith("-"):
        print("usage: python -m nora_ros.interface.node_params config/widowx.yaml config/sim.yaml\n"
              "       python -m nora_ros.interface.node_params --readme README.md", file=sys.stderr)
        return 2
    for name in files:
        path = pathlib.Path(name)
        header, overrides = read_yaml(path.read_text())
        path.write_text(render_yaml(overrides, header))
        print(f"{path}: {sum(len(v) for v in overrides.values())} values set, "
              f"{sum(len(node_params(n)) for n in overrides)} parameters listed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
