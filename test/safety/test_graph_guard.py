"""The graph guard, fed graph snapshots (no ROS): a second publisher on cmd holds and latches,
naming it; the reset is refused while it is there; counts are read per tick, the named lists only
when a count changes (or once a second)."""

from __future__ import annotations

import pytest

from nora_ros.safety.graph_guard import (
    CLIENTS,
    PUBLISHERS,
    UNKNOWN_NAME,
    UNKNOWN_NAMESPACE,
    Endpoint,
    GraphGuard,
    Rule,
    rules_for,
)

POLICY = Endpoint("policy_node", "/nora", "g1")
SUPERVISOR = Endpoint("supervisor_node", "/nora", "g2")
SAFETY = Endpoint("safety_node", "/nora", "g3")


class SnapshotGraph:
    """A graph snapshot per name; counts every query so the test can see what the guard asked."""

    def __init__(self, snapshot: dict[str, list[Endpoint]]):
        self.snapshot = snapshot
        self.counts = self.lists = 0

    def count(self, rule):
        self.counts += 1
        return len(self.snapshot.get(rule.name, []))

    def endpoints(self, rule):
        self.lists += 1
        return list(self.snapshot.get(rule.name, []))


def _rules():
    return rules_for("/nora", "/nora/safety_node", robot_name="wx250s",
                     arm_topics=["/wx250s/commands/joint_group", "/wx250s/commands/joint_single",
                                 "/wx250s/commands/joint_trajectory"],
                     operator_nodes=["/_ros2cli_*"])


def _clean():
    return {"/nora/cmd": [POLICY], "/nora/trial/status": [SUPERVISOR], "/wx250s/commands/joint_group": [SAFETY],
            "/wx250s/commands/joint_single": [SAFETY]}


def test_rules_come_from_the_access_table():
    rules = {r.name: r for r in _rules()}
    assert rules["/nora/cmd"] == Rule("/nora/cmd", PUBLISHERS, ("/nora/policy_node",))
    assert rules["/nora/trial/status"].allowed == ("/nora/supervisor_node",)
    for t in ("joint_group", "joint_single", "joint_trajectory"):
        assert rules[f"/wx250s/commands/{t}"].allowed == ("/nora/safety_node",)
    # the operator's CLI (a parameter) and the console node (the access table)
    assert rules["/nora/safety/enable"] == Rule("/nora/safety/enable", CLIENTS, ("/_ros2cli_*", "/nora/console_node"))
    assert rules["/nora/safety/reset"].kind == CLIENTS
    assert "/nora/safety/estop" not in rules  # anyone may stop the arm
    assert "/nora/sim/joint_command" not in rules  # not the arm backend in use


def test_a_clean_graph_passes_and_counts_are_all_a_tick_reads():
    graph = SnapshotGraph(_clean())
    guard = GraphGuard(_rules())
    first = guard.check(graph, 0.0)
    assert first.clean and not first.fault and first.full
    lists = graph.lists
    for i in range(1, 10):  # 0.9 s: within full_check_period, nothing changed
        check = guard.check(graph, i * 0.1)
        assert check.clean and not check.full
    assert graph.lists == lists, "named lists were read although no count changed"
    assert guard.check(graph, 1.0).full  # once a second anyway


@pytest.mark.parametrize("intruder, why", [
    (Endpoint("_ros2cli_4242", "/", "g9"), "not an expected publisher"),
    (Endpoint("talker", "/lab", "g9"), "not an expected publisher"),
    (Endpoint("policy_node", "/nora", "g9"), "a second publisher named /nora/policy_node"),
])
def test_a_second_publisher_on_cmd_holds_and_latches_naming_it(intruder, why):
    snap = _clean()
    graph = SnapshotGraph(snap)
    guard = GraphGuard(_rules())
    assert guard.check(graph, 0.0).clean
    snap["/nora/cmd"] = [POLICY, intruder]
    check = guard.check(graph, 0.1)  # the very next tick: the count changed
    assert check.new_fault and not check.clean and check.full
    assert "/nora/cmd" in check.fault and intruder.fqn in check.fault and why in check.fault
    # latched: the intruder leaving changes nothing until an operator reset
    snap["/nora/cmd"] = [POLICY]
    later = guard.check(graph, 0.2)
    assert later.fault == check.fault and not later.new_fault and not later.clean
    assert guard.reset(graph, 0.3) == (True, "")
    assert guard.check(graph, 0.4).clean


