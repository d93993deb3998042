"""README.md stays true: the quick start, the test command CI runs, the parameter reference."""

from __future__ import annotations

import pathlib
import re

from nora_ros.interface import node_specs, param_files

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_quick_start_is_exactly_two_commands_setup_plus_demo_and_ci():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, commands
    assert "scripts/setup.sh" in commands[0] and "nora-ros demo" in commands[0]
    assert commands[1] == "bash .ci/run"
    assert (REPO / "scripts" / "setup.sh").is_file()


def test_ci_runs_the_test_command_the_readme_gives():
    testing = README.split("## Testing", 1)[1]
    command = re.search(r"```bash\n(.*?)\n```", testing, re.S).group(1).strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert command in ci.splitlines()[-1] or any(line.strip() == command for line in ci.splitlines())


def test_parameter_reference_is_generated_from_the_node_specs():
    """Regenerate with `python -m nora_ros.interface.param_files --readme README.md` after a parameter changes."""
    assert param_files.update_readme(README) == README
    for node in node_specs.NODES:
        for spec in node_specs.node_params(node):
            assert f"| `{spec.name}` |" in README, f"{node}.{spec.name}"


def test_update_readme_needs_the_markers():
    import pytest

    from nora_ros.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="no parameter section"):
        param_files.update_readme("# a README without the markers\n")


def test_access_table_is_generated_from_the_access_table():
    """Regenerate with `nora-ros security policy --readme README.md` after a topic's roles change."""
    from nora_ros.interface import access

    assert access.update_readme(README) == README
    assert "| `cmd` | nora_ros/msg/EndEffectorCommand | policy (guarded) |" in README
