"""A stand-in for the ROS 2 client library at the boundary that cannot exist here (no ROS on
this machine), so the node shells' own code runs in tests: what they declare, publish, serve
and compute per callback. It is not ROS: no middleware, no QoS matching, no executor; a test
calls the callbacks and timers itself. Message classes are the rosidl-like stand-ins of
ros_msg_standins (typed setters), so a wrong field type in a shell fails here.

Covers exactly what nora_ros/nodes uses of rclpy, rcl_interfaces, the message and service
packages, and the generated nora_ros.msg; install with :func:`install` (monkeypatch).
"""

from __future__ import annotations

import enum
import math
import types
from dataclasses import dataclass, field

from ros_msg_standins import MSG, SRV, all_specs, build_classes, parse_msg

INTERBOTIX = {
    "interbotix_xs_msgs/JointGroupCommand": "string name\nfloat32[] cmd",
    "interbotix_xs_msgs/JointSingleCommand": "string name\nfloat32 cmd",
    "interbotix_xs_msgs/OperatingModesRequest": ("string cmd_type\nstring name\nstring mode\nstring profile_type\n"
                                                 "int32 profile_velocity\nint32 profile_acceleration"),
    "interbotix_xs_msgs/RegisterValuesRequest": "string cmd_type\nstring name\nstring reg\nint32 value",
}
"""The Interbotix xs driver's messages the arm adapter uses (subsets of interbotix_xs_msgs)."""
_XS = build_classes({**all_specs(), **{k: parse_msg(v, k) for k, v in INTERBOTIX.items()}})

# --------------------------------------------------------------------------- rcl_interfaces


class ParameterType:
    PARAMETER_NOT_SET, PARAMETER_BOOL, PARAMETER_INTEGER, PARAMETER_DOUBLE, PARAMETER_STRING = 0, 1, 2, 3, 4
    PARAMETER_BYTE_ARRAY, PARAMETER_BOOL_ARRAY, PARAMETER_INTEGER_ARRAY = 5, 6, 7
    PARAMETER_DOUBLE_ARRAY, PARAMETER_STRING_ARRAY = 8, 9


@dataclass
class FloatingPointRange:
    from_value: float = 0.0
    to_value: float = 0.0
    step: float = 0.0


@dataclass
class IntegerRange:
    from_value: int = 0
    to_value: int = 0
    step: int = 0


@dataclass
class ParameterDescriptor:
    name: str = ""
    type: int = 0
    description: str = ""
    additional_constraints: str = ""
    read_only: bool = False
    dynamic_typing: bool = False
    floating_point_range: list = field(default_factory=list)
    integer_range: list = field(default_factory=list)


@dataclass
class SetParametersResult:
    successful: bool = False
    reason: str = ""


# --------------------------------------------------------------------------- rclpy


def parameter_type(value) -> int:
    """rclpy's ``Parameter.Type.from_parameter_value``: the ParameterType of a Python value (an
    empty list is a byte array, as in rclpy)."""
    if value is None:
        return ParameterType.PARAMETER_NOT_SET
    for cls, scalar in ((bool, ParameterType.PARAMETER_BOOL), (int, ParameterType.PARAMETER_INTEGER),
                        (float, ParameterType.PARAMETER_DOUBLE), (str, ParameterType.PARAMETER_STRING)):
        if isinstance(value, cls):
            return scalar
    if isinstance(value, (list, tuple)):
        for cls, kind in ((bytes, ParameterType.PARAMETER_BYTE_ARRAY), (bool, ParameterType.PARAMETER_BOOL_ARRAY),
                          (int, ParameterType.PARAMETER_INTEGER_ARRAY), (float, ParameterType.PARAMETER_DOUBLE_ARRAY),
                          (str, ParameterType.PARAMETER_STRING_ARRAY)):
            if all(isinstance(v, cls) for v in value):
                return kind
    raise TypeError(f"the given value is not one of the allowed types: {value!r}")


class Parameter:
    def __init__(self, name, type_=None, value=None):
        self.name = name
        self.value = value
        self.type_ = parameter_type(value)


