"""What every node shell shares: QoS per stream, parameters with descriptors, /diagnostics,
and a ``main`` that shuts down cleanly on Ctrl-C with the arm holding.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions

from nora_ros.diagnostics import DiagnosticReport, Level
from nora_ros.errors import ConfigurationError, NoraError
from nora_ros.interface.convert import diagnostics_to_msg
from nora_ros.interface.params import ParamSpec, check_values

log = logging.getLogger(__name__)

SENSOR, COMMAND, LATCHED, EVENTS, DIAGNOSTICS = "sensor", "command", "latched", "events", "diagnostics"


def qos(kind: str):
    """The QoS of a stream, by what it carries.

    - ``sensor``: camera images: best effort, keep the last few, volatile (a late frame is
      worthless; a best-effort subscriber also accepts any driver's reliable images);
    - ``command``: cmd, cmd_safe, operator topics: reliable, volatile, a short queue;
    - ``latched``: state (trial/status, safety/status): reliable, transient local, depth 1, so
      a node that starts late gets the current state at once;
    - ``events``: trial/result: reliable, transient local, the last 10;
    - ``diagnostics``: /diagnostics as diagnostic_aggregator expects (reliable, depth 10).
    """

    if kind == SENSOR:
        return qos_profile_sensor_data
    reliable = ReliabilityPolicy.RELIABLE
    if kind in (COMMAND, DIAGNOSTICS):
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=reliable,
                          durability=DurabilityPolicy.VOLATILE)
    if kind == LATCHED:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliable,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
    if kind == EVENTS:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=reliable,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
    raise ConfigurationError(f"unknown QoS kind '{kind}'")


def now_seconds(node) -> float:
    """The node's clock (ROS time; sim time under use_sim_time) in seconds."""
    return node.get_clock().now().nanoseconds * 1e-9


# --------------------------------------------------------------------------- parameters


def _descriptor(spec: ParamSpec):

    types = {"bool": ParameterType.PARAMETER_BOOL, "int": ParameterType.PARAMETER_INTEGER,
             "float": ParameterType.PARAMETER_DOUBLE, "str": ParameterType.PARAMETER_STRING,
             "float_array": ParameterType.PARAMETER_DOUBLE_ARRAY, "str_array": ParameterType.PARAMETER_STRING_ARRAY}
    desc = ParameterDescriptor(name=spec.name, type=types[spec.type], description=spec.description,
                               read_only=spec.read_only)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(repr(c) for c in spec.choices)
    if spec.type in ("float", "float_array"):
        # Numbers written without a decimal point (fps: 15) are accepted and checked by the spec.
        desc.dynamic_typing = True
    if spec.type == "str_array" and not spec.default:
        # rclpy types an empty list as a byte array, which a string array would then not override;
        # the spec checks the type instead.
        desc.dynamic_typing = True
    if spec.minimum is not None or spec.maximum is not None:
        if spec.type == "float":
            lo = -sys.float_info.max if spec.minimum is None else float(spec.minimum)
            hi = sys.float_info.max if spec.maximum is None else float(spec.maximum)
            desc.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
        elif spec.type == "int":
            lo = -(2**63) if spec.minimum is None else int(spec.minimum)
            hi = 2**63 - 1 if spec.maximum is None else int(spec.maximum)
            desc.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=1)]
    return desc


