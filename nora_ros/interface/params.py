"""Node parameters without ROS: :class:`ParamSpec` (name, default, description, range) and the
machinery that derives specs from the core's frozen config dataclasses.

One default per parameter, in one place: parameters that configure a core component take
their default (and, where the component documents its fields with attribute docstrings, their
description) from that component's config dataclass. The nodes declare each spec with a
``ParameterDescriptor`` (description, range, read-only), read the values once into the
component's config (:func:`values_for`), and validate live changes with :meth:`ParamSpec.check`.

ROS parameters cannot be ``None``: an optional string is ``""`` and an optional integer ``0``
when it means "automatic / none" (said in each description).
"""

from __future__ import annotations

import ast
import dataclasses
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
        if default is None or ("None" in annotation and "int" in annotation):
            # ROS parameters cannot be None: an optional integer's 0 stands for it (its own default,
            # e.g. -1 for "automatic", is kept).
            if "int" in annotation:
                note = " (0: none / automatic)" if default is None else ""
                default, none_value = (0 if default is None else default), 0
            else:
                default, none_value, note = ("" if default is None else default), "", " (empty: automatic)"
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