class ParameterException(Exception):
    """rclpy.exceptions.ParameterException: the base of what rclpy raises for parameters."""

    def __init__(self, error_msg, parameters):
        super().__init__(f"{error_msg}: {parameters}")


class InvalidParameterTypeException(ParameterException):
    """What rclpy's declare_parameter raises for an override of the wrong static type."""

    def __init__(self, parameter, expected_type):
        super().__init__(f"Trying to set parameter '{parameter.name}' to '{parameter.value}' of type "
                         f"'{parameter.type_}', expecting type '{expected_type}'", parameter.name)


class InvalidParameterValueException(ParameterException):
    """What rclpy's declare_parameter raises for an override outside the descriptor's range."""

    def __init__(self, name, value, reason):
        super().__init__(f"Invalid parameter value ({value}) for parameter. Reason: {reason}", name)


@dataclass
class Published:
    topic: str
    msgs: list = field(default_factory=list)

    def publish(self, msg):
        self.msgs.append(msg)

    def get_subscription_count(self):
        return 1


@dataclass
class Timer:
    period: float
    callback: object
    cancelled: bool = False

    def cancel(self):
        self.cancelled = True


class Future:
    """rclpy's Future as the shells use it: done(), result(), add_done_callback()."""

    def __init__(self):
        self._done, self._result, self._callbacks = False, None, []

    def done(self):
        return self._done

    def result(self):
        return self._result

    def set_result(self, value):
        self._done, self._result = True, value
        for cb in self._callbacks:
            cb(self)

    def add_done_callback(self, cb):
        if self._done:
            cb(self)
        else:
            self._callbacks.append(cb)


@dataclass
class Client:
    """A service client whose server is always there. ``respond(request)`` makes the answer
    (default ``None``, as the driver's services were used); with ``hold`` the futures stay pending
    until the test calls :meth:`answer`."""

    srv_type: object
    name: str
    requests: list = field(default_factory=list)
    respond: object = None
    hold: bool = False
    pending: list = field(default_factory=list)
    ready: bool = True

    def wait_for_service(self, timeout_sec=None):
        return self.ready

    def service_is_ready(self):
        return self.ready

    def call_async(self, request):
        self.requests.append(request)
        future = Future()
        if self.hold:
            self.pending.append((request, future))
        else:
            future.set_result(self.respond(request) if self.respond else None)
        return future

    def answer(self):
        """Answer every held request with ``respond``."""
        pending, self.pending = self.pending, []
        for request, future in pending:
            future.set_result(self.respond(request) if self.respond else None)


class Clock:
    t = 1000.0  # seconds; tests move it

    def now(self):
        return types.SimpleNamespace(nanoseconds=int(round(Clock.t * 1e9)))


class Logger:
    def __init__(self):
        self.lines = []

    def _log(self, level, msg, **kw):
        self.lines.append((level, str(msg)))

    def info(self, msg, **kw):
        self._log("info", msg)

    def warning(self, msg, **kw):
        self._log("warning", msg)

    def error(self, msg, **kw):
        self._log("error", msg)

    def debug(self, msg, **kw):
        self._log("debug", msg)

    def get_effective_level(self):
        return 20  # rclpy.logging.LoggingSeverity.INFO


NAMED_LOGGERS: dict[str, Logger] = {}
"""rclpy.logging.get_logger(name): loggers that exist without a node, by name."""


def get_logger(name):
    return NAMED_LOGGERS.setdefault(name, Logger())


GRAPH: list = []
"""Every fake Node created since :func:`install`: the graph their graph queries see (no discovery
lag; a destroyed node leaves it)."""


def _resolve(namespace: str, name: str) -> str:
    return name if name.startswith("/") else f"/{namespace}/{name}".replace("//", "/")