def declare_parameters(node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every spec with its descriptor; return the values (YAML / launch overrides applied),
    each checked by its spec. A bad value raises :class:`ConfigurationError` naming it.

    rclpy itself refuses an override outside the descriptor's range or of the wrong static type
    (``-p control_rate_hz:=500.0``, ``-p execute_steps:=2.5``) with its own exceptions, raised
    from ``declare_parameter``; they become a ConfigurationError too, so the node says what to
    fix in one line instead of dying with a traceback."""

    for spec in specs:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        try:
            node.declare_parameter(spec.name, default, _descriptor(spec))
        except ParameterException as exc:
            raise ConfigurationError(f"parameter {spec.name} refused by rclpy: {exc}") from exc
    values = {spec.name: node.get_parameter(spec.name).value for spec in specs}
    values = {k: (list(v) if v is not None and not isinstance(v, (str, bool, int, float)) else v)
              for k, v in values.items()}
    return check_values(specs, {k: v for k, v in values.items() if v is not None})


def on_set_parameters(node, specs: Sequence[ParamSpec], apply: Callable[[dict[str, Any]], None]) -> None:
    """Validate live parameter changes; ``apply(changes)`` may raise to refuse them (the reason
    goes back to ``ros2 param set``). Registered after declaration, so it sees only changes."""

    by_name = {s.name: s for s in specs}

    def callback(params) -> SetParametersResult:
        changes = {}
        try:
            for p in params:
                spec = by_name.get(p.name)
                if spec is None:
                    continue  # use_sim_time and other parameters rclpy owns
                if spec.read_only:
                    raise ConfigurationError(f"{p.name} is fixed at start; restart the node to change it")
                value = p.value
                if value is not None and not isinstance(value, (str, bool, int, float)):
                    value = list(value)
                changes[p.name] = spec.check(value)
            if changes:
                apply(changes)
        except (NoraError, ValueError) as exc:
            node.get_logger().warning(f"parameter change refused: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        if changes:
            node.get_logger().info(f"parameters changed: {changes}")
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(callback)


# --------------------------------------------------------------------------- diagnostics


class DiagnosticsPublisher:
    """Publishes the shell's reports on /diagnostics once a second."""

    def __init__(self, node, reports: Callable[[float], list[DiagnosticReport]], hardware_id: str = "",
                 period: float = 1.0):
        self.node = node
        self.reports = reports
        self.hardware_id = hardware_id
        self.pub = node.create_publisher(DiagnosticArray, "/diagnostics", qos(DIAGNOSTICS))
        self.timer = node.create_timer(period, self._publish)

    def _publish(self) -> None:
        now = now_seconds(self.node)
        try:
            reports = self.reports(now)
        except Exception as exc:  # noqa: BLE001 - a broken report must not stop the node; say so instead

            reports = [DiagnosticReport(f"{self.node.get_name()}: diagnostics", Level.ERROR, f"report failed: {exc}")]
        self.pub.publish(diagnostics_to_msg(DiagnosticArray, DiagnosticStatus, KeyValue, reports, max(now, 0.0),
                                            self.hardware_id))


def report_name(node, part: str) -> str:
    """``"<namespace>/<node>: <part>"``, the name diagnostic tools group by."""
    ns = node.get_namespace().rstrip("/")
    return f"{ns}/{node.get_name()}: {part}"


def period(rate_hz: float) -> float:
    if not (rate_hz > 0 and math.isfinite(rate_hz)):
        raise ConfigurationError(f"rate must be a positive number of Hz, got {rate_hz}")
    return 1.0 / rate_hz


# --------------------------------------------------------------------------- main


class RosLogHandler(logging.Handler):
    """Hands the core's Python log records (``nora_ros.*`` loggers) to a ROS logger.

    Without it a node's core warnings (a policy's clipped chunk, a failed inference, a hold the
    driver refused) reach only stderr through Python's last-resort handler: no severity, no node
    name, not in /rosout nor the ROS log files, and deaf to ``--log-level`` (seen on Jazzy).
    """

    def __init__(self, ros_logger):
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
        except Exception:  # noqa: BLE001 - logging must never take the node down
            self.handleError(record)


def _python_level(ros_logger) -> int:
    """rcutils severities (DEBUG 10 ... FATAL 50) are Python's levels; UNSET (0) means INFO."""
    level = int(ros_logger.get_effective_level())
    return level if level > 0 else logging.INFO


def _propagate_core_loggers() -> None:
    """Let every ``nora_ros.*`` logger hand its records up to the "nora_ros" one. Python's
    default, except where ``launch`` was imported first (launch_testing's pytest plugin does):
    its logger class makes every logger created after it with ``propagate = False``."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("nora_ros.") and isinstance(logger, logging.Logger):
            logger.propagate = True


def _sigterm_as_ctrl_c():
    """Make SIGTERM raise KeyboardInterrupt in the main thread; the previous handler (None where
    signals cannot be set: not the main thread)."""

    def terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, terminate)
    except ValueError:
        return None


def run(make_shell: Callable[[], Any], args: Sequence[str] | None = None) -> int:
    """Create the shell, spin its node, and on Ctrl-C or an external shutdown let the shell
    stop cleanly (``shell.shutdown()``: the arm holds) before the node and context go down.

    rclpy's own signal handler is off so that Ctrl-C reaches us while the context still
    works and the final hold can still be sent. That handler also caught SIGTERM (what launch
    sends when SIGINT was not enough, and systemd, docker stop or kill send): without it the
    process died on the spot, no hold; SIGTERM now takes the Ctrl-C path.
    """

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    previous_sigterm = _sigterm_as_ctrl_c()
    # The core logs with Python's logging: route it to ROS, first under "nora_ros" (the node
    # does not exist yet while a policy loads), then under the node's own logger.
    core_log = logging.getLogger("nora_ros")
    saved = core_log.level, core_log.propagate
    handler = RosLogHandler(get_logger("nora_ros"))
    core_log.addHandler(handler)
    core_log.propagate = False
    core_log.setLevel(_python_level(handler.ros_logger))
    _propagate_core_loggers()
    shell = None
    code = 0
    try:
        shell = make_shell()
        handler.ros_logger = shell.node.get_logger()
        core_log.setLevel(_python_level(handler.ros_logger))
        _propagate_core_loggers()  # the modules the shell imported lazily (the policy's, say)
        rclpy.spin(shell.node, executor=getattr(shell, "executor", None))  # a shell may need threads
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except NoraError as exc:
        # A configuration error at start (bad parameter, missing checkpoint): say what to fix, on
        # stderr (the launch screen) and in the ROS log (/rosout, ~/.ros/log), where it was missing.
        print(f"[nora_ros] {exc}", file=sys.stderr)
        handler.ros_logger.error(f"node not started: {exc}")
        code = 1
    finally:
        if shell is not None:
            try:
                shell.shutdown()
            except Exception as exc:  # noqa: BLE001 - shutting down: report and go on releasing
                print(f"[nora_ros] error while shutting down: {exc}", file=sys.stderr)
            shell.node.destroy_node()
        core_log.removeHandler(handler)
        core_log.setLevel(saved[0])
        core_log.propagate = saved[1]
        rclpy.try_shutdown()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    return code
