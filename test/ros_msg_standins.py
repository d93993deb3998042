"""Stand-ins for ROS 2 message classes, built from .msg definitions, for tests without ROS.

The conversions in nora_ros.interface.convert take message classes as arguments; these stand-ins
behave like rosidl's generated Python classes where it matters for catching mistakes:

- only the fields of the definition exist (``__slots__``: a misspelled field raises);
- setters check types as rosidl's do: float64 takes ``float`` (not ``int``, not a numpy
  array), integers are range-checked, numeric arrays take ``array.array`` of the right typecode
  or a sequence of Python numbers, nested fields take an instance of the nested class;
- constants are class attributes; the constructor takes keyword arguments.

Our own messages are built from the repository's msg/*.msg files; the standard ones from
the subsets of their real definitions below (common_interfaces, rcl_interfaces).
"""

from __future__ import annotations

import array
import pathlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parents[1]

INT_RANGES = {
    "byte": (0, 255), "char": (0, 255),
    "int8": (-(2**7), 2**7 - 1), "uint8": (0, 2**8 - 1),
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}
FLOATS = {"float32", "float64"}
TYPECODES = {"float32": "f", "float64": "d", "int8": "b", "uint8": "B", "int16": "h", "uint16": "H",
             "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q"}
PRIMITIVES = set(INT_RANGES) | FLOATS | {"bool", "string", "wstring"}

STANDARD = {
    "builtin_interfaces/Time": "int32 sec\nuint32 nanosec",
    "builtin_interfaces/Duration": "int32 sec\nuint32 nanosec",
    "std_msgs/Header": "builtin_interfaces/Time stamp\nstring frame_id",
    "std_msgs/String": "string data",
    "std_msgs/Float64": "float64 data",
    "geometry_msgs/Vector3": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/Twist": "Vector3 linear\nVector3 angular",
    "sensor_msgs/Image": ("std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
                          "uint8 is_bigendian\nuint32 step\nuint8[] data"),
    "sensor_msgs/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data",
    "sensor_msgs/CameraInfo": ("std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\n"
                               "float64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\n"
                               "uint32 binning_y"),
    "sensor_msgs/JointState": ("std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\n"
                               "float64[] effort"),
    "trajectory_msgs/JointTrajectoryPoint": ("float64[] positions\nfloat64[] velocities\nfloat64[] accelerations\n"
                                             "float64[] effort\nbuiltin_interfaces/Duration time_from_start"),
    "trajectory_msgs/JointTrajectory": ("std_msgs/Header header\nstring[] joint_names\n"
                                        "JointTrajectoryPoint[] points"),
    "diagnostic_msgs/KeyValue": "string key\nstring value",
    "diagnostic_msgs/DiagnosticStatus": ("byte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\nbyte level\n"
                                         "string name\nstring message\nstring hardware_id\nKeyValue[] values"),
    "diagnostic_msgs/DiagnosticArray": "std_msgs/Header header\nDiagnosticStatus[] status",
}


@dataclass(frozen=True)
class FieldSpec:
    type: str  # base type: a primitive or "pkg/Name"
    name: str
    array: str | None  # None, "" (unbounded), "N" (fixed) or "<=N" (bounded)


@dataclass(frozen=True)
class ConstantSpec:
    type: str
    name: str
    value: object


@dataclass(frozen=True)
class MsgSpec:
    full_name: str
    fields: tuple[FieldSpec, ...]
    constants: tuple[ConstantSpec, ...]
    lines: tuple[str, ...]  # the raw lines, for comment checks


_FIELD_NAME = re.compile(r"^(?!.*__)(?!.*_$)[a-z][a-z0-9_]*$")
_CONST_NAME = re.compile(r"^[A-Z]([A-Z0-9_]?[A-Z0-9]+)*$")
_TYPE = re.compile(r"^(?P<base>[A-Za-z][A-Za-z0-9_/]*?)(?P<bound><=\d+)?(?:\[(?P<array><=\d+|\d+)?\])?$")


def _parse_constant_value(type_: str, text: str):
    if type_ in ("string", "wstring"):
        for q in ('"', "'"):
            if len(text) >= 2 and text.startswith(q) and text.endswith(q):
                return text[1:-1]
        return text
    if type_ == "byte":
        # rosidl's Python type for byte is a 1-byte bytes object, constants included.
        return bytes([int(text, 0)])
    if type_ == "bool":
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ValueError(f"bad bool constant {text!r}")
    if type_ in FLOATS:
        return float(text)
    if type_ in INT_RANGES:
        value = int(text, 0)
        lo, hi = INT_RANGES[type_]
        if not lo <= value <= hi:
            raise ValueError(f"constant {value} out of range for {type_}")
        return value
    raise ValueError(f"constants must be primitive, got {type_}")


def parse_msg(text: str, full_name: str) -> MsgSpec:
    """Parse .msg text (rosidl syntax: fields, constants, comments, bounded/fixed arrays)."""
    package = full_name.split("/")[0]
    fields, constants = [], []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        type_text, _, rest = line.partition(" ")
        rest = rest.strip()
        m = _TYPE.match(type_text)
        if not m:
            raise ValueError(f"{full_name}: bad type {type_text!r}")
        base = m.group("base")
        if base not in PRIMITIVES:
            base = base if "/" in base else f"{package}/{base}"
        if "=" in rest.split("#", 1)[0] or (base in ("string", "wstring") and "=" in rest):
            name, _, value = rest.partition("=")
            name = name.strip()
            value = value.strip()
            if base not in ("string", "wstring"):
                value = value.split("#", 1)[0].strip()
            if not _CONST_NAME.match(name):
                raise ValueError(f"{full_name}: bad constant name {name!r}")
            if m.group("array") is not None:
                raise ValueError(f"{full_name}: array constants are not allowed ({name})")
            constants.append(ConstantSpec(base, name, _parse_constant_value(base, value)))
        else:
            name = rest.split("#", 1)[0].split()[0]
            if not _FIELD_NAME.match(name):
                raise ValueError(f"{full_name}: bad field name {name!r}")
            array_spec = None
            if "[" in type_text:
                array_spec = m.group("array") or ""
            fields.append(FieldSpec(base, name, array_spec))
    return MsgSpec(full_name, tuple(fields), tuple(constants), tuple(text.splitlines()))