class Node:
    def __init__(self, name, namespace="nora", parameter_overrides=()):
        GRAPH.append(self)
        self.name, self.namespace = name, namespace
        self.overrides = {p.name: p.value for p in parameter_overrides}
        self.params: dict[str, object] = {}
        self.descriptors: dict[str, ParameterDescriptor] = {}
        self.callbacks = []
        self.publishers: dict[str, Published] = {}
        self.subscriptions: dict[str, object] = {}
        self.services: dict[str, object] = {}
        self.clients: dict[str, Client] = {}
        self.timers: list[Timer] = []
        self.logger = Logger()
        self.destroyed = False

    # parameters
    def declare_parameter(self, name, value, descriptor):
        """As rclpy: a statically typed descriptor takes the default's type; an override of
        another type or outside the range raises (the on-set callbacks are not registered yet)."""
        if not descriptor.dynamic_typing:
            descriptor.type = parameter_type(value)
        param = Parameter(name, value=self.overrides.get(name, value))
        reason = _check_descriptor(descriptor, param)
        if reason.startswith("Wrong parameter type"):
            raise InvalidParameterTypeException(param, descriptor.type)
        if reason:
            raise InvalidParameterValueException(name, param.value, reason)
        if descriptor.dynamic_typing:
            descriptor.type = param.type_
        self.params[name], self.descriptors[name] = param.value, descriptor
        return param

    def get_parameter(self, name):
        return Parameter(name, value=self.params[name])

    def add_on_set_parameters_callback(self, cb):
        self.callbacks.append(cb)

    def set_parameters(self, params):
        results = []
        for p in params:
            desc = self.descriptors[p.name]
            if desc.read_only:
                results.append(SetParametersResult(False, f"Trying to set a read-only parameter: {p.name}."))
                continue
            reason = _check_descriptor(desc, p)
            if reason:
                results.append(SetParametersResult(False, reason))
                continue
            result = SetParametersResult(True)
            for cb in self.callbacks:
                result = cb([p])
                if not result.successful:
                    break
            if result.successful:
                self.params[p.name] = p.value
                if desc.dynamic_typing:
                    desc.type = p.type_  # as rclpy: a dynamically typed parameter takes the new type
            results.append(result)
        return results

    # communication
    def create_publisher(self, msg_type, topic, qos):
        pub = self.publishers[topic] = Published(topic)
        pub.msg_type, pub.qos = msg_type, qos
        return pub

    def create_subscription(self, msg_type, topic, callback, qos):
        self.subscriptions[topic] = callback
        return types.SimpleNamespace(topic=topic, qos=qos)

    def create_service(self, srv_type, name, callback, callback_group=None, **_):
        self.services[name] = (srv_type, callback)
        return name

    def create_client(self, srv_type, name, callback_group=None, **_):
        client = Client(srv_type, name)
        self.clients[name] = client
        return client

    def destroy_publisher(self, handle):
        pass

    def destroy_subscription(self, handle):
        pass

    def destroy_client(self, handle):
        pass

    def create_timer(self, period, callback):
        timer = Timer(period, callback)
        self.timers.append(timer)
        return timer

    def get_clock(self):
        return Clock()

    def get_logger(self):
        return self.logger

    def get_name(self):
        return self.name

    def get_namespace(self):
        return "/" + self.namespace.strip("/")

    def destroy_node(self):
        self.destroyed = True

    # the graph (rclpy's queries, over every live fake node)
    def _live(self):
        return [n for n in GRAPH if not n.destroyed]

    def count_publishers(self, topic):
        return len(self.get_publishers_info_by_topic(topic))

    def get_publishers_info_by_topic(self, topic):
        return [types.SimpleNamespace(node_name=n.name, node_namespace=n.get_namespace(), endpoint_gid=[i, len(t)])
                for i, n in enumerate(self._live()) for t in n.publishers if _resolve(n.namespace, t) == topic]

    def count_clients(self, service):
        return sum(_resolve(n.namespace, c) == service for n in self._live() for c in n.clients)

    def get_node_names_and_namespaces(self):
        return [(n.name, n.get_namespace()) for n in self._live()]

    def get_client_names_and_types_by_node(self, name, namespace):
        (node,) = [n for n in self._live() if n.name == name and n.get_namespace() == namespace]
        return [(_resolve(node.namespace, c), ["std_srvs/srv/SetBool"]) for c in node.clients]

    # helpers for tests
    def call(self, name, request):
        srv_type, callback = self.services[name]
        return callback(request, srv_type.Response())

    def fire(self, period=None):
        """Run every timer (or those with ``period``) once."""
        for t in list(self.timers):
            if not t.cancelled and (period is None or abs(t.period - period) < 1e-9):
                t.callback()


