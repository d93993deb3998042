"""The SROS2 permission policy grants exactly the pairs of issue 15, read back from the committed
config/nora_policy.xml the way DDS evaluates permissions (deny rules first, fnmatch patterns);
the file is what the access table renders; README's access table is current."""

from __future__ import annotations

import fnmatch
import pathlib

import pytest

from nora_ros.interface import access
from nora_ros.security import policy

REPO = pathlib.Path(__file__).resolve().parents[2]
POLICY_FILE = REPO / "config" / "nora_policy.xml"
GRANTS = policy.parse(POLICY_FILE.read_text())
ENCLAVES = sorted(GRANTS)


def may(enclave: str, kind: str, name: str) -> bool:
    """Whether ``enclave`` may ``kind`` (publish, subscribe, request, reply) ``name``: a DENY rule
    that matches wins, then any ALLOW (DDS Security's order, as sros2 writes it)."""
    g = GRANTS[enclave]
    if any(fnmatch.fnmatchcase(name, p) for p in g.get(f"deny_{kind}", ())):
        return False
    return any(fnmatch.fnmatchcase(name, p) for p in g.get(kind, ()))


def who(kind: str, name: str) -> set[str]:
    return {e for e in ENCLAVES if may(e, kind, name)}


# What issue 15 asks (the sim also scores trials: its auto_score publishes trial/score), with the
# operator console of issue 13 beside the operator: it instructs, scores and calls the safety services.
EXPECTED = [
    ("publish", "/nora/cmd", {"/nora/policy"}),
    ("publish", "/nora/cmd_safe", {"/nora/safety"}),
    ("publish", "/nora/safety/status", {"/nora/safety"}),
    ("publish", "/wx250s/commands/joint_group", {"/nora/safety"}),
    ("publish", "/wx250s/commands/joint_single", {"/nora/safety"}),
    ("publish", "/wx250s/commands/joint_trajectory", {"/nora/safety"}),
    ("publish", "/nora/sim/joint_command", {"/nora/safety"}),
    ("publish", "/nora/sim/gripper_command", {"/nora/safety"}),
    ("publish", "/nora/trial/status", {"/nora/supervisor"}),
    ("publish", "/nora/trial/result", {"/nora/supervisor"}),
    ("publish", "/nora/instruction", {"/nora/operator"}),  # the console starts trials through trial/start
    ("publish", "/nora/trial/score", {"/nora/operator", "/nora/sim", "/nora/console"}),
    ("request", "/nora/safety/estop", {"/nora/operator", "/nora/console"}),
    ("request", "/nora/safety/reset", {"/nora/operator", "/nora/console"}),
    ("request", "/nora/safety/enable", {"/nora/operator", "/nora/console"}),
    ("reply", "/nora/safety/estop", {"/nora/safety"}),
    ("reply", "/nora/safety/reset", {"/nora/safety"}),
    ("reply", "/nora/safety/enable", {"/nora/safety"}),
    # issue 13's robot side: trials started and stopped with an answer, models switched between trials
    ("request", "/nora/trial/start", {"/nora/operator", "/nora/console"}),
    ("request", "/nora/trial/stop", {"/nora/operator", "/nora/console"}),
    ("request", "/nora/policy/select_model", {"/nora/operator", "/nora/console"}),
    ("reply", "/nora/trial/start", {"/nora/supervisor"}),
    ("reply", "/nora/trial/stop", {"/nora/supervisor"}),
    ("reply", "/nora/policy/select_model", {"/nora/policy"}),
]


@pytest.mark.parametrize("kind, name, enclaves", EXPECTED, ids=[f"{k} {n}" for k, n, _ in EXPECTED])
def test_policy_grants_exactly_the_issue_pairs(kind, name, enclaves):
    assert who(kind, name) == enclaves


def test_every_role_has_its_enclave():
    assert ENCLAVES == sorted(f"/nora/{r}" for r in ("camera", "policy", "safety", "supervisor", "sim", "driver",
                                                     "operator", "console"))


def test_the_policy_matches_the_access_table_topic_by_topic():
    """Beyond the issue's pairs: every topic's publishers and subscribers, every service's servers
    and callers, as the table says (the table is the one source)."""
    for a in access.TOPICS:
        name = access.absolute(a.topic.name)
        assert who("publish", name) == {access.role(r).enclave for r in a.publishers}, name
        assert who("subscribe", name) >= {access.role(r).enclave for r in a.subscribers}, name
    for s in access.SERVICES:
        name = access.absolute(s.name)
        assert who("reply", name) == {access.role(r).enclave for r in s.servers}, name
        assert who("request", name) == {access.role(r).enclave for r in s.clients}, name


def test_only_the_roles_that_consume_a_topic_may_subscribe_it():
    """The driver's broad grant under /<robot_name> aside, nobody reads what the table does not give it."""
    for a in access.TOPICS:
        name = access.absolute(a.topic.name)
        expected = {access.role(r).enclave for r in a.subscribers}
        if name.startswith("/wx250s/"):
            expected.add("/nora/driver")
        assert who("subscribe", name) == expected, name


@pytest.mark.parametrize("role", access.NODE_ROLES)
def test_each_node_may_create_what_an_rclpy_node_creates_by_itself(role):
    """Under Enforce a stock rclpy node fails to start without these (DESIGN.md section 5)."""
    r = access.role(role)
    enclave = r.enclave
    assert may(enclave, "publish", "/rosout") and may(enclave, "publish", "/parameter_events")
    for service in policy.NODE_SERVICES:
        assert may(enclave, "reply", f"/nora/{r.node}/{service}"), service
        assert not may(enclave, "reply", f"/nora/other_node/{service}")


def test_the_operator_terminal_can_run_the_ros2_cli_and_set_parameters():
    assert may("/nora/operator", "reply", "/_ros2cli_12345/get_type_description")
    assert may("/nora/operator", "request", "/nora/safety_node/set_parameters")
    assert not may("/nora/operator", "publish", "/nora/cmd")
    assert not may("/nora/operator", "reply", "/nora/safety/enable")  # no impostor server


def test_the_driver_may_not_command_its_own_motors():
    assert may("/nora/driver", "publish", "/wx250s/joint_states")
    assert may("/nora/driver", "subscribe", "/wx250s/commands/joint_group")
    assert not may("/nora/driver", "publish", "/wx250s/commands/joint_group")


def test_config_policy_file_is_current():
    """Regenerate with `nora-ros security policy -o config/nora_policy.xml`."""
    assert POLICY_FILE.read_text() == policy.render()


def test_other_namespaces_and_robot_names_are_rendered():
    g = policy.parse(policy.render("lab", "arm1"))
    assert "/lab/cmd" in g["/nora/policy"]["publish"]
    assert "/arm1/commands/joint_group" in g["/nora/safety"]["publish"]
    assert "/arm1/commands/*" in g["/nora/driver"]["deny_publish"]