def repo_specs() -> dict[str, MsgSpec]:
    """Our messages from msg/*.msg, keyed "nora_ros/Name"."""
    return {f"nora_ros/{p.stem}": parse_msg(p.read_text(), f"nora_ros/{p.stem}")
            for p in sorted((REPO / "msg").glob("*.msg"))}


def all_specs() -> dict[str, MsgSpec]:
    specs = {name: parse_msg(text, name) for name, text in STANDARD.items()}
    specs.update(repo_specs())
    return specs


class _Message:
    __slots__ = ()
    _spec: MsgSpec
    _registry: dict

    def __init__(self, **kwargs):
        for f in self._spec.fields:
            object.__setattr__(self, f.name, _default(f, self._registry))
        for key, value in kwargs.items():
            if key not in self.__slots__:
                raise AttributeError(f"{type(self).__name__} has no field {key!r}")
            setattr(self, key, value)

    def __setattr__(self, key, value):
        spec = {f.name: f for f in self._spec.fields}.get(key)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} has no field {key!r}")
        _check(spec, value, self._registry, type(self).__name__)
        object.__setattr__(self, key, value)

    def __repr__(self):
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self._spec.fields)
        return f"{type(self).__name__}({inner})"


def _default(f: FieldSpec, registry):
    if f.array is not None:
        if f.type in TYPECODES:
            n = int(f.array) if f.array.isdigit() else 0
            return array.array(TYPECODES[f.type], [0] * n)
        return []
    if f.type in FLOATS:
        return 0.0
    if f.type == "byte":
        return b"\x00"
    if f.type in INT_RANGES:
        return 0
    if f.type == "bool":
        return False
    if f.type in ("string", "wstring"):
        return ""
    return registry[f.type]()


def _check_scalar(type_: str, value, registry, where: str) -> None:
    if type_ == "byte":
        if not isinstance(value, bytes) or len(value) != 1:
            raise TypeError(f"{where}: byte needs a 1-byte bytes object, got {value!r}")
    elif type_ in FLOATS:
        if not isinstance(value, float):
            raise TypeError(f"{where}: {type_} needs a float, got {type(value).__name__}")
    elif type_ in INT_RANGES:
        if not isinstance(value, int):
            raise TypeError(f"{where}: {type_} needs an int, got {type(value).__name__}")
        lo, hi = INT_RANGES[type_]
        if not lo <= value <= hi:
            raise ValueError(f"{where}: {value} out of range for {type_}")
    elif type_ == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"{where}: bool needs a bool, got {type(value).__name__}")
    elif type_ in ("string", "wstring"):
        if not isinstance(value, str):
            raise TypeError(f"{where}: string needs a str, got {type(value).__name__}")
    elif not isinstance(value, registry[type_]):
        raise TypeError(f"{where}: needs a {type_}, got {type(value).__name__}")


def _check(f: FieldSpec, value, registry, owner: str) -> None:
    where = f"{owner}.{f.name}"
    if f.array is None:
        _check_scalar(f.type, value, registry, where)
        return
    if f.type in TYPECODES and isinstance(value, array.array):
        if value.typecode != TYPECODES[f.type]:
            raise TypeError(f"{where}: array typecode {value.typecode!r}, {TYPECODES[f.type]!r} expected")
        items = value
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = value
        for v in items:
            _check_scalar(f.type, v, registry, where)
    else:
        raise TypeError(f"{where}: needs a sequence, got {type(value).__name__}")
    if f.array and f.array.isdigit() and len(items) != int(f.array):
        raise ValueError(f"{where}: needs exactly {f.array} items, got {len(items)}")


def build_classes(specs: dict[str, MsgSpec] | None = None) -> dict[str, type]:
    """Message classes keyed by "pkg/Name" (nested references resolved)."""
    specs = specs or all_specs()
    registry: dict[str, type] = {}
    for full, spec in specs.items():
        attrs = {"__slots__": tuple(f.name for f in spec.fields), "_spec": spec, "_registry": registry}
        for c in spec.constants:
            attrs[c.name] = c.value
        registry[full] = type(full.split("/")[1], (_Message,), attrs)
    return registry


MSG = build_classes()


def repo_service_specs() -> dict[str, tuple[MsgSpec, MsgSpec]]:
    """Our services from srv/*.srv as (request, response) specs, keyed "nora_ros/Name"."""
    out = {}
    for p in sorted((REPO / "srv").glob("*.srv")):
        request, sep, response = p.read_text().partition("\n---\n")
        if not sep:
            raise ValueError(f"{p}: no '---' line between request and response")
        name = f"nora_ros/{p.stem}"
        out[name] = (parse_msg(request, name + "_Request"), parse_msg(response, name + "_Response"))
    return out


def build_services() -> dict[str, type]:
    """A class per service with ``Request`` and ``Response`` message classes (checked fields)."""
    out = {}
    for name, (req, resp) in repo_service_specs().items():
        classes = build_classes({**all_specs(), name + "_Request": req, name + "_Response": resp})
        out[name] = type(name.split("/")[1], (), {"Request": classes[name + "_Request"],
                                                 "Response": classes[name + "_Response"]})
    return out


SRV = build_services()