def _check_descriptor(desc, param) -> str:
    """rclpy's Node._apply_descriptor (read-only aside): '' if ``param`` fits, else rclpy's reason.
    Ranges apply only to a value of their own type (an int given to a dynamically typed double
    is not range-checked, as in rclpy)."""
    if not desc.dynamic_typing and param.type_ not in (ParameterType.PARAMETER_NOT_SET, desc.type):
        return f"Wrong parameter type, expected '{desc.type}' got '{param.type_}'"
    if param.type_ == ParameterType.PARAMETER_DOUBLE and desc.floating_point_range:
        r = desc.floating_point_range[0]
        lo, hi = min(r.from_value, r.to_value), max(r.from_value, r.to_value)
        if not (lo <= param.value <= hi or math.isclose(param.value, lo) or math.isclose(param.value, hi)):
            return f"Parameter {param.name} out of range. Min: {lo}, Max: {hi}, value: {param.value}"
    if param.type_ == ParameterType.PARAMETER_INTEGER and desc.integer_range:
        r = desc.integer_range[0]
        lo, hi = min(r.from_value, r.to_value), max(r.from_value, r.to_value)
        if not lo <= param.value <= hi:
            return f"Parameter {param.name} out of range. Min: {lo}, Max: {hi}, value: {param.value}"
    return ""


class ReliabilityPolicy(enum.Enum):
    RELIABLE, BEST_EFFORT = 1, 2


class DurabilityPolicy(enum.Enum):
    TRANSIENT_LOCAL, VOLATILE = 1, 2


class HistoryPolicy(enum.Enum):
    KEEP_LAST, KEEP_ALL = 1, 2


@dataclass
class QoSProfile:
    history: HistoryPolicy = HistoryPolicy.KEEP_LAST
    depth: int = 10
    reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE
    durability: DurabilityPolicy = DurabilityPolicy.VOLATILE


# --------------------------------------------------------------------------- services


def _service(name, request_fields, response_fields):
    def cls(fields, suffix):
        def init(self, **kw):
            for k, v in fields.items():
                setattr(self, k, kw.get(k, v))

        return type(f"{name}_{suffix}", (), {"__init__": init})

    return type(name, (), {"Request": cls(request_fields, "Request"), "Response": cls(response_fields, "Response")})


Trigger = _service("Trigger", {}, {"success": False, "message": ""})
SetBool = _service("SetBool", {"data": False}, {"success": False, "message": ""})


class MultiThreadedExecutor:
    def __init__(self, num_threads=None):
        self.num_threads = num_threads


class MutuallyExclusiveCallbackGroup:
    pass


# --------------------------------------------------------------------------- install


class SpinStop(KeyboardInterrupt):
    """What the fake spin raises: Ctrl-C."""


INSTALLED: list[bool] = []
"""Non-empty while a test has the stand-ins installed (test/conftest.py clears it after each test)."""


def drop_node_modules() -> None:
    """Forget every imported node shell module (they bind rclpy at import)."""
    import sys

    for name in [n for n in sys.modules if n == "nora_ros.nodes" or n.startswith("nora_ros.nodes.")]:
        del sys.modules[name]


