"""SafetyConfig: documented defaults, validation that says how to fix, from_mapping, tightening."""

from __future__ import annotations

import dataclasses
import math

import pytest

from nora_ros.errors import ConfigurationError
from nora_ros.safety import SafetyConfig


def test_defaults_are_bridge_limits():
    cfg = SafetyConfig()
    assert cfg.max_step_translation == pytest.approx(0.05)  # 0.05 m per 0.2 s step
    assert cfg.max_step_rotation == pytest.approx(0.25)  # 0.25 rad per step
    assert cfg.workspace_lower == (0.1, -0.20, -0.01)
    assert cfg.workspace_upper == (0.45, 0.25, 0.30)
    assert cfg.floor_z == pytest.approx(0.02)  # table 0 + 2 cm margin, above the box's -0.01


def test_every_field_is_documented_with_a_unit():
    import inspect

    source = inspect.getsource(SafetyConfig)
    for f in dataclasses.fields(SafetyConfig):
        after = source.split(f"    {f.name}:", 1)[1].split('"""', 2)[1]
        assert any(u in after for u in ("m/s", "rad/s", "m:", "rad:", "s:", "ticks:", "[0, 1]", "m^", "rad^")), f.name


def test_from_mapping_roundtrip_and_lists():
    cfg = SafetyConfig.from_mapping({"max_linear_speed": 0.1, "workspace_lower": [0.12, -0.1, 0.0]})
    assert cfg.max_linear_speed == 0.1
    assert cfg.workspace_lower == (0.12, -0.1, 0.0)
    assert SafetyConfig.from_mapping(cfg.to_mapping()) == cfg


def test_unknown_key_says_did_you_mean():
    with pytest.raises(ConfigurationError, match=r"'max_linear_sped' \(did you mean 'max_linear_speed'\?\)"):
        SafetyConfig.from_mapping({"max_linear_sped": 0.1})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"max_linear_speed": 0.0}, "max_linear_speed must be > 0"),
        ({"max_angular_speed": math.nan}, "must be finite"),
        ({"tick_period": -0.1}, "tick_period must be > 0"),
        ({"workspace_lower": (0.5, -0.2, 0.0)}, "workspace_lower .* must be below workspace_upper"),
        ({"workspace_upper": (0.45, 0.25)}, "3 finite numbers"),
        ({"table_z": 0.29, "floor_margin": 0.02}, "lower table_z or floor_margin"),
        ({"orientation_lower": (-1.0, -1.6, -1.0)}, r"inside \(-pi/2, pi/2\)"),
        ({"command_timeout_ticks": 1.5}, "whole number of ticks"),
        ({"joint_margin": -0.1}, "joint_margin must be >= 0"),
        ({"gripper_hysteresis": 0.6}, "gripper_threshold"),
        ({"max_command_age": True}, "must be a number"),
    ],
)
def test_bad_values_say_what_to_fix(changes, match):
    with pytest.raises(ConfigurationError, match=match):
        SafetyConfig(**changes)


def test_tightening_allowed_loosening_named():
    base = SafetyConfig()
    tighter = base.replace(max_linear_speed=0.1, workspace_lower=(0.15, -0.1, 0.0), floor_margin=0.05,
                           open_loop_translation=0.05, joint_margin=0.1, command_timeout_ticks=1)
    assert tighter.loosenings(base) == []
    tighter.check_tightens(base)
    looser = base.replace(max_linear_speed=0.5, workspace_upper=(0.5, 0.25, 0.3), floor_margin=0.0,
                          joint_margin=0.0)
    problems = looser.loosenings(base)
    assert [p.split(":")[0] for p in problems] == ["max_linear_speed", "joint_margin", "workspace_upper", "floor (table_z + floor_margin)"]
    with pytest.raises(ConfigurationError, match="may only be tightened; loosened: max_linear_speed: 0.25 -> 0.5"):
        looser.check_tightens(base)
    with pytest.raises(ConfigurationError, match="tick_period"):
        base.replace(tick_period=0.1).check_tightens(base)
