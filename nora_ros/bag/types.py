"""Message types for rosbag2 without ROS: rosbags' typestore plus this package's own messages.

Why a second kind of class: :mod:`nora_ros.interface.convert` builds messages the way rosidl's
generated classes allow (``msg = cls()`` then field by field), and rosbags' message classes are
dataclasses whose constructor needs every field. :class:`MessageClasses` makes, from the same
typestore definitions, plain mutable classes with rosidl's defaults, so the one conversion
module serves the nodes and the bags; :meth:`MessageClasses.serialize` turns such a message
into CDR bytes through rosbags. Messages read from a bag are rosbags' own dataclasses: the
readers in ``nora_ros.interface.convert`` only touch fields, so they read those unchanged.

Our messages (``msg/*.msg``) are registered at run time with rosbags'
``get_types_from_msg``: no ROS build is needed to read or write them.
"""

from __future__ import annotations

import array
import functools
import os
import pathlib
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from nora_ros.errors import BagError, ConfigurationError

PACKAGE = "nora_ros"

_NUMPY = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}


def msg_dirs() -> list[pathlib.Path]:
    """Where ``msg/*.msg`` may be: ``$NORA_ROS_MSG_DIR``, the source checkout (also an editable
    install), ``share/nora_ros/msg`` of this Python's prefix (pip install, setup.py's
    data_files) and of every ROS prefix (a colcon install)."""
    dirs = []
    if os.environ.get("NORA_ROS_MSG_DIR"):
        dirs.append(pathlib.Path(os.environ["NORA_ROS_MSG_DIR"]))
    dirs.append(pathlib.Path(__file__).resolve().parents[2] / "msg")
    dirs.append(pathlib.Path(sys.prefix) / "share" / PACKAGE / "msg")
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(pathlib.Path(prefix) / "share" / PACKAGE / "msg")
    return dirs


@functools.lru_cache(maxsize=4)
def typestore(msg_dir: str | None = None):
    """ROS 2 Jazzy's standard types (the distribution DESIGN.md's facts were checked on) plus
    ``nora_ros/msg/*`` from ``msg_dir`` (default: the first of :func:`msg_dirs` that exists).

    Cached: parsing the definitions once per process keeps recording cheap."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    candidates = [pathlib.Path(msg_dir)] if msg_dir else msg_dirs()
    found = next((d for d in candidates if d.is_dir() and any(d.glob("*.msg"))), None)
    if found is None:
        raise ConfigurationError(
            f"no {PACKAGE} message definitions (msg/*.msg) found; looked in {[str(d) for d in candidates]}. "
            "Set NORA_ROS_MSG_DIR to the package's msg folder")
    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for path in sorted(found.glob("*.msg")):
        try:
            types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
        except Exception as exc:  # rosbags raises its own parse errors: name the file
            raise ConfigurationError(f"message definition {path} does not parse: {exc}") from exc
    store.register(types)
    return store


class MessageClasses:
    """Default-constructible message classes for ``nora_ros.interface.convert``'s builders, by short name
    (``classes.Image``, ``classes.ActionChunk``) or full name (``classes["sensor_msgs/msg/Image"]``).

    Each class has the definition's fields only (``__slots__``), rosidl's defaults (zero,
    empty, nested messages built), its constants as class attributes, and ``__msgtype__``.
    """

    def __init__(self, store=None):
        self.store = store if store is not None else typestore()
        self._classes: dict[str, type] = {}

    def __getitem__(self, msgtype: str) -> type:
        cls = self._classes.get(msgtype)
        if cls is None:
            cls = self._classes[msgtype] = self._make(msgtype)
        return cls

    def __getattr__(self, short: str) -> type:
        if short.startswith("_"):
            raise AttributeError(short)
        matches = [name for name in self.store.fielddefs if name.rsplit("/", 1)[-1] == short]
        preferred = [m for m in matches if m.startswith(("std_msgs/", "sensor_msgs/", f"{PACKAGE}/"))]
        if len(preferred or matches) != 1:
            raise AttributeError(f"message class '{short}' is ambiguous or unknown: {matches}")
        return self[(preferred or matches)[0]]

    def _make(self, msgtype: str) -> type:
        if msgtype not in self.store.fielddefs:
            raise BagError(f"message type {msgtype} is not in the typestore")
        consts, fields = self.store.fielddefs[msgtype]
        names = tuple(name for name, _ in fields)
        defaults = {name: self._default(desc) for name, desc in fields}

        def __init__(obj, **kwargs: Any) -> None:
            unknown = set(kwargs) - set(names)
            if unknown:
                raise TypeError(f"{msgtype} has no field(s) {sorted(unknown)}")
            for name in names:
                setattr(obj, name, kwargs[name] if name in kwargs else defaults[name]())

        def __repr__(obj) -> str:
            return f"{msgtype}(" + ", ".join(f"{n}={getattr(obj, n)!r}" for n in names) + ")"

        attrs: dict[str, Any] = {"__slots__": names, "__init__": __init__, "__repr__": __repr__,
                                 "__msgtype__": msgtype}
        attrs.update({name: value for name, _, value in consts})
        return type(msgtype.rsplit("/", 1)[-1], (), attrs)

    def _default(self, desc):
        """A factory of the field's rosidl default."""
        from rosbags.interfaces import Nodetype

        kind, detail = desc
        if kind == Nodetype.BASE:
            base = detail[0]
            value = "" if base == "string" else False if base == "bool" else 0.0 if base.startswith("float") else 0
            return lambda: value
        if kind == Nodetype.NAME:
            return lambda: self[detail]()
        if kind == Nodetype.ARRAY:
            item = self._default(detail[0])
            return lambda: [item() for _ in range(detail[1])]
        return list

    # ------------------------------------------------------------------ to rosbags' classes
    def to_typed(self, msg: Any, msgtype: str | None = None) -> Any:
        """``msg`` (one of these classes, or any object with the fields) as rosbags' dataclass."""
        from rosbags.interfaces import Nodetype

        msgtype = msgtype or msg.__msgtype__
        _, fields = self.store.fielddefs[msgtype]
        values = {}
        for name, (kind, detail) in fields:
            value = getattr(msg, name)
            if kind == Nodetype.NAME:
                value = self.to_typed(value, detail)
            elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
                value = self._sequence(value, detail[0], name, msgtype)
            values[name] = value
        return self.store.types[msgtype](**values)

    def _sequence(self, value: Iterable, item: tuple, name: str, msgtype: str) -> Any:
        from rosbags.interfaces import Nodetype

        kind, detail = item
        if kind == Nodetype.NAME:
            return [self.to_typed(v, detail) for v in value]
        base = detail[0]
        if base in _NUMPY:
            if base in ("uint8", "byte", "char") and isinstance(value, (bytes, bytearray, memoryview, array.array)):
                return np.frombuffer(value, dtype=np.uint8)  # image data: no copy before serializing
            return np.asarray(value, dtype=_NUMPY[base])
        if base == "string":
            return [str(v) for v in value]
        raise BagError(f"{msgtype}.{name}: sequences of {base} are not supported")

    def serialize(self, msg: Any) -> memoryview:
        """CDR bytes of ``msg`` (little endian, as rosbag2 stores them)."""
        msgtype = msg.__msgtype__
        return self.store.serialize_cdr(self.to_typed(msg, msgtype), msgtype)