def install(monkeypatch) -> None:
    """Put the stand-in modules in ``sys.modules`` for this test only."""
    import sys

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, m)
        return m

    # The node shells import rclpy and the messages at module level: drop any copy imported
    # against an earlier test's stand-ins, so the next import binds these; test/conftest.py drops
    # the copies bound to these after the test (a later test on real ROS must not get them).
    drop_node_modules()
    INSTALLED.append(True)
    GRAPH.clear()
    spun = []
    NAMED_LOGGERS.clear()

    def spin(node, executor=None):
        spun.append(node)
        raise SpinStop()

    module("rclpy", init=lambda args=None, signal_handler_options=None: None, spin=spin, try_shutdown=lambda: None,
           spun=spun)
    module("rclpy.node", Node=Node)
    module("rclpy.parameter", Parameter=Parameter)
    module("rclpy.qos", QoSProfile=QoSProfile, ReliabilityPolicy=ReliabilityPolicy, DurabilityPolicy=DurabilityPolicy,
           HistoryPolicy=HistoryPolicy,
           qos_profile_sensor_data=QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    module("rclpy.exceptions", ParameterException=ParameterException,
           InvalidParameterTypeException=InvalidParameterTypeException,
           InvalidParameterValueException=InvalidParameterValueException)
    module("rclpy.logging", get_logger=get_logger)
    module("rclpy.executors", ExternalShutdownException=type("ExternalShutdownException", (Exception,), {}),
           MultiThreadedExecutor=MultiThreadedExecutor)
    module("rclpy.callback_groups", MutuallyExclusiveCallbackGroup=MutuallyExclusiveCallbackGroup,
           ReentrantCallbackGroup=MutuallyExclusiveCallbackGroup)
    module("rclpy.signals", SignalHandlerOptions=types.SimpleNamespace(NO="no", ALL="all"))
    module("rcl_interfaces")
    module("rcl_interfaces.msg", ParameterDescriptor=ParameterDescriptor, FloatingPointRange=FloatingPointRange,
           IntegerRange=IntegerRange, ParameterType=ParameterType, SetParametersResult=SetParametersResult)
    module("std_srvs")
    module("std_srvs.srv", Trigger=Trigger, SetBool=SetBool)
    packages: dict[str, dict] = {}
    for full, cls in MSG.items():
        pkg, name = full.split("/")
        packages.setdefault(pkg, {})[name] = cls
    for pkg, classes in packages.items():
        if pkg != "nora_ros":
            module(pkg)
        module(f"{pkg}.msg", **classes)
    module("nora_ros.srv", **{full.split("/")[1]: cls for full, cls in SRV.items()})
    module("interbotix_xs_msgs")
    module("interbotix_xs_msgs.msg", JointGroupCommand=_XS["interbotix_xs_msgs/JointGroupCommand"],
           JointSingleCommand=_XS["interbotix_xs_msgs/JointSingleCommand"])
    module("interbotix_xs_msgs.srv",
           OperatingModes=types.SimpleNamespace(Request=_XS["interbotix_xs_msgs/OperatingModesRequest"]),
           RegisterValues=types.SimpleNamespace(Request=_XS["interbotix_xs_msgs/RegisterValuesRequest"]))


# --------------------------------------------------------------------------- a toy bus


class Bus:
    """Delivers what the nodes publish to the nodes that subscribe (names resolved in each node's
    namespace) and fires their timers in time order on the fake clock. No QoS, no loss, no
    latency: enough to run the shells' wiring end to end, not a model of DDS."""

    def __init__(self, nodes):
        self.nodes = list(nodes)
        self._sent: dict[tuple[int, str], int] = {}
        self._due: dict[int, float] = {}

    @staticmethod
    def resolve(node, topic: str) -> str:
        return topic if topic.startswith("/") else f"/{node.namespace}/{topic}"

    def deliver(self) -> None:
        moved = True
        while moved:
            moved = False
            for node in self.nodes:
                for topic, pub in node.publishers.items():
                    key = (id(pub), topic)
                    start = self._sent.get(key, 0)
                    new = pub.msgs[start:]
                    if not new:
                        continue
                    self._sent[key] = len(pub.msgs)
                    name = self.resolve(node, topic)
                    for msg in new:
                        for other in self.nodes:
                            for sub_topic, callback in other.subscriptions.items():
                                if self.resolve(other, sub_topic) == name:
                                    callback(msg)
                                    moved = True

    def run(self, duration: float, stop=lambda: False, after=lambda node, timer: None) -> bool:
        """Fire every timer when due for ``duration`` fake seconds; True as soon as ``stop()``."""
        end = Clock.t + duration
        timers = [(node, t) for node in self.nodes for t in node.timers]
        for _, t in timers:
            self._due.setdefault(id(t), Clock.t + t.period)
        while True:
            live = [(self._due[id(t)], i) for i, (_, t) in enumerate(timers) if not t.cancelled]
            if not live:
                return False
            due, i = min(live)
            if due > end:
                return False
            node, timer = timers[i]
            Clock.t = due
            timer.callback()
            self._due[id(timer)] = due + timer.period
            after(node, timer)
            self.deliver()
            if stop():
                return True