def test_the_reset_is_refused_while_the_intruder_is_still_there():
    snap = _clean()
    snap["/wx250s/commands/joint_group"] = [SAFETY, Endpoint("bypass", "/", "g7")]
    graph = SnapshotGraph(snap)
    guard = GraphGuard(_rules())
    check = guard.check(graph, 0.0)
    assert check.new_fault and "/wx250s/commands/joint_group" in check.fault and "/bypass" in check.fault
    ok, why = guard.reset(graph, 1.0)
    assert not ok and "/bypass" in why and guard.fault
    snap["/wx250s/commands/joint_group"] = [SAFETY]
    assert guard.reset(graph, 2.0)[0] and not guard.fault


def test_a_swap_that_keeps_the_count_is_seen_within_a_second():
    snap = _clean()
    graph = SnapshotGraph(snap)
    guard = GraphGuard(_rules(), full_check_period=1.0)
    guard.check(graph, 0.0)
    snap["/nora/trial/status"] = [Endpoint("fake_supervisor", "/nora", "g5")]  # same count
    assert guard.check(graph, 0.5).clean  # counts only: not seen yet
    check = guard.check(graph, 1.0)
    assert check.new_fault and "/nora/fake_supervisor" in check.fault


def test_service_clients_from_unexpected_nodes_latch_the_operators_cli_does_not():
    snap = _clean()
    graph = SnapshotGraph(snap)
    guard = GraphGuard(_rules())
    snap["/nora/safety/enable"] = [Endpoint("_ros2cli_requester_std_srvs_SetBool", "/"),
                                   Endpoint("console_node", "/nora")]
    assert guard.check(graph, 0.0).clean
    snap["/nora/safety/enable"].append(Endpoint("enabler", "/lab"))
    check = guard.check(graph, 0.1)
    assert check.new_fault and "client of /nora/safety/enable" in check.fault and "/lab/enabler" in check.fault


def test_an_unidentified_publisher_is_ignored_then_latched_after_the_timeout():
    snap = _clean()
    graph = SnapshotGraph(snap)
    guard = GraphGuard(_rules(), identify_timeout=0.5)
    unknown = Endpoint(UNKNOWN_NAME, UNKNOWN_NAMESPACE, "abcd")
    snap["/nora/cmd"] = [POLICY, unknown]
    check = guard.check(graph, 0.0)
    assert not check.clean and not check.fault  # its messages are not acted on, no fault yet
    assert not guard.check(graph, 0.4, force_full=True).fault
    check = guard.check(graph, 0.5, force_full=True)
    assert check.new_fault and "unidentified" in check.fault and "abcd" in check.fault


def test_a_node_announcement_that_arrives_in_time_clears_the_unidentified_endpoint():
    snap = _clean()
    graph = SnapshotGraph(snap)
    guard = GraphGuard(_rules(), identify_timeout=0.5)
    snap["/nora/cmd"] = [Endpoint(UNKNOWN_NAME, UNKNOWN_NAMESPACE, "g1")]
    assert not guard.check(graph, 0.0).clean
    snap["/nora/cmd"] = [POLICY]  # the policy node's discovery info arrived
    check = guard.check(graph, 0.1, force_full=True)
    assert check.clean and not check.fault


def test_bad_rules_are_refused():
    from nora_ros.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="absolute"):
        Rule("cmd", PUBLISHERS, ())
    with pytest.raises(ConfigurationError, match="kind"):
        Rule("/cmd", "subscribers", ())
